"""Everything `lama-backend serve` can be told, in one dataclass."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lama_backend.client.protocol import DEFAULT_ADDRESS, MAX_HEADER_BYTES, MAX_TILE


@dataclass
class ServerConfig:
    bind: str = DEFAULT_ADDRESS
    token: Optional[str] = None               # required in every request when set
    curve_secret_file: Optional[Path] = None  # zmq certificate with the server's secret key
    curve_clients_dir: Optional[Path] = None  # public keys of the clients allowed in
    max_pixels: int = 8192 * 8192             # per job
    max_queued_per_client: int = 16
    max_queued_total: int = 128
    heartbeat_interval: float = 0.5           # app-level heartbeat to clients holding jobs (s)
    zmq_heartbeat: float = 2.0                # ZMTP PING interval; peers silent 3x this are dropped (s)
    shutdown_grace: float = 5.0               # how long a stop waits for the running job to cancel (s)

    @property
    def max_frame_bytes(self) -> int:
        """ZMQ_MAXMSGSIZE: the largest legal frame is one f32 RGBA tile."""
        return max(MAX_TILE * MAX_TILE * 4 * 4, MAX_HEADER_BYTES)

    @property
    def auth(self) -> str:
        if self.curve_secret_file is not None:
            return "curve"
        return "token" if self.token else "none"


def bind_host(address: str) -> str:
    """The host part of tcp://HOST:PORT ("" for other transports)."""
    if not address.startswith("tcp://"):
        return ""
    host = address[len("tcp://"):].rpartition(":")[0]
    return host.strip("[]")


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_allowed(config: ServerConfig) -> None:
    """Refuse to expose the backend beyond this machine without a token or CURVE keys."""
    address = config.bind
    if address.startswith("ipc://") or address.startswith("inproc://"):
        return
    if not address.startswith("tcp://"):
        raise ValueError(f"unsupported bind address {address!r}: use tcp://HOST:PORT or ipc://PATH")
    if is_loopback_host(bind_host(address)):
        return
    if config.auth == "none":
        raise ValueError(f"refusing to bind {address}: it is reachable from other machines; give --token "
                         "(or LAMA_TOKEN) or --curve-secret-file with --curve-clients, or bind tcp://127.0.0.1:PORT")
    if config.curve_secret_file is not None and config.curve_clients_dir is None:
        raise ValueError("--curve-secret-file needs --curve-clients (the directory of allowed client keys)")
