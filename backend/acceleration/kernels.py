"""One folded convolution, ready to run: weights cast, laid out and (on CPU) prepacked once.

Two back ends compute the same thing. `mkldnn` (CPU): oneDNN's fused convolution ops with the
weights reordered once at load time, channels_last activations, the bias, the residual add and
the ReLU fused into the convolution. `aten` (CUDA, or a CPU build without oneDNN):
`F.conv2d` / `F.conv_transpose2d` followed by in-place add and ReLU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .folding import FoldedConv

# input size hint for oneDNN's weight reorder; the packed layout does not depend on it
_SIZE_HINT = 64


def mkldnn_fused_ops_available() -> bool:
    """True when this torch build has oneDNN's fused convolution ops (x86/ARM CPU builds)."""
    if not torch.backends.mkldnn.is_available():
        return False
    ops = torch.ops.mkldnn
    return all(hasattr(ops, name) for name in ("_convolution_pointwise", "_reorder_convolution_weight",
                                               "_convolution_transpose_pointwise",
                                               "_reorder_convolution_transpose_weight"))


class ConvKernel:
    """Runs `FoldedConv` on already padded input: y = relu?(conv(x) + bias + add?)."""

    def __init__(self, folded: FoldedConv, device: torch.device, dtype: torch.dtype, use_mkldnn: bool) -> None:
        self.folded = folded
        self.transposed = folded.transposed
        self.stride = folded.stride
        self.dilation = folded.dilation
        self.padding = folded.padding
        self.output_padding = folded.output_padding
        self.use_mkldnn = use_mkldnn and device.type == "cpu"
        weight = folded.weight.to(device=device, dtype=dtype)
        self.bias = None if folded.bias is None else folded.bias.to(device=device, dtype=dtype)
        if not self.transposed:
            weight = weight.contiguous(memory_format=torch.channels_last)
        if self.use_mkldnn:
            hint = [1, folded.in_channels, _SIZE_HINT, _SIZE_HINT]
            if self.transposed:
                weight = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                    weight, [self.padding] * 2, [self.output_padding] * 2, [self.stride] * 2,
                    [self.dilation] * 2, 1, hint)
            else:
                weight = torch.ops.mkldnn._reorder_convolution_weight(
                    weight, [0, 0], [self.stride] * 2, [self.dilation] * 2, 1, hint)
        self.weight = weight

    @property
    def nbytes(self) -> int:
        total = self.weight.numel() * self.weight.element_size()
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def __call__(self, x: torch.Tensor, relu: bool = False, add: torch.Tensor | None = None) -> torch.Tensor:
        if add is not None and self.transposed:
            raise ValueError("a fused residual add is only implemented for ordinary convolutions")
        if self.use_mkldnn:
            return self._mkldnn(x, relu, add)
        if self.transposed:
            y = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                   1, self.dilation)
        else:
            y = F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation)
        if add is not None:
            y.add_(add)
        return y.relu_() if relu else y

    def _mkldnn(self, x: torch.Tensor, relu: bool, add: torch.Tensor | None) -> torch.Tensor:
        ops = torch.ops.mkldnn
        stride, dilation = [self.stride] * 2, [self.dilation] * 2
        if self.transposed:
            y = ops._convolution_transpose_pointwise(x, self.weight, self.bias, [self.padding] * 2,
                                                     [self.output_padding] * 2, stride, dilation, 1,
                                                     "relu" if relu else "none", [], "")
            return y
        if add is not None:
            add = add.contiguous(memory_format=torch.channels_last)
            return ops._convolution_pointwise.binary(x, add, self.weight, self.bias, [0, 0], stride, dilation, 1,
                                                     "add", None, "relu" if relu else None, [], "")
        return ops._convolution_pointwise(x, self.weight, self.bias, [0, 0], stride, dilation, 1,
                                          "relu" if relu else "none", [], "")
