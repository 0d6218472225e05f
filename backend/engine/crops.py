"""Which parts of the image the model sees: one box per connected hole component.

Each component's bounding box gets `margin` pixels of context on every side (clamped to the
image) and is widened to `min_side` where the image allows, so tiny holes still fill the
network's downsampling stages with real pixels. Boxes that overlap merge into their union,
repeatedly, until no two overlap; so every hole pixel lies in exactly one box and each box holds
whole components only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import ndimage

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Box:
    """Half-open pixel rectangle: rows top..bottom-1, columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.bottom), slice(self.left, self.right)

    def overlaps(self, other: "Box") -> bool:
        return (self.top < other.bottom and other.top < self.bottom
                and self.left < other.right and other.left < self.right)

    def union(self, other: "Box") -> "Box":
        return Box(min(self.top, other.top), min(self.left, other.left),
                   max(self.bottom, other.bottom), max(self.right, other.right))

    @classmethod
    def bounding(cls, mask: np.ndarray) -> "Box | None":
        """The smallest box holding every non-zero pixel of a 2-D array (None when there is none)."""
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(mask.any(axis=0))
        return cls(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)

    def expanded(self, margin: int, height: int, width: int) -> "Box":
        """`margin` more on every side, clamped to an image of height x width."""
        return Box(max(0, self.top - margin), max(0, self.left - margin),
                   min(height, self.bottom + margin), min(width, self.right + margin))

    def at_least(self, min_side: int, height: int, width: int) -> "Box":
        """Widened around its centre to min_side per axis, shifted to stay inside the image."""
        top, bottom = _widen(self.top, self.bottom, min_side, height)
        left, right = _widen(self.left, self.right, min_side, width)
        return Box(top, left, bottom, right)


def _widen(start: int, stop: int, min_size: int, limit: int) -> tuple[int, int]:
    size = min(min_size, limit)
    if stop - start >= size:
        return start, stop
    start = max(0, min(start - (size - (stop - start)) // 2, limit - size))
    return start, start + size


def component_boxes(hole: np.ndarray) -> list[Box]:
    """Bounding box of every 8-connected component of a boolean hole array."""
    labels, _ = ndimage.label(hole, structure=EIGHT_NEIGHBOURS)
    return [Box(rows.start, cols.start, rows.stop, cols.stop) for rows, cols in ndimage.find_objects(labels)]


def merge_overlapping(boxes: Iterable[Box]) -> list[Box]:
    """Replace overlapping boxes by their union until none overlap (a fixed point), top-left first.

    Each incoming box absorbs every kept box it overlaps, again after each growth, so the kept
    boxes never overlap one another. The overlap test is vectorised: speckled masks on large
    images can give thousands of boxes.
    """
    kept = np.empty((0, 4), dtype=np.int64)  # rows of top, left, bottom, right
    for box in boxes:
        current = np.array([box.top, box.left, box.bottom, box.right], dtype=np.int64)
        while True:
            hit = ((kept[:, 0] < current[2]) & (current[0] < kept[:, 2])
                   & (kept[:, 1] < current[3]) & (current[1] < kept[:, 3]))
            if not hit.any():
                break
            absorbed = kept[hit]
            current = np.concatenate([np.minimum(current[:2], absorbed[:, :2].min(axis=0)),
                                      np.maximum(current[2:], absorbed[:, 2:].max(axis=0))])
            kept = kept[~hit]
        kept = np.vstack([kept, current])
    merged = [Box(*(int(v) for v in row)) for row in kept]
    return sorted(merged, key=lambda b: (b.top, b.left))


def plan_crops(hole: np.ndarray, margin: int, min_side: int) -> list[Box]:
    """The boxes to run the model on for a boolean hole of the whole image (empty hole: none)."""
    height, width = hole.shape
    boxes = [box.expanded(margin, height, width).at_least(min_side, height, width)
             for box in component_boxes(hole)]
    return merge_overlapping(boxes)
