"""In-hole metrics: known values, and SSIM against scikit-image's Wang et al. settings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lama_training.evaluation import (
    MetricAverages, gaussian_window, hole_metrics, masked_l1, masked_psnr, masked_ssim, ssim_map, ssim_whole,
)
from lama_training.evaluation.metrics import SSIM_K1


def pair(height: int = 32, width: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, height, width, generator=generator)
    mask = torch.zeros(2, 1, height, width)
    mask[0, :, 8:20, 10:30] = 1
    mask[1, :, 0:5, :] = 1
    return target, target.clone(), mask


def test_l1_and_psnr_count_only_hole_pixels():
    target, pred, mask = pair()
    pred = torch.where(mask.bool().expand_as(pred), target + 0.1, target + 0.5)  # outside the hole: ignored
    np.testing.assert_allclose(masked_l1(pred, target, mask).numpy(), [0.1, 0.1], rtol=1e-5)
    np.testing.assert_allclose(masked_psnr(pred, target, mask).numpy(), [20.0, 20.0], rtol=1e-5)  # MSE 0.01


def test_perfect_fill_scores_the_psnr_cap_and_ssim_one():
    target, pred, mask = pair()
    assert masked_psnr(pred, target, mask).tolist() == pytest.approx([100.0, 100.0])
    assert masked_ssim(pred, target, mask).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert masked_l1(pred, target, mask).tolist() == [0.0, 0.0]


def test_empty_masks_give_nan_and_are_left_out_of_averages():
    target, pred, mask = pair()
    mask[1] = 0
    metrics = hole_metrics(pred + 0.2, target, mask)
    assert all(math.isnan(float(values[1])) and not math.isnan(float(values[0])) for values in metrics.values())
    averages = MetricAverages()
    averages.update(metrics, ["thin", "thick"])
    result = averages.compute()
    assert result["l1_hole"] == pytest.approx(0.2, rel=1e-5)
    assert "thick/l1_hole" not in result and result["thin/l1_hole"] == pytest.approx(0.2, rel=1e-5)


def test_averages_are_means_over_images_overall_and_per_group():
    averages = MetricAverages()
    averages.update({"l1_hole": torch.tensor([0.1, 0.3])}, ["a", "b"])
    averages.update({"l1_hole": torch.tensor([0.5])}, ["a"])
    assert averages.compute() == pytest.approx({"l1_hole": 0.3, "a/l1_hole": 0.3, "b/l1_hole": 0.3})
    assert MetricAverages().compute() == {}


def test_ssim_of_constant_images_has_the_closed_form():
    a, b = 0.3, 0.6
    x, y = torch.full((1, 3, 24, 24), a), torch.full((1, 3, 24, 24), b)
    c1 = SSIM_K1 ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # no variance: the structure term is 1
    np.testing.assert_allclose(ssim_map(x, y).numpy(), expected, rtol=1e-6)


def test_gaussian_window_is_the_wang_et_al_window():
    window = gaussian_window()
    assert window.shape == (11,) and float(window.sum()) == pytest.approx(1.0)
    assert float(window[0] / window[5]) == pytest.approx(math.exp(-25 / (2 * 1.5 ** 2)))


def test_hole_ssim_ignores_differences_far_from_the_hole():
    target, pred, mask = pair(40, 40)
    mask = torch.zeros_like(mask)
    mask[:, :, 5:15, 5:15] = 1
    pred[:, :, 25:, 25:] = 0  # 10 px away from the hole: outside every hole pixel's 11 x 11 window
    assert masked_ssim(pred, target, mask).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    assert all(value < 0.99 for value in ssim_whole(pred, target).tolist())


def test_bad_shapes_are_clear_errors():
    target, pred, mask = pair()
    with pytest.raises(ValueError, match="mask must be"):
        masked_l1(pred, target, mask[:, :, :10])
    with pytest.raises(ValueError, match="both be"):
        masked_psnr(pred[:, :2], target, mask)
    with pytest.raises(ValueError, match="larger than"):
        ssim_map(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


@pytest.fixture(scope="module")
def photo_pairs():
    """Real photographs (scikit-image) and degraded versions: noise, blur, a shift."""
    skimage_data = pytest.importorskip("skimage.data")
    rng = np.random.default_rng(0)
    pairs = []
    for name in ("astronaut", "coffee"):
        image = getattr(skimage_data, name)()[100:196, 100:228].astype(np.float64) / 255.0
        noisy = np.clip(image + rng.normal(0, 0.08, image.shape), 0, 1)
        blurred = (image + np.roll(image, 1, 0) + np.roll(image, 1, 1) + np.roll(image, -1, 0)) / 4
        pairs += [(image, noisy), (image, blurred), (image, np.roll(image, 3, 1))]
    return pairs


def test_ssim_matches_scikit_image_with_the_wang_et_al_settings(photo_pairs):
    metrics = pytest.importorskip("skimage.metrics")
    for reference, degraded in photo_pairs:
        expected, expected_map = metrics.structural_similarity(
            reference, degraded, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
            channel_axis=-1, full=True)
        x = torch.from_numpy(degraded.transpose(2, 0, 1).copy())[None]
        y = torch.from_numpy(reference.transpose(2, 0, 1).copy())[None]
        assert float(ssim_whole(x, y)) == pytest.approx(expected, abs=1e-6)
        # the maps agree wherever the window stays inside the image (borders are padded differently)
        ours = ssim_map(x, y)[0].numpy().transpose(1, 2, 0)
        np.testing.assert_allclose(ours[5:-5, 5:-5], expected_map[5:-5, 5:-5], atol=1e-6)
