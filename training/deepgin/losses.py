"""DeepGIN's losses as small pure functions; weights from the paper in `DeepGINLossWeights`.

Conventions: images N x 3 x H x W in 0..1, masks N x 1 x H x W with 1 = hole. Every L1 is
normalised by the element count (a mean), so weights do not depend on the image size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DeepGINLossWeights:
    hole: float = 5.0          # lambda_hole inside the L1 terms
    adversarial: float = 0.001
    perceptual: float = 0.05
    style: float = 80.0
    total_variation: float = 0.1


def hole_valid_l1(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, hole_weight: float) -> torch.Tensor:
    """lambda_hole * mean(|p - t| on holes) + mean(|p - t| on known pixels), both over all elements."""
    error = (prediction - target).abs()
    return hole_weight * (error * mask).mean() + (error * (1 - mask)).mean()


def multiscale_reconstruction_loss(coarse: torch.Tensor, output: torch.Tensor, low_res: torch.Tensor,
                                   target: torch.Tensor, mask: torch.Tensor, hole_weight: float) -> torch.Tensor:
    """The L1 of the paper summed over (coarse, gt), (out, gt) and (I_lr, gt / 4)."""
    size = low_res.shape[-2:]
    target_small = F.interpolate(target, size=size, mode="area")
    mask_small = (F.interpolate(mask, size=size, mode="area") > 0).float()
    return (hole_valid_l1(coarse, target, mask, hole_weight) + hole_valid_l1(output, target, mask, hole_weight)
            + hole_valid_l1(low_res, target_small, mask_small, hole_weight))


def hinge_discriminator_loss(real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.relu(1 - real).mean() + F.relu(1 + fake).mean() for real, fake in zip(real_logits, fake_logits))


def hinge_generator_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(-fake.mean() for fake in fake_logits)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations normalised by C * H * W, so the style term is size independent."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def perceptual_loss(features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(f, t) for f, t in zip(features, target_features))


def style_loss(features: Sequence[torch.Tensor], target_features: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(gram_matrix(f), gram_matrix(t)) for f, t in zip(features, target_features))


def total_variation_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between vertical and horizontal neighbours (L1 total variation)."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
