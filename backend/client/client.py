"""`LamaClient`: hello, inpaint with progress and cancel, over either transport.

One instance is one DEALER connection. Calls may come from several threads (a worker waits for
a job while the GUI thread cancels it): the socket is only touched under a lock, in short
slices. When the backend goes away the connection is dropped and the next call opens a new one,
so a restarted backend is picked up without the caller doing anything.
"""
import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .errors import BackendError, BackendUnavailable, JobCancelled
from .protocol import (DEFAULT_ADDRESS, DEFAULT_TILE, DTYPE_SIZES, LAYOUT_CHANNELS, PROTOCOL_VERSION)
from .tiles import join_tiles, split_tiles
from .transport import StaleConnection, choose_implementation, load_codec, open_transport

ProgressCallback = Callable[[float, str], None]
Message = Tuple[Dict[str, Any], List[Any]]

_POLL_SLICE = 0.05  # seconds the socket lock is held per receive attempt


@dataclass
class InpaintRequest:
    """One region to inpaint: pixels row-major in `layout` order, mask one u8 per pixel (0 = keep)."""

    width: int
    height: int
    channels: int
    dtype: str = "u8"
    layout: str = "RGBA"
    pixels: Any = b""
    mask: Any = b""
    grow: int = 0
    feather: int = 0
    margin: int = 128
    strategy: str = "crop"
    soft_mask: bool = False
    output: str = "composite"
    seamless: bool = True
    tile: int = DEFAULT_TILE
    job_id: Optional[str] = None

    def check(self) -> None:
        """Catch caller mistakes before anything is sent (the server checks again)."""
        if self.dtype not in DTYPE_SIZES:
            raise ValueError("dtype must be one of %s, not %r" % (sorted(DTYPE_SIZES), self.dtype))
        if self.layout not in LAYOUT_CHANNELS:
            raise ValueError("layout must be one of %s, not %r" % (sorted(LAYOUT_CHANNELS), self.layout))
        if LAYOUT_CHANNELS[self.layout] != self.channels:
            raise ValueError("layout %s has %d channels, not %d" % (self.layout, LAYOUT_CHANNELS[self.layout], self.channels))
        if self.width <= 0 or self.height <= 0:
            raise ValueError("width and height must be positive")
        expected = self.width * self.height * self.pixel_bytes
        if memoryview(self.pixels).nbytes != expected:
            raise ValueError("pixels hold %d bytes; %dx%d %s %s needs %d"
                             % (memoryview(self.pixels).nbytes, self.width, self.height, self.layout, self.dtype, expected))
        if memoryview(self.mask).nbytes != self.width * self.height:
            raise ValueError("mask holds %d bytes; it needs one byte per pixel (%d)"
                             % (memoryview(self.mask).nbytes, self.width * self.height))

    @property
    def pixel_bytes(self) -> int:
        return self.channels * DTYPE_SIZES[self.dtype]

    def options(self) -> Dict[str, Any]:
        return {"grow": self.grow, "feather": self.feather, "margin": self.margin, "strategy": self.strategy,
                "soft_mask": bool(self.soft_mask), "output": self.output, "seamless": bool(self.seamless)}


@dataclass
class InpaintResult:
    """The inpainted region in the request's dtype; `layout` gains an alpha channel for `output="layer"`."""

    job_id: str
    width: int
    height: int
    channels: int
    dtype: str
    layout: str
    pixels: bytes
    header: Dict[str, Any] = field(default_factory=dict)


