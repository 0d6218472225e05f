"""DeepGIN's sub-image inference: inpaint a large image as interleaved 256 x 256 sub-images.

An image of size (256 s) x (256 s) splits into s * s sub-images by strided sub-sampling:
sub-image (i, j) holds pixels [i::s, j::s]. Each is a downscaled view of the whole scene, so the
network's attention sees global context at the size it was trained on; re-interleaving restores
full resolution. Images of other sizes are padded (replicate) to a multiple of 256 * s, then
cropped back.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def stride_for(height: int, width: int, size: int = 256) -> int:
    return max(1, math.ceil(max(height, width) / size))


def split(image: torch.Tensor, stride: int, size: int = 256) -> torch.Tensor:
    """N x C x H x W -> (N * stride^2) x C x size x size, after replicate-padding to size * stride."""
    n, c, h, w = image.shape
    full = size * stride
    if h > full or w > full:
        raise ValueError(f"{h}x{w} does not fit {stride}x{stride} sub-images of {size}")
    padded = F.pad(image, (0, full - w, 0, full - h), mode="replicate") if (h, w) != (full, full) else image
    # (N, C, size, stride, size, stride) -> (N, stride, stride, C, size, size)
    grid = padded.reshape(n, c, size, stride, size, stride).permute(0, 3, 5, 1, 2, 4)
    return grid.reshape(n * stride * stride, c, size, size)


def merge(parts: torch.Tensor, stride: int, height: int, width: int) -> torch.Tensor:
    """Inverse of `split`: re-interleave and crop to the original height and width."""
    total, c, size, _ = parts.shape
    n = total // (stride * stride)
    grid = parts.reshape(n, stride, stride, c, size, size).permute(0, 3, 4, 1, 5, 2)
    return grid.reshape(n, c, size * stride, size * stride)[..., :height, :width]
