"""Padding to the network's size multiple, the way the official LaMa predictor does it.

The official `pad_img_to_modulo` pads only at the bottom and the right with numpy's `symmetric`
mode (the edge pixel is repeated: ... c b a | a b c ...), and the prediction is cut back to the
original size afterwards. We do the same, with a minimum side so the smallest crops still fit
the generator's downsampling stages.
"""
from __future__ import annotations

import numpy as np


def ceil_modulo(value: int, modulo: int) -> int:
    return -(-value // modulo) * modulo


def padded_size(height: int, width: int, modulo: int, min_side: int = 0) -> tuple[int, int]:
    """The smallest size >= (height, width) and >= min_side that is a multiple of modulo."""
    return (ceil_modulo(max(height, min_side), modulo), ceil_modulo(max(width, min_side), modulo))


def pad_to_modulo(array: np.ndarray, modulo: int, min_side: int = 0) -> np.ndarray:
    """Pad an H x W (x C) array at the bottom/right, symmetric, to `padded_size`."""
    height, width = array.shape[:2]
    out_height, out_width = padded_size(height, width, modulo, min_side)
    if (out_height, out_width) == (height, width):
        return array
    widths = [(0, out_height - height), (0, out_width - width)] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, mode="symmetric")
