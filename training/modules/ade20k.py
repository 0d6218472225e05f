"""The high-receptive-field perceptual backbone: the MIT ADE20k scene-parsing ResNet50-dilated encoder.

LaMa's HRF perceptual loss compares features of this segmentation encoder (deep stem of three
3x3 convs, ResNet50 bottleneck stages, stages 3 and 4 dilated instead of strided: dilate_scale 8).
Attribute names follow the CSAIL `ResnetDilated` encoder, so the public `encoder_epoch_20.pth`
(ade20k-resnet50dilated-ppm_deepsup) loads key for key.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

STAGE_BLOCKS = (3, 4, 6, 3)  # ResNet50
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided or dilated), 1x1 expand, plus the (projected) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + shortcut)


class ResnetDilatedEncoder(nn.Module):
    """Deep-stem ResNet50 with output stride 8; `forward` returns the four stage outputs.

    Dilation follows the CSAIL conversion of a strided ResNet: in stage 3 the strided block keeps
    dilation 1 (stride removed) and the other blocks use dilation 2; in stage 4 the first block uses
    dilation 2 and the others 4. Feature strides are 4, 8, 8, 8 with 256, 512, 1024, 2048 channels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = 128
        self.layer1 = self._stage(64, STAGE_BLOCKS[0], stride=1, first_dilation=1, dilation=1)
        self.layer2 = self._stage(128, STAGE_BLOCKS[1], stride=2, first_dilation=1, dilation=1)
        self.layer3 = self._stage(256, STAGE_BLOCKS[2], stride=1, first_dilation=1, dilation=2)
        self.layer4 = self._stage(512, STAGE_BLOCKS[3], stride=1, first_dilation=2, dilation=4)

    def _stage(self, planes: int, blocks: int, stride: int, first_dilation: int, dilation: int) -> nn.Sequential:
        downsample = nn.Sequential(
            nn.Conv2d(self.inplanes, planes * EXPANSION, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * EXPANSION),
        )
        layers = [Bottleneck(self.inplanes, planes, stride, first_dilation, downsample)]
        self.inplanes = planes * EXPANSION
        layers += [Bottleneck(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


def load_ade20k_encoder(weights_path: str | Path) -> ResnetDilatedEncoder:
    """Build the encoder and load `encoder_epoch_20.pth` (a plain state dict) by path, safely.

    The file is read with `weights_only=True` (no code runs). Every key must match; only the
    batch-norm counters `num_batches_tracked`, absent from files saved by old PyTorch, may be missing.
    """
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"ADE20k encoder weights not found: {path} (the HRF perceptual loss needs encoder_epoch_20.pth "
            "of ade20k-resnet50dilated-ppm_deepsup; give its path in losses.perceptual_weights, or choose "
            "another backbone with losses.perceptual_backbone)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    encoder = ResnetDilatedEncoder()
    expected = encoder.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(key for key in set(expected) - set(state) if not key.endswith("num_batches_tracked"))
    wrong = sorted(key for key in set(state) & set(expected) if tuple(state[key].shape) != tuple(expected[key].shape))
    if unexpected or missing or wrong:
        raise ValueError(f"{path} is not an ADE20k ResNet50-dilated encoder: missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]}, wrong shape {wrong[:4]}")
    encoder.load_state_dict(state, strict=False)
    return encoder
