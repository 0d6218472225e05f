"""Exact receptive-field arithmetic for running a chain of local layers on one spatial tile.

Each layer is a convolution with reflect padding or a transposed convolution. Walking the chain
backwards from the rows (or columns) a tile must produce gives, per layer, which input rows are
needed. Where that range reaches past the true image border, the layer's reflect padding supplies
the missing rows, exactly as in the untiled pass (reflect padding maps row -j to row j whatever
the pad width); everywhere else the halo rows are real data computed by the previous layer. A
transposed convolution pads nothing: rows past the border contribute nothing in both passes.
So a tile computed this way equals the same region of the untiled result, up to float rounding
where a kernel blocks a differently sized input differently (~1e-6 measured on big-lama).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerGeometry:
    """Spatial behaviour of one layer along one axis (square kernels, same on both axes)."""

    kernel: int
    stride: int = 1
    padding: int = 0            # reflect padding (convolution) or output cropping (transposed)
    dilation: int = 1
    transposed: bool = False
    output_padding: int = 0

    def output_size(self, size: int) -> int:
        span = self.dilation * (self.kernel - 1)
        if self.transposed:
            return (size - 1) * self.stride - 2 * self.padding + span + self.output_padding + 1
        return (size + 2 * self.padding - span - 1) // self.stride + 1


@dataclass(frozen=True)
class AxisStep:
    """What one layer of a tile does along one axis.

    The layer's input holds global rows [lo, hi); it is reflect-padded by pad_before / pad_after,
    run, and (transposed layers only) the local output rows [crop_start, crop_stop) are kept.
    The result holds global output rows [out_start, out_stop).
    """

    lo: int
    hi: int
    pad_before: int
    pad_after: int
    crop_start: int
    crop_stop: int
    out_start: int
    out_stop: int


def _input_span(layer: LayerGeometry, start: int, stop: int, size_in: int) -> AxisStep:
    s, p, d, k = layer.stride, layer.padding, layer.dilation, layer.kernel
    span = d * (k - 1)
    if layer.transposed:
        # output o = s * i - p + j * d: input i feeds outputs [s*i - p, s*i - p + span]
        lo = max(0, -((-(start + p - span)) // s))  # ceil division
        hi = min(size_in, (stop - 1 + p) // s + 1)
        offset = s * lo  # local output index = global output index - s * lo
        return AxisStep(lo, hi, 0, 0, start - offset, stop - offset, start, stop)
    need_lo = s * start - p
    need_hi = s * (stop - 1) - p + span + 1
    lo, hi = max(0, need_lo), min(size_in, need_hi)
    pad_before, pad_after = lo - need_lo, need_hi - hi
    if pad_before >= hi - lo or pad_after >= hi - lo:
        raise ValueError(f"tile too small for reflect padding ({hi - lo} rows, pad {pad_before}/{pad_after})")
    return AxisStep(lo, hi, pad_before, pad_after, 0, stop - start, start, stop)


def plan_axis(layers: list[LayerGeometry], size_in: int, start: int, stop: int) -> list[AxisStep]:
    """Per-layer steps (first layer first) that produce output rows [start, stop) of the chain."""
    sizes = [size_in]
    for layer in layers:
        sizes.append(layer.output_size(sizes[-1]))
    if not 0 <= start < stop <= sizes[-1]:
        raise ValueError(f"output rows [{start}, {stop}) outside 0..{sizes[-1]}")
    steps: list[AxisStep] = []
    for index in range(len(layers) - 1, -1, -1):
        step = _input_span(layers[index], start, stop, sizes[index])
        steps.append(step)
        start, stop = step.lo, step.hi
    return steps[::-1]


def chain_output_size(layers: list[LayerGeometry], size_in: int) -> int:
    for layer in layers:
        size_in = layer.output_size(size_in)
    return size_in


def split_axis(size: int, tile: int | None) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most `tile` covering 0..size; the last one may be shorter."""
    if tile is None or tile >= size:
        return [(0, size)]
    if tile < 1:
        raise ValueError("tile size must be >= 1")
    return [(start, min(size, start + tile)) for start in range(0, size, tile)]


def even_part(total: int, most: int) -> int:
    """The size of equal parts (the last may be smaller) when `total` is cut into as few parts of
    at most `most` as possible: 28 by 9 gives 7 (four parts), not 9, 9, 9, 1."""
    most = max(1, min(total, most))
    return -(-total // -(-total // most))
