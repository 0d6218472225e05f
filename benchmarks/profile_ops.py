"""Where big-lama's CPU time goes, plain eager fp32 reference vs the fast fp32 path, by operator.

Why: it bounds what the fast path can still gain. The convolutions (oneDNN) are a floor that
removing every other cost cannot go below; this prints that floor as the largest possible
speed-up over the reference at the size given: the reference's best wall time over the fast
path's best wall time times its share of convolutions and GEMMs (a share measured within one
profiled call, so a noisy host moves it little). Weights, input, allocator settings and the fast
path's tiling as in generator.py (the reference runs first, with glibc's defaults; then the fast path with the
backend's setting), except that both run with the backend's OpenMP spin setting (one process).
The fast path's convolutions are oneDNN's, and in fp32 Winograd products (MKL's bmm / mm) for
the FFC blocks and NNPACK's for the decoder's last one.
Run: `.venv/bin/python benchmarks/profile_ops.py [SIZE]` (default 512).
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from lama_backend.openmp_env import shorten_openmp_spin  # imports no torch

shorten_openmp_spin()  # as lama-backend does, before torch loads (here for both paths)

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator import build_generator, calibrate_output_range, check_sizes, network_input  # noqa: E402
from timing import best_wall  # noqa: E402

from lama_backend.acceleration import FastGenerator  # noqa: E402
from lama_backend.acceleration.allocator import reuse_freed_memory  # noqa: E402

# operators that do the network's multiply-adds: convolutions and the spectral 1x1 GEMMs
MATH_OPS = ("conv", "mkldnn", "addmm", "matmul", "mm")
ROUNDS = 3


def math_fraction(run) -> tuple[float, collections.Counter]:
    """Share of the profiled self CPU time spent in convolutions and GEMMs, and the time per operator."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    by_op: collections.Counter = collections.Counter()
    for event in prof.key_averages():
        by_op[event.key] += event.self_cpu_time_total / 1e6
    math = sum(seconds for op, seconds in by_op.items() if any(key in op.lower() for key in MATH_OPS))
    return math / sum(by_op.values()), by_op


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", nargs="?", type=int, default=512, help="image side in pixels (default 512)")
    size = parser.parse_args().size
    check_sizes(parser, [size])
    generator = build_generator("big-lama")
    calibrate_output_range(generator)
    x = network_input(size)
    fast = FastGenerator(generator, torch.device("cpu"), "fp32")
    tile = fast.choose_tile(1, size, size, None)  # as the backend and generator.py choose it

    def reference():
        with torch.no_grad():
            return generator(x)

    runs = {"reference": reference, "fast-fp32": lambda: fast(x, tile=tile)}
    walls = {"reference": best_wall(reference, ROUNDS)}  # the reference as generator.py runs it: default allocator
    reuse_freed_memory()  # then the fast path as the backend (and generator.py) runs it
    walls["fast-fp32"] = best_wall(runs["fast-fp32"], ROUNDS)
    for name, run in runs.items():
        share, by_op = math_fraction(run)
        print(f"{name}: best wall {walls[name]:.3f} s; convolutions + GEMMs {100 * share:.0f} % of its profiled time")
        for op, seconds in by_op.most_common(5):
            print(f"    {op:42s} {seconds:.3f} s")
        if name == "fast-fp32":
            floor = walls[name] * share
    print(f"speed-up now {walls['reference'] / walls['fast-fp32']:.2f}x; with every other cost of the fast path "
          f"removed at most {walls['reference'] / floor:.2f}x")


if __name__ == "__main__":
    main()
