"""Building blocks of DeepGIN: padded convolutions, SPD ResNet blocks, non-local self-attention.

No normalisation layers anywhere, as in the paper: the generator works on single images at any
batch size and its statistics never depend on the batch.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PaddedConv(nn.Module):
    """Explicit replicate padding + convolution + optional activation (DeepGIN pads by replication)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, activation: nn.Module | None = None) -> None:
        super().__init__()
        self.pad = nn.ReplicationPad2d(padding) if padding else nn.Identity()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, dilation=dilation)
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv(self.pad(x)))


class SPDResBlock(nn.Module):
    """Spatial Pyramid Dilation ResNet block.

    One 3x3 branch per dilation rate, each producing `channels / len(rates)` maps from the full
    input; their concatenation has `channels` maps, so the branches together hold exactly the
    weights of one standard 3x3 convolution, and the block (branches + 3x3 fusion) exactly the
    parameters of a standard two-convolution ResNet block, while seeing many receptive fields.
    """

    def __init__(self, channels: int, rates: Sequence[int]) -> None:
        super().__init__()
        if channels % len(rates):
            raise ValueError(f"channels ({channels}) must divide evenly across {len(rates)} dilation rates")
        width = channels // len(rates)
        self.rates = tuple(rates)
        self.branches = nn.ModuleList(
            PaddedConv(channels, width, 3, padding=rate, dilation=rate, activation=nn.ReLU(inplace=True))
            for rate in rates)
        self.fusion = PaddedConv(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fusion(torch.cat([branch(x) for branch in self.branches], dim=1))


class NonLocalAttention(nn.Module):
    """Non-local self-attention (Wang et al. 2018) with a zero-initialised output projection.

    Starting at zero makes the block an identity at initialisation, so attention is learned on
    top of a working convolutional path. Cost is quadratic in the number of positions, which is
    why DeepGIN inpaints large images as 256 x 256 sub-images.
    """

    def __init__(self, channels: int, inter_channels: int | None = None) -> None:
        super().__init__()
        inter = inter_channels or max(1, channels // 2)
        self.inter_channels = inter
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.W = nn.Conv2d(inter, channels, 1)
        nn.init.zeros_(self.W.weight)
        nn.init.zeros_(self.W.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)  # N x HW x C'
        key = self.phi(x).flatten(2)                      # N x C' x HW
        value = self.g(x).flatten(2).transpose(1, 2)      # N x HW x C'
        attended = torch.softmax(query @ key, dim=-1) @ value
        return x + self.W(attended.transpose(1, 2).reshape(n, self.inter_channels, h, w))


def bilinear_resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Bilinear resampling with aligned corners, the resampling DeepGIN's decoder uses."""
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=True)
