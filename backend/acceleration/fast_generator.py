"""The inference form of `FFCResNetGenerator`, derived at load time from the same module.

Nothing here defines a second network: the executor walks `generator.model`, takes every weight
from its submodules (batch norms folded into copies), and replays the module's own data flow:

    encoder  (reflect pad + strided FFC layers, all local)   -> spatial tiles with exact halos
    blocks   (FFC ResNet blocks, image-wide Fourier units)   -> the whole 1/8-resolution map
    decoder  (transposed convs, reflect pad + conv, sigmoid) -> spatial tiles with exact halos

Speed comes from folded batch norms, channels_last activations, oneDNN convolutions with weights
packed once and bias / residual add / ReLU fused in, one reflect pad per input shared by the two
convolutions that read it, no autograd, and a Fourier unit that runs its 1x1 convolution as one
matrix product on the spectrum in channels-last order (no stack / complex copies). The FFTs always
run in float32 (CPU FFTs have no bf16, cuFFT half precision needs power-of-two sizes).

In float32 on the CPU the blocks' 3x3 convolutions run as Winograd F(4x4, 3x3) matrix products
(winograd.py, 4x fewer multiply-adds): the local output l2l(x_l) + g2l(x_g) as one convolution
over both parts, whose transformed tiles the global output l2g(x_l) reuses; with the compiled
transforms (native.py) the input transform reads both parts and their reflect padding in place,
otherwise they are copied into one padded map first.
Where torch has NNPACK, the decoder's last convolution (a few output channels, which oneDNN's
direct kernels run slowly) goes to NNPACK's Winograd / FFT kernels; with `use_winograd=False`
the blocks can run NNPACK's kernels too, on NCHW planes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lama_training.modules.ffc import FFC_BN_ACT, ConcatTupleLayer, FFCResnetBlock, SpectralTransform

from .allocator import MMAP_THRESHOLD_MAX
from .folding import (FoldedConv, UnsupportedGenerator, batch_norm_affine, concat_inputs, concat_outputs,
                      conv_as_folded, fold)
from .geometry import AxisStep, LayerGeometry, chain_output_size, plan_axis, split_axis
from .kernels import (ConvKernel, NnpackKernel, PointwiseKernel, mkldnn_fused_ops_available, nnpack_usable,
                      planes_of)
from . import block_epilogue
from .native import NativeTransforms
from .winograd import WinogradProduct, WinogradWeights, convolve, convolve_reflected, padded_size
from .winograd import native_transforms as _native_transforms
from .winograd import workspace_bytes as winograd_workspace

#: smallest tile tried, in 1/8-resolution cells (smaller tiles are exact too, but mostly halo)
MIN_TILE = 2
#: the decoder's last convolution goes to NNPACK when it has at most this many output channels
#: (oneDNN's direct kernels are slow for a handful of outputs: 7x7, 64 -> 3 ran at ~18 GMAC/s)
NNPACK_MAX_NARROW_OUTPUT = 4
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: on the CPU the encoder and decoder run in tiles of at most this many cells a side where an
#: untiled full-resolution map would reach glibc's 32 MiB mmap ceiling (`speed_tiles`), even
#: if memory allows the whole map: a 32-cell tile's largest maps (64 channels at 256 x 256 px:
#: 16 MiB in fp32) are reused by the allocator from tile to tile, while untiled maps of 64-256
#: MiB came as fresh pages, zero-filled by the kernel on first touch (at 1024 px in fp32: 470,000
#: page faults and 0.8 s of kernel time per pass). On the 2-core Xeon, 512 px fp32: encoder
#: 0.13-0.15 s and decoder 0.18-0.22 s in 32-cell tiles against 0.19 / 0.26 s untiled; 1024 px:
#: 0.54 / 0.76-0.84 s against 0.73 / 0.89 s; 16-cell tiles were slower again (halos); bf16
#: gained alike. Below the ceiling the halos only cost: encoder + decoder at 320 px 0.12 s
#: untiled, 0.145 s in tiles; at 384 px (36 MiB maps) 0.23 s untiled, 0.195 s in tiles.
SPEED_TILE = 32
#: what a process's first pass allocates once besides the maps the planner counts (oneDNN's
#: JIT kernels, primitive cache and scratchpads, FFT plans, thread-pool stacks): the small
#: preset's first pass added 12-25 MB more than its maps at 256-512 px in bf16 and fp32, and
#: came within 2 MB of the map-only estimate at 2048 px in bf16 (tests/test_tiling.py)
RUNTIME_OVERHEAD_BYTES = 48 << 20
#: how the FFC blocks' 3x3 convolutions run (see FastFFCLayer)
BLOCK_CONVS = ("direct", "winograd", "nnpack")
_CL = torch.channels_last


class MemoryBudgetError(RuntimeError):
    """Even the smallest tiling needs more memory than the budget allows."""


@dataclass
class LocalLayer:
    """A convolution of the encoder or decoder with its exact spatial geometry."""

    geometry: LayerGeometry
    kernel: ConvKernel
    relu: bool
    in_channels: int
    out_channels: int


def _reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    return F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x


def _reflect_pad_concat(parts: tuple[torch.Tensor, ...], pads: tuple[int, int, int, int],
                        memory_format: torch.memory_format = torch.contiguous_format,
                        size: tuple[int, int] | None = None) -> torch.Tensor:
    """The parts, concatenated along channels and reflect-padded by (left, right, top, bottom), in
    one new tensor (one pass over each part instead of a pad and a concatenation). `size` (rows,
    cols) makes the tensor larger than the padded map, with zeros past it (Winograd's whole tiles)."""
    left, right, top, bottom = pads
    batch, _, height, width = parts[0].shape
    channels = sum(part.shape[1] for part in parts)
    rows, cols = height + top + bottom, width + left + right
    total_rows, total_cols = size or (rows, cols)
    out = torch.empty(batch, channels, total_rows, total_cols, device=parts[0].device, dtype=parts[0].dtype,
                      memory_format=memory_format)
    if total_rows > rows:
        out[:, :, rows:] = 0
    if total_cols > cols:
        out[:, :, :rows, cols:] = 0
    start = 0
    for part in parts:
        out[:, start:start + part.shape[1], top:top + height, left:left + width] = part
        start += part.shape[1]
    inner = slice(left, left + width)
    for i in range(top):  # rows first (inside columns), then whole columns, corners included
        out[:, :, top - 1 - i, inner] = out[:, :, top + 1 + i, inner]
    for i in range(bottom):
        out[:, :, top + height + i, inner] = out[:, :, top + height - 2 - i, inner]
    for j in range(left):
        out[:, :, :rows, left - 1 - j] = out[:, :, :rows, left + 1 + j]
    for j in range(right):
        out[:, :, :rows, left + width + j] = out[:, :, :rows, left + width - 2 - j]
    return out


def _activation_is_relu(module: nn.Module) -> bool:
    if isinstance(module, nn.ReLU):
        return True
    if isinstance(module, nn.Identity):
        return False
    raise UnsupportedGenerator(f"unsupported activation {type(module).__name__}")


def _reflect_padding(conv: nn.Module) -> int:
    padding = conv.padding[0] if isinstance(conv.padding, tuple) else conv.padding
    if padding and getattr(conv, "padding_mode", "zeros") != "reflect":
        raise UnsupportedGenerator("only reflect-padded convolutions are supported")
    if isinstance(conv.padding, tuple) and len(set(conv.padding)) != 1:
        raise UnsupportedGenerator("non-square padding is not supported")
    return int(padding)


class FastFFCLayer:
    """One `FFC_BN_ACT` of a ResNet block (local and global inputs and outputs, stride 1).

    `convs` says how the three 3x3 convolutions run: "direct" (`make_kernel`'s kernels on
    channels_last activations), "winograd" (float32 CPU: Winograd products on channels_last
    activations, one input transform shared by the local and global outputs), or "nnpack"
    (activations are NCHW planes, the layout NNPACK's kernels and the FFTs want; `make_kernel`
    then gives kernels that take NCHW input). A layer whose convolutions Winograd's F(4x4, 3x3)
    does not cover (other kernels, dilations, paddings) runs "direct" instead.
    """

    def __init__(self, layer: FFC_BN_ACT, make_kernel, device: torch.device, dtype: torch.dtype,
                 convs: str = "direct", native: NativeTransforms | None = None) -> None:
        if convs not in BLOCK_CONVS:
            raise ValueError(f"convs must be one of {', '.join(BLOCK_CONVS)}, got {convs!r}")
        ffc = layer.ffc
        parts = (ffc.convl2l, ffc.convl2g, ffc.convg2l)
        if not all(isinstance(conv, nn.Conv2d) for conv in parts) or not isinstance(ffc.convg2g, SpectralTransform):
            raise UnsupportedGenerator("ResNet-block FFC layers must have all four paths")
        spectral: SpectralTransform = ffc.convg2g
        if ffc.stride != 1 or spectral.stride != 1 or spectral.enable_lfu:
            raise UnsupportedGenerator("strided or LFU spectral transforms are not supported in the blocks")
        self.pad = _reflect_padding(ffc.convl2l)
        if {_reflect_padding(ffc.convl2g), _reflect_padding(ffc.convg2l)} != {self.pad}:
            raise UnsupportedGenerator("FFC paths with different paddings")
        if convs == "winograd" and not (self.pad == 1 and all(
                conv.kernel_size == (3, 3) and conv.dilation == (1, 1) and conv.stride == (1, 1) for conv in parts)):
            convs = "direct"
        self.planar = planar = convs == "nnpack"
        self.winograd = convs == "winograd"
        self.native = native if self.winograd else None
        # bf16 direct layers end in one compiled pass: ReLU, residual, the next layer's padding
        fused = convs == "direct" and dtype == torch.bfloat16 and device.type == "cpu" and self.pad > 0
        self.epilogue = block_epilogue.checked(native) if fused else None
        scale_l, shift_l = batch_norm_affine(layer.bn_l)
        scale_g, shift_g = batch_norm_affine(layer.bn_g)
        self.relu_l = _activation_is_relu(layer.act_l)
        self.relu_g = _activation_is_relu(layer.act_g)
        # bn_l(l2l(x_l) + g2l(x_g)): both scaled, the shift enters once; likewise for bn_g
        l2l = conv_as_folded(ffc.convl2l).scaled(scale_l).with_bias(shift_l)
        g2l = conv_as_folded(ffc.convg2l).scaled(scale_l)
        l2g = conv_as_folded(ffc.convl2g).scaled(scale_g).with_bias(shift_g)
        if self.winograd:  # l2l(x_l) + g2l(x_g) as one convolution over the padded maps of both
            self.to_local = WinogradWeights(concat_inputs(l2l, g2l).to_float32(), device)
            self.l2g = WinogradWeights(l2g.to_float32(), device)
            self.winograd_products = [WinogradProduct(self.to_local, 0, self.relu_l), WinogradProduct(self.l2g)]
            local_kernels = (self.to_local,)
        elif planar:  # the same merge, on NCHW planes
            self.to_local = make_kernel(concat_inputs(l2l, g2l))
            self.l2g = make_kernel(l2g)
            local_kernels = (self.to_local,)
        else:
            self.l2l, self.g2l = make_kernel(l2l), make_kernel(g2l)
            self.l2g = make_kernel(l2g)
            local_kernels = (self.l2l, self.g2l)
        conv1, bn1, act1 = spectral.conv1
        if conv1.kernel_size != (1, 1) or spectral.conv2.kernel_size != (1, 1) or conv1.groups != 1 \
                or spectral.conv2.groups != 1:
            raise UnsupportedGenerator("the spectral transform's convolutions must be plain 1x1 convolutions")
        self.st_conv2 = PointwiseKernel(conv_as_folded(spectral.conv2).scaled(scale_g).to_float32(), device, dtype,
                                        conv_on_planes=planar)
        self.st_conv1 = PointwiseKernel(fold(conv1, bn1).to_float32(), device, dtype, conv_on_planes=planar)
        self.st_relu = _activation_is_relu(act1)
        unit = spectral.fu
        if unit.groups != 1:
            raise UnsupportedGenerator("grouped Fourier units are not supported")
        folded_fu = fold(unit.conv_layer, unit.bn).to_float32()
        # The unit's 1x1 conv reads and writes interleaved (re, im) channels 2c, 2c+1. Split by
        # input part and with the outputs reordered (all real parts, then all imaginary ones), it is
        # two matrix products on the real and imaginary planes of an NCHW spectrum, whose result
        # pairs up into the complex NCHW planes the inverse FFT wants: no transposed copy at all.
        # It runs in the executor's precision like every convolution; the FFTs stay float32.
        weight, bias = folded_fu.weight[:, :, 0, 0], folded_fu.bias
        order = torch.cat([torch.arange(0, weight.shape[0], 2), torch.arange(1, weight.shape[0], 2)])
        self.fu_from_real = weight[order][:, 0::2].contiguous().to(device=device, dtype=dtype)
        self.fu_from_imag = weight[order][:, 1::2].contiguous().to(device=device, dtype=dtype)
        self.fu_bias = bias[order][:, None].contiguous().to(device=device, dtype=dtype)
        self.fu_relu = _activation_is_relu(unit.relu)
        self.fft_norm = unit.fft_norm
        self.nbytes = sum(k.nbytes for k in (*local_kernels, self.l2g, self.st_conv1, self.st_conv2))
        self.nbytes += sum(t.numel() * t.element_size() for t in (self.fu_from_real, self.fu_from_imag, self.fu_bias))

    def fourier_unit(self, planes: torch.Tensor) -> torch.Tensor:
        """rfft2 -> 1x1 conv (+ folded BN, ReLU) on (re, im) channels -> irfft2, on NCHW float32
        planes (the CPU FFT is 4x faster on NCHW planes than on NHWC ones)."""
        batch, channels, height, width = planes.shape
        spectrum = torch.fft.rfftn(planes, dim=(-2, -1), norm=self.fft_norm)
        half_width = spectrum.shape[-1]
        spectrum = spectrum.reshape(batch, channels, height * half_width)
        out_channels = self.fu_bias.shape[0] // 2
        mixed = torch.empty(batch, out_channels, height, half_width, device=planes.device, dtype=torch.complex64)
        for index in range(batch):
            # in bf16: one contiguous cast of the whole spectrum, then two plain strided copies;
            # casting each strided part took twice as long (1024 px blocks 1.64 s against 1.76 s)
            pairs = torch.view_as_real(spectrum[index]).to(self.fu_bias.dtype)
            real, imag = pairs[..., 0].contiguous(), pairs[..., 1].contiguous()
            del pairs
            out = torch.addmm(self.fu_bias, self.fu_from_real, real)
            out.addmm_(self.fu_from_imag, imag)
            del real, imag
            if self.fu_relu:
                out.relu_()
            # straight into the interleaved complex spectrum, cast on the way: no float copy of
            # `out` and no separate complex tensor (two passes over the spectrum saved)
            pairs = torch.view_as_real(mixed[index])
            out = out.view(2, out_channels, height, half_width)
            pairs[..., 0].copy_(out[0])
            pairs[..., 1].copy_(out[1])
        del spectrum
        return torch.fft.irfftn(mixed, s=(height, width), dim=(-2, -1), norm=self.fft_norm)

    def __call__(self, x_l: torch.Tensor, x_g: torch.Tensor, padded_inputs: list[torch.Tensor] | None = None,
                 residual: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """(y_l, y_g) (+ `residual`, the block's input, after the activations) and, from layers
        with the compiled bf16 epilogue, both outputs reflect-padded as the next layer reads them
        (else None). `padded_inputs`: this layer's inputs so padded, from the layer before; the
        list is emptied, so that the maps are freed once read, not kept by the caller for the
        whole layer."""
        if self.native is not None and min(x_l.shape[-2:]) >= 2:  # the padding read in place
            y_l, local_to_global = convolve_reflected((x_l, x_g), self.winograd_products, self.native)
        elif self.winograd:
            height, width = x_l.shape[-2:]
            padded = _reflect_pad_concat((x_l, x_g), (1, 1, 1, 1), _CL, (padded_size(height), padded_size(width)))
            y_l, local_to_global = convolve(padded, height, width, self.winograd_products)
            del padded
        elif self.planar:
            padded = _reflect_pad_concat((x_l, x_g), (self.pad,) * 4)
            y_l = self.to_local(padded, relu=self.relu_l)
            local_to_global = self.l2g(padded[:, :x_l.shape[1]])
            del padded
        else:
            if padded_inputs:
                padded_l, padded_g = padded_inputs
                padded_inputs.clear()
            else:
                padded_l, padded_g = _reflect_pad(x_l, self.pad), _reflect_pad(x_g, self.pad)
            y_l = self.g2l(padded_g, relu=self.relu_l, add=self.l2l(padded_l))
            del padded_g
            local_to_global = self.l2g(padded_l)
            del padded_l
        # spectral transform: conv1 writes NCHW planes, the Fourier unit works on float32 planes,
        # conv2 reads them and writes channels_last again
        reduced = self.st_conv1.to_planes(x_g, relu=self.st_relu)
        mixed = self.fourier_unit(reduced.float())
        if reduced.dtype == mixed.dtype:
            summed = mixed.add_(reduced)
        else:  # the residual add and the cast back to the convolutions' precision in one pass
            summed = torch.add(mixed, reduced, out=torch.empty_like(reduced))
        del reduced, mixed
        fused = self.epilogue is not None and min(x_l.shape[-2:]) > self.pad
        y_g = self.st_conv2.from_planes(summed, relu=self.relu_g and not fused, add=local_to_global,
                                        channels_last=not self.planar)
        del summed, local_to_global
        if fused:
            residual_l, residual_g = residual if residual is not None else (None, None)
            y_l, padded_l = block_epilogue.relu_add_reflect_pad(y_l, residual_l, False, self.pad, self.epilogue)
            y_g, padded_g = block_epilogue.relu_add_reflect_pad(y_g, residual_g, self.relu_g, self.pad, self.epilogue)
            return y_l, y_g, [padded_l, padded_g]
        if residual is not None:
            y_l, y_g = y_l.add_(residual[0]), y_g.add_(residual[1])
        return y_l, y_g, None


class FastResnetBlock:
    def __init__(self, block: FFCResnetBlock, make_kernel, device: torch.device, dtype: torch.dtype,
                 convs: str = "direct", native: NativeTransforms | None = None) -> None:
        self.conv1 = FastFFCLayer(block.conv1, make_kernel, device, dtype, convs, native)
        self.conv2 = FastFFCLayer(block.conv2, make_kernel, device, dtype, convs, native)
        self.nbytes = self.conv1.nbytes + self.conv2.nbytes

    def run(self, x_l: torch.Tensor, x_g: torch.Tensor, padded: list[torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
        """The block's outputs and (compiled bf16 epilogue) their padded copies for the next block."""
        y_l, y_g, padded = self.conv1(x_l, x_g, padded)
        return self.conv2(y_l, y_g, padded, residual=(x_l, x_g))

    def __call__(self, x_l: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y_l, y_g, _ = self.run(x_l, x_g)
        return y_l, y_g


class FastGenerator:
    """Inference-only executor over an `FFCResNetGenerator` (eval mode, no autograd).

    precision: "fp32" (default; equals the eager pass within float rounding), "bf16" or "fp16"
    (convolutions in half precision, Fourier units in fp32).
    use_winograd: run the blocks' 3x3 convolutions as Winograd F(4x4, 3x3) products (winograd.py;
    default: for fp32 on the CPU).
    use_nnpack: run the decoder's last convolution, when it has at most NNPACK_MAX_NARROW_OUTPUT
    channels, and, without Winograd, the blocks' 3x3 convolutions (on NCHW planes) through NNPACK's
    Winograd / FFT kernels (default: for fp32 on a CPU whose torch build has a working NNPACK).
    speed_tiles: `choose_tile` tiles the encoder and decoder in SPEED_TILE-cell tiles where their
    untiled maps would be too large for the allocator to reuse, even without a memory budget that
    asks for it (default: on the CPU; GPUs have a caching allocator).
    native_transforms: the compiled kernels (native.py): the fp32 Winograd blocks' transforms, or
    the bf16 CPU blocks' epilogue (block_epilogue.py) (default: where a C compiler builds them
    and they pass their check; True insists, False keeps torch's ops).
    """

    def __init__(self, generator: nn.Module, device: torch.device | str = "cpu", precision: str = "fp32",
                 use_mkldnn: bool | None = None, use_nnpack: bool | None = None,
                 use_winograd: bool | None = None, speed_tiles: bool | None = None,
                 native_transforms: bool | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        model = getattr(generator, "model", None)
        if not isinstance(model, nn.Sequential):
            raise UnsupportedGenerator("expected an FFCResNetGenerator with a `model` Sequential")
        self.device = torch.device(device)
        self.precision = precision
        self.dtype = PRECISIONS[precision]
        if use_mkldnn is None:
            use_mkldnn = self.device.type == "cpu" and mkldnn_fused_ops_available()
        self.use_mkldnn = bool(use_mkldnn) and self.device.type == "cpu"
        nnpack_possible = self.device.type == "cpu" and precision == "fp32"
        if use_nnpack and not nnpack_possible:
            raise ValueError("NNPACK convolutions are for float32 on the CPU only")
        if use_nnpack is None:
            use_nnpack = nnpack_possible and nnpack_usable()
        elif use_nnpack and not nnpack_usable():  # also initialises NNPACK
            raise RuntimeError("this torch build has no working NNPACK")
        self.use_nnpack = bool(use_nnpack)
        if use_winograd and not nnpack_possible:
            raise ValueError("the Winograd block convolutions are for float32 on the CPU only")
        self.use_winograd = nnpack_possible if use_winograd is None else bool(use_winograd)
        if self.use_winograd:
            self.block_convs = "winograd"
        else:
            self.block_convs = "nnpack" if self.use_nnpack else "direct"
        self.native = None
        native_useful = self.use_winograd or (self.device.type == "cpu" and precision == "bf16")
        if native_useful and native_transforms is not False:
            self.native = _native_transforms() if self.use_winograd else block_epilogue.compiled()
            if native_transforms and self.native is None:
                raise RuntimeError("the native kernels could not be built or failed their check (see the log)")
        elif native_transforms and not native_useful:
            raise ValueError("the native kernels serve the fp32 Winograd blocks and the bf16 blocks on the CPU only")
        if speed_tiles is None:
            speed_tiles = self.device.type == "cpu"
        self.speed_tile = SPEED_TILE if speed_tiles else None
        self.scale = 1
        self._build(list(model))
        self.weight_bytes = (sum(layer.kernel.nbytes for layer in self.encoder + self.decoder)
                             + sum(block.nbytes for block in self.blocks))

    # ----------------------------------------------------------------------------------- building
    def _kernel(self, folded: FoldedConv) -> ConvKernel:
        return ConvKernel(folded.to_float32(), self.device, self.dtype, self.use_mkldnn)

    def _nnpack_kernel(self, folded: FoldedConv) -> NnpackKernel:
        return NnpackKernel(folded.to_float32(), self.device)

    def _local(self, folded: FoldedConv, pad: int, relu: bool, last: bool = False) -> LocalLayer:
        geometry = LayerGeometry(folded.kernel, folded.stride, folded.padding if folded.transposed else pad,
                                 folded.dilation, folded.transposed, folded.output_padding)
        narrow_output = (last and self.use_nnpack and not folded.transposed and folded.stride == 1
                         and folded.out_channels <= NNPACK_MAX_NARROW_OUTPUT)
        kernel = self._nnpack_kernel(folded) if narrow_output else self._kernel(folded)
        return LocalLayer(geometry, kernel, relu, folded.in_channels, folded.out_channels)

    def _build(self, layers: list[nn.Module]) -> None:
        self.encoder: list[LocalLayer] = []
        self.blocks: list[FastResnetBlock] = []
        self.decoder: list[LocalLayer] = []
        self.out_activation: str = "none"
        self.local_channels = 0
        index, pending_pad = 0, 0
        while index < len(layers) and not isinstance(layers[index], FFCResnetBlock):
            layer = layers[index]
            index += 1
            if isinstance(layer, nn.ReflectionPad2d):
                pending_pad = self._pad_width(layer, pending_pad)
                continue
            if not isinstance(layer, FFC_BN_ACT):
                raise UnsupportedGenerator(f"unsupported encoder layer {type(layer).__name__}")
            self.encoder.append(self._encoder_layer(layer, pending_pad))
            pending_pad = 0
        block_kernel = self._nnpack_kernel if self.block_convs == "nnpack" else self._kernel
        while index < len(layers) and isinstance(layers[index], FFCResnetBlock):
            self.blocks.append(FastResnetBlock(layers[index], block_kernel, self.device, self.dtype,
                                               self.block_convs, self.native))
            index += 1
        if not self.encoder or not self.blocks or index >= len(layers) or not isinstance(layers[index], ConcatTupleLayer):
            raise UnsupportedGenerator("expected encoder, FFC ResNet blocks, then ConcatTupleLayer")
        index += 1
        pending_pad = 0
        while index < len(layers):
            layer = layers[index]
            index += 1
            if isinstance(layer, nn.ReflectionPad2d):
                pending_pad = self._pad_width(layer, pending_pad)
            elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                bn = None
                if index < len(layers) and isinstance(layers[index], nn.BatchNorm2d):
                    bn = layers[index]
                    index += 1
                relu = index < len(layers) and isinstance(layers[index], nn.ReLU)
                index += int(relu)
                pad = pending_pad
                if isinstance(layer, nn.Conv2d):
                    own = _reflect_padding(layer)
                    if own and pad:
                        raise UnsupportedGenerator("reflection pad followed by a padded convolution")
                    pad = pad or own
                elif pad:
                    raise UnsupportedGenerator("reflection pad before a transposed convolution")
                last = not any(isinstance(rest, (nn.Conv2d, nn.ConvTranspose2d)) for rest in layers[index:])
                self.decoder.append(self._local(fold(layer, bn), pad, relu, last=last))
                pending_pad = 0
            elif isinstance(layer, (nn.Sigmoid, nn.Tanh)) and index == len(layers):
                self.out_activation = "sigmoid" if isinstance(layer, nn.Sigmoid) else "tanh"
            else:
                raise UnsupportedGenerator(f"unsupported decoder layer {type(layer).__name__}")
        if not self.decoder or pending_pad:
            raise UnsupportedGenerator("the decoder must end with a convolution")
        for layer in self.encoder:
            self.scale *= layer.geometry.stride
        self.feature_channels = self.encoder[-1].out_channels
        self.global_channels = self.feature_channels - self.local_channels

    @staticmethod
    def _pad_width(layer: nn.ReflectionPad2d, pending: int) -> int:
        widths = set(layer.padding)
        if len(widths) != 1 or pending:
            raise UnsupportedGenerator("only single, square reflection pads are supported")
        return int(widths.pop())

    def _encoder_layer(self, layer: FFC_BN_ACT, pending_pad: int) -> LocalLayer:
        ffc = layer.ffc
        if ffc.global_in_num != 0:
            raise UnsupportedGenerator("encoder layers must have purely local inputs")
        if self.encoder and self.local_channels != self.encoder[-1].out_channels:
            raise UnsupportedGenerator("only the last encoder layer may have global outputs")
        own = _reflect_padding(ffc.convl2l if isinstance(ffc.convl2l, nn.Conv2d) else ffc.convl2g)
        if own and pending_pad:
            raise UnsupportedGenerator("reflection pad followed by a padded convolution")
        pad = own or pending_pad
        parts, relus = [], set()
        if ffc.ratio_gout != 1:
            parts.append(fold(ffc.convl2l, layer.bn_l))
            relus.add(_activation_is_relu(layer.act_l))
        if ffc.ratio_gout != 0:
            parts.append(fold(ffc.convl2g, layer.bn_g))
            relus.add(_activation_is_relu(layer.act_g))
        if len(relus) != 1:
            raise UnsupportedGenerator("local and global outputs with different activations")
        folded = parts[0] if len(parts) == 1 else concat_outputs(parts[0], parts[1])
        self.local_channels = parts[0].out_channels if ffc.ratio_gout != 1 else 0
        return self._local(folded, pad, relus.pop())

    # ---------------------------------------------------------------------------------- running
    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.encoder[0].in_channels:
            raise ValueError(f"expected N x {self.encoder[0].in_channels} x H x W input, got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height % self.scale or width % self.scale:
            raise ValueError(f"height and width must be multiples of {self.scale}, got {height}x{width}")

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, tile: int | None = None) -> torch.Tensor:
        """Generator output (float32, on the executor's device); `tile` in 1/8-resolution cells."""
        x_l, x_g = self.encode(x, tile)
        x_l, x_g = self.run_blocks(x_l, x_g)
        return self.decode(x_l, x_g, x.shape[-2:], tile)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(device=self.device, dtype=self.dtype).contiguous(memory_format=_CL)

    def _run_chain(self, layers: list[LocalLayer], x: torch.Tensor, rows: list[AxisStep],
                   cols: list[AxisStep]) -> torch.Tensor:
        for layer, row, col in zip(layers, rows, cols):
            pads = (col.pad_before, col.pad_after, row.pad_before, row.pad_after)
            if isinstance(layer.kernel, NnpackKernel):  # NCHW input: converted, then padded
                planes = planes_of(x)
                del x  # a decoder layer's output: gone before the padded copy is made (-1 GiB at 2048 px)
                x = _reflect_pad_concat((planes,), pads)
                del planes
            elif any(pads):
                x = F.pad(x, pads, mode="reflect")
            x = layer.kernel(x, relu=layer.relu)
            if layer.geometry.transposed and (row.crop_start, row.crop_stop, col.crop_start, col.crop_stop) != (
                    0, x.shape[-2], 0, x.shape[-1]):
                x = x[:, :, row.crop_start:row.crop_stop, col.crop_start:col.crop_stop].contiguous(memory_format=_CL)
        return x

    def encode(self, x: torch.Tensor, tile: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder, tile by tile; returns the full 1/8-resolution (local, global) features."""
        self.check_input(x)
        geometry = [layer.geometry for layer in self.encoder]
        height, width = x.shape[-2:]
        out_h, out_w = chain_output_size(geometry, height), chain_output_size(geometry, width)
        row_tiles, col_tiles = split_axis(out_h, tile), split_axis(out_w, tile)
        if len(row_tiles) == 1 and len(col_tiles) == 1:
            features = self._run_chain(self.encoder, self._prepare(x), plan_axis(geometry, height, 0, out_h),
                                       plan_axis(geometry, width, 0, out_w))
            split = self.local_channels
            return (features[:, :split].contiguous(memory_format=_CL),
                    features[:, split:].contiguous(memory_format=_CL))
        batch = x.shape[0]
        x_l = torch.empty(batch, self.local_channels, out_h, out_w, device=self.device, dtype=self.dtype,
                          memory_format=_CL)
        x_g = torch.empty(batch, self.global_channels, out_h, out_w, device=self.device, dtype=self.dtype,
                          memory_format=_CL)
        for r0, r1 in row_tiles:
            rows = plan_axis(geometry, height, r0, r1)
            for c0, c1 in col_tiles:
                cols = plan_axis(geometry, width, c0, c1)
                piece = self._prepare(x[:, :, rows[0].lo:rows[0].hi, cols[0].lo:cols[0].hi])
                features = self._run_chain(self.encoder, piece, rows, cols)
                x_l[:, :, r0:r1, c0:c1] = features[:, :self.local_channels]
                x_g[:, :, r0:r1, c0:c1] = features[:, self.local_channels:]
                del features, piece
        return x_l, x_g

    def run_blocks(self, x_l: torch.Tensor, x_g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The FFC ResNet blocks on the whole 1/8-resolution map (image-wide receptive field);
        channels_last in and out (NCHW planes in between when the blocks run NNPACK kernels)."""
        planar = self.block_convs == "nnpack"
        if planar:
            x_l, x_g = x_l.contiguous(), x_g.contiguous()
        padded = None
        for block in self.blocks:
            x_l, x_g, padded = block.run(x_l, x_g, padded)
        if planar:
            x_l, x_g = x_l.contiguous(memory_format=_CL), x_g.contiguous(memory_format=_CL)
        return x_l, x_g

    def decode(self, x_l: torch.Tensor, x_g: torch.Tensor, size: tuple[int, int] | torch.Size,
               tile: int | None = None) -> torch.Tensor:
        """The decoder, tile by tile (tile * 8 output pixels a side), into one float32 image."""
        geometry = [layer.geometry for layer in self.decoder]
        feat_h, feat_w = x_l.shape[-2:]
        height, width = chain_output_size(geometry, feat_h), chain_output_size(geometry, feat_w)
        if (height, width) != tuple(size):
            raise ValueError(f"decoder output {height}x{width} does not match the input {tuple(size)}")
        out_tile = None if tile is None else tile * self.scale
        output = torch.empty(x_l.shape[0], self.decoder[-1].out_channels, height, width, device=self.device,
                             dtype=torch.float32)
        for r0, r1 in split_axis(height, out_tile):
            rows = plan_axis(geometry, feat_h, r0, r1)
            for c0, c1 in split_axis(width, out_tile):
                cols = plan_axis(geometry, feat_w, c0, c1)
                window = (slice(None), slice(None), slice(rows[0].lo, rows[0].hi), slice(cols[0].lo, cols[0].hi))
                piece = torch.cat([x_l[window], x_g[window]], dim=1).contiguous(memory_format=_CL)
                result = self._run_chain(self.decoder, piece, rows, cols)
                del piece
                if self.out_activation == "sigmoid":
                    result = torch.sigmoid(result.float())
                elif self.out_activation == "tanh":
                    result = torch.tanh(result.float())
                output[:, :, r0:r1, c0:c1] = result
                del result
        return output

    # ---------------------------------------------------------------------------- memory planning
    @staticmethod
    def _layer_maps(layer: LocalLayer, row: AxisStep, col: AxisStep) -> tuple[int, int, int, int, int]:
        """Elements of what one layer of a chain holds: its input, the reflect-padded input, the
        output its kernel produces, that output cropped (transposed layers), and the output cells."""
        held = layer.in_channels * (row.hi - row.lo) * (col.hi - col.lo)
        padded = layer.in_channels * (row.hi - row.lo + row.pad_before + row.pad_after) * (
            col.hi - col.lo + col.pad_before + col.pad_after)
        out_rows = layer.geometry.output_size(row.hi - row.lo + row.pad_before + row.pad_after)
        out_cols = layer.geometry.output_size(col.hi - col.lo + col.pad_before + col.pad_after)
        produced = layer.out_channels * out_rows * out_cols
        cropped = layer.out_channels * (row.crop_stop - row.crop_start) * (col.crop_stop - col.crop_start)
        return held, padded, produced, cropped, out_rows * out_cols

    def _untiled_plans(self, height: int, width: int):
        """(layers, row steps, column steps) of the encoder and the decoder in an untiled pass."""
        enc = [layer.geometry for layer in self.encoder]
        dec = [layer.geometry for layer in self.decoder]
        feat_h, feat_w = chain_output_size(enc, height), chain_output_size(enc, width)
        return ((self.encoder, plan_axis(enc, height, 0, feat_h), plan_axis(enc, width, 0, feat_w)),
                (self.decoder, plan_axis(dec, feat_h, 0, chain_output_size(dec, feat_h)),
                 plan_axis(dec, feat_w, 0, chain_output_size(dec, feat_w))))

    def _chain_peak(self, layers: list[LocalLayer], rows: list[AxisStep], cols: list[AxisStep],
                    batch: int) -> int:
        item = torch.empty((), dtype=self.dtype).element_size()
        peak = 0
        for layer, row, col in zip(layers, rows, cols):
            held, padded, produced, cropped, cells = self._layer_maps(layer, row, col)
            # an NNPACK layer's NCHW copy of its input is freed once padded, before the output
            # exists; NNPACK's workspace (counted in bytes) stays allocated after the call
            nnpack = isinstance(layer.kernel, NnpackKernel)
            converted = held if nnpack else 0
            live = held + (padded if padded != held else 0) + max(converted, produced) + (
                cropped if layer.geometry.transposed else 0)
            if nnpack:
                live += layer.kernel.workspace_bytes(cells) // item
            peak = max(peak, live)
        return peak * item * batch

    def estimate_peak_bytes(self, batch: int, height: int, width: int, tile: int | None) -> int:
        """Upper estimate of the memory one pass needs (activations + input/output + weights +
        the runtime's one-off buffers)."""
        item = torch.empty((), dtype=self.dtype).element_size()
        enc = [layer.geometry for layer in self.encoder]
        dec = [layer.geometry for layer in self.decoder]
        feat_h, feat_w = chain_output_size(enc, height), chain_output_size(enc, width)
        t_h = min(feat_h, tile or feat_h)
        t_w = min(feat_w, tile or feat_w)
        # the largest tile is the first full one; interior tiles are at most as large plus halos
        mid_r = min(feat_h - t_h, t_h)
        mid_c = min(feat_w - t_w, t_w)
        enc_peak = self._chain_peak(self.encoder, plan_axis(enc, height, mid_r, mid_r + t_h),
                                    plan_axis(enc, width, mid_c, mid_c + t_w), batch)
        s = self.scale
        dec_peak = self._chain_peak(self.decoder, plan_axis(dec, feat_h, mid_r * s, (mid_r + t_h) * s),
                                    plan_axis(dec, feat_w, mid_c * s, (mid_c + t_w) * s), batch)
        area = batch * feat_h * feat_w
        channels, global_ch = self.feature_channels, self.global_channels
        # block input + layer output + padded copies + partial sums, and the fp32 Fourier-unit buffers
        block_peak = area * (item * 4 * channels + 4 * 3 * global_ch)
        if self.block_convs == "winograd":  # outputs in whole tiles, the strip's temporaries
            tiled_area = batch * (padded_size(feat_h) - 2) * (padded_size(feat_w) - 2)
            block_peak += (tiled_area - area) * channels * item
            block_peak += winograd_workspace(feat_w, channels, max(self.local_channels, global_ch))
        features = area * channels * item
        image_io = batch * height * width * (self.encoder[0].in_channels + self.decoder[-1].out_channels) * 4
        if tile is None:
            image_io += batch * height * width * self.encoder[0].in_channels * item  # converted input copy
        return int(self.weight_bytes + image_io + RUNTIME_OVERHEAD_BYTES
                   + max(enc_peak + features, block_peak, dec_peak + features))

    def largest_map_bytes(self, batch: int, height: int, width: int) -> int:
        """The largest map an encoder or decoder layer reads or writes in an untiled pass (its
        reflect-padded input or its output), the size the allocator is asked for."""
        item = torch.empty((), dtype=self.dtype).element_size()
        largest = 0
        for layers, rows, cols in self._untiled_plans(height, width):
            for layer, row, col in zip(layers, rows, cols):
                _, padded, produced, _, _ = self._layer_maps(layer, row, col)
                largest = max(largest, padded, produced)
        return largest * item * batch

    def choose_tile(self, batch: int, height: int, width: int, budget: int | None) -> int | None:
        """The tiling for a pass (None = untiled): the largest whose estimated peak fits `budget`
        bytes (no budget: any), and no larger than `speed_tile` where untiled maps would be too
        large for the allocator to reuse."""
        cells = max(height, width) // self.scale
        largest = None
        if self.speed_tile is not None and self.speed_tile < cells \
                and self.largest_map_bytes(batch, height, width) >= MMAP_THRESHOLD_MAX:  # glibc adds a header
            largest = self.speed_tile
        if budget is None:
            return largest
        candidates: list[int | None] = [largest]
        tile = 256
        while tile >= MIN_TILE:
            if tile < min(cells, largest or cells):
                candidates.append(tile)
            tile //= 2
        for tile in candidates:
            if self.estimate_peak_bytes(batch, height, width, tile) <= budget:
                return tile
        need = self.estimate_peak_bytes(batch, height, width, candidates[-1])
        raise MemoryBudgetError(f"a {width}x{height} pass needs about {need / 2**20:.0f} MiB even when tiled, "
                                f"more than the {budget / 2**20:.0f} MiB memory budget; raise --max-memory "
                                f"or inpaint a smaller region")
