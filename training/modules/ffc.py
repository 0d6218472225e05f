"""Fast Fourier Convolution networks of LaMa (Suvorov et al., WACV 2022).

Module and attribute names follow the official implementation exactly, because the official
checkpoints (`big-lama/models/best.ckpt`) address weights by these names: for example
`model.5.conv1.ffc.convg2g.fu.conv_layer.weight`. Only the options the published models use are
implemented; there are no dead switches.

Data flow: a feature map is a pair `(x_l, x_g)` of local and global channels (a plain tensor and
the integer 0 stand for "no global part"). The local path is an ordinary convolution; the global
path (`SpectralTransform`) mixes channels in the frequency domain, which gives every output pixel
an image-wide receptive field from the first block on.
"""
from __future__ import annotations

from typing import Type, Union

import torch
from torch import nn

FeaturePair = tuple[Union[torch.Tensor, int], Union[torch.Tensor, int]]


class FourierUnit(nn.Module):
    """1x1 conv + BN + ReLU applied to the real-FFT spectrum of a feature map.

    The spectrum is stored with real and imaginary parts interleaved per channel
    (`[c0.re, c0.im, c1.re, ...]`), the channel layout the official weights expect.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1, fft_norm: str = "ortho") -> None:
        super().__init__()
        self.groups = groups
        self.fft_norm = fft_norm
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm=self.fft_norm)
        # (N, C, H, W/2+1) complex -> (N, C*2, H, W/2+1) real, interleaved re/im per channel
        stacked = torch.stack((spectrum.real, spectrum.imag), dim=2)
        stacked = stacked.reshape(batch, -1, *stacked.shape[3:])
        stacked = self.relu(self.bn(self.conv_layer(stacked)))
        stacked = stacked.reshape(batch, -1, 2, *stacked.shape[2:])
        spectrum = torch.complex(stacked[:, :, 0].contiguous(), stacked[:, :, 1].contiguous())
        return torch.fft.irfftn(spectrum, s=x.shape[-2:], dim=(-2, -1), norm=self.fft_norm)


class SpectralTransform(nn.Module):
    """The global path of an FFC: 1x1 reduce, Fourier unit (+ optional local Fourier unit), 1x1 expand."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1,
                 enable_lfu: bool = True) -> None:
        super().__init__()
        self.enable_lfu = enable_lfu
        self.stride = stride
        self.downsample = nn.AvgPool2d(kernel_size=(2, 2), stride=2) if stride == 2 else nn.Identity()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, kernel_size=1, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels // 2),
            nn.ReLU(inplace=True),
        )
        self.fu = FourierUnit(out_channels // 2, out_channels // 2, groups)
        if self.enable_lfu:
            self.lfu = FourierUnit(out_channels // 2, out_channels // 2, groups)
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, kernel_size=1, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.downsample(x))
        output = self.fu(x)
        if self.enable_lfu:
            output = output + self._local_fourier(x)
        return self.conv2(x + output)

    def _local_fourier(self, x: torch.Tensor) -> torch.Tensor:
        """LFU: a quarter of the channels, split into 2x2 spatial patches stacked on channels.

        Like the official code, both axes are split with the height's half size, so the LFU is
        only defined for square feature maps.
        """
        channels, height = x.shape[1], x.shape[2]
        split_size = height // 2
        patches = torch.cat(torch.split(x[:, : channels // 4], split_size, dim=-2), dim=1)
        patches = torch.cat(torch.split(patches, split_size, dim=-1), dim=1)
        return self.lfu(patches).repeat(1, 1, 2, 2)


class FFC(nn.Module):
    """Fast Fourier Convolution: four paths local->local, local->global, global->local, global->global."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = False,
                 enable_lfu: bool = True, padding_type: str = "reflect") -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"FFC stride must be 1 or 2, got {stride}")
        self.stride = stride
        in_cg = int(in_channels * ratio_gin)
        in_cl = in_channels - in_cg
        out_cg = int(out_channels * ratio_gout)
        out_cl = out_channels - out_cg
        self.ratio_gin = ratio_gin
        self.ratio_gout = ratio_gout
        self.global_in_num = in_cg

        def conv(cin: int, cout: int) -> nn.Module:
            if cin == 0 or cout == 0:
                return nn.Identity()
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, dilation, groups, bias, padding_mode=padding_type)

        self.convl2l = conv(in_cl, out_cl)
        self.convl2g = conv(in_cl, out_cg)
        self.convg2l = conv(in_cg, out_cl)
        self.convg2g = (nn.Identity() if in_cg == 0 or out_cg == 0
                        else SpectralTransform(in_cg, out_cg, stride, 1 if groups == 1 else groups // 2, enable_lfu))

    def forward(self, x: torch.Tensor | FeaturePair) -> FeaturePair:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        out_xl: torch.Tensor | int = 0
        out_xg: torch.Tensor | int = 0
        if self.ratio_gout != 1:
            out_xl = self.convl2l(x_l) + self.convg2l(x_g)
        if self.ratio_gout != 0:
            out_xg = self.convl2g(x_l) + self.convg2g(x_g)
        return out_xl, out_xg


class FFC_BN_ACT(nn.Module):  # noqa: N801 - official name, checkpoints depend on it
    """An FFC followed by batch norm and activation on each of the two paths."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = False,
                 norm_layer: Type[nn.Module] = nn.BatchNorm2d, activation_layer: Type[nn.Module] = nn.Identity,
                 padding_type: str = "reflect", enable_lfu: bool = True) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding, dilation,
                       groups, bias, enable_lfu, padding_type=padding_type)
        global_channels = int(out_channels * ratio_gout)
        self.bn_l = nn.Identity() if ratio_gout == 1 else norm_layer(out_channels - global_channels)
        self.bn_g = nn.Identity() if ratio_gout == 0 else norm_layer(global_channels)
        self.act_l = nn.Identity() if ratio_gout == 1 else activation_layer(inplace=True)
        self.act_g = nn.Identity() if ratio_gout == 0 else activation_layer(inplace=True)

    def forward(self, x: torch.Tensor | FeaturePair) -> FeaturePair:
        x_l, x_g = self.ffc(x)
        return self.act_l(self.bn_l(x_l)), self.act_g(self.bn_g(x_g))


class FFCResnetBlock(nn.Module):
    """Two 3x3 FFC_BN_ACT layers with a residual connection on both paths."""

    def __init__(self, dim: int, padding_type: str, norm_layer: Type[nn.Module],
                 activation_layer: Type[nn.Module] = nn.ReLU, dilation: int = 1,
                 ratio_gin: float = 0.75, ratio_gout: float = 0.75, enable_lfu: bool = False) -> None:
        super().__init__()
        conv_args = dict(kernel_size=3, ratio_gin=ratio_gin, ratio_gout=ratio_gout, padding=dilation,
                         dilation=dilation, norm_layer=norm_layer, activation_layer=activation_layer,
                         padding_type=padding_type, enable_lfu=enable_lfu)
        self.conv1 = FFC_BN_ACT(dim, dim, **conv_args)
        self.conv2 = FFC_BN_ACT(dim, dim, **conv_args)

    def forward(self, x: torch.Tensor | FeaturePair) -> FeaturePair:
        x_l, x_g = x if isinstance(x, tuple) else (x, 0)
        y_l, y_g = self.conv2(self.conv1((x_l, x_g)))
        return x_l + y_l, x_g + y_g


class ConcatTupleLayer(nn.Module):
    """Joins the (local, global) pair back into one tensor for the decoder."""

    def forward(self, x: FeaturePair) -> torch.Tensor:
        x_l, x_g = x
        if not torch.is_tensor(x_g):
            return x_l  # type: ignore[return-value]
        if not torch.is_tensor(x_l):
            return x_g
        return torch.cat((x_l, x_g), dim=1)
