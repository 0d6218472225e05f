"""One folded convolution, ready to run: weights cast, laid out and (on CPU) prepacked per input shape.

Two back ends compute the same thing. `mkldnn` (CPU): oneDNN's fused convolution ops with the
weights reordered once per input shape, channels_last activations, the bias, the residual add and
the ReLU fused into the convolution. `aten` (CUDA, or a CPU build without oneDNN):
`F.conv2d` / `F.conv_transpose2d` followed by in-place add and ReLU.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

from .folding import FoldedConv

#: input shapes whose packed weights a kernel keeps (tiled passes see a few tile shapes)
PACKED_SHAPES_KEPT = 4


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
        self.weight = weight
        # oneDNN picks the packed weight layout for one input shape; run on another shape, it
        # reorders the weight on every call, and for some shapes that reorder costs 10x the
        # convolution itself (bf16 128->384 3x3 on AMX: 24 ms instead of 1.9 ms). So weights are
        # packed per input shape, on first use, and the last few shapes are kept.
        self._packed: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()

    def packed_weight(self, shape: torch.Size) -> torch.Tensor:
        """The weight in oneDNN's layout for inputs of `shape` (packed once per shape)."""
        key = tuple(shape)
        packed = self._packed.get(key)
        if packed is not None:
            self._packed.move_to_end(key)
            return packed
        stride, dilation = [self.stride] * 2, [self.dilation] * 2
        if self.transposed:
            packed = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                self.weight, [self.padding] * 2, [self.output_padding] * 2, stride, dilation, 1, list(key))
        else:
            packed = torch.ops.mkldnn._reorder_convolution_weight(self.weight, [0, 0], stride, dilation, 1, list(key))
        self._packed[key] = packed
        while len(self._packed) > PACKED_SHAPES_KEPT:
            self._packed.popitem(last=False)
        return packed

    @property
    def nbytes(self) -> int:
        """The weight, one packed copy of it, and the bias."""
        total = self.weight.numel() * self.weight.element_size() * (2 if self.use_mkldnn else 1)
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
        weight = self.packed_weight(x.shape)
        if self.transposed:
            y = ops._convolution_transpose_pointwise(x, weight, self.bias, [self.padding] * 2,
                                                     [self.output_padding] * 2, stride, dilation, 1,
                                                     "relu" if relu else "none", [], "")
            return y
        if add is not None:
            add = add.contiguous(memory_format=torch.channels_last)
            return ops._convolution_pointwise.binary(x, add, weight, self.bias, [0, 0], stride, dilation, 1,
                                                     "add", None, "relu" if relu else None, [], "")
        return ops._convolution_pointwise(x, weight, self.bias, [0, 0], stride, dilation, 1,
                                          "relu" if relu else "none", [], "")


class PointwiseKernel:
    """A 1x1 convolution as matrix products that also change the activation layout for free.

    The Fourier unit's FFTs want NCHW planes while every other convolution wants channels_last;
    an explicit layout copy costs as much as the convolution itself on 2 cores. A 1x1
    convolution is a matrix product, and a product can read either operand transposed, so the
    spectral transform's first convolution writes NCHW and its last one reads NCHW and writes
    channels_last, with no copy in between.
    """

    def __init__(self, folded: FoldedConv, device: torch.device, dtype: torch.dtype) -> None:
        if folded.transposed or folded.kernel != 1 or folded.stride != 1:
            raise ValueError("a pointwise kernel needs an ordinary 1x1 convolution with stride 1")
        self.weight = folded.weight[:, :, 0, 0].to(device=device, dtype=dtype).contiguous()  # (out, in)
        self.weight_t = self.weight.t()
        self.bias = None if folded.bias is None else folded.bias.to(device=device, dtype=dtype)
        self.out_channels, self.in_channels = self.weight.shape

    @property
    def nbytes(self) -> int:
        total = self.weight.numel() * self.weight.element_size()
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def to_planes(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """channels_last input -> NCHW-contiguous output."""
        batch, _, height, width = x.shape
        pixels = x.permute(0, 2, 3, 1).reshape(batch, height * width, self.in_channels)  # a view for channels_last
        out = torch.empty(batch, self.out_channels, height * width, device=x.device, dtype=self.weight.dtype)
        for index in range(batch):
            if self.bias is None:
                torch.mm(self.weight, pixels[index].t(), out=out[index])
            else:
                torch.addmm(self.bias[:, None], self.weight, pixels[index].t(), out=out[index])
        if relu:
            out.relu_()
        return out.view(batch, self.out_channels, height, width)

    def from_planes(self, x: torch.Tensor, relu: bool = False, add: torch.Tensor | None = None) -> torch.Tensor:
        """NCHW-contiguous input -> channels_last output, relu?(conv(x) + bias + add?)."""
        batch, _, height, width = x.shape
        planes = x.reshape(batch, self.in_channels, height * width)
        out = torch.empty(batch, height * width, self.out_channels, device=x.device, dtype=self.weight.dtype)
        if add is not None:
            add = add.permute(0, 2, 3, 1).reshape(batch, height * width, self.out_channels)
        for index in range(batch):
            base = add[index] if add is not None else self.bias
            if base is None:
                torch.mm(planes[index].t(), self.weight_t, out=out[index])
            else:
                torch.addmm(base, planes[index].t(), self.weight_t, out=out[index])
        if add is not None and self.bias is not None:
            out.add_(self.bias)
        if relu:
            out.relu_()
        return out.view(batch, height, width, self.out_channels).permute(0, 3, 1, 2)
