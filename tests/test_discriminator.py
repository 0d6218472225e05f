"""The PatchGAN discriminator reproduces the official one key for key and returns its activations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lama_training.modules.discriminator import DiscriminatorConfig, make_discriminator
from test_generator_conformance import describe_state, read_reference_keys


def test_state_dict_matches_official(reference_dir: Path) -> None:
    discriminator = make_discriminator(DiscriminatorConfig())
    expected = read_reference_keys(reference_dir / "nlayer_discriminator.tsv", "discriminator.")
    assert describe_state(discriminator) == expected
    assert list(describe_state(discriminator)) == list(expected)
    params = json.loads((reference_dir / "summary.json").read_text())["nlayer_discriminator"][1]
    assert sum(p.numel() for p in discriminator.parameters()) == params


def test_forward_returns_logits_and_every_intermediate_activation() -> None:
    discriminator = make_discriminator(DiscriminatorConfig(ndf=8)).eval()
    logits, features = discriminator(torch.rand(2, 3, 64, 64))
    # 4 stride-2 stages (64 -> 33 -> 17 -> 9 -> 5 with k4 p2) then two stride-1 k4 p2 convs (+1 each; the first doubles channels)
    assert logits.shape == (2, 1, 7, 7)
    assert [tuple(f.shape[1:]) for f in features] == [(8, 33, 33), (16, 17, 17), (32, 9, 9), (64, 5, 5), (128, 6, 6)]


def test_bad_configs_fail_loudly() -> None:
    with pytest.raises(ValueError, match="unknown discriminator kind"):
        DiscriminatorConfig(kind="multiscale")
    with pytest.raises(ValueError, match="unknown discriminator config fields"):
        DiscriminatorConfig.from_dict({"ndf": 8, "norm": "in"})