class LamaClient:
    """A connection to `lama-backend serve` (see docs/protocol.md)."""

    def __init__(self, address: str = DEFAULT_ADDRESS, token: Optional[str] = None, timeout: float = 5.0,
                 implementation: str = "auto", liveness: float = 1.5,
                 curve: Optional[Tuple[bytes, bytes, bytes]] = None, cancel_grace: float = 1.0) -> None:
        """`timeout`: connect and hello; `liveness`: silence during a job after which the backend
        counts as gone (the server sends a heartbeat every 0.5 s while it holds a job of ours);
        `implementation`: "auto", "zmq" or "pure"; `curve`: (server public, client public,
        client secret) z85 keys, pyzmq only; `cancel_grace`: how long a cancelled `wait` waits
        for the server's confirmation before raising JobCancelled anyway."""
        self.address = address
        self.token = token
        self.timeout = timeout
        self.liveness = liveness
        self.cancel_grace = cancel_grace
        self._cancelling: Dict[str, float] = {}  # job id -> when its cancel was sent
        self.implementation = choose_implementation(implementation)
        self._curve = curve
        self._pack, self._unpack = load_codec(self.implementation)
        self._transport: Any = None
        self._lock = threading.RLock()
        self._inbox: Dict[str, Deque[Message]] = {}
        self._last_rx = 0.0

    # -- connection ------------------------------------------------------------------------
    def connect(self) -> "LamaClient":
        with self._lock:
            if self._transport is None:
                try:
                    self._transport = open_transport(self.implementation, self.address, self.timeout, self._curve)
                except (ConnectionError, OSError) as exc:
                    raise BackendUnavailable("no backend at %s: %s" % (self.address, exc)) from exc
        return self

    def close(self) -> None:
        with self._lock:
            if self._transport is not None:
                self._transport.close()
                self._transport = None

    def __enter__(self) -> "LamaClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drop(self, reason: str) -> BackendUnavailable:
        """Forget the connection (the next call reconnects) and say why."""
        self.close()
        for box in self._inbox.values():
            box.clear()
        return BackendUnavailable(reason)

    # -- framing -----------------------------------------------------------------------------
    def _send(self, header: Dict[str, Any], frames: Tuple[Any, ...] = ()) -> None:
        header.setdefault("protocol", PROTOCOL_VERSION)
        if self.token is not None:
            header["token"] = self.token
        message = [self._pack(header)] + list(frames)
        self.connect()
        with self._lock:
            try:
                try:
                    self._transport.send(message)
                except StaleConnection:  # closed while idle, nothing sent: one fresh connection
                    self.close()
                    self.connect()
                    self._transport.send(message)
            except (ConnectionError, OSError) as exc:
                raise self._drop("lost the backend at %s: %s" % (self.address, exc)) from exc

    def _receive(self, timeout: float) -> None:
        """Route at most one incoming message to the inbox of its request id."""
        with self._lock:
            if self._transport is None:
                raise BackendUnavailable("not connected to %s" % self.address)
            try:
                frames = self._transport.recv(timeout)
            except (ConnectionError, OSError) as exc:
                raise self._drop("lost the backend at %s: %s" % (self.address, exc)) from exc
        if frames is None:
            return
        self._last_rx = time.monotonic()
        try:
            header = self._unpack(bytes(frames[0]))
        except Exception:  # a broken header from a broken server: nothing to route it to
            return
        if not isinstance(header, dict):
            return
        box = self._inbox.get(str(header.get("id")))
        if box is not None:
            box.append((header, frames[1:]))

    def _next(self, request_id: str, silence_limit: float, what: str) -> Message:
        """The next message for `request_id`; BackendUnavailable after `silence_limit` s of silence."""
        box = self._inbox[request_id]
        started = time.monotonic()
        while not box:
            self._receive(_POLL_SLICE)
            if box:
                break
            if time.monotonic() - max(self._last_rx, started) > silence_limit:
                raise self._drop("the backend at %s did not answer %s within %.1f s" % (self.address, what, silence_limit))
        return box.popleft()

    # -- requests ----------------------------------------------------------------------------
    def hello(self) -> Dict[str, Any]:
        """Ask the server who it is: protocol, server_version, device, model, limits."""
        request_id = uuid.uuid4().hex
        self._inbox[request_id] = collections.deque()
        try:
            self._send({"op": "hello", "id": request_id, "client": "lama_backend.client/" + self.implementation})
            header, _ = self._next(request_id, self.timeout, "hello")
        finally:
            self._inbox.pop(request_id, None)
        if header.get("type") == "error":
            raise BackendError(str(header.get("code")), str(header.get("message")))
        return header

    def submit(self, request: InpaintRequest) -> str:
        """Send a job without waiting; returns its id for `wait` and `cancel`."""
        request.check()
        job_id = request.job_id or uuid.uuid4().hex
        tile = request.tile
        header = {"op": "inpaint", "id": job_id, "width": request.width, "height": request.height,
                  "dtype": request.dtype, "layout": request.layout, "tile": tile, "options": request.options()}
        image_tiles = split_tiles(request.pixels, request.width, request.height, request.pixel_bytes, tile)
        mask_tiles = split_tiles(request.mask, request.width, request.height, 1, tile)
        self._inbox[job_id] = collections.deque()
        try:
            self._send(header, tuple(image_tiles) + tuple(mask_tiles))
        except BaseException:
            self._inbox.pop(job_id, None)
            raise
        self._last_rx = max(self._last_rx, time.monotonic())
        return job_id

    def cancel(self, job_id: str) -> None:
        """Ask the server to drop a queued or running job; its `wait` then raises JobCancelled
        (within `cancel_grace` s, even while the engine finishes the step it is in)."""
        self._send({"op": "cancel", "id": job_id})
        if job_id in self._inbox:
            self._cancelling.setdefault(job_id, time.monotonic())

    def wait(self, job_id: str, on_progress: Optional[ProgressCallback] = None,
             cancel_event: Optional[threading.Event] = None) -> InpaintResult:
        """Block until the job ends: its result, or JobCancelled / BackendError / BackendUnavailable.

        Once `cancel_event` is set the outcome is JobCancelled, even when a result was already
        on its way: a cancelled job never changes the caller's image.
        """
        if job_id not in self._inbox:
            raise ValueError("unknown job %r (already waited for?)" % job_id)
        try:
            while True:
                if cancel_event is not None and cancel_event.is_set() and job_id not in self._cancelling:
                    self.cancel(job_id)
                box = self._inbox[job_id]
                if not box:
                    self._receive(_POLL_SLICE)
                    if not box:
                        sent = self._cancelling.get(job_id)
                        if sent is not None and time.monotonic() - sent > self.cancel_grace:
                            # The engine stops only between steps; the caller need not wait for that.
                            raise JobCancelled("cancelled (the backend drops the job at its next step)")
                        if time.monotonic() - self._last_rx > self.liveness:
                            raise self._drop("the backend at %s stopped answering (no heartbeat for %.1f s)"
                                             % (self.address, self.liveness))
                        continue
                header, frames = box.popleft()
                kind = header.get("type")
                if kind == "progress" and on_progress is not None:
                    try:
                        on_progress(float(header.get("fraction", 0.0)), str(header.get("stage", "")))
                    except BaseException:
                        self.cancel(job_id)
                        raise
                elif kind == "result":
                    if job_id in self._cancelling:  # it crossed our cancel: nothing may change now
                        raise JobCancelled("cancelled (the result that crossed the cancel was dropped)")
                    return self._decode_result(job_id, header, frames)
                elif kind == "cancelled":
                    raise JobCancelled(str(header.get("reason", "cancelled")))
                elif kind == "error":
                    raise BackendError(str(header.get("code")), str(header.get("message")))
                # accepted, and any type a newer server adds, need nothing from us.
        finally:
            self._inbox.pop(job_id, None)
            self._cancelling.pop(job_id, None)

    def inpaint(self, request: InpaintRequest, on_progress: Optional[ProgressCallback] = None,
                cancel_event: Optional[threading.Event] = None) -> InpaintResult:
        """Submit and wait: see `wait`."""
        return self.wait(self.submit(request), on_progress, cancel_event)

    def shutdown(self) -> None:
        """Ask the server to exit (accepted from loopback peers only)."""
        request_id = uuid.uuid4().hex
        self._inbox[request_id] = collections.deque()
        try:
            self._send({"op": "shutdown", "id": request_id})
            header, _ = self._next(request_id, self.timeout, "shutdown")
        finally:
            self._inbox.pop(request_id, None)
        if header.get("type") == "error":
            raise BackendError(str(header.get("code")), str(header.get("message")))

    def _decode_result(self, job_id: str, header: Dict[str, Any], frames: List[Any]) -> InpaintResult:
        try:
            width, height, tile = int(header["width"]), int(header["height"]), int(header["tile"])
            dtype, layout = str(header["dtype"]), str(header["layout"])
            channels = LAYOUT_CHANNELS[layout]
            pixel_bytes = channels * DTYPE_SIZES[dtype]
            if len(frames) == 1 and tile >= width and tile >= height:
                pixels = bytes(frames[0])
                if len(pixels) != width * height * pixel_bytes:
                    raise ValueError("result frame holds %d bytes" % len(pixels))
            else:
                pixels = bytes(join_tiles(frames, width, height, pixel_bytes, tile))
        except (KeyError, ValueError, TypeError) as exc:
            raise BackendError("bad_reply", "the backend sent a malformed result: %s" % exc) from exc
        return InpaintResult(job_id, width, height, channels, dtype, layout, pixels, header)
