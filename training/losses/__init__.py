"""LaMa's losses as small pure functions (plus the frozen-backbone perceptual module)."""
from .adversarial import (MASK_INTERPOLATIONS, discriminator_adversarial_loss, generator_adversarial_loss, r1_penalty,
                          resize_mask)
from .config import LossConfig
from .feature_matching import feature_matching_loss
from .perceptual import HRFPerceptualLoss, feature_mse_sum, imagenet_normalize
from .reconstruction import masked_l1_loss

__all__ = ["MASK_INTERPOLATIONS", "HRFPerceptualLoss", "LossConfig", "discriminator_adversarial_loss",
           "feature_matching_loss", "feature_mse_sum", "generator_adversarial_loss", "imagenet_normalize",
           "masked_l1_loss", "r1_penalty", "resize_mask"]
