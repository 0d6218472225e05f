"""Properties that must hold for every input: pixels outside the hole never change, crops cover
every hole pixel exactly once. Checked with hypothesis over dtypes, shapes, masks and options."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lama_backend.engine import InpaintEngine, InpaintOptions
from lama_backend.engine.crops import Box, merge_overlapping, plan_crops
from lama_backend.engine.engine import hole_weights
from lama_backend.models import InpaintModel


class NoiseModel(InpaintModel):
    """Predicts noise in -0.5 .. 1.5, so any write outside the hole, or a missed clip, shows."""

    def __init__(self) -> None:
        super().__init__(None, "noise test model", torch.device("cpu"))
        self.generator = torch.Generator().manual_seed(0)

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.rand(image.shape, generator=self.generator) * 2 - 0.5


IMAGE_DTYPES = [np.uint8, np.uint16, np.float32]


@st.composite
def images_and_masks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    height = draw(st.integers(1, 48))
    width = draw(st.integers(1, 48))
    channels = draw(st.sampled_from([3, 4]))
    dtype = draw(st.sampled_from(IMAGE_DTYPES))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if dtype is np.float32:
        # out-of-range, NaN and infinite values must come back bit for bit outside the hole
        image = (rng.random((height, width, channels), dtype=np.float32) * 3 - 1)
        specials = rng.random((height, width, channels)) < 0.05
        image[specials] = rng.choice(np.array([np.nan, np.inf, -np.inf, -0.0], np.float32), specials.sum())
    else:
        image = rng.integers(0, np.iinfo(dtype).max, (height, width, channels), endpoint=True).astype(dtype)
    mask_dtype = draw(st.sampled_from([np.bool_, np.uint8, np.uint16, np.float32]))
    density = draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]))
    hole = rng.random((height, width)) < density
    if mask_dtype is np.bool_:
        mask = hole
    elif mask_dtype is np.float32:
        mask = np.where(hole, rng.random((height, width)) * 1.5 - 0.2, 0).astype(np.float32)
    else:
        mask = np.where(hole, rng.integers(1, np.iinfo(mask_dtype).max, (height, width), endpoint=True), 0)
        mask = mask.astype(mask_dtype)
    if draw(st.booleans()):
        mask = mask[..., None]
    return image, mask


options_strategy = st.builds(
    InpaintOptions,
    grow=st.integers(0, 6), feather=st.integers(0, 6), margin=st.integers(0, 40),
    strategy=st.sampled_from(["crop", "whole"]), soft_mask=st.booleans(), output=st.sampled_from(["composite", "layer"]),
)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(images_and_masks(), options_strategy)
def test_pixels_outside_the_grown_hole_never_change(case: tuple[np.ndarray, np.ndarray], options: InpaintOptions) -> None:
    image, mask = case
    before = image.copy()
    out = InpaintEngine(NoiseModel()).inpaint(image, mask, options)
    assert same_bits(image, before), "the input array is never modified"
    flat_mask = mask[..., 0] if mask.ndim == 3 else mask
    weight = hole_weights(flat_mask, options)
    kept = weight == 0
    if options.output == "composite":
        assert same_bits(out[kept], image[kept])
        assert same_bits(out[..., 3:], image[..., 3:]), "alpha is carried through untouched"
        if np.issubdtype(image.dtype, np.integer):
            assert out.dtype == image.dtype
    else:
        assert out.shape == image.shape[:2] + (4,) and out.dtype == image.dtype
        assert not out[kept].any(), "a layer is exactly 0 outside the hole"
    if not options.grow:
        # without grow the hole is exactly the mask's (non-zero, or > 0 for soft float masks)
        expected_hole = (flat_mask > 0) if options.soft_mask and flat_mask.dtype == np.float32 else (flat_mask != 0)
        assert np.array_equal(~kept, expected_hole)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 25), st.integers(1, 25)),
                max_size=25))
def test_merged_boxes_do_not_overlap_and_each_holds_whole_input_boxes(raw: list[tuple[int, int, int, int]]) -> None:
    boxes = [Box(top, left, top + h, left + w) for top, left, h, w in raw]
    merged = merge_overlapping(boxes)
    for i, a in enumerate(merged):
        for b in merged[i + 1:]:
            assert not a.overlaps(b)
    for box in boxes:
        holders = [m for m in merged if m.top <= box.top and m.left <= box.left
                   and box.bottom <= m.bottom and box.right <= m.right]
        assert len(holders) == 1
    for m in merged:  # nothing invented: every merged box is the union of the inputs it holds
        inside = [b for b in boxes if m.top <= b.top and m.left <= b.left and b.bottom <= m.bottom and b.right <= m.right]
        union = inside[0]
        for b in inside[1:]:
            union = union.union(b)
        assert union == m


def test_a_chain_of_boxes_merges_to_one() -> None:
    # A and B are apart; C bridges them only after it has absorbed one of them.
    boxes = [Box(0, 0, 10, 10), Box(0, 20, 10, 30), Box(0, 9, 10, 21), Box(50, 50, 60, 60)]
    assert merge_overlapping(boxes) == [Box(0, 0, 10, 30), Box(50, 50, 60, 60)]


def test_touching_boxes_do_not_merge() -> None:
    assert len(merge_overlapping([Box(0, 0, 10, 10), Box(0, 10, 10, 20)])) == 2


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(0, 30), st.integers(0, 40))
def test_crops_cover_every_hole_pixel_exactly_once_inside_the_image(seed: int, margin: int, min_side: int) -> None:
    rng = np.random.default_rng(seed)
    height, width = rng.integers(1, 80, 2)
    hole = rng.random((height, width)) < rng.choice([0.001, 0.01, 0.05])
    boxes = plan_crops(hole, margin, min_side)
    coverage = np.zeros(hole.shape, int)
    for box in boxes:
        assert 0 <= box.top < box.bottom <= height and 0 <= box.left < box.right <= width
        assert box.height >= min(min_side, height) and box.width >= min(min_side, width)
        coverage[box.slices] += 1
    assert (coverage[hole] == 1).all()
    if not hole.any():
        assert boxes == []


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_bounding_box_is_the_tightest_box_around_the_non_zero_pixels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((int(rng.integers(1, 20)), int(rng.integers(1, 20)))) < rng.choice([0.0, 0.02, 0.3])
    box = Box.bounding(mask)
    if not mask.any():
        assert box is None
        return
    assert mask[box.slices].sum() == mask.sum()
    inside = mask[box.slices]
    assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
