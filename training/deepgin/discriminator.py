"""DeepGIN's discriminators: two spectral-normalised conditional PatchGANs at 1x and 1/2 scale.

Each sees the generator's input (known pixels with holes filled, and the mask) beside a completed
image, so it judges the completion given the context. Spectral normalisation bounds each layer's
Lipschitz constant, which keeps the hinge-loss game stable without a gradient penalty.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

CONDITION_CHANNELS = 4  # masked image (3) + mask (1)


class SNPatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, max_features: int = 512) -> None:
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, ndf, 4, 2, 2)), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for _ in range(1, n_layers):
            out = min(channels * 2, max_features)
            layers += [spectral_norm(nn.Conv2d(channels, out, 4, 2, 2)), nn.LeakyReLU(0.2, True)]
            channels = out
        out = min(channels * 2, max_features)
        layers += [spectral_norm(nn.Conv2d(channels, out, 4, 1, 2)), nn.LeakyReLU(0.2, True),
                   spectral_norm(nn.Conv2d(out, 1, 4, 1, 2))]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DeepGINDiscriminator(nn.Module):
    """Returns one logit map per scale (full resolution, then half)."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, num_scales: int = 2) -> None:
        super().__init__()
        self.scales = nn.ModuleList(SNPatchDiscriminator(CONDITION_CHANNELS + 3, ndf, n_layers)
                                    for _ in range(num_scales))

    def forward(self, condition: torch.Tensor, completed: torch.Tensor) -> list[torch.Tensor]:
        x = torch.cat([condition, completed], dim=1)
        logits = []
        for index, discriminator in enumerate(self.scales):
            if index:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            logits.append(discriminator(x))
        return logits
