"""A dependency-free ZeroMQ DEALER over one TCP connection (ZMTP 3.1, NULL mechanism).

Editors ship their own Python, often without pyzmq. The protocol needs only what a DEALER
talking to one ROUTER does: the greeting, the READY handshake, multipart frames (short and long)
and answering the server's PING heartbeats with PONG. See https://rfc.zeromq.org/spec/23/
(ZMTP 3.0) and /spec/37/ (ZMTP 3.1). Unlike a libzmq socket this one does not reconnect by
itself: any socket error raises `ConnectionError` and the caller opens a new connection.
"""
import collections
import select
import socket
import struct
import time
from typing import List, Optional, Sequence, Tuple, Union

Buffer = Union[bytes, bytearray, memoryview]

FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04
MAX_INBOUND_FRAME = 1 << 31  # refuse absurd frame sizes from a broken peer
_CHUNK = 1 << 20


class StaleConnection(ConnectionError):
    """Found closed before sending anything (the server restarted, or dropped an idle peer)."""


def greeting() -> bytes:
    """64 bytes: signature, version 3.1, mechanism NULL, as-server 0, filler."""
    return (b"\xff" + b"\x00" * 8 + b"\x7f" + bytes([3, 1]) + b"NULL".ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)


def encode_properties(props: Sequence[Tuple[str, bytes]]) -> bytes:
    out = bytearray()
    for name, value in props:
        raw = name.encode("ascii")
        out += bytes([len(raw)]) + raw + struct.pack(">I", len(value)) + value
    return bytes(out)


def decode_properties(data: bytes) -> dict:
    props = {}
    pos = 0
    while pos < len(data):
        n = data[pos]
        name = data[pos + 1:pos + 1 + n].decode("ascii", "replace")
        pos += 1 + n
        if pos + 4 > len(data):
            raise ConnectionError("ZMTP: truncated metadata in READY")
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        pos += 4
        props[name.lower()] = data[pos:pos + size]
        pos += size
    return props


def command_body(name: str, payload: bytes) -> bytes:
    raw = name.encode("ascii")
    return bytes([len(raw)]) + raw + payload


def frame_header(flags: int, size: int) -> bytes:
    if size > 255:
        return struct.pack(">BQ", flags | FLAG_LONG, size)
    return struct.pack(">BB", flags, size)


