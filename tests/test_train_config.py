"""Presets are plain YAML validated into dataclasses; every field can be overridden from the CLI."""
from __future__ import annotations

from pathlib import Path

import pytest

from lama_training.modules import GENERATOR_PRESETS
from lama_training.trainer.config import ConfigError, TrainConfig, config_from_dict, load_config, preset_names


def test_every_issue_preset_exists_and_names_its_generator() -> None:
    assert {"big-lama", "lama-fourier", "lama-regular", "lama-dilated", "tiny"} <= set(preset_names())
    for name in ("big-lama", "lama-fourier", "lama-regular", "lama-dilated", "tiny"):
        config = load_config(name)
        assert config.name == name
        assert config.generator == GENERATOR_PRESETS[name]
        assert config.generator_preset() == name


def test_defaults_are_the_big_lama_recipe() -> None:
    config = load_config("big-lama")
    assert (config.trainer.lr_g, config.trainer.lr_d, config.trainer.grad_clip) == (1e-3, 1e-4, 1.0)
    assert config.losses.perceptual_backbone == "ade20k_resnet50dilated"
    assert (config.discriminator.ndf, config.discriminator.n_layers) == (64, 4)
    assert config.data.crop_size == 256


def test_tiny_trains_at_128_px_without_a_perceptual_backbone() -> None:
    config = load_config("tiny")
    assert config.data.crop_size == 128
    assert config.losses.perceptual_backbone == "none" and config.losses.perceptual_weight == 0


def test_dotted_overrides_are_typed() -> None:
    config = load_config("tiny", ["trainer.lr_g=1e-4", "data.batch_size=8", "trainer.tensorboard=false",
                                  "generator.n_blocks=2", "data.mask.box.margin=3", "losses.mask_interpolation=bicubic",
                                  "generator.resnet_conv.ratio_gin=0.5"])
    assert config.trainer.lr_g == 1e-4 and isinstance(config.trainer.lr_g, float)
    assert config.data.batch_size == 8 and config.trainer.tensorboard is False
    assert config.generator.n_blocks == 2 and config.generator.ngf == GENERATOR_PRESETS["tiny"].ngf
    assert config.data.mask.box.margin == 3
    assert config.losses.mask_interpolation == "bicubic"
    assert config.generator.resnet_conv.ratio_gin == 0.5
    assert config.generator_preset() is None  # no longer exactly the tiny generator


def test_overriding_the_generator_preset_name() -> None:
    assert load_config("tiny", ["generator=lama-regular"]).generator == GENERATOR_PRESETS["lama-regular"]


@pytest.mark.parametrize("override, message", [
    ("trainer.lr=1", "unknown config key in trainer: lr"),
    ("trainer.max_steps=many", "trainer.max_steps: cannot use 'many'"),
    ("trainer.max_steps=0", "max_steps must be >= 1"),
    ("data.crop_size=100", "multiple of 8"),
    ("trainer.device=tpu", "trainer.device"),
    ("generator=huge", "unknown preset 'huge'"),
    ("losses.perceptual_backbone=none", "perceptual_weight"),
    ("trainer.tensorboard=maybe", "trainer.tensorboard"),
    ("nonsense", "KEY=VALUE"),
])
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("big-lama", [override])


def test_yaml_file_by_path_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\ngenerator: lama-fourier\ntrainer:\n  lr_g: 5e-4\n  max_steps: 10\n")
    config = load_config(str(path))
    assert config.name == "mine" and config.trainer.lr_g == 5e-4 and config.generator.n_blocks == 9
    assert config_from_dict(config.to_dict()) == config
    assert isinstance(config, TrainConfig)
    with pytest.raises(ConfigError, match="unknown config preset"):
        load_config("no-such-preset")
    (tmp_path / "bad.yaml").write_text("trainer: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))
