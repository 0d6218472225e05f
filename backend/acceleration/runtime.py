"""Process-wide settings that make inference fast: threads, oneDNN, cuDNN autotuning, precision.

bf16 on CPU pays off only where the CPU computes bf16 dot products natively (AVX512-BF16 or AMX):
there it is the default (4.2-6.0x the eager fp32 pass with AMX, 2.3-3.5x with AVX512-BF16 alone;
50-54 dB PSNR against fp32, benchmarks/README.md). Elsewhere oneDNN emulates bf16 and it is 4x
slower than fp32, so it is never chosen there.
"""
from __future__ import annotations

import os
import sys

import torch

_CPU_FLAGS: set[str] | None = None


def cpu_flags() -> set[str]:
    """The CPU feature flags the OS reports (Linux /proc/cpuinfo; empty elsewhere)."""
    global _CPU_FLAGS
    if _CPU_FLAGS is None:
        flags: set[str] = set()
        if sys.platform.startswith("linux"):
            try:
                with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
                    for line in info:
                        if line.startswith("flags"):
                            flags.update(line.split(":", 1)[1].split())
                            break
            except OSError:
                pass
        _CPU_FLAGS = flags
    return _CPU_FLAGS


def cpu_bf16_support() -> str | None:
    """'amx', 'avx512_bf16' when the CPU has native bf16 matrix / dot-product instructions, else None."""
    if not torch.backends.mkldnn.is_available():
        return None
    is_supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if is_supported is not None and not is_supported():
        return None
    flags = cpu_flags()
    if "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def usable_cpu_count() -> int:
    """Cores this process may run on (affinity-aware where the OS tells)."""
    if hasattr(os, "sched_getaffinity"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use every usable core for intra-op parallelism unless OMP_NUM_THREADS says otherwise."""
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = usable_cpu_count()
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def cudnn_autotune(precision: str) -> bool:
    """Whether cuDNN should time its algorithms for `precision` (see `configure_cuda`)."""
    return precision in ("bf16", "fp16")


def configure_cuda(precision: str) -> None:
    """cuDNN autotuning for the half precisions: the engine pads to few distinct shapes, so tuning
    once per shape pays off (bf16 2.3-2.6x the eager fp32 pass on an H200, benchmarks/README.md).

    fp32 keeps cuDNN's heuristic choice, the one the eager pass makes: on an H200 the autotuner
    picked fp32 algorithms at >= 1024 px that took 25-37 GiB of workspace while tuning, ran slower
    than the heuristic pick (0.86x) and moved the output by up to 8e-2 from the eager pass."""
    torch.backends.cudnn.benchmark = cudnn_autotune(precision)


def default_precision(device: torch.device) -> str:
    """bf16 on CPUs that compute it natively, else fp32; on CUDA bf16 where supported, else fp16.

    The FFTs stay float32 either way. `--precision fp32` gives the exact eager result."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_bf16_support() is not None:
        return "bf16"
    return "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> the default for the device; asking for bf16 on a CPU without it is an error."""
    if precision == "auto":
        return default_precision(device)
    if precision == "bf16" and device.type == "cpu" and cpu_bf16_support() is None:
        raise ValueError("precision bf16 needs a CPU with AVX512-BF16 or AMX; use fp32")
    if precision == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 is for CUDA only; use fp32 or bf16 on CPU")
    return precision
