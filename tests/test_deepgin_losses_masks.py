"""DeepGIN losses on tiny known tensors, the AIM mask generators, and sub-image inference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lama_training.deepgin import losses
from lama_training.deepgin.masks import (AIMMaskConfig, cellular_automata_mask, free_form_mask, rectangle_mask,
                                         three_masks)
from lama_training.deepgin.subimage import merge, split, stride_for


def test_hole_valid_l1_by_hand() -> None:
    prediction = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    target = torch.zeros(1, 1, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    # holes: |1| + |0.5| = 1.5 ; known: 0 + 0.5 = 0.5 ; means over 4 elements
    assert float(losses.hole_valid_l1(prediction, target, mask, hole_weight=5)) == pytest.approx(5 * 1.5 / 4 + 0.5 / 4)


def test_multiscale_reconstruction_sums_three_terms() -> None:
    target = torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    ones = torch.ones(1, 3, 8, 8)
    # with no holes each term is the plain mean error: 1 (coarse) + 0 (output) + 2 (low res)
    value = losses.multiscale_reconstruction_loss(ones, target, torch.full((1, 3, 2, 2), 2.0), target, mask, 5)
    assert float(value) == pytest.approx(3.0)


def test_hinge_losses_by_hand() -> None:
    real, fake = [torch.tensor([2.0, 0.5])], [torch.tensor([-2.0, 0.0])]
    # D: mean(relu(1 - real)) = (0 + 0.5)/2 ; mean(relu(1 + fake)) = (0 + 1)/2
    assert float(losses.hinge_discriminator_loss(real, fake)) == pytest.approx(0.25 + 0.5)
    assert float(losses.hinge_generator_loss(fake)) == pytest.approx(1.0)


def test_gram_style_and_perceptual_by_hand() -> None:
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # N=1, C=2, H=1, W=2
    gram = losses.gram_matrix(features)
    assert torch.allclose(gram, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4)
    zeros = torch.zeros_like(features)
    assert float(losses.style_loss([features], [zeros])) == pytest.approx(float(gram.abs().mean()))
    assert float(losses.perceptual_loss([features], [zeros])) == pytest.approx(2.5)


def test_total_variation_by_hand() -> None:
    image = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # vertical differences 0; horizontal |1 - 0| for both rows
    assert float(losses.total_variation_loss(image)) == pytest.approx(1.0)


def test_rectangle_covers_30_to_70_percent_of_each_side() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = rectangle_mask(100, 200, rng)
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        assert 29 <= len(rows) <= 71 and 59 <= len(cols) <= 141


def test_mask_generators_are_deterministic_and_binary() -> None:
    for make in (rectangle_mask, free_form_mask, cellular_automata_mask):
        a = make(64, 80, np.random.default_rng(5))
        b = make(64, 80, np.random.default_rng(5))
        assert a.shape == (64, 80) and a.dtype == np.float32
        assert np.array_equal(a, b) and set(np.unique(a)) <= {0.0, 1.0}


def test_cellular_automata_coverage_distribution() -> None:
    rng = np.random.default_rng(0)
    coverage = np.array([cellular_automata_mask(256, 256, rng).mean() for _ in range(300)])
    p10, p50, p90 = np.percentile(coverage, [10, 50, 90])
    print(f"cellular-automata coverage over 300 masks: mean {coverage.mean():.3f}, "
          f"p10 {p10:.3f}, p50 {p50:.3f}, p90 {p90:.3f}")
    assert 0.05 < p10 < p50 < p90 < 0.6  # large irregular holes, never the whole image
    denser = AIMMaskConfig(ca_fill=0.55)
    assert np.mean([cellular_automata_mask(256, 256, rng, denser).mean() for _ in range(100)]) > coverage.mean()


def test_three_masks_per_image() -> None:
    masks = three_masks(64, 64, np.random.default_rng(0))
    assert masks.shape == (3, 64, 64) and (masks.reshape(3, -1).max(axis=1) == 1).all()


@pytest.mark.parametrize("height, width", [(256, 256), (512, 512), (300, 517), (37, 1000)])
def test_subimage_split_merge_round_trip_is_exact(height: int, width: int) -> None:
    image = torch.rand(2, 3, height, width)
    stride = stride_for(height, width)
    parts = split(image, stride)
    assert parts.shape == (2 * stride * stride, 3, 256, 256)
    assert torch.equal(merge(parts, stride, height, width), image)


def test_subimages_are_strided_samples() -> None:
    image = torch.arange(512 * 512, dtype=torch.float32).reshape(1, 1, 512, 512)
    parts = split(image, 2)
    assert torch.equal(parts[1, 0], image[0, 0, 0::2, 1::2])  # sub-image (0, 1)
    assert torch.equal(parts[2, 0], image[0, 0, 1::2, 0::2])  # sub-image (1, 0)
