"""High-resolution refinement on small sizes (a small `min_side` gives a 3-level pyramid)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lama_backend.engine import Cancelled, InpaintEngine, InpaintError, InpaintOptions
from lama_backend.models import GeneratorModel
from lama_backend.refinement import (RefineConfig, RefinementCancelled, Refiner, ellipse_element, erode,
                                     mask_down, pyramid_scales)
from tests.test_acceleration import small_generator


@pytest.fixture(autouse=True)
def one_thread():
    """Many small ops: on a shared 2-core machine one thread is both faster and steadier."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def smooth_image(size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, size // 8, size // 8, generator=generator)
    return torch.nn.functional.interpolate(noise, size=(size, size), mode="bilinear", align_corners=False)


def wide_hole(size: int) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size)
    mask[..., size // 5: size * 3 // 4, size // 4: size * 4 // 5] = 1
    return mask


def test_pyramid_levels_follow_the_official_rule():
    assert pyramid_scales(1536, 1536, 512, 3) == 3   # 1 + round(log2 3) = 3
    assert pyramid_scales(1000, 2000, 512, 3) == 2   # 1 + round(0.97)
    assert pyramid_scales(600, 600, 512, 3) == 1
    assert pyramid_scales(4096, 4096, 512, 3) == 3   # capped by max_scales
    assert pyramid_scales(300, 300, 512, 3) == 1


def test_ellipse_and_erosion():
    element = ellipse_element(15)
    assert element.shape == (15, 15)
    assert torch.equal(element, element.flip(0)) and torch.equal(element, element.flip(1))
    assert element[7].sum() == 15 and element[0].sum() == 1 and element[0, 0] == 0
    mask = torch.zeros(1, 1, 40, 40)
    mask[..., 10:30, 10:30] = 1
    eroded = erode(mask, element)
    assert eroded[..., 17:23, 17:23].all() and eroded.sum() == 36  # 20 - 2 * 7 = 6 a side
    touching = torch.zeros(1, 1, 40, 40)
    touching[..., 0:20, 0:20] = 1
    assert erode(touching, element)[0, 0, 0, 0] == 1  # the image border does not erode


def test_mask_downscaling_rounding():
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 0:3, 0:3] = 1
    up = mask_down(mask, blur=False, round_up=True)
    down = mask_down(mask, blur=False, round_up=False)
    assert up.shape == (1, 1, 4, 4)
    assert up[..., :2, :2].all() and down[0, 0, 0, 0] == 1 and down[0, 0, 1, 1] == 0


def test_refinement_changes_the_fill_and_lowers_known_pixel_l1():
    generator = small_generator(seed=3).requires_grad_(False)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    image, mask = smooth_image(96), wide_hole(96)
    steps = []
    config = RefineConfig(min_side=24, n_iters=6, lr=0.01)
    refined = Refiner(generator, config).refine(image, mask, progress=lambda f, s: steps.append((f, s)))
    with torch.no_grad():
        plain = generator(torch.cat([image * (1 - mask), mask], dim=1))
    known = (mask < 0.5).expand(-1, 3, -1, -1)
    assert refined.shape == image.shape and 0 <= refined.min() and refined.max() <= 1
    assert (refined - plain).abs().max() > 1e-4
    assert (refined[known] - image[known]).abs().mean() < (plain[known] - image[known]).abs().mean()
    # progress: 1 pass at the coarsest level, then n_iters steps at each of the 2 finer levels
    fractions = [f for f, _ in steps]
    assert len(steps) == 1 + 2 * config.n_iters and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "scale 3/3 step 6/6" in steps[-1][1]
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())


def test_single_level_refinement_is_the_plain_pass():
    generator = small_generator(seed=4).requires_grad_(False)
    image, mask = smooth_image(64, seed=1), wide_hole(64)
    refined = Refiner(generator, RefineConfig(min_side=512)).refine(image, mask)
    with torch.no_grad():
        plain = generator(torch.cat([image * (1 - mask), mask], dim=1))
    assert (refined - plain).abs().max() < 1e-5


def test_refinement_over_budget_runs_smaller_and_upscales():
    generator = small_generator(seed=5).requires_grad_(False)
    image, mask = smooth_image(96, seed=2), wide_hole(96)
    refined = Refiner(generator, RefineConfig(min_side=32, n_iters=2)).refine(image, mask, max_pixels=48 * 48)
    assert refined.shape == image.shape


def test_refinement_cancels_between_steps():
    generator = small_generator(seed=6).requires_grad_(False)
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(RefinementCancelled):
        Refiner(generator, RefineConfig(min_side=24, n_iters=5)).refine(smooth_image(96), wide_hole(96),
                                                                        cancelled=cancelled)


def test_refinement_rejects_bad_input():
    refiner = Refiner(small_generator(seed=7))
    with pytest.raises(ValueError, match="1 x 3 x H x W"):
        refiner.refine(torch.zeros(1, 4, 32, 32), torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="mask"):
        refiner.refine(torch.zeros(1, 3, 32, 32), torch.zeros(1, 1, 16, 32))
    with pytest.raises(ValueError):
        RefineConfig(n_iters=0)


def test_engine_quality_refine_end_to_end():
    model = GeneratorModel(small_generator(seed=8), "tiny", "test", torch.device("cpu"))
    engine = InpaintEngine(model)
    rng = np.random.default_rng(0)
    image = (rng.random((64, 80, 3)) * 255).astype(np.uint8)
    mask = np.zeros((64, 80), np.uint8)
    mask[20:40, 30:60] = 255
    stages = []
    fast = engine.inpaint(image, mask, InpaintOptions(strategy="whole"))
    refined = engine.inpaint(image, mask, InpaintOptions(strategy="whole", quality="refine"),
                             progress=lambda f, s: stages.append(s))
    outside = mask == 0
    assert np.array_equal(refined[outside], image[outside]) and np.array_equal(fast[outside], image[outside])
    assert any("refine" in s for s in stages)
    with pytest.raises(Cancelled):
        engine.inpaint(image, mask, InpaintOptions(quality="refine"), cancelled=lambda: True)
    with pytest.raises(InpaintError, match="quality"):
        InpaintOptions(quality="best")


def test_generator_model_fast_path_and_memory_budget():
    generator = small_generator(seed=9)
    model = GeneratorModel(generator, "tiny", "test", torch.device("cpu"), precision="fp32", max_memory="1G")
    assert model.fast is not None and model.precision == "fp32"
    image = smooth_image(64, seed=3)
    mask = wide_hole(64)
    with torch.no_grad():
        want = generator(torch.cat([image * (1 - mask), mask], dim=1))
    assert (model.predict(image, mask) - want).abs().max() < 1e-4
    model.max_memory = model.fast.estimate_peak_bytes(1, 64, 64, 2)  # forces tiling
    assert model.fast.choose_tile(1, 64, 64, model.max_memory) is not None
    assert (model.predict(image, mask) - want).abs().max() < 1e-4
    model.max_memory = 1000
    with pytest.raises(InpaintError, match="memory budget"):
        InpaintEngine(model).inpaint((image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8),
                                     (mask[0, 0].numpy() * 255).astype(np.uint8), InpaintOptions(strategy="whole"))
