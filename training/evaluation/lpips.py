"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., 2018), loaded from two files given by path.

No weights are downloaded: the user gives torchvision's ImageNet AlexNet
(`alexnet-owt-7be5be79.pth`, keys `features.0.weight` ... ; its `classifier.*` keys are not
needed and are ignored) and the `lpips` package's linear calibration (`weights/v0.1/alex.pth`,
keys `lin0.model.1.weight` ... `lin4.model.1.weight`).

The distance, as the published metric defines it (images in 0..1 are first mapped to [-1, 1]):
1. shift and scale the input per channel (`(x - shift) / scale`, the ScalingLayer constants);
2. AlexNet features after each of the five ReLUs of `features` (64, 192, 384, 256, 256 channels);
3. each feature vector unit-normalised over channels (`f / (||f|| + 1e-10)`);
4. squared difference, weighted per channel by the 1 x 1 calibration conv, averaged over space;
5. summed over the five layers.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .weights_file import load_exact, load_state_file

# ScalingLayer of lpips v0.1: inputs in [-1, 1] are shifted and scaled by these per RGB channel
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORMALISE_EPS = 1e-10
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
# indices into `features` after which a tapped ReLU output ends each of the five slices
ALEXNET_TAPS = (1, 4, 7, 9, 11)


class AlexNetFeatures(nn.Module):
    """torchvision's AlexNet `features` stack (same module indices, so `features.N.*` keys load),
    returning the five ReLU outputs LPIPS compares."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # torchvision's last pool; LPIPS stops before it
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for index, layer in enumerate(self.features[:ALEXNET_TAPS[-1] + 1]):
            x = layer(x)
            if index in ALEXNET_TAPS:
                taps.append(x)
        return taps


class NetLinLayer(nn.Module):
    """The per-channel calibration of one layer: `model = [Dropout, 1x1 conv without bias]`, as in
    the `lpips` package (hence the key `model.1.weight`); dropout is inactive in eval mode."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _unit_normalise(features: torch.Tensor) -> torch.Tensor:
    return features / (features.pow(2).sum(dim=1, keepdim=True).sqrt() + NORMALISE_EPS)


class LPIPS(nn.Module):
    """`lpips(a, b)` -> N distances for N x 3 x H x W images in 0..1 (0 for identical images)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.net = AlexNetFeatures()
        for index, channels in enumerate(ALEXNET_CHANNELS):
            self.add_module(f"lin{index}", NetLinLayer(channels))
        self.eval().requires_grad_(False)

    @property
    def lins(self) -> list[NetLinLayer]:
        return [getattr(self, f"lin{index}") for index in range(len(ALEXNET_CHANNELS))]

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        if image_a.shape != image_b.shape or image_a.dim() != 4 or image_a.shape[1] != 3:
            raise ValueError(f"LPIPS compares two N x 3 x H x W batches, got {tuple(image_a.shape)} "
                             f"and {tuple(image_b.shape)}")
        both = torch.cat([image_a, image_b]).float() * 2 - 1   # 0..1 -> [-1, 1]
        taps = self.net((both - self.shift) / self.scale)
        n = image_a.shape[0]
        total = torch.zeros(n, device=image_a.device)
        for lin, features in zip(self.lins, taps):
            normalised = _unit_normalise(features)
            difference = (normalised[:n] - normalised[n:]) ** 2
            total = total + lin(difference).mean(dim=(1, 2, 3))
        return total


def load_lpips(alexnet_path: str | Path, linear_path: str | Path) -> LPIPS:
    """LPIPS with torchvision's AlexNet weights and the v0.1 calibration, both read by path; a
    missing file or a file of another layout is a `MetricWeightsError` naming it."""
    metric = LPIPS()
    alexnet = load_state_file(alexnet_path, "the torchvision AlexNet weights (alexnet-owt-7be5be79.pth)")
    features = {key: value for key, value in alexnet.items() if key.startswith("features.")}
    load_exact(metric.net, features, alexnet_path, ignored="classifier.*")
    linear = load_state_file(linear_path, "the LPIPS v0.1 AlexNet calibration (lpips weights/v0.1/alex.pth)")
    calibration = nn.ModuleDict({f"lin{i}": lin for i, lin in enumerate(metric.lins)})
    load_exact(calibration, linear, linear_path)
    return metric.eval().requires_grad_(False)

