"""A scriptable stand-in for `lama_backend.client.LamaClient`, for the plugin's fast tests.

It raises the real client's exception classes, so the plugin's error handling is exercised as
it will meet them; the real client against a real server is covered by the real-Krita tier.
"""
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from lama_backend.client import BackendError, BackendUnavailable, InpaintRequest, JobCancelled


@dataclass
class FakeResult:
    """The fields of InpaintResult the plugin reads."""

    width: int
    height: int
    dtype: str
    layout: str
    pixels: bytes


@dataclass
class ScriptedBackend:
    """What the "backend" does; shared by every client the factory makes."""

    available: bool = True
    result: Optional[Callable[[InpaintRequest], bytes]] = None  # default: echo the input pixels
    progress: Tuple[Tuple[float, str], ...] = ((0.5, "model"),)
    die_mid_job: bool = False
    error: Optional[BackendError] = None
    wait_for_cancel: bool = False
    start_works: bool = True
    requests: List[InpaintRequest] = field(default_factory=list)
    clients: List["ScriptedClient"] = field(default_factory=list)
    starts: List[Tuple[str, List[str], dict]] = field(default_factory=list)
    job_started: threading.Event = field(default_factory=threading.Event)
    saw_cancel: bool = False
    bundled_model: bool = False  # what `hello` says: the package's bundled default model serves

    def client_factory(self, address: str, token: Optional[str] = None) -> "ScriptedClient":
        client = ScriptedClient(self, address, token)
        self.clients.append(client)
        return client

    def starter(self, address: str, argv: List[str], **kwargs: Any) -> dict:
        self.starts.append((address, list(argv), kwargs))
        if not self.start_works:
            raise BackendUnavailable("the backend exited with code 1 before answering")
        self.available = True
        return {"type": "hello"}


class ScriptedClient:
    def __init__(self, backend: ScriptedBackend, address: str, token: Optional[str]) -> None:
        self.backend, self.address, self.token = backend, address, token
        self.closed = False

    def hello(self) -> dict:
        if not self.backend.available:
            raise BackendUnavailable("no backend at %s: connection refused" % self.address)
        return {"type": "hello", "protocol": "1.0", "model": {"family": "lama", "bundled": self.backend.bundled_model}}

    def inpaint(self, request: InpaintRequest, on_progress: Optional[Callable[[float, str], None]] = None,
                cancel_event: Optional[threading.Event] = None) -> FakeResult:
        backend = self.backend
        request.check()
        backend.requests.append(request)
        backend.job_started.set()
        for fraction, stage in backend.progress:
            if on_progress is not None:
                on_progress(fraction, stage)
        if backend.die_mid_job:
            raise BackendUnavailable("the backend at %s stopped answering (no heartbeat for 1.5 s)" % self.address)
        if backend.error is not None:
            raise backend.error
        if backend.wait_for_cancel:
            assert cancel_event is not None
            if not cancel_event.wait(10.0):
                raise AssertionError("the plugin never cancelled")
            backend.saw_cancel = True
            raise JobCancelled("cancelled by client")
        pixels = backend.result(request) if backend.result is not None else bytes(request.pixels)
        return FakeResult(request.width, request.height, request.dtype, request.layout, pixels)

    def close(self) -> None:
        self.closed = True
