"""Helpers shared by the server, client, load and fuzz tests (this module holds no tests).

Everything runs over real ZeroMQ sockets on 127.0.0.1 ports the OS picks; only the inpainter is
swapped where a test needs control over time (the gated one wraps the real engine).
"""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import msgpack
import numpy as np
import zmq

from lama_backend.client import InpaintRequest
from lama_backend.server import JobCancelledError, Server, ServerConfig
from lama_backend.server.inpainter import EngineInpainter

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYOUT_ORDER = {"RGB": [0, 1, 2], "BGR": [2, 1, 0], "RGBA": [0, 1, 2, 3], "BGRA": [2, 1, 0, 3]}
NUMPY = {"u8": np.uint8, "u16": np.dtype("<u2"), "f32": np.dtype("<f4")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_server(inpainter: Any, **config: Any) -> Iterator[Server]:
    """A real server on a free loopback port, serving from a thread; stopped and checked after."""
    config.setdefault("bind", "tcp://127.0.0.1:*")
    server = Server(ServerConfig(**config), inpainter)
    server.bind()
    thread = threading.Thread(target=server.serve_forever, name="test-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.request_stop()
        thread.join(15)
        assert not thread.is_alive(), "the server did not stop"


def tiny_engine(directory: Path) -> EngineInpainter:
    """The real engine over a tiny random big-lama-shaped generator (ngf 8, one block)."""
    import torch

    from lama_backend.weights import load_model
    from tests.helpers.tiny_model import write_tiny_weights

    torch.set_num_threads(1)
    return EngineInpainter(load_model(write_tiny_weights(directory / "tiny.safetensors"), "cpu"))


class GatedInpainter:
    """Runs `inner` only once `gate` opens; until then it honours cancellation. Deterministic timing."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_info = inner.model_info
        self.gate = threading.Event()
        self.started = threading.Event()

    def __call__(self, image, mask, options, progress, cancelled):  # noqa: ANN001 - Inpainter protocol
        self.started.set()
        progress(0.0, "waiting at the gate")
        while not self.gate.wait(0.01):
            if cancelled():
                raise JobCancelledError("cancelled at the gate")
        return self.inner(image, mask, options, progress, cancelled)


def make_job(rng: np.random.Generator, width: int, height: int, layout: str = "RGBA", dtype: str = "u8",
             tile: int = 1024, **options: Any) -> tuple[InpaintRequest, np.ndarray, np.ndarray]:
    """(request in `layout` order, the same image in RGB(A) order for the engine, the mask)."""
    channels = len(LAYOUT_ORDER[layout])
    if dtype == "f32":
        rgb = rng.random((height, width, channels), dtype=np.float32)
    else:
        rgb = rng.integers(0, np.iinfo(NUMPY[dtype]).max, (height, width, channels), endpoint=True).astype(NUMPY[dtype])
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4: height // 4 + max(1, height // 3), width // 3: width // 3 + max(1, width // 4)] = 255
    wire = np.ascontiguousarray(rgb[..., LAYOUT_ORDER[layout]])
    request = InpaintRequest(width, height, channels, dtype, layout, wire.tobytes(), mask.tobytes(), tile=tile,
                             **options)
    return request, rgb, mask


def to_layout(rgb: np.ndarray, layout: str) -> bytes:
    order = LAYOUT_ORDER[layout] if rgb.shape[2] == len(LAYOUT_ORDER[layout]) else LAYOUT_ORDER[layout + "A"]
    return np.ascontiguousarray(rgb[..., order]).tobytes()


class RawDealer:
    """A bare pyzmq DEALER for sending hand-made (or malformed) messages."""

    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def send(self, header: Any, frames: list[bytes] = (), raw: bool = False) -> None:  # type: ignore[assignment]
        first = header if raw else msgpack.packb(header)
        self.socket.send_multipart([first] + list(frames))

    def recv(self, timeout: float = 5.0) -> tuple[dict, list[bytes]]:
        if not self.socket.poll(int(timeout * 1000)):
            raise TimeoutError("no reply")
        frames = self.socket.recv_multipart()
        return msgpack.unpackb(frames[0]), frames[1:]

    def recv_until(self, predicate: Any, timeout: float = 5.0) -> list[dict]:
        """Every reply up to and including the first that satisfies `predicate` (heartbeats skipped)."""
        replies = []
        deadline = time.monotonic() + timeout
        while True:
            header, _ = self.recv(max(0.01, deadline - time.monotonic()))
            if header.get("type") == "heartbeat":
                continue
            replies.append(header)
            if predicate(header):
                return replies

    def close(self) -> None:
        self.socket.close(linger=0)


def backend_env() -> dict:
    """Environment for `lama-backend` subprocesses: one torch thread, this checkout importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("LAMA_TOKEN", None)
    return env


def backend_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lama_backend.cli", *args]
