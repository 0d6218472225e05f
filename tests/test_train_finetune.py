"""`lama-train train --init-from best.ckpt`: fine-tuning from the official checkpoint layout."""
from __future__ import annotations

from pathlib import Path

import torch

from lama_training.cli import main as lama_train
from lama_training.modules import make_generator
from lama_training.modules.ade20k import ResnetDilatedEncoder
from lama_training.modules.discriminator import make_discriminator
from lama_training.trainer.config import load_config
from lama_training.trainer.export import generator_from_checkpoint
from test_train_smoke import write_photos


class HyperParameters:
    """Stands for the omegaconf/Lightning objects the official file pickles beside the weights."""

    def __init__(self) -> None:
        self.generator = {"kind": "ffc_resnet"}


def write_official_checkpoint(path: Path, overrides: list[str]) -> dict[str, torch.Tensor]:
    config = load_config("tiny", overrides)
    torch.manual_seed(7)
    state = {f"generator.{k}": v for k, v in make_generator(config.generator).state_dict().items()}
    state.update({f"discriminator.{k}": v for k, v in make_discriminator(config.discriminator).state_dict().items()})
    state.update({f"loss_segm_pl.impl.{k}": v for k, v in ResnetDilatedEncoder().state_dict().items()})
    torch.save({"state_dict": state, "hyper_parameters": HyperParameters(), "epoch": 40}, path)
    return state


def one_step_run(tmp_path: Path, overrides: list[str], *start: str) -> tuple[list[str], torch.nn.Module]:
    """One training step of `tiny` from the starting weights named by `start` (e.g. --init-from F);
    returns the command line and the generator it saved."""
    photos = write_photos(tmp_path / "photos", 2)
    args = ["train", "--config", "tiny", "--train-dir", str(photos), "--run-dir", str(tmp_path / "run"), *start]
    for override in overrides:
        args += ["--set", override]
    assert lama_train(args) == 0
    generator, _, _ = generator_from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    return args, generator


def assert_conv_weights_kept(generator: torch.nn.Module, wanted: dict[str, torch.Tensor]) -> None:
    """One Adam step at lr 1e-12 moves a weight by at most ~1e-12: the convolutions are the start's."""
    compared = 0
    for key, value in generator.state_dict().items():
        if key.endswith("weight") and value.dim() == 4:
            assert torch.allclose(value, wanted[key], atol=1e-9), key
            compared += 1
    assert compared > 5


def test_fine_tuning_starts_from_the_official_weights_and_its_perceptual_backbone(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    # the HRF perceptual loss is on, with no encoder file: its weights come from loss_segm_pl.*
    overrides = ["losses.perceptual_backbone=ade20k_resnet50dilated", "losses.perceptual_weight=30",
                 "data.crop_size=64", "data.batch_size=1", "trainer.max_steps=1", "trainer.lr_g=1e-12",
                 "trainer.progress_bar=false", "data.augment.resize_to=96"]
    official = write_official_checkpoint(tmp_path / "best.ckpt", overrides)
    _, generator = one_step_run(tmp_path, overrides, "--init-from", str(tmp_path / "best.ckpt"))
    assert_conv_weights_kept(generator, {k[len("generator."):]: v for k, v in official.items()
                                         if k.startswith("generator.")})


def test_the_inference_only_checkpoint_cannot_seed_fine_tuning(tmp_path: Path, capsys) -> None:
    config = load_config("tiny")
    state = {f"generator.{k}": v for k, v in make_generator(config.generator).state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "best.ckpt")
    photos = write_photos(tmp_path / "photos", 2)
    assert lama_train(["train", "--config", "tiny", "--train-dir", str(photos), "--run-dir", str(tmp_path / "run"),
                       "--init-from", str(tmp_path / "best.ckpt"), "--set", "trainer.progress_bar=false"]) == 2
    assert "big-lama-with-discr" in capsys.readouterr().err


def test_fine_tuning_an_exported_generator_starts_from_its_weights(tmp_path: Path, capsys) -> None:
    """`--init-generator model.safetensors` (e.g. the bundled lama-small): generator from the file,
    discriminator fresh; combined with --init-from it is refused."""
    from lama_backend.weights import save_weights

    torch.set_num_threads(1)
    overrides = ["data.crop_size=64", "data.batch_size=1", "trainer.max_steps=1", "trainer.lr_g=1e-12",
                 "trainer.progress_bar=false", "data.augment.resize_to=96"]
    config = load_config("tiny", overrides)
    torch.manual_seed(11)
    start = make_generator(config.generator)
    save_weights(start, config.generator, tmp_path / "start.safetensors", preset="tiny")
    args, generator = one_step_run(tmp_path, overrides, "--init-generator", str(tmp_path / "start.safetensors"))
    assert_conv_weights_kept(generator, start.state_dict())
    assert lama_train(args + ["--init-from", str(tmp_path / "best.ckpt")]) == 2
    assert "exclude each other" in capsys.readouterr().err
