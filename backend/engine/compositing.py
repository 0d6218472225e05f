"""Putting the prediction back: only hole pixels are written, in the image's own dtype.

composite: hole pixels get weight x prediction + (1 - weight) x original in RGB (weight 1 takes
the prediction as is); their alpha stays the original's. Every other pixel is left untouched.

layer: an RGBA layer the size of the image: hole pixels carry the prediction as colour and
alpha = weight x the original's alpha (full alpha for RGB input); every other pixel is exactly 0.
Over the original with normal "over" blending this gives the composite wherever the original is
opaque or fully transparent; over partially transparent pixels it also adds a little opacity
(result alpha a + w x a x (1 - a) instead of a), which "over" cannot avoid for any layer alpha.
"""
from __future__ import annotations

import numpy as np

from .pixels import from_scaled, full_scale


def composite_into(out: np.ndarray, source: np.ndarray, prediction: np.ndarray, weight: np.ndarray) -> None:
    """Blend `prediction` (H x W x 3, 0..1) into the RGB of `out` where `weight` > 0."""
    hole = weight > 0
    if not hole.any():
        return
    scale = full_scale(out.dtype)
    predicted = prediction[hole].astype(np.float64) * scale
    w = weight[hole].astype(np.float64)[:, None]
    original = source[hole][:, :3].astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # inf/NaN originals under weight 1 are not used
        blended = np.where(w >= 1.0, predicted, w * predicted + (1.0 - w) * original)
    rgb = out[..., :3]
    rgb[hole] = from_scaled(blended, out.dtype)


def layer_into(out: np.ndarray, source: np.ndarray, prediction: np.ndarray, weight: np.ndarray) -> None:
    """Write prediction colour and weight x source alpha into the RGBA `out` where `weight` > 0."""
    hole = weight > 0
    if not hole.any():
        return
    scale = full_scale(out.dtype)
    rgb = from_scaled(prediction[hole].astype(np.float64) * scale, out.dtype)
    if source.shape[2] == 4:
        alpha = source[hole][:, 3].astype(np.float64)
        if not np.issubdtype(out.dtype, np.integer):
            alpha = np.clip(np.nan_to_num(alpha, nan=0.0), 0.0, 1.0)
    else:
        alpha = np.full(rgb.shape[0], scale)
    alpha = from_scaled(weight[hole].astype(np.float64) * alpha, out.dtype)
    out[hole] = np.concatenate([rgb, alpha[:, None]], axis=1)
