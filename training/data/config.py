"""The augmentation recipe of the official LaMa training data, as one plain dataclass.

Defaults are big-lama's `transform_variant: distortions` (albumentations in the official code):
perspective (p 0.5), scale/rotate/shear (p 0.5), pad to the crop size, optical distortion
(p 0.5), random crop, horizontal flip (p 0.5), CLAHE (p 0.5), brightness/contrast (p 0.5),
hue/saturation/value (p 0.5). Images are first resized so their shorter side is `resize_to`
(the paper trains on 256 px crops of Places images about 512 px large).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class AugmentConfig:
    """Each `*_proba` is the chance a step runs for one sample; 0 turns it off."""

    resize_to: int = 512              # shorter image side before augmenting; 0 keeps the file's size
    resize_to_max: int = 0            # > resize_to: each sample's shorter side is drawn log-uniformly in
                                      # resize_to..resize_to_max (more scales from few large photographs)
    min_image_size: int = 64          # files whose shorter side is smaller are skipped with a warning
    perspective_proba: float = 0.5
    perspective_scale: float = 0.06   # corner offsets ~ |N(0, s)| * size, s uniform in 0..perspective_scale
    affine_proba: float = 0.5
    scale_min: float = 0.7            # x and y scales drawn independently in scale_min..scale_max
    scale_max: float = 1.3
    rotate_degrees: float = 40.0      # rotation uniform in -rotate..rotate degrees
    shear_degrees: float = 0.1        # x and y shear uniform in -shear..shear degrees
    optical_proba: float = 0.5
    optical_distort_limit: float = 0.05  # radial distortion k uniform in -limit..limit (k1 = k2 = k)
    flip_proba: float = 0.5
    clahe_proba: float = 0.5
    clahe_clip_limit: float = 4.0     # clip limit uniform in 1..clahe_clip_limit, 8x8 tiles, on L of Lab
    brightness_contrast_proba: float = 0.5
    brightness_limit: float = 0.2     # added brightness uniform in -limit..limit (fraction of 255)
    contrast_limit: float = 0.2       # contrast factor uniform in 1-limit..1+limit
    hsv_proba: float = 0.5
    hue_shift: float = 5.0            # OpenCV 8-bit hue units (0..180)
    saturation_shift: float = 30.0    # 8-bit units
    value_shift: float = 5.0          # 8-bit units

    def __post_init__(self) -> None:
        _check(self.resize_to == 0 or self.resize_to >= 8, f"resize_to must be 0 or >= 8, got {self.resize_to}")
        _check(self.resize_to_max == 0 or (self.resize_to > 0 and self.resize_to_max >= self.resize_to),
               f"resize_to_max must be 0 or >= resize_to > 0, got {self.resize_to_max} (resize_to {self.resize_to})")
        _check(self.min_image_size >= 1, f"min_image_size must be >= 1, got {self.min_image_size}")
        for name, value in asdict(self).items():
            if name.endswith("_proba"):
                _check(0.0 <= value <= 1.0, f"{name} must be in 0..1, got {value}")
        _check(0 < self.scale_min <= self.scale_max, f"need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")
        for name in ("perspective_scale", "rotate_degrees", "shear_degrees", "optical_distort_limit",
                     "brightness_limit", "contrast_limit", "hue_shift", "saturation_shift", "value_shift"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.perspective_scale < 0.25, f"perspective_scale must be < 0.25, got {self.perspective_scale}")
        _check(self.optical_distort_limit < 0.5, f"optical_distort_limit must be < 0.5, got {self.optical_distort_limit}")
        _check(self.clahe_clip_limit >= 1, f"clahe_clip_limit must be >= 1, got {self.clahe_clip_limit}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NO_DISTORTIONS = dict(perspective_proba=0.0, affine_proba=0.0, optical_proba=0.0)
_NO_COLOUR = dict(clahe_proba=0.0, brightness_contrast_proba=0.0, hsv_proba=0.0)

#: Named recipes: the official `distortions` (big-lama) and `none` (resize + random crop only).
AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "distortions": AugmentConfig(),
    "none": AugmentConfig(flip_proba=0.0, **_NO_DISTORTIONS, **_NO_COLOUR),
}


def get_augment_preset(name: str) -> AugmentConfig:
    try:
        return replace(AUGMENT_PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; known: {', '.join(AUGMENT_PRESETS)}") from None
