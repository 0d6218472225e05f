"""Pixel reconstruction loss of LaMa: L1 weighted separately on known and missing pixels."""
from __future__ import annotations

import torch


def masked_l1_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                   weight_known: float, weight_missing: float) -> torch.Tensor:
    """mean over all pixels and channels of |pred - target| * (mask * w_missing + (1 - mask) * w_known).

    Like the official `masked_l1_loss`, the mean runs over every pixel (not only the known ones),
    so the value shrinks as holes grow. big-lama uses w_known 10 and w_missing 0: the hole is left to
    the perceptual and adversarial losses.
    """
    weights = mask * weight_missing + (1 - mask) * weight_known
    return (weights * (pred - target).abs()).mean()
