"""The PatchGAN discriminator of LaMa (pix2pixHD `NLayerDiscriminator`, official kind `pix2pixhd_nlayer`).

Attribute names `model0` .. `model{n_layers+1}` follow the official module, so the discriminator
weights of `big-lama-with-discr` load key for key (checkpoint prefix `discriminator.`).
`forward` returns the per-patch logits and the intermediate activations that the feature
matching loss compares.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

KERNEL = 4
PADDING = 2  # ceil((KERNEL - 1) / 2), as in pix2pixHD
MAX_CHANNELS = 512


@dataclass(frozen=True)
class DiscriminatorConfig:
    """big-lama's discriminator: RGB input, 64 base channels, 4 strided layers."""

    kind: str = "pix2pixhd_nlayer"
    input_nc: int = 3
    ndf: int = 64
    n_layers: int = 4

    def __post_init__(self) -> None:
        if self.kind != "pix2pixhd_nlayer":
            raise ValueError(f"unknown discriminator kind {self.kind!r}; known: pix2pixhd_nlayer")
        if self.input_nc < 1 or self.ndf < 1 or self.n_layers < 1:
            raise ValueError(f"discriminator needs input_nc, ndf and n_layers >= 1, got {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DiscriminatorConfig":
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown discriminator config fields: {sorted(unknown)}")
        return cls(**data)


class NLayerDiscriminator(nn.Module):
    """conv(s2)+LReLU, (n_layers - 1) x [conv(s2)+BN+LReLU], conv(s1)+BN+LReLU, conv(s1) -> 1 logit map."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()) -> None:
        super().__init__()
        self.config = config
        self.n_layers = config.n_layers
        stages: list[list[nn.Module]] = [[nn.Conv2d(config.input_nc, config.ndf, KERNEL, stride=2, padding=PADDING),
                                          nn.LeakyReLU(0.2, True)]]
        channels = config.ndf
        for _ in range(1, config.n_layers):
            previous, channels = channels, min(channels * 2, MAX_CHANNELS)
            stages.append([nn.Conv2d(previous, channels, KERNEL, stride=2, padding=PADDING),
                           nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True)])
        previous, channels = channels, min(channels * 2, MAX_CHANNELS)
        stages.append([nn.Conv2d(previous, channels, KERNEL, stride=1, padding=PADDING),
                       nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, True)])
        stages.append([nn.Conv2d(channels, 1, KERNEL, stride=1, padding=PADDING)])
        for index, stage in enumerate(stages):
            setattr(self, f"model{index}", nn.Sequential(*stage))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: N x input_nc x H x W -> (logits N x 1 x h x w, [activations of every stage but the last])."""
        activations = []
        for index in range(self.n_layers + 2):
            x = getattr(self, f"model{index}")(x)
            activations.append(x)
        return activations[-1], activations[:-1]


def make_discriminator(config: DiscriminatorConfig | Mapping[str, Any] = DiscriminatorConfig()) -> NLayerDiscriminator:
    if not isinstance(config, DiscriminatorConfig):
        config = DiscriminatorConfig.from_dict(config)
    return NLayerDiscriminator(config)
