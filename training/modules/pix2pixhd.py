"""The paper's ablation generators: the same ResNet shape as LaMa without Fourier convolutions.

- `pix2pixhd_global` (preset `lama-regular`): pix2pixHD's global generator, plain 3x3 convs in the
  residual blocks (official config `generator/pix2pixhd_global_sigmoid.yaml`).
- `pix2pixhd_multidilated` (preset `lama-dilated`): every residual conv is a `MultidilatedConv`
  that splits its input channels into 4 groups convolved with dilations 1, 2, 4, 8 and sums them
  (official `generator/pix2pixhd_multidilated_catin_4dil_9b.yaml`: comb_mode cat_in, 4 dilations).

Module and attribute names follow the official `pix2pixhd.py`, so official checkpoints of these
ablations load key for key. Both kinds read the shared `GeneratorConfig` fields (input_nc,
output_nc, ngf, n_downsampling, n_blocks, max_features, add_out_act); they have no Fourier
branch, so a config with non-zero FFC ratios is rejected instead of silently ignored.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .generators import OUTPUT_ACTIVATIONS, FFCConvConfig, GeneratorConfig, register_generator_kind

# The published LaMa-Dilated ablation: input channels split in 4 groups, dilations 1, 2, 4, 8.
MULTIDILATED_DILATION_NUM = 4


def _check_plain_config(config: GeneratorConfig) -> None:
    for name in ("init_conv", "downsample_conv", "resnet_conv"):
        if getattr(config, name) != FFCConvConfig():
            raise ValueError(f"generator kind {config.kind!r} has no Fourier branch: {name} must keep "
                             f"ratio_gin = ratio_gout = 0 and enable_lfu = false, got {getattr(config, name)}")
    if config.add_out_act not in OUTPUT_ACTIVATIONS and config.add_out_act != "none":
        raise ValueError(f"add_out_act must be one of {sorted(OUTPUT_ACTIVATIONS)} or 'none'")


def _encoder(config: GeneratorConfig, first_pad: nn.Module) -> list[nn.Module]:
    """7x7 stem + strided 3x3 convs, each followed by batch norm and ReLU (official layout)."""
    ngf, top = config.ngf, config.max_features
    layers: list[nn.Module] = [first_pad, nn.Conv2d(config.input_nc, ngf, kernel_size=7, padding=0),
                               nn.BatchNorm2d(ngf), nn.ReLU(True)]
    for i in range(config.n_downsampling):
        cin, cout = min(top, ngf * 2 ** i), min(top, ngf * 2 ** (i + 1))
        layers += [nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True)]
    return layers


def _decoder(config: GeneratorConfig, last_pad: nn.Module) -> list[nn.Module]:
    ngf, top = config.ngf, config.max_features
    layers: list[nn.Module] = []
    for i in range(config.n_downsampling):
        mult = 2 ** (config.n_downsampling - i)
        cin, cout = min(top, ngf * mult), min(top, ngf * mult // 2)
        layers += [nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
                   nn.BatchNorm2d(cout), nn.ReLU(True)]
    layers += [last_pad, nn.Conv2d(ngf, config.output_nc, kernel_size=7, padding=0)]
    if config.add_out_act != "none":
        layers.append(OUTPUT_ACTIVATIONS[config.add_out_act]())
    return layers


class ResnetBlock(nn.Module):
    """x + (reflect-pad, conv3x3, BN, ReLU, reflect-pad, conv3x3, BN)(x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), nn.BatchNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3), nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class GlobalGenerator(nn.Module):
    """LaMa-Regular: pix2pixHD global generator with a sigmoid head (kind `pix2pixhd_global`)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        _check_plain_config(config)
        self.config = config
        bottleneck = min(config.max_features, config.ngf * 2 ** config.n_downsampling)
        model = _encoder(config, nn.ReflectionPad2d(3))
        model += [ResnetBlock(bottleneck) for _ in range(config.n_blocks)]
        model += _decoder(config, nn.ReflectionPad2d(3))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MultidilatedConv(nn.Module):
    """`cat_in` multi-dilated conv: channel group i is convolved with dilation 2**i; results summed.

    Padding equals the dilation (3x3 kernels keep the size) and uses the given padding mode.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int = 3, dilation_num: int = MULTIDILATED_DILATION_NUM,
                 padding_mode: str = "reflect") -> None:
        super().__init__()
        if in_dim % dilation_num:
            raise ValueError(f"MultidilatedConv needs in_dim ({in_dim}) divisible by dilation_num ({dilation_num})")
        self.convs = nn.ModuleList(
            nn.Conv2d(in_dim // dilation_num, out_dim, kernel_size, padding=2 ** i, dilation=2 ** i,
                      padding_mode=padding_mode)
            for i in range(dilation_num))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.chunk(len(self.convs), dim=1)
        return sum(conv(chunk) for conv, chunk in zip(self.convs, chunks))  # type: ignore[return-value]


class MultidilatedResnetBlock(nn.Module):
    """x + (multi-dilated conv, BN, ReLU, multi-dilated conv, BN)(x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            MultidilatedConv(dim, dim), nn.BatchNorm2d(dim), nn.ReLU(True),
            MultidilatedConv(dim, dim), nn.BatchNorm2d(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class _AsymmetricPad(nn.Module):
    """F.pad with fixed (left, right, top, bottom) sizes; the official multidilated generator pads
    asymmetrically and crops 8 px from each side of the output."""

    def __init__(self, sizes: tuple[int, int, int, int], mode: str) -> None:
        super().__init__()
        self.sizes, self.mode = sizes, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.sizes, mode=self.mode)


class MultiDilatedGlobalGenerator(nn.Module):
    """LaMa-Dilated (kind `pix2pixhd_multidilated`): multi-dilated residual blocks.

    Like the official module it mirror-pads the input by (7, 13, 7, 13), replicate-pads before the
    last conv by (0, 6, 0, 6) and crops 8 px on each side, so H and W must be multiples of
    2**n_downsampling for the output to match the input size, and reflect padding by the largest
    dilation (8) needs a bottleneck wider than 8 px: inputs of at least 64 x 64 px.
    """

    CROP = 8

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        _check_plain_config(config)
        self.config = config
        bottleneck = min(config.max_features, config.ngf * 2 ** config.n_downsampling)
        model = _encoder(config, _AsymmetricPad((7, 13, 7, 13), "reflect"))
        model += [MultidilatedResnetBlock(bottleneck) for _ in range(config.n_blocks)]
        model += _decoder(config, _AsymmetricPad((0, 6, 0, 6), "replicate"))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crop = self.CROP
        return self.model(x)[:, :, crop:-crop, crop:-crop]


register_generator_kind("pix2pixhd_global", GlobalGenerator)
register_generator_kind("pix2pixhd_multidilated", MultiDilatedGlobalGenerator)
