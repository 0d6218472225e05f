"""Fine-tuning from the official checkpoint layout: key mapping and strict checks."""
from __future__ import annotations

import pytest
import torch

from lama_training.modules import make_generator
from lama_training.modules.ade20k import ResnetDilatedEncoder
from lama_training.modules.discriminator import make_discriminator
from lama_training.trainer.checkpoint import (CheckpointError, load_checkpoint, load_official_weights,
                                              split_official_state)
from lama_training.trainer.config import load_config
from lama_training.trainer.loop import build_perceptual_loss


def official_state(config) -> dict[str, torch.Tensor]:
    """The layout of big-lama-with-discr's state_dict, with small random networks."""
    torch.manual_seed(1)
    state = {f"generator.{k}": v for k, v in make_generator(config.generator).state_dict().items()}
    state.update({f"discriminator.{k}": v for k, v in make_discriminator(config.discriminator).state_dict().items()})
    encoder = ResnetDilatedEncoder()
    with torch.no_grad():
        encoder.conv1.weight.fill_(0.25)
    state.update({f"loss_segm_pl.impl.{k}": v for k, v in encoder.state_dict().items()})
    state["val_evaluator.scores.ssim.kernel"] = torch.ones(1)  # evaluator modules are not trained: dropped
    return state


def test_official_keys_map_to_generator_discriminator_and_perceptual_backbone() -> None:
    config = load_config("tiny", ["losses.perceptual_backbone=ade20k_resnet50dilated", "losses.perceptual_weight=30"])
    state = official_state(config)
    parts = split_official_state(state, "best.ckpt")
    assert "conv1.weight" in parts["perceptual"] and "model.1.ffc.convl2l.weight" in parts["generator"]
    # no encoder file is needed: the official checkpoint carries the backbone (loss_segm_pl)
    perceptual = build_perceptual_loss(config, parts["perceptual"])
    assert isinstance(perceptual.impl, ResnetDilatedEncoder)
    generator, discriminator = make_generator(config.generator), make_discriminator(config.discriminator)
    load_official_weights(state, generator, discriminator, perceptual.impl, "best.ckpt")
    for key, value in generator.state_dict().items():
        assert torch.equal(value, state[f"generator.{key}"])
    for key, value in discriminator.state_dict().items():
        assert torch.equal(value, state[f"discriminator.{key}"])
    assert torch.equal(perceptual.impl.conv1.weight, torch.full_like(perceptual.impl.conv1.weight, 0.25))


def test_strict_checks_name_the_problem() -> None:
    config = load_config("tiny")
    state = official_state(config)
    generator, discriminator = make_generator(config.generator), make_discriminator(config.discriminator)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_official_weights({**state, "optimizer_hack.x": torch.ones(1)}, generator, discriminator, None, "ckpt")
    no_discriminator = {k: v for k, v in state.items() if not k.startswith("discriminator.")}
    with pytest.raises(CheckpointError, match="big-lama-with-discr"):
        load_official_weights(no_discriminator, generator, discriminator, None, "ckpt")
    bigger = make_generator(config.generator.replace(n_blocks=4))
    with pytest.raises(CheckpointError, match="generator does not match.*unexpected|generator does not match"):
        load_official_weights(state, bigger, discriminator, None, "ckpt")


def test_missing_encoder_file_is_a_clear_error_unless_another_backbone_is_chosen(tmp_path) -> None:
    config = load_config("big-lama", [f"losses.perceptual_weights={tmp_path / 'encoder_epoch_20.pth'}"])
    with pytest.raises(FileNotFoundError, match="encoder_epoch_20.pth"):
        build_perceptual_loss(config, None)
    assert build_perceptual_loss(load_config("tiny"), None) is None


def test_foreign_files_are_not_taken_for_our_checkpoints(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a lama-train checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path) -> None:
    import random

    import numpy as np

    from lama_training.trainer.checkpoint import capture_rng_state, restore_rng_state, save_checkpoint

    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    save_checkpoint(tmp_path / "c.pt", {"rng": [capture_rng_state()]})
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    restore_rng_state(torch.load(tmp_path / "c.pt", weights_only=True)["rng"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    assert not (tmp_path / "c.pt.tmp").exists()  # written through a temporary file, then renamed


def test_old_step_checkpoints_are_pruned(tmp_path) -> None:
    from lama_training.trainer.loop import _prune_checkpoints

    for step in (100, 200, 300, 400):
        (tmp_path / f"step_{step:07d}.pt").write_bytes(b"x")
    (tmp_path / "last.pt").write_bytes(b"x")
    _prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000300.pt", "step_0000400.pt"]
