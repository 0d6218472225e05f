"""The Winograd transforms in C (winograd_source.py), compiled on first use where a compiler is;
the same library holds the bf16 blocks' layer epilogue (block_epilogue.py).

Why: in torch the F(4x4, 3x3) transforms are a gather copy and a product with a 36 x 36 matrix
of mostly zeros, memory-bound work that took about a fifth of the fast fp32 path's FFC blocks.
The C version reads each tile once and writes the layout the channel-mixing products want
(benchmarks/README.md has the figures). Nothing depends on it: without a C compiler, or with
LAMA_NATIVE_KERNELS=0, the torch products run instead and give the same result within rounding.

The library is built once per tile size, source, compiler and CPU into the cache directory
(`~/.cache/lama-backend/native`, the generated source beside it), with `-O3 -march=native`
(retried without `-march=native`), written to a temporary name and renamed into place, so
backends starting together never load a half-written file. winograd.py checks every loaded
build against its torch products before use.
"""
from __future__ import annotations

import concurrent.futures
import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch

from ..weights.discovery import cache_dir
from . import winograd_source
from .runtime import cpu_flags

log = logging.getLogger(__name__)

#: set to 0 to run the torch products instead of the compiled transforms
ENV_SWITCH = "LAMA_NATIVE_KERNELS"
#: compilers tried in order when $CC is not set (MSVC's cl takes other flags and is not tried)
COMPILERS = ("cc", "gcc", "clang")
COMPILE_TIMEOUT_S = 120
#: a strip's tiles are split between threads only when each thread gets at least this many
MIN_CELLS_PER_THREAD = 16

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


def enabled_by_environment() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def find_compiler() -> list[str] | None:
    """$CC (split like a shell would), else the first of COMPILERS on PATH."""
    chosen = os.environ.get("CC")
    if chosen:
        return shlex.split(chosen)
    for name in COMPILERS:
        path = shutil.which(name)
        if path:
            return [path]
    return None


def _library_suffix() -> str:
    return {"win32": ".dll", "darwin": ".dylib"}.get(sys.platform, ".so")


def _build_key(code: str, compiler: list[str]) -> str:
    """Hash of what the binary depends on: the source, the compiler and the CPU it targets."""
    try:
        version = subprocess.run([*compiler, "--version"], capture_output=True, text=True,
                                 timeout=COMPILE_TIMEOUT_S).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    digest = hashlib.sha256(code.encode("utf-8"))
    for part in (" ".join(compiler), version, platform.machine(), platform.processor(), " ".join(sorted(cpu_flags()))):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    return digest.hexdigest()[:16]


