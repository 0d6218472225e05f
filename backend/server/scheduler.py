"""Jobs waiting for the one worker, served round-robin by client so no client starves another."""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

from .validation import InpaintSpec


@dataclass
class Job:
    client: bytes                 # ROUTER identity of the requesting connection
    spec: InpaintSpec
    frames: List[Any]             # image tiles then mask tiles, as received (zero-copy)
    cancel: threading.Event = field(default_factory=threading.Event)
    gone: bool = False            # the client vanished: nothing it produces can be delivered
    reason: str = "cancelled"     # why `cancel` was set

    @property
    def key(self) -> tuple[bytes, str]:
        return self.client, self.spec.job_id


class QueueFull(Exception):
    pass


class FairQueue:
    """Per-client FIFO queues visited in rotation; thread-safe (I/O thread puts, worker takes)."""

    def __init__(self, max_per_client: int, max_total: int) -> None:
        self.max_per_client = max_per_client
        self.max_total = max_total
        self._queues: "OrderedDict[bytes, Deque[Job]]" = OrderedDict()
        self._count = 0
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return self._count

    def put(self, job: Job) -> int:
        """Queue a job; returns how many jobs wait in total (itself included)."""
        with self._cond:
            queue = self._queues.get(job.client)
            if queue is not None and len(queue) >= self.max_per_client:
                raise QueueFull(f"this client already has {len(queue)} queued jobs (limit {self.max_per_client})")
            if self._count >= self.max_total:
                raise QueueFull(f"{self._count} jobs are queued (limit {self.max_total}); try again later")
            if queue is None:
                queue = self._queues[job.client] = deque()
            queue.append(job)
            self._count += 1
            self._cond.notify()
            return self._count

    def take(self, timeout: Optional[float] = None) -> Optional[Job]:
        """The next job in round-robin order, or None after `timeout` s or once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count > 0 or self._closed, timeout):
                return None
            if self._closed and self._count == 0:
                return None
            client, queue = next(iter(self._queues.items()))
            job = queue.popleft()
            self._count -= 1
            del self._queues[client]
            if queue:
                self._queues[client] = queue  # to the back of the rotation
            return job

    def remove(self, client: bytes, job_id: str) -> Optional[Job]:
        with self._cond:
            queue = self._queues.get(client)
            if not queue:
                return None
            for job in queue:
                if job.spec.job_id == job_id:
                    queue.remove(job)
                    self._count -= 1
                    if not queue:
                        del self._queues[client]
                    return job
            return None

    def remove_client(self, client: bytes) -> List[Job]:
        with self._cond:
            queue = self._queues.pop(client, None) or deque()
            self._count -= len(queue)
            return list(queue)

    def drain(self) -> List[Job]:
        """Remove every queued job and refuse new waits (shutdown)."""
        with self._cond:
            jobs = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._count = 0
            self._closed = True
            self._cond.notify_all()
            return jobs

    def clients(self) -> Dict[bytes, int]:
        with self._cond:
            return {client: len(queue) for client, queue in self._queues.items()}
