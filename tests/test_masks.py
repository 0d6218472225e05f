"""Mask configs, generators, seeding and the width/coverage measures."""
from __future__ import annotations

import numpy as np
import pytest

from lama_training.masks import (
    EVAL_POLICY_KINDS, MASK_POLICIES, BoxMaskConfig, IrregularMaskConfig, MaskConfig, MaskGenerator,
    eval_policy_name, get_mask_policy, mask_coverage, mask_width, sample_box_mask, sample_irregular_mask,
    stream_seed,
)


def test_default_mask_config_is_the_big_lama_policy():
    assert MaskConfig() == get_mask_policy("big-lama")


def test_get_mask_policy_returns_an_independent_copy():
    policy = get_mask_policy("thin-256")
    policy.irregular.max_width = 99
    assert get_mask_policy("thin-256").irregular.max_width == 10


def test_unknown_policy_names_the_known_ones():
    with pytest.raises(ValueError, match="thick-512"):
        get_mask_policy("huge")


@pytest.mark.parametrize("kind", EVAL_POLICY_KINDS)
def test_eval_policy_name_picks_the_nearer_size(kind):
    assert eval_policy_name(kind, 256) == f"{kind}-256"
    assert eval_policy_name(kind, 512) == f"{kind}-512"
    assert eval_policy_name(kind, 300) == f"{kind}-256"
    with pytest.raises(ValueError):
        eval_policy_name("fat", 256)


def test_nested_dicts_become_dataclasses():
    config = MaskConfig(irregular_proba=1, irregular={"max_width": 7}, box_proba=0, box={"margin": 3})
    assert config.irregular == IrregularMaskConfig(max_width=7)
    assert config.box.margin == 3
    assert MaskConfig(**config.to_dict()) == config


@pytest.mark.parametrize("bad", [
    dict(irregular_proba=0, box_proba=0),
    dict(irregular_proba=-1),
    dict(irregular={"max_len": 0}),
    dict(irregular={"min_times": 5, "max_times": 2}),
    dict(box={"bbox_min_size": 50, "bbox_max_size": 40}),
    dict(box={"margin": -1}),
    dict(box={"min_times": 3, "max_times": 1}),
])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        MaskConfig(**bad)


def test_from_official_rejects_unsupported_kinds_and_unknown_keys():
    with pytest.raises(ValueError, match="segm_proba"):
        MaskConfig.from_official({"irregular_proba": 1, "segm_proba": 0.5})
    with pytest.raises(ValueError, match="bogus"):
        MaskConfig.from_official({"irregular_proba": 1, "bogus": 1})


def test_irregular_sampler_draws_up_to_one_more_stroke_than_max_times():
    # min_times = max_times = 0: the official sampler draws 0 or 1 stroke, so some masks are empty
    config = IrregularMaskConfig(max_len=20, max_width=5, min_times=0, max_times=0)
    rng = np.random.default_rng(3)
    empty = [not sample_irregular_mask(64, 64, config, rng).any() for _ in range(400)]
    assert 0.4 < np.mean(empty) < 0.6  # 400 fair coin flips: +-0.1 is 4 standard errors


def test_irregular_strokes_are_at_least_as_wide_as_the_smallest_brush():
    # one stroke, one brush width of exactly 5 px (max_width 1): the stroke is 5 to 7 px across
    config = IrregularMaskConfig(max_angle=1, max_len=1, max_width=1, min_times=1, max_times=0)
    mask = sample_irregular_mask(128, 128, config, np.random.default_rng(1))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    assert 2 <= mask_width(mask) <= 4


def test_a_single_box_respects_margin_and_size_limits():
    config = BoxMaskConfig(margin=10, bbox_min_size=30, bbox_max_size=40, min_times=1, max_times=1)
    rng = np.random.default_rng(0)
    for _ in range(200):
        mask = sample_box_mask(100, 120, config, rng)
        rows, cols = np.nonzero(mask)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 30 <= height <= 40 and 30 <= width <= 40
        assert height * width == mask.sum()  # one filled rectangle
        assert rows.min() >= 10 and cols.min() >= 10 and rows.max() < 90 and cols.max() < 110


def test_box_sides_reach_both_ends_of_their_range():
    config = BoxMaskConfig(margin=0, bbox_min_size=3, bbox_max_size=5, min_times=1, max_times=1)
    rng = np.random.default_rng(0)
    sides = {int(np.count_nonzero(sample_box_mask(32, 32, config, rng).any(axis=0))) for _ in range(300)}
    assert sides == {3, 4, 5}


def test_box_too_large_for_the_image_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot hold"):
        sample_box_mask(40, 40, BoxMaskConfig(margin=10, bbox_min_size=30), np.random.default_rng(0))