def _compile(code: str, compiler: list[str], target: Path) -> str | None:
    """Compile `code` into `target` (atomically); None on success, else the compiler's complaint."""
    source = target.with_suffix(".c")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(suffix=".c", dir=target.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(code)
        os.replace(temporary, source)
    except OSError as error:
        return f"cannot write {source}: {error}"
    base = [*compiler, "-O3", "-std=c99", "-shared"] + ([] if sys.platform == "win32" else ["-fPIC"])
    complaint = "no attempt"
    for extra in (["-march=native"], []):
        try:
            handle, temporary = tempfile.mkstemp(suffix=target.suffix, dir=target.parent)
            os.close(handle)
        except OSError as error:
            return f"cannot write into {target.parent}: {error}"
        try:
            result = subprocess.run([*base, *extra, str(source), "-o", temporary], capture_output=True, text=True,
                                    timeout=COMPILE_TIMEOUT_S)
            if result.returncode == 0:
                os.replace(temporary, target)
                return None
            complaint = (result.stderr or result.stdout).strip()[-400:]
        except (OSError, subprocess.SubprocessError) as error:
            complaint = str(error)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
    return complaint


class NativeTransforms:
    """The library's C functions, with the work of one call split between torch's intra-op
    threads (ctypes releases the GIL for the call, so Python threads run them in parallel)."""

    def __init__(self, library: ctypes.CDLL, path: Path, tile: int) -> None:
        self.path = path
        self.tile = tile
        self._input_reflected = library.winograd_input_reflected
        self._input_reflected.argtypes = [ctypes.POINTER(_ptr), ctypes.POINTER(_i64), _i64, _i64, _i64, _i64, _i64,
                                          _i64, _ptr, _i64, _i64]
        self._input_reflected.restype = None
        self._epilogue = library.bf16_relu_add_reflect_pad
        self._epilogue.argtypes = [_ptr, _ptr, ctypes.c_int, _i64, _i64, _i64, _i64, _ptr, _i64, _i64]
        self._epilogue.restype = None
        self._output = library.winograd_output
        self._output.argtypes = [_ptr, _i64, _i64, _ptr, ctypes.c_int, _ptr, _i64, _i64, _i64, _i64]
        self._output.restype = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_size = 0
        self._lock = threading.Lock()

    def _split(self, function, cells: int, *leading) -> None:
        threads = max(1, min(torch.get_num_threads(), cells // MIN_CELLS_PER_THREAD))
        if threads == 1:
            function(*leading, 0, cells)
            return
        with self._lock:
            if self._pool_size != threads:  # a pool in use elsewhere stays usable; unused, it is collected
                self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="lama-winograd")
                self._pool_size = threads
            pool = self._pool
        step = -(-cells // threads)
        ranges = [(lo, min(cells, lo + step)) for lo in range(step, cells, step)]
        futures = [pool.submit(function, *leading, lo, hi) for lo, hi in ranges]
        function(*leading, 0, min(cells, step))  # this thread takes the first share
        for future in futures:
            future.result()

    def input_transform_reflected(self, images: list[torch.Tensor], first_tile_row: int, tile_cols: int,
                                  spectra: torch.Tensor) -> None:
        """spectra (size^2, cells, channels) <- the transformed tiles of the `images` (contiguous
        (height, width, channels) float32 maps) concatenated along channels and reflect-padded by
        1, read in place; the strip starts at tile row `first_tile_row`."""
        positions, cells, channels = spectra.shape
        height, width = images[0].shape[:2]
        if any(image.dtype != torch.float32 or not image.is_contiguous() or image.shape[:2] != (height, width)
               for image in images) or spectra.dtype != torch.float32 or not spectra.is_contiguous() \
                or sum(image.shape[2] for image in images) != channels:
            raise ValueError("the native input transform takes contiguous float32 maps of one size")
        if positions != (self.tile + 2) ** 2 or height < 2 or width < 2 \
                or first_tile_row < 0 or (first_tile_row + -(-cells // tile_cols)) * self.tile > height + self.tile - 1:
            raise ValueError(f"{height}x{width} maps (at least 2x2 to reflect) do not hold {cells} tiles "
                             f"from tile row {first_tile_row}")
        sources = (_ptr * len(images))(*(image.data_ptr() for image in images))
        counts = (_i64 * len(images))(*(image.shape[2] for image in images))
        with torch.profiler.record_function("lama::winograd_input_transform"):
            self._split(self._input_reflected, cells, sources, counts, len(images), height, width, first_tile_row,
                        tile_cols, cells, spectra.data_ptr())

    def relu_add_reflect_pad(self, x: torch.Tensor, residual: torch.Tensor | None, relu: bool,
                             pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x = relu?(x) + residual? in place, and x reflect-padded by `pad`, for bf16 channels_last
        maps, in one pass (returns both)."""
        batch, channels, height, width = x.shape
        maps = (x,) if residual is None else (x, residual)
        if any(m.dtype != torch.bfloat16 or not m.is_contiguous(memory_format=torch.channels_last)
               or m.shape != x.shape for m in maps):
            raise ValueError("the bf16 epilogue takes bf16 channels_last maps of one shape")
        if pad < 0 or pad >= min(height, width):
            raise ValueError(f"reflect padding by {pad} needs more than a {height}x{width} map")
        padded = torch.empty(batch, channels, height + 2 * pad, width + 2 * pad, device=x.device, dtype=x.dtype,
                             memory_format=torch.channels_last)
        with torch.profiler.record_function("lama::bf16_relu_add_reflect_pad"):
            for index in range(batch):
                self._split(self._epilogue, height, x[index].data_ptr(),
                            None if residual is None else residual[index].data_ptr(), int(relu), height, width,
                            channels, pad, padded[index].data_ptr())
            for p in range(pad):  # border rows: copies of finished interior rows (reflection)
                padded[:, :, pad - 1 - p] = padded[:, :, pad + 1 + p]
                padded[:, :, height + pad + p] = padded[:, :, height + pad - 2 - p]
        return x, padded

    def output_transform(self, mixed: torch.Tensor, bias: torch.Tensor | None, relu: bool, target: torch.Tensor,
                         tile_cols: int) -> None:
        """target (rows, cols, out channels), a channels-contiguous view whose columns are
        contiguous too <- relu?(A^T mixed A + bias) for the (size^2, cells, out channels) `mixed`."""
        positions, cells, channels = mixed.shape
        if mixed.dtype != torch.float32 or target.dtype != torch.float32 or not mixed.is_contiguous() \
                or target.stride(2) != 1 or target.stride(1) != channels or target.shape[2] != channels \
                or (bias is not None and (not bias.is_contiguous() or bias.dtype != torch.float32)):
            raise ValueError("the native output transform takes float32 maps with contiguous channels")
        if positions != (self.tile + 2) ** 2 or target.shape[0] < self.tile * -(-cells // tile_cols) \
                or target.shape[1] < self.tile * tile_cols or (bias is not None and bias.numel() != channels):
            raise ValueError(f"{tuple(target.shape)} output too small for {cells} tiles, {tile_cols} a row, "
                             f"or a bias of the wrong size")
        with torch.profiler.record_function("lama::winograd_output_transform"):
            self._split(self._output, cells, mixed.data_ptr(), cells, channels,
                        None if bias is None else bias.data_ptr(), int(relu), target.data_ptr(), target.stride(0),
                        tile_cols)


def load(tile: int, a_t: torch.Tensor, b_t: torch.Tensor) -> NativeTransforms | None:
    """The compiled transforms of F(tile x tile, 3 x 3) with output and input transforms A^T and
    B^T, built if needed; None (logged) where they cannot be had. winograd.native_transforms
    loads each tile size once and checks it."""
    if not enabled_by_environment():
        log.info("native Winograd transforms off (%s=0)", ENV_SWITCH)
        return None
    compiler = find_compiler()
    if compiler is None:
        log.info("no C compiler found (set CC): the Winograd transforms run as torch products")
        return None
    code = winograd_source.source(tile, a_t, b_t)
    target = cache_dir() / "native" / f"winograd{tile}-{_build_key(code, compiler)}{_library_suffix()}"
    if not target.exists():
        log.info("compiling the Winograd transforms with %s into %s", compiler[0], target)
        complaint = _compile(code, compiler, target)
        if complaint is not None:
            log.warning("could not compile the Winograd transforms (%s); the torch products run instead", complaint)
            return None
    try:
        return NativeTransforms(ctypes.CDLL(str(target)), target, tile)
    except (OSError, AttributeError) as error:
        log.warning("could not load %s (%s); the torch products run instead", target, error)
        return None
