"""Non-saturating adversarial loss with R1 penalty, as LaMa trains it (`NonSaturatingWithR1`).

Small pure functions; the loop calls them in explicit phases. With `mask_as_fake_target` the
discriminator learns that only the hole of a generated image is fake: its known region (pasted
from the real photo by construction of the loss target) counts as real. The mask is resized to
the logit map's size with a configurable interpolation mode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MASK_INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def resize_mask(mask: torch.Tensor, size: tuple[int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize an N x 1 x H x W mask to `size`; bicubic overshoot is clamped back into 0..1."""
    if mode not in MASK_INTERPOLATIONS:
        raise ValueError(f"mask interpolation must be one of {MASK_INTERPOLATIONS}, got {mode!r}")
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mode == "nearest":
        return F.interpolate(mask, size=size, mode="nearest")
    return F.interpolate(mask, size=size, mode=mode, align_corners=False).clamp(0, 1)


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: mean softplus(-D(fake)) over every patch."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mask: torch.Tensor | None,
                                   mask_as_fake_target: bool = True, mask_interpolation: str = "nearest") -> torch.Tensor:
    """mean softplus(-D(real)) + mean of the fake term.

    The fake term is softplus(D(fake)) on hole patches; with `mask_as_fake_target` known patches of
    the fake add softplus(-D(fake)) (they are real pixels), otherwise every patch is fake.
    """
    real_loss = F.softplus(-real_logits)
    fake_loss = F.softplus(fake_logits)
    if mask_as_fake_target:
        if mask is None:
            raise ValueError("mask_as_fake_target needs the mask")
        hole = resize_mask(mask, tuple(fake_logits.shape[-2:]), mask_interpolation)
        fake_loss = hole * fake_loss + (1 - hole) * F.softplus(-fake_logits)
    return real_loss.mean() + fake_loss.mean()


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 gradient penalty: batch mean of ||d sum(D(real)) / d real||^2 (Mescheder et al. 2018).

    `real` must be the leaf the logits were computed from, with requires_grad set
    (`real.detach().requires_grad_()`); the graph is kept so the penalty trains D.
    """
    (grad,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()