class ZmtpDealer:
    """One DEALER connection: `send_multipart` and `recv_multipart(timeout)`."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self._buf = bytearray()
        self._body: Optional[bytearray] = None  # a large frame being read straight into place
        self._body_filled = 0
        self._body_flags = 0
        self._parts: List[bytes] = []
        self._ready: "collections.deque[List[bytes]]" = collections.deque()  # read by check_alive
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ConnectionError("cannot connect to %s:%d: %s" % (host, port, exc)) from exc
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._handshake(time.monotonic() + timeout)
        except BaseException:
            self.close()
            raise

    # -- handshake -------------------------------------------------------------------------
    def _handshake(self, deadline: float) -> None:
        self._sock.sendall(greeting())
        peer = self._read_exact(64, deadline)
        if peer[0] != 0xFF or peer[9] != 0x7F:
            raise ConnectionError("ZMTP: the peer is not a ZeroMQ socket")
        if peer[10] < 3:
            raise ConnectionError("ZMTP: the peer speaks ZMTP %d, 3.x is needed" % peer[10])
        mechanism = peer[12:32].rstrip(b"\x00")
        if mechanism != b"NULL":
            raise ConnectionError("ZMTP: the server wants the %s mechanism (use pyzmq for CURVE)"
                                  % mechanism.decode("ascii", "replace"))
        ready = command_body("READY", encode_properties([("Socket-Type", b"DEALER"), ("Identity", b"")]))
        self._sock.sendall(frame_header(FLAG_COMMAND, len(ready)) + ready)
        while True:
            flags, body = self._read_frame(deadline)
            if flags is None:
                raise ConnectionError("ZMTP: no READY from the server in time")
            if not flags & FLAG_COMMAND:
                raise ConnectionError("ZMTP: a message arrived before READY")
            name, payload = self._split_command(body)
            if name == "ERROR":
                raise ConnectionError("ZMTP: the server refused the handshake: %r" % payload[1:])
            if name == "READY":
                kind = decode_properties(payload).get("socket-type", b"")
                if kind != b"ROUTER":
                    raise ConnectionError("ZMTP: expected a ROUTER server, got %r" % kind)
                return

    @staticmethod
    def _split_command(body: bytes) -> Tuple[str, bytes]:
        if not body:
            raise ConnectionError("ZMTP: empty command")
        n = body[0]
        return body[1:1 + n].decode("ascii", "replace"), body[1 + n:]

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            if not self._fill(deadline, n - len(self._buf)):
                raise ConnectionError("ZMTP: no greeting from the server in time")
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    # -- sending -----------------------------------------------------------------------------
    def check_alive(self) -> None:
        """Read what is waiting (answering PINGs, keeping messages); StaleConnection if closed.

        An idle connection is not read, so the server's heartbeats go unanswered and it may drop
        us; finding that out before a send lets the caller reconnect with nothing lost.
        """
        for _ in range(1000):
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return
            try:
                message = self._recv_one(time.monotonic() + 0.05)
            except ConnectionError as exc:
                raise StaleConnection(str(exc)) from exc
            if message is not None:
                self._ready.append(message)

    def send_multipart(self, frames: Sequence[Buffer]) -> None:
        try:
            self._sock.settimeout(None)
            last = len(frames) - 1
            small = bytearray()
            for i, frame in enumerate(frames):
                size = memoryview(frame).nbytes
                small += frame_header(FLAG_MORE if i < last else 0, size)
                if size < 65536:
                    small += frame
                else:
                    self._sock.sendall(small)
                    small = bytearray()
                    self._sock.sendall(frame)
            if small:
                self._sock.sendall(small)
        except OSError as exc:
            raise ConnectionError("connection to the backend lost: %s" % exc) from exc

    # -- receiving ---------------------------------------------------------------------------
    def recv_multipart(self, timeout: Optional[float]) -> Optional[List[bytes]]:
        """The next complete message, or None when `timeout` seconds pass without one."""
        if self._ready:
            return self._ready.popleft()
        return self._recv_one(None if timeout is None else time.monotonic() + timeout)

    def _recv_one(self, deadline: Optional[float]) -> Optional[List[bytes]]:
        while True:
            flags, body = self._read_frame(deadline)
            if flags is None:
                return None
            if flags & FLAG_COMMAND:
                self._on_command(body)
                continue
            self._parts.append(body)
            if not flags & FLAG_MORE:
                parts, self._parts = self._parts, []
                return parts

    def _on_command(self, body: bytes) -> None:
        name, payload = self._split_command(body)
        if name == "PING":
            # PING: 2-byte TTL then up to 16 bytes of context, echoed back in PONG.
            context = payload[2:18]
            pong = command_body("PONG", context)
            self.send_command(pong)
        elif name == "ERROR":
            raise ConnectionError("ZMTP: the server closed the connection: %r" % payload[1:])

    def send_command(self, body: bytes) -> None:
        try:
            self._sock.settimeout(None)
            self._sock.sendall(frame_header(FLAG_COMMAND, len(body)) + body)
        except OSError as exc:
            raise ConnectionError("connection to the backend lost: %s" % exc) from exc

    def _read_frame(self, deadline: Optional[float]) -> Tuple[Optional[int], bytes]:
        """One frame as (flags, body); (None, b"") at the deadline. Partial reads are kept."""
        while True:
            if self._body is not None:
                if self._body_filled == len(self._body):
                    body, flags = bytes(self._body), self._body_flags
                    self._body = None
                    return flags, body
                if not self._fill_body(deadline):
                    return None, b""
                continue
            header = self._frame_header_ready()
            if header is not None:
                flags, size, offset = header
                if size > MAX_INBOUND_FRAME:
                    raise ConnectionError("ZMTP: absurd frame size %d" % size)
                if len(self._buf) >= offset + size:
                    body = bytes(self._buf[offset:offset + size])
                    del self._buf[:offset + size]
                    return flags, body
                if size >= _CHUNK:  # read the rest straight into one buffer
                    self._body = bytearray(size)
                    have = len(self._buf) - offset
                    self._body[:have] = self._buf[offset:]
                    self._body_filled = have
                    self._body_flags = flags
                    del self._buf[:]
                    continue
            if not self._fill(deadline, _CHUNK):
                return None, b""

    def _frame_header_ready(self) -> Optional[Tuple[int, int, int]]:
        if len(self._buf) < 2:
            return None
        flags = self._buf[0]
        if flags & FLAG_LONG:
            if len(self._buf) < 9:
                return None
            return flags, struct.unpack(">Q", bytes(self._buf[1:9]))[0], 9
        return flags, self._buf[1], 2

    def _wait(self, deadline: Optional[float]) -> bool:
        if deadline is None:
            self._sock.settimeout(None)
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._sock.settimeout(remaining)
        return True

    def _fill(self, deadline: Optional[float], want: int) -> bool:
        if not self._wait(deadline):
            return False
        try:
            data = self._sock.recv(max(want, 65536))
        except socket.timeout:
            return False
        except OSError as exc:
            raise ConnectionError("connection to the backend lost: %s" % exc) from exc
        if not data:
            raise ConnectionError("the backend closed the connection")
        self._buf += data
        return True

    def _fill_body(self, deadline: Optional[float]) -> bool:
        assert self._body is not None
        if not self._wait(deadline):
            return False
        view = memoryview(self._body)[self._body_filled:]
        try:
            n = self._sock.recv_into(view, min(len(view), 4 * _CHUNK))
        except socket.timeout:
            return False
        except OSError as exc:
            raise ConnectionError("connection to the backend lost: %s" % exc) from exc
        if n == 0:
            raise ConnectionError("the backend closed the connection")
        self._body_filled += n
        return True

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
