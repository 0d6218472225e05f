"""The one thread that owns the model: takes jobs in fair order, runs them, reports back.

It never touches the ROUTER socket (ZeroMQ sockets are single-threaded): everything it says
goes through an inproc PUSH socket to the I/O thread, pixels included, without copies.
"""
from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from typing import Any, List, Optional

import msgpack
import zmq

from .inpainter import Inpainter, JobCancelledError, JobFailedError
from .pixels import decode_job, encode_result
from .scheduler import FairQueue, Job

log = logging.getLogger("lama_backend.server")

KIND_PROGRESS = b"msg"
KIND_END = b"end"
SHUTTING_DOWN = "shutting_down"
PROGRESS_MIN_INTERVAL = 0.1  # s between progress replies of one job (the stage changing always sends)
#: s without a job after which the heap memory kept for reuse between passes goes back to the OS
#: (tiles of one selection and retries arrive back to back; an idle backend should stay small)
IDLE_RELEASE_SECONDS = 10.0


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def release_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    # only where a model tuned the allocator (a test's fake inpainter never imports torch)
    allocator = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.acceleration.allocator")
    if allocator is not None:
        allocator.release_freed_memory()


class Worker(threading.Thread):
    def __init__(self, context: zmq.Context, outbox: str, queue: FairQueue, inpainter: Inpainter) -> None:
        super().__init__(name="lama-worker", daemon=True)
        self._context = context
        self._outbox = outbox
        self._queue = queue
        self._inpainter = inpainter
        self.current: Optional[Job] = None
        self._push: Any = None

    def run(self) -> None:
        self._push = self._context.socket(zmq.PUSH)
        self._push.setsockopt(zmq.LINGER, 1000)
        self._push.connect(self._outbox)
        holding = False  # memory kept since the last job, to release once idle
        try:
            while True:
                job = self._queue.take(IDLE_RELEASE_SECONDS if holding else None)
                if job is None and not self._queue.closed:  # idle for a while
                    release_memory()
                    holding = False
                    continue
                if job is None:  # the queue was closed: shutting down
                    return
                holding = True
                self.current = job
                if self._queue.closed:  # taken just as the server began to stop
                    job.reason = SHUTTING_DOWN
                    job.cancel.set()
                try:
                    self._run(job)
                finally:
                    self.current = None
        finally:
            self._push.close()

    def _emit(self, kind: bytes, job: Job, header: dict, frames: List[Any] = ()) -> None:  # type: ignore[assignment]
        self._push.send_multipart([kind, job.client, job.spec.job_id.encode(), msgpack.packb(header)] + list(frames),
                                  copy=False)

    def _error(self, job: Job, code: str, message: str) -> None:
        self._emit(KIND_END, job, {"type": "error", "id": job.spec.job_id, "code": code, "message": message})

    def _run(self, job: Job) -> None:
        spec = job.spec
        started = time.monotonic()
        last = {"time": 0.0, "stage": None}

        def progress(fraction: float, stage: str) -> None:
            now = time.monotonic()
            if job.cancel.is_set() or (stage == last["stage"] and now - last["time"] < PROGRESS_MIN_INTERVAL):
                return
            last["time"], last["stage"] = now, stage
            self._emit(KIND_PROGRESS, job, {"type": "progress", "id": spec.job_id,
                                            "fraction": min(1.0, max(0.0, float(fraction))), "stage": str(stage)})

        try:
            if job.cancel.is_set():
                raise JobCancelledError(job.reason)
            image, mask = decode_job(spec, job.frames)
            progress(0.0, "started")
            result = self._inpainter(image, mask, dict(spec.options), progress, job.cancel.is_set)
            if job.cancel.is_set() and job.reason != SHUTTING_DOWN:
                raise JobCancelledError(job.reason)  # cancelled means nothing changes, even if it finished
            fields, tiles = encode_result(spec, result)
            header = {"type": "result", "id": spec.job_id, "seconds": round(time.monotonic() - started, 4), **fields}
            self._emit(KIND_END, job, header, tiles)
            log.info("job %s: %dx%d %s %s done in %.2f s", spec.job_id, spec.width, spec.height, spec.layout,
                     spec.dtype, time.monotonic() - started)
        except JobCancelledError:
            if job.reason == SHUTTING_DOWN:
                self._error(job, SHUTTING_DOWN, "the backend is shutting down; the job was stopped")
            else:
                self._emit(KIND_END, job, {"type": "cancelled", "id": spec.job_id, "reason": job.reason})
            log.info("job %s: cancelled (%s)", spec.job_id, job.reason)
        except JobFailedError as exc:
            self._error(job, "inpaint_failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - one job failing must never stop the worker
            if is_out_of_memory(exc):
                release_memory()
                log.warning("job %s: out of memory at %dx%d: %s", spec.job_id, spec.width, spec.height, exc)
                self._error(job, "out_of_memory",
                            f"ran out of memory inpainting {spec.width}x{spec.height} ({exc}); select a smaller "
                            "region or use the 'crop' strategy")
            else:
                log.exception("job %s failed", spec.job_id)
                self._error(job, "internal", f"{type(exc).__name__}: {exc}")
        finally:
            job.frames = []
