"""One folded convolution, ready to run: weights cast, laid out and (on CPU) prepacked per input shape.

Two back ends compute the same thing. `mkldnn` (CPU): oneDNN's fused convolution ops with the
weights reordered once per input shape, channels_last activations, the bias, the residual add and
the ReLU fused into the convolution. `aten` (CUDA, or a CPU build without oneDNN):
`F.conv2d` / `F.conv_transpose2d` followed by in-place add and ReLU.

`NnpackKernel` is a third way for float32 on CPU (the decoder's 3-channel last convolution, and
optionally the FFC blocks' 3x3 ones): NNPACK's Winograd and FFT kernels, which need about 5x
fewer multiply-adds than a direct convolution. (The blocks' default float32 path is winograd.py.)
"""
from __future__ import annotations

import functools
from collections import OrderedDict

import torch
import torch.nn.functional as F

from .folding import FoldedConv
from .geometry import even_part

#: input shapes whose packed weights a kernel keeps (tiled passes see a few tile shapes)
PACKED_SHAPES_KEPT = 4
#: NNPACK's workspace per call, which torch keeps for the thread's lifetime; larger maps go in strips
NNPACK_WORKSPACE_BYTES = 128 * 2**20
#: NNPACK's workspace per output cell and channel (in + out), measured 7-11 bytes (Winograd and FFT)
NNPACK_BYTES_PER_CELL_CHANNEL = 12
#: a pointwise kernel with `conv_on_planes` uses F.conv2d on maps up to this many cells; larger
#: maps use MKL's product, summed into the residual in place (F.conv2d needs a third map-sized
#: tensor there, and the 4096 px tiled pass peaked 0.13 GiB higher with it, for no speed gain)
CONV_ON_PLANES_MAX_CELLS = 128 * 128


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


@functools.lru_cache(maxsize=1)
def nnpack_usable() -> bool:
    """True when this torch build has a working NNPACK (x86-64 with AVX2, or ARM with NEON).

    `torch.backends.nnpack.is_available()` also initialises NNPACK, without which every NNPACK
    call fails; a small probe convolution then guards against a build whose NNPACK is broken.
    """
    try:
        if not torch.backends.nnpack.is_available():
            return False
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, 10, 9, generator=generator)
        weight = torch.randn(4, 3, 3, 3, generator=generator)
        bias = torch.randn(4, generator=generator)
        got = torch._nnpack_spatial_convolution(x, weight, bias, [0, 0], [1, 1])
        return bool(torch.allclose(got, F.conv2d(x, weight, bias), rtol=1e-4, atol=1e-4))
    except (RuntimeError, AttributeError):
        return False


def planes_of(x: torch.Tensor) -> torch.Tensor:
    """An NCHW-contiguous copy of `x`; from float32 channels_last by products with the identity.

    MKL's blocked matrix product transposes a (pixels x channels) matrix faster than a strided
    copy does (a 64-channel 512 x 512 map: 43 ms against 78 ms on 2 cores), and 1 * v + 0 * w is
    v exactly for finite values.
    """
    batch, channels, height, width = x.shape
    if x.is_contiguous() or not x.is_contiguous(memory_format=torch.channels_last) or x.dtype != torch.float32:
        return x.contiguous()
    identity = torch.eye(channels, device=x.device, dtype=x.dtype)
    out = torch.empty(batch, channels, height * width, device=x.device, dtype=x.dtype)
    columns = x.flatten(2)  # (batch, channels, pixels), a view whose channels are contiguous
    for index in range(batch):
        torch.mm(identity, columns[index], out=out[index])
    return out.view(batch, channels, height, width)


