"""Seam matching (`lama_backend.engine.seams`) and the engine's mirror averaging."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch

from lama_backend.engine import InpaintEngine, InpaintError, InpaintOptions
from lama_backend.engine.seams import harmonic_offset, match_seams
from lama_backend.models import InpaintModel


def exact_harmonic(values: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Direct sparse solve of the 4-neighbour Laplace equation on `hole` (C x H x W values fixed
    elsewhere); neighbours outside the image are left out, i.e. a mirror border."""
    height, width = hole.shape
    index = -np.ones(hole.shape, int)
    ys, xs = np.nonzero(hole)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, data = [], [], []
    rhs = np.zeros((len(ys), values.shape[0]))
    for k, (y, x) in enumerate(zip(ys, xs)):
        neighbours = 0
        for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= yy < height and 0 <= xx < width:
                neighbours += 1
                if hole[yy, xx]:
                    rows.append(k), cols.append(index[yy, xx]), data.append(-1.0)
                else:
                    rhs[k] += values[:, yy, xx]
        rows.append(k), cols.append(k), data.append(float(neighbours))
    matrix = sparse.csc_matrix((data, (rows, cols)), shape=(len(ys), len(ys)))
    out = values.copy()
    out[:, ys, xs] = sparse_linalg.splu(matrix).solve(rhs).T
    return out


def blob_holes() -> list[np.ndarray]:
    """Shapes that matter: a thin stroke, a large box reaching the image border, a ring with an
    island of known pixels, odd sizes (coarse grids with an odd leftover row/column)."""
    stroke = np.zeros((61, 83), bool)
    for x in range(5, 78):
        y = int(30 + 20 * np.sin(x / 9))
        stroke[y - 2:y + 2, x] = True
    box = np.zeros((97, 71), bool)
    box[20:97, 0:50] = True
    ring = np.zeros((80, 80), bool)
    yy, xx = np.mgrid[:80, :80]
    radius = np.hypot(yy - 40, xx - 40)
    ring[(radius > 8) & (radius < 33)] = True
    return [stroke, box, ring]


@pytest.mark.parametrize("hole", blob_holes(), ids=["stroke", "box-at-border", "ring"])
def test_offset_matches_an_exact_sparse_solve(hole: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    height, width = hole.shape
    # a smooth colour mismatch plus per-pixel noise: rougher than any real fill's border error
    values = (0.2 * np.sin(np.arange(width) / 7)[None, None] + 0.1 * np.cos(np.arange(height) / 5)[None, :, None]
              + 0.03 * rng.normal(size=(3, height, width)))
    exact = exact_harmonic(values, hole)
    got = harmonic_offset(torch.from_numpy(values).float()[None], torch.from_numpy(hole)[None, None])[0].numpy()
    # iterative (multigrid) solve in float32: far below one 8-bit step (0.0039) is what matters
    assert np.abs(got - exact).max() < 1e-3
    assert np.array_equal(got[:, ~hole], values[:, ~hole].astype(np.float32)), "known pixels are the boundary"


def test_a_constant_fill_becomes_the_harmonic_continuation_of_the_surroundings() -> None:
    # A linear ramp is harmonic, so a constant (wrong) fill shifted to meet it must become the ramp.
    height, width = 48, 64
    ramp = np.broadcast_to(np.linspace(0.1, 0.9, width, dtype=np.float32)[None, :, None], (height, width, 3)).copy()
    hole = np.zeros((height, width), bool)
    hole[10:40, 15:50] = True
    fill = np.full_like(ramp, 0.5)
    given = fill.copy()
    matched = match_seams(given, ramp, hole)
    assert matched is given, "the prediction is shifted in place"
    assert np.abs(matched[hole] - ramp[hole]).max() < 1e-3
    assert np.array_equal(matched[~hole], fill[~hole]), "outside the hole the prediction is not touched"


def test_detail_inside_the_hole_survives_only_the_border_shifts() -> None:
    rng = np.random.default_rng(1)
    original = np.full((40, 40, 3), 0.3, np.float32)
    hole = np.zeros((40, 40), bool)
    hole[5:35, 5:35] = True
    fill = np.full((40, 40, 3), 0.6, np.float32)
    fill[hole] += 0.05 * rng.standard_normal((int(hole.sum()), 3)).astype(np.float32)
    matched = match_seams(fill.copy(), original, hole)
    # the mismatch is -0.3 all round the border, so the offset is -0.3 everywhere in the hole and
    # the fill's texture comes through unchanged
    assert np.abs(matched[hole] - (fill[hole] - 0.3)).max() < 1e-3


def test_a_hole_covering_everything_is_left_alone() -> None:
    fill = np.random.default_rng(2).random((16, 16, 3), dtype=np.float32)
    assert np.array_equal(match_seams(fill.copy(), np.zeros_like(fill), np.ones((16, 16), bool)), fill)


class ConstantModel(InpaintModel):
    def __init__(self, value: float) -> None:
        super().__init__(None, "constant", torch.device("cpu"))
        self.value = value

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.full_like(image, self.value)


class RampModel(InpaintModel):
    """Predicts 0 at the left edge rising to 1 at the right: its left-right mirror averages to 0.5."""

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        width = image.shape[-1]
        return torch.linspace(0, 1, width).expand_as(image).clone()


def test_engine_output_is_seamless_by_default_and_raw_on_request() -> None:
    image = np.full((64, 64, 3), 60, np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:44] = 1
    engine = InpaintEngine(ConstantModel(0.8))
    seamless = engine.inpaint(image, mask)
    raw = engine.inpaint(image, mask, InpaintOptions(seamless=False))
    assert (seamless == 60).all(), "a flat surrounding gives a flat fill"
    assert (raw[mask != 0] == 204).all() and (raw[mask == 0] == 60).all()


def test_mirror_average_runs_the_flipped_inputs_and_averages() -> None:
    image = np.zeros((32, 40, 3), np.uint8)
    mask = np.ones((32, 40), np.uint8)  # all hole: no seam to match, so the average is visible
    model = RampModel(None, "ramp", torch.device("cpu"))
    single = InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole"))
    assert single[0, 0, 0] == 0 and single[0, -1, 0] == 255
    model.mirror_average = 2
    averaged = InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole"))
    assert (averaged == 128).all()
    model.mirror_average = 3
    with pytest.raises(InpaintError, match="mirror_average"):
        InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole"))


def test_seamless_must_be_a_bool() -> None:
    with pytest.raises(InpaintError, match="seamless"):
        InpaintOptions(seamless=1)  # type: ignore[arg-type]


def test_a_hole_filling_its_whole_crop_still_meets_the_pixels_around_the_crop() -> None:
    # margin 0: the crop is the hole's bounding box, all hole; the known ring lies just outside it
    image = np.full((100, 100, 3), 60, np.uint8)
    mask = np.zeros((100, 100), np.uint8)
    mask[30:70, 25:75] = 1
    out = InpaintEngine(ConstantModel(0.8)).inpaint(image, mask, InpaintOptions(margin=0))
    assert (out == 60).all()
    raw = InpaintEngine(ConstantModel(0.8)).inpaint(image, mask, InpaintOptions(margin=0, seamless=False))
    assert (raw[mask != 0] == 204).all()
