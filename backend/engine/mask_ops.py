"""Growing the hole and the feather ramp, both measured with Euclidean distances.

grow N: a pixel joins the hole when a hole pixel lies within N px (dx^2 + dy^2 <= N^2, a disk).
For a soft mask it takes the largest weight within that disk (grey dilation), so the hole grows
with its soft edge instead of gaining a hard rim.

feather N: a hole pixel at Euclidean distance d from the nearest pixel outside the hole weighs
min(1, d / (N + 1)): the N hole pixels nearest the border blend prediction and original, deeper
ones take the prediction whole. Nothing outside the hole is ever touched, and the image border is
not a seam (no known pixels lie beyond it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def dilate_disk(values: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation of a non-negative 2-D array with a flat disk of `radius` (outside = 0).

    Done as one 1-D running maximum per row offset (widths from the disk's rows), which costs
    O(radius x pixels) instead of O(radius^2 x pixels).
    """
    if radius <= 0:
        return values.copy()
    height = values.shape[0]
    out = values.copy()
    for dy in range(0, radius + 1):
        half_width = math.isqrt(radius * radius - dy * dy)
        row_max = ndimage.maximum_filter1d(values, size=2 * half_width + 1, axis=1, mode="constant", cval=0)
        if dy == 0:
            np.maximum(out, row_max, out=out)
            continue
        if dy < height:
            # pixel y sees rows y - dy and y + dy
            np.maximum(out[dy:], row_max[:-dy], out=out[dy:])
            np.maximum(out[:-dy], row_max[dy:], out=out[:-dy])
    return out


def feather_ramp(hole: np.ndarray, feather: int) -> np.ndarray:
    """Blend weight of each hole pixel from its distance to the nearest known pixel (0 outside)."""
    if feather <= 0 or not hole.any():
        return hole.astype(np.float32)
    if hole.all():  # no known pixel anywhere: nothing to blend with
        return np.ones(hole.shape, np.float32)
    distance = ndimage.distance_transform_edt(hole)
    return np.minimum(1.0, distance / (feather + 1)).astype(np.float32)
