"""Memory budgets: parsing `--max-memory`, and how much memory a device has free right now."""
from __future__ import annotations

import re
import sys

import torch

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
#: share of the currently free memory a pass may use when no budget is given
DEFAULT_SHARE = {"cpu": 0.6, "cuda": 0.85}


def parse_memory_size(text: str | int) -> int:
    """'6G', '512M', '1.5GiB', '2048MB' or a plain number of bytes -> bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(text))
        if not match:
            raise ValueError(f"memory size {text!r} is not a number with an optional unit K, M, G or T")
        value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return value


def free_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now: cudaMemGetInfo on CUDA, MemAvailable on Linux; None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/meminfo", encoding="ascii") as info:
                for line in info:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def memory_budget(device: torch.device, max_memory: int | str | None = None) -> int | None:
    """The budget for one pass: the explicit `max_memory`, capped on CUDA by the free GPU memory;
    without one, a share of what is free now (None where that is unknown: run untiled)."""
    explicit = None if max_memory is None else parse_memory_size(max_memory)
    free = free_memory(device)
    if explicit is not None:
        return explicit if device.type != "cuda" or free is None else min(explicit, free)
    if free is None:
        return None
    return int(free * DEFAULT_SHARE.get(device.type, 0.6))
