"""Let glibc reuse freed activation memory inside a pass instead of handing it back to the OS.

A generator pass allocates and frees the same few hundred megabytes again and again (each FFC
layer makes a dozen block-sized tensors). glibc serves every allocation above its dynamic mmap
threshold with fresh pages and unmaps them on free, so the kernel zero-fills every one of them
again: at 1024 px in bf16 that was 630,000 page faults and 1.2 s of kernel time per 2.4 s pass
on this 2-core machine. Raising the mmap threshold to its 32 MiB maximum and the trim threshold
with it keeps those blocks in the heap for reuse (140,000 faults, 0.2 s; benchmarks/README.md).

Blocks above 32 MiB (the full-resolution encoder and decoder maps at >= 2048 px) still come
from mmap, so the peak stays close to the default's (disabling mmap altogether was faster
still, but fragmentation took a 4096 px tiled pass from under 4 GiB to 9 GiB). The memory kept
after a pass is returned with `release_freed_memory()` once the backend goes idle.

glibc only (Linux); elsewhere both functions do nothing and say so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (HEAP_MAX_SIZE / 2)
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
#: free memory at the top of the heap kept before glibc shrinks it
TRIM_THRESHOLD = 1 << 30
#: environment switch for measurements and for anyone who prefers glibc's defaults
DISABLE_ENV = "LAMA_DEFAULT_MALLOC"

_libc: ctypes.CDLL | None = None
_tuned = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.gnu_get_libc_version  # noqa: B018 - musl and others have no such symbol
        except (OSError, AttributeError):
            return None
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        _libc = libc
    return _libc


def reuse_freed_memory() -> bool:
    """Keep blocks up to 32 MiB in the heap for reuse; True when the setting took effect."""
    global _tuned
    if _tuned:
        return True
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS (after a pass, when nothing else is waiting)."""
    libc = _glibc() if _tuned else None
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def freed_memory_reused() -> bool:
    """Whether `reuse_freed_memory` is in effect in this process."""
    return _tuned
