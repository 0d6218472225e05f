"""Image and mask checks, and the conversions between stored pixels and the model's 0..1 floats.

Integer images are exact in float64, so blends are done there and rounded once (round half to
even, then clipped to the type's range). Float images are taken as 0..1; values outside that
range are clipped only for what the model sees.
"""
from __future__ import annotations

import numpy as np

from .errors import InpaintError

IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
MASK_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def full_scale(dtype: np.dtype) -> float:
    """The stored value that means 1.0 (opaque, full intensity)."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def check_image(image: np.ndarray) -> np.ndarray:
    """H x W x 3|4, uint8 / uint16 / float32, at least one pixel."""
    if not isinstance(image, np.ndarray):
        raise InpaintError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise InpaintError(f"image must be H x W x 3 (RGB) or H x W x 4 (RGBA), got shape {image.shape}")
    if image.dtype not in IMAGE_DTYPES:
        raise InpaintError(f"image dtype must be uint8, uint16 or float32, got {image.dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InpaintError(f"image is empty (shape {image.shape})")
    return image


def check_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """H x W or H x W x 1 of the image's size; returns the H x W view."""
    if not isinstance(mask, np.ndarray):
        raise InpaintError(f"mask must be a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise InpaintError(f"mask must be H x W or H x W x 1 (one channel), got shape {mask.shape}")
    if mask.shape != tuple(size):
        raise InpaintError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]} (W x H)")
    if mask.dtype not in MASK_DTYPES:
        raise InpaintError(f"mask dtype must be bool, uint8, uint16, float32 or float64, got {mask.dtype}")
    return mask


def mask_weights(mask: np.ndarray, soft: bool) -> np.ndarray:
    """Blend weight per pixel in 0..1 (float32); the hole is where it is > 0.

    Hard mask: any non-zero value weighs 1. Soft mask: uint8 / 255, uint16 / 65535, floats clipped
    to 0..1, bool as 0 or 1. A NaN in a float mask is 0 (not hole) either way.
    """
    if not soft or mask.dtype == np.bool_:
        if np.issubdtype(mask.dtype, np.floating):
            mask = np.nan_to_num(mask, nan=0.0)
        return (mask != 0).astype(np.float32)
    if np.issubdtype(mask.dtype, np.integer):
        return (mask.astype(np.float32) / full_scale(mask.dtype)).astype(np.float32)
    return np.clip(np.nan_to_num(mask.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """Stored pixels -> float32 in 0..1 for the model (floats clipped, NaN -> 0)."""
    if np.issubdtype(pixels.dtype, np.integer):
        return pixels.astype(np.float32) / np.float32(full_scale(pixels.dtype))
    return np.clip(np.nan_to_num(pixels, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0).astype(np.float32)


def from_scaled(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Values already in the stored scale (0..255, 0..65535 or 0..1) -> dtype, rounded for ints."""
    if np.issubdtype(dtype, np.integer):
        return np.clip(np.rint(values), 0, full_scale(dtype)).astype(dtype)
    return values.astype(dtype)
