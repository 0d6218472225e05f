"""High-receptive-field perceptual loss (LaMa's `ResNetPL`).

Both images are ImageNet-normalised (for backbones trained that way), passed through a frozen
segmentation backbone, and the MSE of every returned feature map is summed over the maps (four
ResNet stages for the ADE20k encoder). The loss weight is applied by the caller.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """0..1 RGB -> ImageNet-normalised RGB."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def feature_mse_sum(pred_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the per-layer MSE (each layer's mean, as the official loss)."""
    return torch.stack([F.mse_loss(p, t) for p, t in zip(pred_features, target_features)]).sum()


class HRFPerceptualLoss(nn.Module):
    """Frozen backbone in `impl` (the official attribute name; checkpoints say `loss_resnet_pl.impl.*`).

    The backbone stays in eval mode (batch-norm statistics frozen) even when the training module
    around it is switched to train mode.
    """

    def __init__(self, backbone: nn.Module, imagenet_input: bool = True) -> None:
        super().__init__()
        self.impl = backbone.eval().requires_grad_(False)
        self.imagenet_input = imagenet_input

    def train(self, mode: bool = True) -> "HRFPerceptualLoss":
        super().train(mode)
        self.impl.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.imagenet_input:
            pred, target = imagenet_normalize(pred), imagenet_normalize(target)
        pred_features = self.impl(pred)
        with torch.no_grad():
            target_features = self.impl(target)
        return feature_mse_sum(pred_features, target_features)
