"""Two interchangeable DEALER transports: pyzmq when importable, else the built-in ZMTP one.

Both move lists of frames; `LamaClient` does the protocol on top. `load_codec` picks msgpack
or the built-in subset the same way.
"""
import os
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .zmtp import StaleConnection, ZmtpDealer

PURE_ENV = "LAMA_CLIENT_PURE"  # set to 1 to force the dependency-free implementation


def choose_implementation(requested: str = "auto") -> str:
    """"zmq" or "pure": "auto" takes pyzmq + msgpack when both import and LAMA_CLIENT_PURE is unset."""
    if requested not in ("auto", "zmq", "pure"):
        raise ValueError("implementation must be 'auto', 'zmq' or 'pure', not %r" % (requested,))
    if requested != "auto":
        return requested
    if os.environ.get(PURE_ENV, "").strip() not in ("", "0"):
        return "pure"
    try:
        import msgpack  # noqa: F401
        import zmq  # noqa: F401
    except ImportError:
        return "pure"
    return "zmq"


def load_codec(implementation: str) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    if implementation == "zmq":
        import msgpack

        return (lambda obj: msgpack.packb(obj, use_bin_type=True),
                lambda data: msgpack.unpackb(data, raw=False, strict_map_key=False))
    from . import msgpack_lite

    return msgpack_lite.packb, msgpack_lite.unpackb


def parse_tcp_address(address: str) -> Tuple[str, int]:
    """("host", port) from tcp://host:port (IPv6 hosts in brackets)."""
    if not address.startswith("tcp://"):
        raise ValueError("the built-in client speaks tcp:// only, not %r" % (address,))
    rest = address[len("tcp://"):]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("address needs a port: %r" % (address,))
    return host.strip("[]") or "127.0.0.1", int(port)


class PureTransport:
    name = "pure"

    def __init__(self, address: str, timeout: float) -> None:
        host, port = parse_tcp_address(address)
        self._dealer = ZmtpDealer(host, port, timeout)

    def send(self, frames: Sequence[Any]) -> None:
        """StaleConnection when the connection was found closed before anything went out."""
        self._dealer.check_alive()
        self._dealer.send_multipart(frames)

    def recv(self, timeout: Optional[float]) -> Optional[List[Any]]:
        return self._dealer.recv_multipart(timeout)

    def close(self) -> None:
        self._dealer.close()


class ZmqTransport:
    name = "zmq"

    def __init__(self, address: str, timeout: float, curve: Optional[Tuple[bytes, bytes, bytes]] = None) -> None:
        import zmq

        self._zmq = zmq
        self._socket = zmq.Context.instance().socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDTIMEO, max(1, int(timeout * 1000)))  # never block a plug-in forever
        if "[" in address:
            self._socket.setsockopt(zmq.IPV6, 1)  # libzmq refuses IPv6 literals without it
        if curve is not None:
            server_key, public_key, secret_key = curve
            self._socket.curve_serverkey = server_key
            self._socket.curve_publickey = public_key
            self._socket.curve_secretkey = secret_key
        self._socket.connect(address)

    def send(self, frames: Sequence[Any]) -> None:
        try:
            self._socket.send_multipart(frames, copy=False)
        except self._zmq.ZMQError as exc:
            raise ConnectionError("cannot send to the backend: %s" % exc) from exc

    def recv(self, timeout: Optional[float]) -> Optional[List[Any]]:
        wait_ms = None if timeout is None else max(0, int(timeout * 1000))
        if not self._socket.poll(wait_ms, self._zmq.POLLIN):
            return None
        return [frame.buffer for frame in self._socket.recv_multipart(copy=False)]

    def close(self) -> None:
        self._socket.close(linger=0)


__all__ = ["PURE_ENV", "PureTransport", "StaleConnection", "ZmqTransport", "choose_implementation", "load_codec",
           "open_transport", "parse_tcp_address"]


def open_transport(implementation: str, address: str, timeout: float,
                   curve: Optional[Tuple[bytes, bytes, bytes]] = None):
    if implementation == "zmq":
        return ZmqTransport(address, timeout, curve)
    if curve is not None:
        raise ValueError("CurveZMQ needs pyzmq; the built-in client has no cryptography")
    return PureTransport(address, timeout)
