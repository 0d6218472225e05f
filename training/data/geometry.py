"""The geometric part of the recipe as one resampling: perspective, scale/rotate/shear, padding,
optical distortion, random crop and horizontal flip.

Each step is an inverse coordinate map (output pixel -> where it comes from); they are chained
from the crop back to the source image and the image is sampled once (bilinear, mirrored at the
borders), so the crop is never blurred by repeated interpolation and only crop pixels are computed.
Coordinates are pixel centres: x in 0..W-1, y in 0..H-1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import AugmentConfig

Coords = tuple[np.ndarray, np.ndarray]


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 projective matrix taking the four points `src` (4 x 2) to `dst` (4 x 2)."""
    rows = []
    for (x, y), (u, v) in zip(src, dst):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coefficients = np.linalg.solve(np.array(rows, dtype=np.float64), dst.reshape(-1).astype(np.float64))
    return np.append(coefficients, 1.0).reshape(3, 3)


def apply_projective(matrix: np.ndarray, x: np.ndarray, y: np.ndarray) -> Coords:
    w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
    return ((matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]) / w,
            (matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]) / w)


@dataclass
class GeometricPlan:
    """The random parameters of one sample's geometric transform (all inverse maps)."""

    height: int                 # source image size
    width: int
    crop: int
    perspective: np.ndarray | None = None   # 3x3: output pixel -> source pixel
    affine: np.ndarray | None = None        # 3x3: output pixel -> input pixel (about the centre)
    pad_top: int = 0
    pad_left: int = 0
    optical_k: float | None = None
    crop_top: int = 0
    crop_left: int = 0
    flip: bool = False

    @property
    def canvas(self) -> tuple[int, int]:
        """Size after padding to at least the crop size (where the optical distortion works)."""
        return max(self.height, self.crop), max(self.width, self.crop)


def perspective_matrix(height: int, width: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Keep-size four-point perspective: each corner moves inwards by |N(0, sigma)| of the image
    size (capped at 0.32 like the official sampler) and that quadrilateral fills the output."""
    offsets = np.minimum(np.abs(rng.normal(0.0, sigma, size=(4, 2))), 0.32) * [width - 1, height - 1]
    right, bottom = width - 1, height - 1
    corners = np.array([[0, 0], [right, 0], [right, bottom], [0, bottom]], dtype=np.float64)
    quad = corners + offsets * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    return homography(corners, quad)


def affine_matrix(height: int, width: int, scale_x: float, scale_y: float, rotate_deg: float,
                  shear_x_deg: float, shear_y_deg: float) -> np.ndarray:
    """Inverse map of scale -> shear -> rotate about the image centre."""
    angle = math.radians(rotate_deg)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    shear = np.array([[1.0, math.tan(math.radians(shear_x_deg))], [math.tan(math.radians(shear_y_deg)), 1.0]])
    forward = rotation @ shear @ np.diag([scale_x, scale_y])
    inverse = np.linalg.inv(forward)
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    matrix = np.eye(3)
    matrix[:2, :2] = inverse
    matrix[:2, 2] = centre - inverse @ centre
    return matrix


def optical_source(x: np.ndarray, y: np.ndarray, height: int, width: int, k: float) -> Coords:
    """Radial lens distortion with k1 = k2 = k, focal lengths = image size, centred (OpenCV's
    undistort-rectify map as the official OpticalDistortion uses it)."""
    cx, cy = width / 2.0, height / 2.0
    u, v = (x - cx) / width, (y - cy) / height
    r2 = u * u + v * v
    factor = 1.0 + k * r2 + k * r2 * r2
    return u * factor * width + cx, v * factor * height + cy


def plan_geometry(height: int, width: int, crop: int, config: AugmentConfig, rng: np.random.Generator) -> GeometricPlan:
    """Draw the geometric parameters of one sample, in the recipe's order."""
    plan = GeometricPlan(height=height, width=width, crop=crop)
    if rng.random() < config.perspective_proba:
        sigma = rng.uniform(0.0, config.perspective_scale)
        plan.perspective = perspective_matrix(height, width, sigma, rng)
    if rng.random() < config.affine_proba:
        scale_x, scale_y = rng.uniform(config.scale_min, config.scale_max, size=2)
        rotate = rng.uniform(-config.rotate_degrees, config.rotate_degrees)
        shear_x, shear_y = rng.uniform(-config.shear_degrees, config.shear_degrees, size=2)
        plan.affine = affine_matrix(height, width, scale_x, scale_y, rotate, shear_x, shear_y)
    canvas_h, canvas_w = plan.canvas
    plan.pad_top, plan.pad_left = (canvas_h - height) // 2, (canvas_w - width) // 2
    if rng.random() < config.optical_proba:
        plan.optical_k = float(rng.uniform(-config.optical_distort_limit, config.optical_distort_limit))
    plan.crop_top = int(rng.integers(canvas_h - crop + 1))
    plan.crop_left = int(rng.integers(canvas_w - crop + 1))
    plan.flip = bool(rng.random() < config.flip_proba)
    return plan


def source_coordinates(plan: GeometricPlan) -> Coords:
    """For every crop pixel, where it is sampled in the source image (float x, y arrays)."""
    grid = np.arange(plan.crop, dtype=np.float64)
    x, y = np.meshgrid(grid[::-1] if plan.flip else grid, grid)
    x, y = x + plan.crop_left, y + plan.crop_top
    if plan.optical_k is not None:
        x, y = optical_source(x, y, *plan.canvas, plan.optical_k)
    x, y = x - plan.pad_left, y - plan.pad_top
    if plan.affine is not None:
        x, y = apply_projective(plan.affine, x, y)
    if plan.perspective is not None:
        x, y = apply_projective(plan.perspective, x, y)
    return x, y


def resample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of an H x W x C uint8 image at (x, y), mirrored beyond the borders
    (OpenCV's BORDER_REFLECT_101, the official padding); returns an h x w x C uint8 array."""
    return cv2.remap(np.ascontiguousarray(image), x.astype(np.float32), y.astype(np.float32),
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def random_geometry(image: np.ndarray, crop: int, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random crop x crop x 3 uint8 sample of the geometric recipe."""
    plan = plan_geometry(image.shape[0], image.shape[1], crop, config, rng)
    return resample(image, *source_coordinates(plan))
