"""Random masks of the large-mask policy: irregular thick-line chains, boxes, and their mixture.

The distributions follow the official LaMa sampler (including its extra irregular stroke, see
`IrregularMaskConfig`) and thick lines are drawn with OpenCV like the official code, so coverage
and width match its published statistics. The random numbers come from a
`numpy.random.Generator`, so a seed fixes every mask.
"""
from __future__ import annotations

import cv2
import numpy as np

from .config import BoxMaskConfig, IrregularMaskConfig, MaskConfig

#: A stroke of an irregular mask has 1..MAX_SEGMENTS_PER_STROKE segments (official value).
MAX_SEGMENTS_PER_STROKE = 5


def sample_irregular_mask(height: int, width: int, config: IrregularMaskConfig, rng: np.random.Generator) -> np.ndarray:
    """An H x W uint8 mask (1 = hole) of `min_times..max_times + 1` random thick polylines.

    All random numbers of a mask are drawn in a few vectorised calls (same distributions as the
    official per-segment draws, ~5x faster); only the chaining of end points is a Python loop.
    """
    mask = np.zeros((height, width), dtype=np.uint8)
    strokes = int(rng.integers(config.min_times, config.max_times + 2))
    if strokes == 0:
        return mask
    segments_per_stroke = 1 + rng.integers(MAX_SEGMENTS_PER_STROKE, size=strokes)
    starts_x = rng.integers(width, size=strokes)
    starts_y = rng.integers(height, size=strokes)
    total = int(segments_per_stroke.sum())
    stroke_of_segment = np.repeat(np.arange(strokes), segments_per_stroke)
    angles = 0.01 + rng.integers(config.max_angle, size=total)
    angles = np.where(stroke_of_segment % 2 == 0, 2 * np.pi - angles, angles)  # mirrored for every other stroke
    lengths = 10 + rng.integers(config.max_len, size=total)
    brushes = (5 + rng.integers(config.max_width, size=total)).tolist()
    step_x = (lengths * np.sin(angles)).tolist()
    step_y = (lengths * np.cos(angles)).tolist()
    segment = 0
    for stroke, count in enumerate(segments_per_stroke.tolist()):
        x, y = int(starts_x[stroke]), int(starts_y[stroke])
        for _ in range(count):
            # the end point is truncated to an integer pixel and kept in 0..size (inclusive)
            end_x = min(max(int(x + step_x[segment]), 0), width)
            end_y = min(max(int(y + step_y[segment]), 0), height)
            # OpenCV's thick line: a polygon of half-width brush/2 with round caps, like the official code
            cv2.line(mask, (x, y), (end_x, end_y), 1, brushes[segment])
            x, y = end_x, end_y
            segment += 1
    return mask


def sample_box_mask(height: int, width: int, config: BoxMaskConfig, rng: np.random.Generator) -> np.ndarray:
    """An H x W uint8 mask (1 = hole) of `min_times..max_times` random rectangles `margin` px
    from the border."""
    mask = np.zeros((height, width), dtype=np.uint8)
    margin = config.margin
    # largest side + 1 (exclusive bound), capped so a box fits inside the margins
    side_end = min(config.bbox_max_size + 1, height - 2 * margin, width - 2 * margin)
    if side_end <= config.bbox_min_size:
        raise ValueError(f"a {height}x{width} image cannot hold boxes of {config.bbox_min_size} px "
                         f"with a {margin} px margin")
    for _ in range(int(rng.integers(config.min_times, config.max_times + 1))):
        box_w = int(rng.integers(config.bbox_min_size, side_end))
        box_h = int(rng.integers(config.bbox_min_size, side_end))
        left = int(rng.integers(margin, width - margin - box_w + 1))
        top = int(rng.integers(margin, height - margin - box_h + 1))
        mask[top:top + box_h, left:left + box_w] = 1
    return mask


class MaskGenerator:
    """Draws masks of one `MaskConfig` from its own random generator.

    `generator(height, width)` returns an H x W float32 array of {0, 1} (1 = hole). Reseed with
    `reseed(seed)` (e.g. from a DataLoader worker; see `lama_training.masks.seeding`).
    """

    def __init__(self, config: MaskConfig, seed: int | np.random.SeedSequence | None = None) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        self._kinds = [(p, kind) for p, kind in zip(config.probabilities(), ("irregular", "box")) if p > 0]

    def reseed(self, seed: int | np.random.SeedSequence) -> None:
        self.rng = np.random.default_rng(seed)

    def sample_kind(self) -> str:
        """Which kind the next mask of the own stream would be drawn from (advances the stream)."""
        probabilities = np.array([p for p, _ in self._kinds])
        return self._kinds[int(self.rng.choice(len(self._kinds), p=probabilities))][1]

    def __call__(self, height: int, width: int) -> np.ndarray:
        return self.sample(height, width, self.rng)

    def sample(self, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
        """One mask drawn from `rng` instead of the generator's own stream."""
        probabilities = np.array([p for p, _ in self._kinds])
        kind = self._kinds[int(rng.choice(len(self._kinds), p=probabilities))][1]
        if kind == "irregular":
            mask = sample_irregular_mask(height, width, self.config.irregular, rng)
        else:
            mask = sample_box_mask(height, width, self.config.box, rng)
        return mask.astype(np.float32)
