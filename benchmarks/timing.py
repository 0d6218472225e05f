"""Best-of-N wall time, shared by the single-process benchmarks (generator.py times its own
subprocesses, with CPU time and CUDA synchronisation)."""
from __future__ import annotations

import time
from typing import Callable


def best_wall(run: Callable[[], object], rounds: int, warmup: int = 1) -> float:
    """Best wall seconds of `run()` over `rounds` calls, after `warmup` untimed calls (oneDNN
    primitives, allocator pools and caches are built by the first call)."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best
