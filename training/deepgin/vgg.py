"""VGG-19 feature extractor for DeepGIN's perceptual and style losses.

The layers carry torchvision's `features.<index>` names so the public torchvision file
(`vgg19-dcbb9e9d.pth`) loads by path without torchvision itself, which does not install beside
every PyTorch build. Features are the outputs of conv1_1, conv2_1, conv3_1, conv4_1 and conv5_1
(before their ReLU), on ImageNet-normalised inputs.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision's VGG-19 "E" configuration up to conv5_1
_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
# indices into `features` of conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
FEATURE_LAYERS = (0, 5, 10, 19, 28)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19Features(nn.Module):
    def __init__(self, weights_path: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                channels = int(item)
        self.features = nn.Sequential(*layers[: FEATURE_LAYERS[-1] + 1])
        path = Path(weights_path)
        if not path.is_file():
            raise FileNotFoundError(f"VGG-19 weights not found: {path} (torchvision's vgg19-dcbb9e9d.pth; "
                                    "give its path in the loss config)")
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {key: value for key, value in state.items() if key.startswith("features.")
                  and int(key.split(".")[1]) <= FEATURE_LAYERS[-1]}
        missing, unexpected = self.load_state_dict(wanted, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path} is not a torchvision VGG-19 file: missing {missing}, unexpected {unexpected}")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "VGG19Features":
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image - self.mean) / self.std
        features = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_LAYERS:
                features.append(x)
        return features
