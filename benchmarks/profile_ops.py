"""Where big-lama's CPU time goes, plain eager fp32 reference vs the fast fp32 path, by operator.

Why: it bounds what the fast path can still gain. The convolutions (oneDNN) are a floor that
removing every other cost cannot go below; this prints that floor as the largest possible
speed-up over the reference at the size given. Weights and input as in generator.py.
Run: `.venv/bin/python benchmarks/profile_ops.py [SIZE]` (default 512).
"""
from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator import build_generator, calibrate_output_range, network_input  # noqa: E402

from lama_backend.acceleration import FastGenerator  # noqa: E402

# operators that do the network's multiply-adds: convolutions and the spectral 1x1 GEMMs
MATH_OPS = ("conv", "mkldnn", "addmm", "matmul", "mm")


def profile(run) -> tuple[float, collections.Counter]:
    """Best-of-2 wall seconds of `run()`, then the self CPU seconds per operator of one more call."""
    run()
    walls = []
    for _ in range(2):
        started = time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    by_op: collections.Counter = collections.Counter()
    for event in prof.key_averages():
        by_op[event.key] += event.self_cpu_time_total / 1e6
    return min(walls), by_op


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    generator = build_generator("big-lama")
    calibrate_output_range(generator)
    x = network_input(size)
    fast = FastGenerator(generator, torch.device("cpu"), "fp32")

    def reference():
        with torch.no_grad():
            return generator(x)

    results = {}
    for name, run in (("reference", reference), ("fast-fp32", lambda: fast(x))):
        wall, by_op = profile(run)
        math = sum(seconds for op, seconds in by_op.items() if any(key in op.lower() for key in MATH_OPS))
        results[name] = (wall, math)
        print(f"{name}: wall {wall:.3f} s, profiled {sum(by_op.values()):.3f} s, "
              f"convolutions + GEMMs {math:.3f} s")
        for op, seconds in by_op.most_common(6):
            print(f"    {op:42s} {seconds:.3f} s")
    reference_wall, fast_math = results["reference"][0], results["fast-fp32"][1]
    print(f"speed-up now {reference_wall / results['fast-fp32'][0]:.2f}x; with every non-GEMM cost of the fast "
          f"path removed at most {reference_wall / fast_math:.2f}x")


if __name__ == "__main__":
    main()
