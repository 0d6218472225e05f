"""Losses on tiny tensors whose values are known by hand."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lama_training.losses import (LossConfig, discriminator_adversarial_loss, feature_matching_loss,
                                  generator_adversarial_loss, masked_l1_loss, r1_penalty, resize_mask)


def test_masked_l1_weights_known_and_missing_pixels_and_averages_over_all_pixels() -> None:
    pred = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])  # holes at 1 and 4
    # known pixels 2 and 3 count with weight 10, holes with 0; mean over all 4 pixels
    assert float(masked_l1_loss(pred, target, mask, 10, 0)) == pytest.approx((2 + 3) * 10 / 4)
    assert float(masked_l1_loss(pred, target, mask, 10, 1)) == pytest.approx(((2 + 3) * 10 + 1 + 4) / 4)


def test_generator_adversarial_loss_is_softplus_of_negated_logits() -> None:
    logits = torch.tensor([[[[0.0, math.log(3.0)]]]])
    # softplus(0) = log 2, softplus(-log 3) = log(1 + 1/3)
    assert float(generator_adversarial_loss(logits)) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_known_region_of_a_fake_counts_as_real() -> None:
    real = torch.zeros(1, 1, 2, 2)
    fake = torch.tensor([[[[1.0, -1.0], [2.0, 0.5]]]])
    no_hole = torch.zeros(1, 1, 4, 4)
    full_hole = torch.ones(1, 1, 4, 4)
    base = F.softplus(-real).mean()
    assert torch.allclose(discriminator_adversarial_loss(real, fake, no_hole), base + F.softplus(-fake).mean())
    assert torch.allclose(discriminator_adversarial_loss(real, fake, full_hole), base + F.softplus(fake).mean())
    assert torch.allclose(discriminator_adversarial_loss(real, fake, no_hole, mask_as_fake_target=False),
                          base + F.softplus(fake).mean())
    left_hole = torch.zeros(1, 1, 4, 4)
    left_hole[..., :2] = 1  # after nearest resizing: left column of the 2x2 logits is hole
    expected = base + (F.softplus(fake[..., :1]).sum() + F.softplus(-fake[..., 1:]).sum()) / 4
    assert torch.allclose(discriminator_adversarial_loss(real, fake, left_hole), expected)


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm() -> None:
    torch.manual_seed(0)
    weight = torch.randn(3, 4, 4, requires_grad=True)
    real = torch.rand(5, 3, 4, 4).requires_grad_()
    logits = (real * weight).sum(dim=(1, 2, 3)).view(5, 1, 1, 1)  # D(x) = <w, x>, so grad_x D = w
    penalty = r1_penalty(logits, real)
    assert float(penalty.detach()) == pytest.approx(float(weight.detach().pow(2).sum()), rel=1e-6)
    # the penalty keeps its graph: d penalty / d w = 2 w
    penalty.backward()
    assert torch.allclose(weight.grad, 2 * weight.detach())


def test_r1_sums_over_logit_map_and_averages_over_batch() -> None:
    real = torch.ones(2, 1, 2, 2).requires_grad_()
    scale = torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    logits = real * scale  # per-pixel logits: grad of the sum is `scale` at each of 4 pixels
    assert float(r1_penalty(logits, real)) == pytest.approx((4 * 1 + 4 * 9) / 2)


def test_feature_matching_is_the_mean_over_layers_of_mse() -> None:
    fake = [torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]
    real = [torch.zeros(1, 2, 2, 2), torch.full((1, 1, 1, 1), 3.0)]
    assert float(feature_matching_loss(fake, real)) == pytest.approx((1 + 9) / 2)
    with pytest.raises(ValueError):
        feature_matching_loss(fake, real[:1])


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_resize_mask_modes(mode: str) -> None:
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1
    small = resize_mask(mask, (4, 4), mode)
    assert small.shape == (1, 1, 4, 4)
    assert float(small.min()) >= 0 and float(small.max()) <= 1
    assert torch.equal(small[..., :2], torch.ones(1, 1, 4, 2)) and torch.equal(small[..., 2:], torch.zeros(1, 1, 4, 2))
    odd = resize_mask(mask, (3, 3), mode)
    if mode == "nearest":
        assert set(odd.unique().tolist()) <= {0.0, 1.0}
    else:
        assert 0 < float(odd[0, 0, 0, 1]) < 1  # the middle column straddles the edge: a soft weight


def test_bad_options_fail_loudly() -> None:
    with pytest.raises(ValueError, match="mask interpolation"):
        resize_mask(torch.zeros(1, 1, 4, 4), (2, 2), "area")
    with pytest.raises(ValueError, match="mask_interpolation"):
        LossConfig(mask_interpolation="area")
    with pytest.raises(ValueError, match="r1_weight"):
        LossConfig(r1_weight=-1)


def test_defaults_are_big_lama() -> None:
    config = LossConfig()
    assert (config.l1_weight_known, config.l1_weight_missing, config.perceptual_weight, config.adversarial_weight,
            config.r1_weight, config.feature_matching_weight) == (10, 0, 30, 10, 0.001, 100)
    assert config.mask_as_fake_target and config.mask_interpolation == "nearest"