class NnpackKernel:
    """A stride-1 float32 convolution through NNPACK: y = relu?(conv(x) + bias + add?), NCHW output.

    NNPACK computes convolutions on 8x8 or 16x16 tiles in a transformed domain: Winograd
    F(6x6, 3x3) for 3x3 kernels (64 products per input-output channel pair make 36 outputs,
    where a direct convolution needs 324) or FFTs, whichever tiling suits the map. That is about
    5x fewer multiply-adds than oneDNN's direct convolution; on a 2-core AVX-512 CPU it ran the
    FFC blocks' 3x3 convolutions about twice as fast in spite of NNPACK's narrower AVX2 kernels,
    and the decoder's last convolution (7x7, 64 -> 3 channels, which oneDNN runs at ~20 GMAC/s)
    about 3x as fast (benchmarks/README.md). The price is rounding, up to about 10x a direct convolution's
    (relative ~1e-5 in float32), far inside the fast path's 1e-4 bound on the generator output.
    NCHW input (other layouts are copied). Float32 on CPU only: NNPACK has no bf16.

    NNPACK's workspace grows with the map and the channels (0.9 GiB for a 128 -> 384 convolution
    on a 512 x 512 map, 0.17 GiB for the decoder's 64 -> 3 one at 512 x 512 px) and torch keeps it
    for the thread's lifetime, so large maps are convolved in strips of rows of equal height whose
    workspace stays under NNPACK_WORKSPACE_BYTES (exact: each strip reads its own halo rows). Fewer
    strips are faster: the 64 -> 3 one at 512 px took 43 ms in one call, 92 ms in 16 strips.
    """

    def __init__(self, folded: FoldedConv, device: torch.device) -> None:
        if folded.transposed or folded.stride != 1 or folded.dilation != 1 or folded.kernel > 16:
            raise ValueError("an NNPACK kernel needs an ordinary stride-1 convolution of at most 16x16")
        if device.type != "cpu":
            raise ValueError("NNPACK runs on the CPU only")
        self.weight = folded.weight.to(device=device, dtype=torch.float32).contiguous()
        self.bias = None if folded.bias is None else folded.bias.to(device=device, dtype=torch.float32)
        self.workspace_per_cell = NNPACK_BYTES_PER_CELL_CHANNEL * (folded.in_channels + folded.out_channels)
        self.cells_per_call = NNPACK_WORKSPACE_BYTES // self.workspace_per_cell

    @property
    def nbytes(self) -> int:
        total = self.weight.numel() * self.weight.element_size()
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def workspace_bytes(self, cells: int) -> int:
        """NNPACK's workspace for a map of `cells` output cells (kept after the call)."""
        return min(cells, self.cells_per_call) * self.workspace_per_cell

    def __call__(self, x: torch.Tensor, relu: bool = False, add: torch.Tensor | None = None) -> torch.Tensor:
        halo = self.weight.shape[-1] - 1
        rows, cols = x.shape[-2] - halo, x.shape[-1] - halo
        strip = even_part(rows, self.cells_per_call // max(cols, 1))
        if rows <= strip:
            y = torch._nnpack_spatial_convolution(x.contiguous(), self.weight, self.bias, [0, 0], [1, 1])
        else:
            y = x.new_empty(x.shape[0], self.weight.shape[0], rows, cols)
            for start in range(0, rows, strip):
                stop = min(rows, start + strip)
                piece = x[:, :, start:stop + halo].contiguous()
                y[:, :, start:stop] = torch._nnpack_spatial_convolution(piece, self.weight, self.bias, [0, 0], [1, 1])
        if add is not None:
            y.add_(add)
        return y.relu_() if relu else y


class PointwiseKernel:
    """A 1x1 convolution as matrix products that also change the activation layout for free.

    The Fourier unit's FFTs want NCHW planes while every other convolution wants channels_last;
    an explicit layout copy costs as much as the convolution itself on 2 cores. A 1x1
    convolution is a matrix product, and a product can read either operand transposed, so the
    spectral transform's first convolution writes NCHW and its last one reads NCHW and writes
    channels_last, with no copy in between.

    With `conv_on_planes` (the NNPACK blocks, whose activations are all NCHW planes), NCHW input
    to NCHW output goes to `F.conv2d` (oneDNN) instead of MKL's product: on a 2-core Zen 5 the
    blocks ran 2-5 % faster that way (MKL's sgemm reached 67-83 GMAC/s on these shapes, oneDNN
    90-100). Large maps (over CONV_ON_PLANES_MAX_CELLS) keep the products, for memory.
    """

    def __init__(self, folded: FoldedConv, device: torch.device, dtype: torch.dtype,
                 conv_on_planes: bool = False) -> None:
        if folded.transposed or folded.kernel != 1 or folded.stride != 1:
            raise ValueError("a pointwise kernel needs an ordinary 1x1 convolution with stride 1")
        self.weight = folded.weight[:, :, 0, 0].to(device=device, dtype=dtype).contiguous()  # (out, in)
        self.weight_t = self.weight.t()
        self.conv_on_planes = conv_on_planes
        self.weight_4d = self.weight[:, :, None, None]  # a view: no second copy
        self.bias = None if folded.bias is None else folded.bias.to(device=device, dtype=dtype)
        self.out_channels, self.in_channels = self.weight.shape

    @property
    def nbytes(self) -> int:
        total = self.weight.numel() * self.weight.element_size()
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())

    def _conv_fits(self, height: int, width: int) -> bool:
        return self.conv_on_planes and height * width <= CONV_ON_PLANES_MAX_CELLS

    def _conv(self, planes: torch.Tensor, relu: bool, add: torch.Tensor | None = None) -> torch.Tensor:
        """NCHW -> NCHW through F.conv2d: relu?(conv(planes) + bias + add?)."""
        y = F.conv2d(planes, self.weight_4d, self.bias)
        if add is not None:
            y.add_(add)
        return y.relu_() if relu else y

    def to_planes(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """channels_last or NCHW input -> NCHW-contiguous output."""
        batch, _, height, width = x.shape
        if x.is_contiguous() and self._conv_fits(height, width):
            return self._conv(x, relu)
        columns = x.flatten(2)  # (batch, in, pixels): a view for either layout, which the product reads as it is
        out = torch.empty(batch, self.out_channels, height * width, device=x.device, dtype=self.weight.dtype)
        for index in range(batch):
            if self.bias is None:
                torch.mm(self.weight, columns[index], out=out[index])
            else:
                torch.addmm(self.bias[:, None], self.weight, columns[index], out=out[index])
        if relu:
            out.relu_()
        return out.view(batch, self.out_channels, height, width)

    def from_planes(self, x: torch.Tensor, relu: bool = False, add: torch.Tensor | None = None,
                    channels_last: bool = True) -> torch.Tensor:
        """NCHW-contiguous input -> channels_last (or, if not `channels_last`, NCHW) output,
        relu?(conv(x) + bias + add?). An `add` already in the output's layout and precision is a
        temporary the caller gives up: it is summed into in place (no copy of it, no new map)."""
        batch, _, height, width = x.shape
        planes = x.reshape(batch, self.in_channels, height * width)
        if not channels_last:
            return self._planes_to_planes(planes, height, width, relu, add)
        if add is not None and add.is_contiguous(memory_format=torch.channels_last) and add.dtype == self.weight.dtype:
            out = add.permute(0, 2, 3, 1).view(batch, height * width, self.out_channels)
            for index in range(batch):
                out[index].addmm_(planes[index].t(), self.weight_t)
        else:
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

    def _planes_to_planes(self, planes: torch.Tensor, height: int, width: int, relu: bool,
                          add: torch.Tensor | None) -> torch.Tensor:
        """NCHW out; on the products path an NCHW-contiguous `add` (a temporary the caller gives
        up) is summed into in place, which saves the product a copy of it."""
        batch = planes.shape[0]
        if self._conv_fits(height, width):
            return self._conv(planes.view(batch, self.in_channels, height, width), relu, add)
        if add is not None and add.is_contiguous() and add.dtype == self.weight.dtype:
            out = add.view(batch, self.out_channels, height * width)
            for index in range(batch):
                out[index].addmm_(self.weight, planes[index])
        else:
            out = torch.empty(batch, self.out_channels, height * width, device=planes.device, dtype=self.weight.dtype)
            if add is not None:
                add = add.reshape(batch, self.out_channels, height * width)
            for index in range(batch):
                base = add[index] if add is not None else (None if self.bias is None else self.bias[:, None])
                if base is None:
                    torch.mm(self.weight, planes[index], out=out[index])
                else:
                    torch.addmm(base, self.weight, planes[index], out=out[index])
        if add is not None and self.bias is not None:
            out.add_(self.bias[:, None])
        if relu:
            out.relu_()
        return out.view(batch, self.out_channels, height, width)
