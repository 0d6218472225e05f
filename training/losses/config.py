"""Loss weights and options; the defaults are big-lama's (`configs/training/big-lama.yaml`)."""
from __future__ import annotations

from dataclasses import dataclass

from .adversarial import MASK_INTERPOLATIONS


@dataclass
class LossConfig:
    l1_weight_known: float = 10.0
    l1_weight_missing: float = 0.0
    perceptual_weight: float = 30.0
    # Backbone of the HRF perceptual loss (see lama_training.modules.perceptual); `none` disables it.
    perceptual_backbone: str = "ade20k_resnet50dilated"
    # Path of the backbone's weights (encoder_epoch_20.pth for the ADE20k encoder).
    perceptual_weights: str = ""
    adversarial_weight: float = 10.0
    r1_weight: float = 0.001
    mask_as_fake_target: bool = True
    mask_interpolation: str = "nearest"
    feature_matching_weight: float = 100.0

    def __post_init__(self) -> None:
        for name in ("l1_weight_known", "l1_weight_missing", "perceptual_weight", "adversarial_weight",
                     "r1_weight", "feature_matching_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"losses.{name} must be >= 0, got {getattr(self, name)}")
        if self.mask_interpolation not in MASK_INTERPOLATIONS:
            raise ValueError(f"losses.mask_interpolation must be one of {MASK_INTERPOLATIONS}, "
                             f"got {self.mask_interpolation!r}")
        if self.perceptual_backbone == "none" and self.perceptual_weight > 0:
            raise ValueError("losses.perceptual_weight > 0 needs a perceptual backbone: set "
                             "losses.perceptual_weight=0 or choose losses.perceptual_backbone")
