"""The colour part of the recipe on 8-bit RGB crops, with OpenCV's colour conversions as in the
official albumentations steps: CLAHE on the L channel of Lab, brightness/contrast, and shifts of
hue/saturation/value in OpenCV's 8-bit HSV (hue 0..179)."""
from __future__ import annotations

import cv2
import numpy as np

from .config import AugmentConfig

CLAHE_TILES = (8, 8)


def clahe(image: np.ndarray, clip_limit: float) -> np.ndarray:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=CLAHE_TILES).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def brightness_contrast(image: np.ndarray, contrast: float, brightness: float) -> np.ndarray:
    """`image * contrast + brightness * 255`, clipped (brightness relative to the 8-bit maximum)."""
    lut = np.clip(np.arange(256) * contrast + brightness * 255.0, 0, 255).round().astype(np.uint8)
    return lut[image]


def shift_hsv(image: np.ndarray, hue: float, saturation: float, value: float) -> np.ndarray:
    """Hue shifts wrap around (mod 180); saturation and value shifts are clipped to 0..255."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    levels = np.arange(256, dtype=np.float64)
    hsv[..., 0] = np.mod(levels + hue, 180).round().astype(np.uint8)[hsv[..., 0]]
    hsv[..., 1] = np.clip(levels + saturation, 0, 255).round().astype(np.uint8)[hsv[..., 1]]
    hsv[..., 2] = np.clip(levels + value, 0, 255).round().astype(np.uint8)[hsv[..., 2]]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_photometric(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """The colour steps in the recipe's order, each with its probability."""
    if rng.random() < config.clahe_proba:
        image = clahe(image, float(rng.uniform(1.0, config.clahe_clip_limit)))
    if rng.random() < config.brightness_contrast_proba:
        contrast = 1.0 + rng.uniform(-config.contrast_limit, config.contrast_limit)
        brightness = rng.uniform(-config.brightness_limit, config.brightness_limit)
        image = brightness_contrast(image, contrast, brightness)
    if rng.random() < config.hsv_proba:
        image = shift_hsv(image, rng.uniform(-config.hue_shift, config.hue_shift),
                          rng.uniform(-config.saturation_shift, config.saturation_shift),
                          rng.uniform(-config.value_shift, config.value_shift))
    return image