def test_mixture_follows_the_normalised_probabilities():
    generator = MaskGenerator(get_mask_policy("thick-256"), seed=0)  # irregular 1, box 0.3
    kinds = [generator.sample_kind() for _ in range(4000)]
    # expected box share 0.3 / 1.3 = 0.2308; standard error 0.0067, tolerance 3 of them
    assert abs(kinds.count("box") / 4000 - 0.3 / 1.3) < 0.02
    thin = MaskGenerator(get_mask_policy("thin-256"), seed=0)
    assert {thin.sample_kind() for _ in range(100)} == {"irregular"}


def test_same_seed_same_masks_and_reseed_restarts_the_stream():
    a = MaskGenerator(MaskConfig(), seed=7)
    b = MaskGenerator(MaskConfig(), seed=7)
    first = [a(64, 96) for _ in range(5)]
    assert all(np.array_equal(x, b(64, 96)) for x in first)
    a.reseed(7)
    assert np.array_equal(a(64, 96), first[0])
    c = MaskGenerator(MaskConfig(), seed=8)
    assert not all(np.array_equal(x, c(64, 96)) for x in first)


def test_generator_output_is_float_zero_one_of_the_asked_shape():
    mask = MaskGenerator(MaskConfig(), seed=0)(80, 120)
    assert mask.shape == (80, 120) and mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}


def test_stream_seeds_differ_by_rank_and_worker_and_repeat():
    def draw(*key):
        return np.random.default_rng(stream_seed(*key)).integers(1 << 30, size=4).tolist()

    keys = [(5, 0, 0), (5, 0, 1), (5, 1, 0), (5, 1, 1), (6, 0, 0)]
    assert len({tuple(draw(*k)) for k in keys}) == len(keys)
    assert draw(5, 1, 1) == draw(5, 1, 1)
    with pytest.raises(ValueError):
        stream_seed(-1)


@pytest.mark.parametrize("name", sorted(MASK_POLICIES))
def test_every_policy_draws_at_its_size(name):
    size = 512 if name.endswith("512") else 256
    generator = MaskGenerator(get_mask_policy(name), seed=1)
    coverage = [mask_coverage(generator(size, size)) for _ in range(30)]
    assert 0 < np.mean(coverage) < 0.8


def test_512_policies_are_wider_than_their_256_versions():
    for kind in EVAL_POLICY_KINDS:
        widths = {}
        for size in (256, 512):
            generator = MaskGenerator(get_mask_policy(f"{kind}-{size}"), seed=2)
            widths[size] = np.mean([mask_width(generator(size, size)) for _ in range(100)])
        assert widths[512] > 1.3 * widths[256], (kind, widths)


def test_width_and_coverage_of_known_masks():
    stripe = np.zeros((10, 10), np.uint8)
    stripe[4:7] = 1  # rows at distance 1, 2, 1 from the known rows
    assert mask_width(stripe) == pytest.approx(4 / 3)
    assert mask_coverage(stripe) == pytest.approx(0.3)
    edge = np.zeros((10, 10), np.uint8)
    edge[:2] = 1  # the border is not known: distances 2 and 1
    assert mask_width(edge) == pytest.approx(1.5)
    assert mask_width(np.zeros((4, 4))) == 0.0
    assert mask_width(np.ones((4, 4))) == float("inf")


def test_scaled_policy_scales_lengths_widths_and_boxes_only():
    from lama_training.masks import get_mask_policy, scaled_policy

    thin = get_mask_policy("medium-256")
    half = scaled_policy(thin, 0.5)
    assert (half.irregular.max_len, half.irregular.max_width) == (50, 25)
    assert (half.box.bbox_min_size, half.box.bbox_max_size, half.box.margin) == (5, 25, 0)
    assert (half.irregular.min_times, half.irregular.max_times, half.box_proba) == (4, 5, 0.3)
    assert scaled_policy(get_mask_policy("thin-256"), 0.01).irregular.max_width == 1  # never below 1 px


def test_mask_mixture_parsing_and_errors():
    from lama_training.masks import parse_mask_mixture

    assert parse_mask_mixture("", 256) == []
    mixture = parse_mask_mixture("thin-256:0.3, medium-512:0.2", 128)
    assert [p for p, _ in mixture] == [0.3, 0.2]
    assert mixture[0][1].irregular.max_width == 5 and mixture[1][1].irregular.max_width == 25  # 10/2, 100/4
    for bad, message in (("thin-256", "POLICY:PROBABILITY"), ("thin-256:x", "not a probability"),
                         ("thin-256:0", r"\(0, 1\]"), ("thin-256:0.7,medium-256:0.5", "more than 1"),
                         ("wires:0.3", "unknown mask policy")):
        with pytest.raises(ValueError, match=message):
            parse_mask_mixture(bad, 256)
