"""The ROUTER loop: validates requests, queues jobs, forwards the worker's replies, heartbeats.

Only this thread touches the ROUTER socket. ZMQ_ROUTER_MANDATORY makes a send to a client that
went away fail at once, and every client holding a job gets a heartbeat each
`heartbeat_interval`, so a vanished client is noticed within that time and costs only its jobs.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import msgpack
import zmq

from lama_backend import __version__
from lama_backend.client.protocol import (DEFAULT_TILE, DTYPE_SIZES, LAYOUT_CHANNELS, MAX_HEADER_BYTES, MAX_TILE,
                                          MIN_TILE, OUTPUTS, PROTOCOL_VERSION, STRATEGIES)

from .config import ServerConfig, bind_host, check_bind_allowed, is_loopback_host
from .inpainter import Inpainter
from .scheduler import FairQueue, Job, QueueFull
from .validation import MAX_FRAMES, MAX_TILES, RequestError, check_common, decode_header, parse_inpaint
from .worker import KIND_END, SHUTTING_DOWN, Worker

log = logging.getLogger("lama_backend.server")


class ServerError(Exception):
    """The server cannot start (address in use, bad bind address, bad keys): one line for the user."""


class Server:
    def __init__(self, config: ServerConfig, inpainter: Optional[Inpainter] = None) -> None:
        """`inpainter` may be set later (serve binds first, then loads the weights)."""
        self.config = config
        self.inpainter = inpainter
        self.context = zmq.Context()
        self.queue = FairQueue(config.max_queued_per_client, config.max_queued_total)
        self.pending: Dict[Tuple[bytes, str], Job] = {}
        self.address: Optional[str] = None
        self._router: Any = None
        self._pull: Any = None
        self._auth: Any = None
        self._worker: Optional[Worker] = None
        self._stop = threading.Event()
        self._outbox = f"inproc://lama-outbox-{id(self):x}"
        self.stats = {"requests": 0, "errors": 0, "jobs": 0, "clients_gone": 0}

    # -- setup -------------------------------------------------------------------------------
    def bind(self) -> str:
        """Bind the ROUTER (before the model loads, so a busy port fails fast); returns the endpoint."""
        try:
            check_bind_allowed(self.config)
        except ValueError as exc:
            raise ServerError(str(exc)) from None
        router = self.context.socket(zmq.ROUTER)
        if ":" in bind_host(self.config.bind):
            router.setsockopt(zmq.IPV6, 1)  # libzmq refuses IPv6 literals without it
        router.setsockopt(zmq.LINGER, 500)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame_bytes)
        router.setsockopt(zmq.SNDHWM, 10000)
        router.setsockopt(zmq.RCVHWM, 1000)
        ivl = int(self.config.zmq_heartbeat * 1000)
        if ivl > 0:
            router.setsockopt(zmq.HEARTBEAT_IVL, ivl)
            router.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * ivl)
            router.setsockopt(zmq.HEARTBEAT_TTL, 3 * ivl)
        if self.config.curve_secret_file is not None:
            self._setup_curve(router)
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as exc:
            router.close(linger=0)
            if exc.errno == errno.EADDRINUSE:
                raise ServerError(f"{self.config.bind} is already in use: another lama-backend is probably running "
                                  "there (check with `lama-backend status --address ...`) or pick another port") from None
            raise ServerError(f"cannot bind {self.config.bind}: {exc}") from None
        self._router = router
        self._pull = self.context.socket(zmq.PULL)
        self._pull.bind(self._outbox)
        self.address = router.getsockopt(zmq.LAST_ENDPOINT).decode()
        return self.address

    def _setup_curve(self, router: Any) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        try:
            public, secret = zmq.auth.load_certificate(str(self.config.curve_secret_file))
        except (OSError, ValueError) as exc:
            raise ServerError(f"cannot read the CURVE key {self.config.curve_secret_file}: {exc}") from None
        if not secret:
            raise ServerError(f"{self.config.curve_secret_file} holds no secret key")
        self._auth = ThreadAuthenticator(self.context)
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(self.config.curve_clients_dir))
        router.curve_server = True
        router.curve_publickey = public
        router.curve_secretkey = secret

    # -- main loop ---------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Thread- and signal-safe: the loop finishes within ~0.1 s."""
        self._stop.set()

    def serve_forever(self) -> None:
        if self.inpainter is None:
            raise ServerError("no inpainter: load a model before serving")
        if self._router is None:
            self.bind()
        self._worker = Worker(self.context, self._outbox, self.queue, self.inpainter)
        self._worker.start()
        info = self.inpainter.model_info
        log.info("serving %s (%s, preset %s) on %s, device %s, precision %s, mirror average %s, protocol %s",
                 info.get("family"), info.get("source"), info.get("preset"), self.address, info.get("device"),
                 info.get("precision", "fp32"), info.get("mirror_average", 1), PROTOCOL_VERSION)
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._pull, zmq.POLLIN)
        next_beat = time.monotonic() + self.config.heartbeat_interval
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if self._pull in events:
                    self._forward_outbox()
                if self._router in events:
                    self._handle_requests()
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + self.config.heartbeat_interval
            self._shutdown()
        finally:
            self.queue.drain()  # releases the worker even if the loop itself failed
            self.close()

    def close(self) -> None:
        if self.context.closed:
            return
        for sock in (self._router, self._pull):
            if sock is not None:
                sock.close()
        self._router = self._pull = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(1.0)
        if self._worker is not None and self._worker.is_alive():
            return  # a job stuck in the engine holds its socket: terminating would hang; the process exits
        self.context.term()

    def _shutdown(self) -> None:
        dropped = self.queue.drain()  # first, so the worker cannot start another job
        worker = self._worker
        running = worker.current if worker else None
        log.info("stopping: %d queued job(s) dropped%s", len(dropped),
                 f", cancelling job {running.spec.job_id}" if running else "")
        for job in dropped:
            self.pending.pop(job.key, None)
            self._reply_error(job.client, job.spec.job_id, SHUTTING_DOWN, "the backend is shutting down")
        if running is not None:
            running.reason = SHUTTING_DOWN
            running.cancel.set()
        deadline = time.monotonic() + self.config.shutdown_grace
        next_beat = 0.0
        while worker is not None and worker.is_alive() and time.monotonic() < deadline:
            if self._pull.poll(50):
                self._forward_outbox()
            if time.monotonic() >= next_beat:  # the running job's client keeps waiting for its reply
                self._heartbeat()
                next_beat = time.monotonic() + self.config.heartbeat_interval
            worker.join(0.01)
        if worker is not None and worker.is_alive():
            log.warning("the running job did not stop within %.1f s; exiting anyway", self.config.shutdown_grace)
        while self._pull.poll(0):
            self._forward_outbox()

    # -- sending -----------------------------------------------------------------------------
    def _send(self, client: bytes, header: Any, frames: List[Any] = ()) -> bool:  # type: ignore[assignment]
        raw = header if isinstance(header, (bytes, zmq.Frame)) else msgpack.packb(header)
        try:
            self._router.send_multipart([client, raw] + list(frames), flags=zmq.NOBLOCK, copy=False)
            return True
        except zmq.ZMQError as exc:
            if exc.errno in (errno.EHOSTUNREACH, errno.EAGAIN, zmq.EHOSTUNREACH):
                self._client_gone(client)
                return False
            raise

    def _reply_error(self, client: bytes, request_id: Optional[str], code: str, message: str) -> None:
        self.stats["errors"] += 1
        self._send(client, {"type": "error", "id": request_id, "code": code, "message": message})

    def _client_gone(self, client: bytes) -> None:
        jobs = [job for key, job in self.pending.items() if key[0] == client]
        if not jobs:
            return
        self.stats["clients_gone"] += 1
        for job in jobs:
            self.pending.pop(job.key, None)
            job.gone = True
            job.reason = "client gone"
            job.cancel.set()
        self.queue.remove_client(client)
        log.info("a client went away; dropped its %d job(s): %s", len(jobs), ", ".join(j.spec.job_id for j in jobs))

    def _forward_outbox(self) -> None:
        """Pass the worker's replies on; replies for jobs nobody waits for any more are dropped."""
        while True:
            try:
                frames = self._pull.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            kind, client, job_id = frames[0].bytes, frames[1].bytes, frames[2].bytes.decode()
            key = (client, job_id)
            if key not in self.pending:
                continue
            if kind == KIND_END:
                self.pending.pop(key, None)
            self._send(client, frames[3], frames[4:])

    def _heartbeat(self) -> None:
        counts: Dict[bytes, int] = {}
        for client, _ in list(self.pending):
            counts[client] = counts.get(client, 0) + 1
        for client, count in counts.items():
            self._send(client, {"type": "heartbeat", "jobs": count})

    # -- requests ----------------------------------------------------------------------------
    def _handle_requests(self) -> None:
        for _ in range(100):  # then let the outbox and heartbeats have a turn
            try:
                frames = self._router.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.stats["requests"] += 1
            client = frames[0].bytes
            try:
                self._handle(client, frames[1:])
            except RequestError as exc:
                self._reply_error(client, exc.request_id, exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - no request may take the server down
                log.exception("request failed")
                self._reply_error(client, None, "internal", f"{type(exc).__name__}: {exc}")

    def _handle(self, client: bytes, frames: List[Any]) -> None:
        if not frames:
            raise RequestError("bad_request", "empty message: a header frame is needed")
        if len(frames) > MAX_FRAMES:
            raise RequestError("bad_request", f"{len(frames)} frames; at most {MAX_FRAMES} are allowed")
        header = decode_header(frames[0].buffer)
        op, rid = check_common(header, self.config.token)
        extra = frames[1:]
        if op != "inpaint" and extra:
            raise RequestError("bad_request", f"'{op}' carries no pixel frames, got {len(extra)}", rid)
        if op == "hello":
            self._send(client, self.hello_reply(rid))
        elif op == "ping":
            self._send(client, {"type": "pong", "id": rid})
        elif op == "inpaint":
            self._submit(client, header, extra, rid)
        elif op == "cancel":
            self._cancel(client, rid)
        elif op == "shutdown":
            self._shutdown_request(client, frames[0], rid)

    def hello_reply(self, rid: str) -> Dict[str, Any]:
        info = self.inpainter.model_info if self.inpainter is not None else {}
        return {
            "type": "hello", "id": rid, "protocol": PROTOCOL_VERSION, "server": "lama-backend",
            "server_version": __version__, "pid": os.getpid(), "device": info.get("device"),
            "model": {"family": info.get("family"), "preset": info.get("preset"), "source": info.get("source"),
                      "precision": info.get("precision", "fp32"), "bundled": bool(info.get("bundled"))},
            "auth": self.config.auth, "queued": len(self.queue),
            "heartbeat_interval": self.config.heartbeat_interval,
            "dtypes": list(DTYPE_SIZES), "layouts": list(LAYOUT_CHANNELS), "strategies": list(STRATEGIES),
            "outputs": list(OUTPUTS),
            "limits": {"max_pixels": self.config.max_pixels, "min_tile": MIN_TILE, "max_tile": MAX_TILE,
                       "default_tile": DEFAULT_TILE, "max_tiles": MAX_TILES, "max_header_bytes": MAX_HEADER_BYTES,
                       "max_frame_bytes": self.config.max_frame_bytes,
                       "max_queued_per_client": self.config.max_queued_per_client,
                       "max_queued_total": self.config.max_queued_total},
        }

    def _submit(self, client: bytes, header: Dict[str, Any], frames: List[Any], rid: str) -> None:
        if self._stop.is_set():
            raise RequestError(SHUTTING_DOWN, "the backend is shutting down", rid)
        spec = parse_inpaint(header, frames, rid, self.config.max_pixels)
        key = (client, rid)
        if key in self.pending:
            raise RequestError("duplicate_job", f"job {rid!r} is still pending; use a new id", rid)
        job = Job(client, spec, frames)
        try:
            queued = self.queue.put(job)
        except QueueFull as exc:
            raise RequestError("queue_full", str(exc), rid) from None
        self.pending[key] = job
        self.stats["jobs"] += 1
        self._send(client, {"type": "accepted", "id": rid, "queued": queued})

    def _cancel(self, client: bytes, rid: str) -> None:
        job = self.pending.get((client, rid))
        if job is None:
            raise RequestError("unknown_job", f"no pending job {rid!r} from this client", rid)
        job.reason = "cancelled by the client"
        if self.queue.remove(client, rid) is not None:
            self.pending.pop(job.key, None)
            self._send(client, {"type": "cancelled", "id": rid, "reason": job.reason})
        else:
            job.cancel.set()  # running: the worker replies once the engine stops

    def _shutdown_request(self, client: bytes, frame: Any, rid: str) -> None:
        peer = ""
        try:
            peer = frame.get("Peer-Address")
        except zmq.ZMQError:
            pass
        local = not self.config.bind.startswith("tcp://") or is_loopback_host(peer)
        if not local:
            raise RequestError("forbidden", f"shutdown is accepted from this machine only, not from {peer}", rid)
        log.info("shutdown requested by a local client")
        self._send(client, {"type": "bye", "id": rid})
        self.request_stop()
