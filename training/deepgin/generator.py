"""The DeepGIN generator: a coarse network G1 and a refinement network G2 with back projection.

G1 (coarse): encoder to 1/8 -> SPD ResNet blocks with 8 dilation rates -> bilinear decoder.
G2 (refinement) on (coarse result pasted into the known image, mask): encoder to 1/16 with skip
features at 1/4 and 1/8, SPD blocks around a non-local attention block, Multi-Scale
Self-Attention on the skip features (1/4 and 1/8) and the bottleneck (1/16), a decoder that mixes
the attended skips, a low-resolution output I_lr at 1/4 scale, and Back Projection: the residual
between I_lr and the downscaled output, upsampled and weighted by a learned alpha map, corrects
the full-resolution output without any extra parametric block.

Images are N x 3 x H x W in 0..1; holes are filled with 1 before entering G1, as in the paper's
code. H and W must be multiples of 16.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import NonLocalAttention, PaddedConv, SPDResBlock, bilinear_resize


@dataclass(frozen=True)
class DeepGINConfig:
    ngf: int = 64
    coarse_blocks: int = 6
    coarse_rates: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 1)
    refine_blocks: int = 6
    refine_rates: tuple[int, ...] = (2, 3, 4, 5)
    kind: str = "deepgin"

    def __post_init__(self) -> None:
        # YAML and JSON give lists; tuples keep the config hashable and equal to the presets
        for name in ("coarse_rates", "refine_rates"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DeepGINConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown DeepGIN config fields: {sorted(unknown)}")
        values = dict(data)
        for name in ("coarse_rates", "refine_rates"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


DEEPGIN_PRESETS = {
    "deepgin": DeepGINConfig(),
    "deepgin-tiny": DeepGINConfig(ngf=16, coarse_blocks=2, refine_blocks=2),
}
PAD_MODULO = 16


class DeepGINOutput(NamedTuple):
    completed: torch.Tensor      # reconstructed pasted into the known pixels
    reconstructed: torch.Tensor  # G2 output after back projection
    coarse: torch.Tensor         # G1 output
    low_res: torch.Tensor        # I_lr, 1/4 scale


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _down(cin: int, cout: int) -> PaddedConv:
    return PaddedConv(cin, cout, 4, stride=2, padding=1, activation=_lrelu())


def _conv3(cin: int, cout: int, activation: bool = True) -> PaddedConv:
    return PaddedConv(cin, cout, 3, padding=1, activation=_lrelu() if activation else None)


class CoarseNetwork(nn.Module):
    def __init__(self, config: DeepGINConfig) -> None:
        super().__init__()
        ngf = config.ngf
        self.encoder = nn.Sequential(PaddedConv(4, ngf // 2, 7, padding=3, activation=_lrelu()),
                                     _down(ngf // 2, ngf), _down(ngf, ngf * 2), _down(ngf * 2, ngf * 4))
        self.blocks = nn.Sequential(*(SPDResBlock(ngf * 4, config.coarse_rates) for _ in range(config.coarse_blocks)))
        self.decoder = nn.ModuleList([_conv3(ngf * 4, ngf * 2), _conv3(ngf * 2, ngf), _conv3(ngf, ngf // 2)])
        self.to_rgb = PaddedConv(ngf // 2, 3, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.encoder(x))
        for conv in self.decoder:
            x = conv(bilinear_resize(x, 2))
        return self.to_rgb(x)


class RefinementNetwork(nn.Module):
    def __init__(self, config: DeepGINConfig) -> None:
        super().__init__()
        ngf = config.ngf
        self.enc1 = PaddedConv(4, ngf // 2, 7, padding=3, activation=_lrelu())
        self.enc2, self.enc3 = _down(ngf // 2, ngf), _down(ngf, ngf * 2)
        self.enc4, self.enc5 = _down(ngf * 2, ngf * 4), _down(ngf * 4, ngf * 8)
        self.skip3, self.skip4 = _conv3(ngf * 2, ngf), _conv3(ngf * 4, ngf * 2)
        # Multi-Scale Self-Attention: 1/4 and 1/8 skip features, and the 1/16 bottleneck
        self.attend3, self.attend4 = NonLocalAttention(ngf), NonLocalAttention(ngf * 2)
        half = config.refine_blocks // 2
        self.blocks_before = nn.Sequential(*(SPDResBlock(ngf * 8, config.refine_rates) for _ in range(half)))
        self.attend5 = NonLocalAttention(ngf * 8)
        self.blocks_after = nn.Sequential(*(SPDResBlock(ngf * 8, config.refine_rates)
                                            for _ in range(config.refine_blocks - half)))
        self.dec1, self.mix1 = _conv3(ngf * 8, ngf * 4), _conv3(ngf * 4 + ngf * 2, ngf * 4)
        self.dec2, self.mix2 = _conv3(ngf * 4, ngf * 2), _conv3(ngf * 2 + ngf, ngf * 2)
        self.low_res_head = nn.Sequential(_conv3(ngf * 2, ngf // 2), _conv3(ngf // 2, 3, activation=False))
        self.dec3, self.dec4 = _conv3(ngf * 2, ngf), _conv3(ngf, ngf // 2)
        self.to_rgb = PaddedConv(ngf // 2, 3, 7, padding=3)
        self.to_alpha = PaddedConv(ngf // 2, 1, 3, padding=1, activation=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e3 = self.enc3(self.enc2(self.enc1(x)))
        e4 = self.enc4(e3)
        bottleneck = self.blocks_after(self.attend5(self.blocks_before(self.enc5(e4))))
        d1 = self.mix1(torch.cat([self.dec1(bilinear_resize(bottleneck, 2)), self.attend4(self.skip4(e4))], dim=1))
        d2 = self.mix2(torch.cat([self.dec2(bilinear_resize(d1, 2)), self.attend3(self.skip3(e3))], dim=1))
        low_res = self.low_res_head(d2)
        d4 = self.dec4(bilinear_resize(self.dec3(bilinear_resize(d2, 2)), 2))
        return self.to_rgb(d4), self.to_alpha(d4), low_res


class DeepGINGenerator(nn.Module):
    def __init__(self, config: DeepGINConfig = DeepGINConfig()) -> None:
        super().__init__()
        self.config = config
        self.coarse = CoarseNetwork(config)
        self.refine = RefinementNetwork(config)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> DeepGINOutput:
        if image.shape[-2] % PAD_MODULO or image.shape[-1] % PAD_MODULO:
            raise ValueError(f"DeepGIN needs H and W divisible by {PAD_MODULO}, got {tuple(image.shape[-2:])}")
        known = image * (1 - mask)
        coarse = self.coarse(torch.cat([known + mask, mask], dim=1))
        pasted = coarse * mask + known
        output, alpha, low_res = self.refine(torch.cat([pasted, mask], dim=1))
        # Back Projection: correct the output by its disagreement with I_lr at 1/4 scale
        output_pasted = output * mask + known
        residual = low_res - F.interpolate(output_pasted, scale_factor=0.25, mode="bilinear", align_corners=True)
        reconstructed = output + bilinear_resize(residual, 4) * alpha
        return DeepGINOutput(reconstructed * mask + known, reconstructed, coarse, low_res)


def make_deepgin(preset_or_config: str | DeepGINConfig | Mapping[str, Any]) -> DeepGINGenerator:
    if isinstance(preset_or_config, str):
        if preset_or_config not in DEEPGIN_PRESETS:
            raise ValueError(f"unknown DeepGIN preset {preset_or_config!r}; known: {', '.join(DEEPGIN_PRESETS)}")
        return DeepGINGenerator(DEEPGIN_PRESETS[preset_or_config])
    if isinstance(preset_or_config, DeepGINConfig):
        return DeepGINGenerator(preset_or_config)
    return DeepGINGenerator(DeepGINConfig.from_dict(preset_or_config))
