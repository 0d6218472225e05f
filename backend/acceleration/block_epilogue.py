"""The end of an FFC block layer in bf16: ReLU, the block's residual add, and the reflect padding
the next layer's convolutions read, as one pass of compiled code (native.py).

Why: in bf16 the blocks' maps are memory-bound everywhere outside the convolutions. torch needs
three passes over each 384-channel map here (ReLU, residual add, padded copy); at 1024 px they
took about a sixth of the bf16 pass, and one pass that writes both the map and its padded copy
took the blocks from 1.78 s to 1.63 s (benchmarks/README.md), with bit-identical results. The
torch passes run wherever the compiled kernels are missing.
"""
from __future__ import annotations

import functools
import logging

import torch
import torch.nn.functional as F

from .native import NativeTransforms
from .native import load as load_native

log = logging.getLogger(__name__)


def relu_add_reflect_pad(x: torch.Tensor, residual: torch.Tensor | None, relu: bool, pad: int,
                         native: NativeTransforms | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, y reflect-padded by `pad`) for y = relu?(x) + residual?, computed in x's place;
    channels_last bf16 maps go to the compiled kernel when `native` is given, others to torch."""
    if native is not None and x.dtype == torch.bfloat16:
        return native.relu_add_reflect_pad(x, residual, relu, pad)
    if relu:
        x = x.relu_()
    if residual is not None:
        x = x.add_(residual)
    return x, (F.pad(x, (pad,) * 4, mode="reflect") if pad else x)


@functools.lru_cache(maxsize=None)
def checked(native: NativeTransforms | None) -> NativeTransforms | None:
    """`native` if its bf16 epilogue gives torch's results bit for bit on a small map with every
    kind of value (negatives, zeros, ties that round to even, infinities, a NaN), else None."""
    if native is None:
        return None
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 70, 5, 7, generator=generator).bfloat16()
    x.view(-1)[:4] = torch.tensor([0.0, -0.0, float("inf"), float("-inf")])
    x.view(-1)[4] = float("nan")
    residual = torch.randn(2, 70, 5, 7, generator=generator).bfloat16()
    x, residual = (t.contiguous(memory_format=torch.channels_last) for t in (x, residual))
    try:
        for relu in (False, True):
            for add in (None, residual):
                got = native.relu_add_reflect_pad(x.clone(), add, relu, 2)
                want = relu_add_reflect_pad(x.clone(), add, relu, 2)
                for a, b in zip(got, want):
                    if not (a.shape == b.shape and torch.equal(a.isnan(), b.isnan())
                            and torch.equal(a.nan_to_num(), b.nan_to_num())):
                        raise ValueError("results differ from torch's")
    except (OSError, ValueError) as failure:
        log.warning("the compiled bf16 block epilogue failed its check (%s); torch's passes run", failure)
        return None
    return native


@functools.lru_cache(maxsize=None)
def compiled() -> NativeTransforms | None:
    """The native library (the Winograd tile's build, which holds the epilogue too) if its
    epilogue passes `checked`, loaded once; the bf16 blocks need nothing else from it, so the
    Winograd transforms' own check (winograd.native_transforms) does not decide this one."""
    from .winograd import TILE, transform_matrices
    a_t, _, b_t = transform_matrices(TILE)
    return checked(load_native(TILE, a_t, b_t))
