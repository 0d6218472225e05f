"""Batch-norm folding: in eval mode a BatchNorm2d is a per-channel affine map, so it merges exactly
into the weights and bias of the convolution in front of it.

Folding works on copies of the tensors (the module that owns them stays untouched) and is done in
float64, so the folded fp32 weights differ from the exact product by one rounding step only.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn


class UnsupportedGenerator(ValueError):
    """The network uses a layer arrangement the fast executor does not handle (fall back to eager)."""


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with any following batch norm merged in; padding is applied by the executor.

    weight: (out, in, k, k) for a convolution, (in, out, k, k) for a transposed one.
    padding: the transposed convolution's own output cropping; 0 for ordinary convolutions, whose
    reflect padding the executor applies explicitly (it differs between tile and image borders).
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: int = 1
    dilation: int = 1
    padding: int = 0
    transposed: bool = False
    output_padding: int = 0

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[0 if self.transposed else 1])

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[1 if self.transposed else 0])

    def scaled(self, scale: torch.Tensor) -> "FoldedConv":
        """Multiply every output channel by `scale` (bias too)."""
        shape = (1, -1, 1, 1) if self.transposed else (-1, 1, 1, 1)
        bias = None if self.bias is None else self.bias * scale
        return replace(self, weight=self.weight * scale.reshape(shape), bias=bias)

    def with_bias(self, shift: torch.Tensor) -> "FoldedConv":
        """Add a per-output-channel constant."""
        bias = shift.clone() if self.bias is None else self.bias + shift
        return replace(self, bias=bias)

    def to_float32(self) -> "FoldedConv":
        bias = None if self.bias is None else self.bias.float().contiguous()
        return replace(self, weight=self.weight.float().contiguous(), bias=bias)


def batch_norm_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with bn(x) == x * scale + shift per channel in eval mode (float64)."""
    if not isinstance(bn, nn.BatchNorm2d):
        raise UnsupportedGenerator(f"expected BatchNorm2d, got {type(bn).__name__}")
    if bn.running_mean is None or bn.running_var is None:
        raise UnsupportedGenerator("batch norm without running statistics cannot be folded")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    scale = 1.0 / torch.sqrt(var + bn.eps)
    shift = -mean * scale
    if bn.affine:
        scale = scale * bn.weight.detach().double()
        shift = shift * bn.weight.detach().double() + bn.bias.detach().double()
    return scale, shift


def _square(value: tuple[int, ...] | int, what: str) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise UnsupportedGenerator(f"non-square {what} {value} is not supported")
    return int(value[0])


def conv_as_folded(conv: nn.Module) -> FoldedConv:
    """A plain copy of a Conv2d / ConvTranspose2d in float64 (no batch norm yet)."""
    if isinstance(conv, nn.ConvTranspose2d):
        transposed = True
    elif isinstance(conv, nn.Conv2d):
        transposed = False
    else:
        raise UnsupportedGenerator(f"expected a convolution, got {type(conv).__name__}")
    if conv.groups != 1:
        raise UnsupportedGenerator("grouped convolutions are not supported")
    _square(conv.kernel_size, "kernel")
    bias = None if conv.bias is None else conv.bias.detach().double().clone()
    return FoldedConv(
        weight=conv.weight.detach().double().clone(),
        bias=bias,
        stride=_square(conv.stride, "stride"),
        dilation=_square(conv.dilation, "dilation"),
        padding=_square(conv.padding, "padding") if transposed else 0,
        transposed=transposed,
        output_padding=_square(conv.output_padding, "output padding") if transposed else 0,
    )


def fold(conv: nn.Module, bn: nn.Module | None = None) -> FoldedConv:
    """conv followed by bn, as one convolution."""
    folded = conv_as_folded(conv)
    if bn is None or isinstance(bn, nn.Identity):
        return folded
    scale, shift = batch_norm_affine(bn)
    return folded.scaled(scale).with_bias(shift)


def concat_outputs(first: FoldedConv, second: FoldedConv) -> FoldedConv:
    """Two convolutions over the same input as one with both output channel sets (first, then second)."""
    if (first.stride, first.dilation, first.kernel, first.transposed) != (
            second.stride, second.dilation, second.kernel, second.transposed):
        raise UnsupportedGenerator("cannot merge convolutions of different geometry")
    dim = 1 if first.transposed else 0

    def bias_of(f: FoldedConv) -> torch.Tensor:
        return f.bias if f.bias is not None else torch.zeros(f.out_channels, dtype=f.weight.dtype)

    bias = None if first.bias is None and second.bias is None else torch.cat([bias_of(first), bias_of(second)])
    return replace(first, weight=torch.cat([first.weight, second.weight], dim=dim), bias=bias)


def concat_inputs(first: FoldedConv, second: FoldedConv) -> FoldedConv:
    """conv(a, first) + conv(b, second) as one convolution over the channels of a, then b."""
    if first.transposed or second.transposed or (first.stride, first.dilation, first.kernel) != (
            second.stride, second.dilation, second.kernel) or first.out_channels != second.out_channels:
        raise UnsupportedGenerator("cannot merge convolutions of different geometry")
    if first.bias is None or second.bias is None:
        bias = first.bias if second.bias is None else second.bias
    else:
        bias = first.bias + second.bias
    return replace(first, weight=torch.cat([first.weight, second.weight], dim=1), bias=bias)
