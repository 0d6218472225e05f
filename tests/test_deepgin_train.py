"""DeepGIN training: config family dispatch, the two phases, the schedule, VGG errors, and
`lama-train train --config deepgin-tiny` end to end on CPU (train, checkpoint, resume, export)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lama_training.cli import main as lama_train
from lama_training.deepgin.config import DeepGINTrainConfig
from lama_training.deepgin.data import ThreeMaskDataset, expand_three_masks
from lama_training.deepgin.generator import DEEPGIN_PRESETS
from lama_training.deepgin.masks import AIMMaskConfig, three_masks
from lama_training.deepgin.trainer import (CompletedImage, build_vgg, is_warmup, learning_rate_factor,
                                           make_discriminator, train_step)
from lama_training.deepgin.vgg import FEATURE_LAYERS
from lama_training.trainer.config import ConfigError, TrainConfig, load_config
from lama_training.trainer.loop import Networks
from tests.test_train_smoke import train_records, write_photos

FAST = ["--set", "trainer.progress_bar=false", "--set", "trainer.log_every=1", "--set", "trainer.sample_every=2",
        "--set", "trainer.eval_every=2", "--set", "generator.ngf=8"]


# --- config -------------------------------------------------------------------------------------

def test_family_key_selects_the_deepgin_config_and_overrides_work() -> None:
    config = load_config("deepgin-tiny", ["generator.ngf=8", "schedule.warmup_steps=3", "losses.hole=6"])
    assert isinstance(config, DeepGINTrainConfig) and config.family == "deepgin"
    assert config.generator == DEEPGIN_PRESETS["deepgin-tiny"].__class__(**{**DEEPGIN_PRESETS["deepgin-tiny"].to_dict(),
                                                                            "ngf": 8})
    assert config.schedule.warmup_steps == 3 and config.losses.hole == 6.0
    assert config.losses.perceptual == 0 and config.losses.style == 0  # the smoke preset needs no VGG file
    assert load_config(config.to_dict()) == config  # what checkpoints store rebuilds the same config
    full = load_config("deepgin")
    assert full.generator_preset() == "deepgin" and full.generator == DEEPGIN_PRESETS["deepgin"]
    # the paper's optimiser settings, also when the preset's trainer section omits them
    assert (full.trainer.lr_g, full.trainer.lr_d, full.schedule.adam_beta1) == (1e-4, 4e-4, 0.5)
    assert load_config("deepgin-tiny").trainer.lr_d == 4e-4
    assert (full.losses.hole, full.losses.adversarial, full.losses.perceptual, full.losses.style,
            full.losses.total_variation) == (5.0, 0.001, 0.05, 80.0, 0.1)
    assert isinstance(load_config("tiny"), TrainConfig) and load_config("tiny").family == "lama"


@pytest.mark.parametrize("overrides,fragment", [
    (["data.crop_size=72"], "multiple of 16"),
    (["data.mask.box_proba=0.5"], "masks.*"),
    (["generator=big-lama"], "unknown DeepGIN preset"),
    (["family=lama"], "cannot be overridden"),
    (["losses.style=-1"], "style"),
    (["schedule.adam_beta1=1.5"], "adam_beta1"),
    (["masks.rect_min_fraction=0.9"], "rect_min_fraction"),
    (["schedule.warmup"], "KEY=VALUE"),
])
def test_bad_deepgin_config_values_are_named(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("*", r"\*")):
        load_config("deepgin-tiny", overrides)


def test_unknown_family_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown model family 'pix2pix'"):
        load_config({"family": "pix2pix"})


# --- schedule and phases ------------------------------------------------------------------------

def test_learning_rate_is_constant_then_falls_linearly_to_zero() -> None:
    schedule = load_config("deepgin-tiny", ["schedule.decay_start=6"]).schedule
    factors = [learning_rate_factor(step, schedule, max_steps=10) for step in range(10)]
    assert factors == [1.0] * 6 + [1.0, 0.75, 0.5, 0.25]
    assert learning_rate_factor(10, schedule, 10) == 0.0
    never = load_config("deepgin-tiny", ["schedule.decay_start=20"]).schedule  # after max_steps: constant
    assert learning_rate_factor(9, never, 10) == 1.0
    assert [is_warmup(step, schedule) for step in (0, 49, 50)] == [True, True, False]


def tiny_networks(config: DeepGINTrainConfig) -> Networks:
    torch.manual_seed(0)
    from lama_training.deepgin.generator import make_deepgin
    return Networks(make_deepgin(config.generator).train(), make_discriminator(config).train(), None)


def batch(n: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    masks = torch.from_numpy(np.stack([three_masks(size, size, rng) for _ in range(n)]))
    return expand_three_masks(torch.rand(n, 3, size, size), masks)


def test_warmup_trains_g_with_l1_only_then_the_adversarial_phase_trains_both() -> None:
    torch.set_num_threads(1)
    config = load_config("deepgin-tiny", ["generator.ngf=8", "schedule.warmup_steps=1", "trainer.max_steps=4",
                                          "schedule.decay_start=2"])
    networks = tiny_networks(config)
    betas = (config.schedule.adam_beta1, config.schedule.adam_beta2)
    optimizers = (torch.optim.Adam(networks.generator.parameters(), lr=1, betas=betas),
                  torch.optim.Adam(networks.discriminator.parameters(), lr=1, betas=betas))
    image, mask = batch()
    d_before = {k: v.clone() for k, v in networks.discriminator.state_dict().items()}
    g_before = {k: v.clone() for k, v in networks.generator.state_dict().items()}

    warm = train_step(networks, optimizers, image, mask, config, None, step=0)
    assert warm["adversarial_phase"] == 0.0 and warm["gen_total"] == warm["gen_l1"]
    assert not {"gen_adv", "gen_tv", "discr_total"} & set(warm)
    assert all(torch.equal(v, d_before[k]) for k, v in networks.discriminator.state_dict().items())  # D untouched
    assert any(not torch.equal(v, g_before[k]) for k, v in networks.generator.state_dict().items())
    assert optimizers[0].param_groups[0]["lr"] == config.trainer.lr_g  # constant before decay_start

    adversarial = train_step(networks, optimizers, image, mask, config, None, step=2)
    assert adversarial["adversarial_phase"] == 1.0
    assert {"gen_adv", "gen_tv", "discr_total", "discr_real_out", "grad_norm_d"} <= set(adversarial)
    expected = adversarial["gen_l1"] + 0.001 * adversarial["gen_adv"] + 0.1 * adversarial["gen_tv"]
    assert adversarial["gen_total"] == pytest.approx(expected, rel=1e-5)  # float32 sum of logged floats
    weights = [k for k in d_before if k.endswith("weight.original")]
    assert weights and any(not torch.equal(networks.discriminator.state_dict()[k], d_before[k]) for k in weights)
    # step 2 of 4 with decay from step 2: the factor is (4 - 2) / (4 - 2) = 1; step 3 gives half
    train_step(networks, optimizers, image, mask, config, None, step=3)
    assert optimizers[0].param_groups[0]["lr"] == pytest.approx(config.trainer.lr_g * 0.5)
    assert optimizers[1].param_groups[0]["lr"] == pytest.approx(config.trainer.lr_d * 0.5)


def fake_vgg19_file(path: Path) -> Path:
    """A file laid out like torchvision's vgg19-dcbb9e9d.pth up to conv5_1 (random weights)."""
    layout = [3, 64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
    state, index, channels = {}, 0, 3
    for item in layout[1:]:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, channels, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(item)
        channels, index = item, index + 2
    assert index - 2 == FEATURE_LAYERS[-1]
    torch.save(state, path)
    return path


def test_perceptual_and_style_losses_use_the_vgg_file(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    vgg_path = fake_vgg19_file(tmp_path / "vgg19-dcbb9e9d.pth")
    config = load_config("deepgin-tiny", ["generator.ngf=8", "schedule.warmup_steps=0", "losses.perceptual=0.05",
                                          "losses.style=80", f"losses.vgg19_weights={vgg_path}"])
    vgg = build_vgg(config)
    assert vgg is not None
    networks = tiny_networks(config)
    optimizers = (torch.optim.Adam(networks.generator.parameters()), torch.optim.Adam(networks.discriminator.parameters()))
    image, mask = batch(1)
    logged = train_step(networks, optimizers, image, mask, config, vgg, step=0)
    assert logged["gen_perceptual"] > 0 and logged["gen_style"] > 0
    expected = (logged["gen_l1"] + 0.001 * logged["gen_adv"] + 0.1 * logged["gen_tv"] + 0.05 * logged["gen_perceptual"]
                + 80 * logged["gen_style"])
    assert logged["gen_total"] == pytest.approx(expected, rel=1e-5)  # float32 sum of logged floats
    style_only = load_config("deepgin-tiny", ["losses.style=80", f"losses.vgg19_weights={vgg_path}"])
    assert build_vgg(style_only) is not None  # either weight > 0 needs the file


def test_missing_vgg_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match=r"vgg19-dcbb9e9d\.pth.*losses\.vgg19_weights"):
        build_vgg(load_config("deepgin"))
    with pytest.raises(FileNotFoundError, match="nowhere/vgg19.pth"):
        build_vgg(load_config("deepgin", [f"losses.vgg19_weights={tmp_path / 'nowhere' / 'vgg19.pth'}"]))
    assert build_vgg(load_config("deepgin", ["losses.perceptual=0", "losses.style=0"])) is None
    photos = write_photos(tmp_path / "photos", 2)
    assert lama_train(["train", "--config", "deepgin", "--train-dir", str(photos), "--run-dir", str(tmp_path / "r"),
                       "--set", "trainer.device=cpu", "--set", "trainer.progress_bar=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "vgg19-dcbb9e9d.pth" in err[-1] and "Traceback" not in "\n".join(err)
    assert lama_train(["train", "--config", "deepgin-tiny", "--train-dir", str(photos), "--run-dir",
                       str(tmp_path / "r"), "--init-from", str(tmp_path / "best.ckpt")]) == 2
    assert "cannot start a DeepGIN run" in capsys.readouterr().err


# --- data ---------------------------------------------------------------------------------------

def test_each_image_comes_with_the_three_aim_masks(tmp_path: Path) -> None:
    from lama_training.data import InpaintingTrainDataset

    config = load_config("deepgin-tiny")
    dataset = ThreeMaskDataset(InpaintingTrainDataset(write_photos(tmp_path / "photos", 2), crop_size=64,
                                                      augment=config.data.augment), AIMMaskConfig())
    np.random.seed(0)
    item = dataset[0]
    assert item["image"].shape == (3, 64, 64) and item["mask"].shape == (3, 64, 64)
    rectangle, free_form, automata = item["mask"].numpy()
    rows, cols = np.nonzero(rectangle)
    assert rectangle.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)  # one solid box
    assert 0.3 * 64 - 1 <= np.ptp(rows) + 1 <= 0.7 * 64 + 1
    assert free_form.any() and automata.any() and set(np.unique(item["mask"].numpy())) <= {0.0, 1.0}
    np.random.seed(0)
    assert torch.equal(dataset[0]["mask"], item["mask"])  # drawn from the seeded global state
    images, masks = expand_three_masks(torch.stack([item["image"], item["image"] * 0.5]),
                                       torch.stack([item["mask"], item["mask"].flip(-1)]))
    assert images.shape == (6, 3, 64, 64) and masks.shape == (6, 1, 64, 64)
    assert torch.equal(images[2], item["image"]) and torch.equal(images[3], item["image"] * 0.5)
    assert torch.equal(masks[1, 0], item["mask"][1]) and torch.equal(masks[5, 0], item["mask"][2].flip(-1))


def test_completed_image_gives_deepgin_the_lama_generator_contract() -> None:
    torch.manual_seed(0)
    from lama_training.deepgin.generator import make_deepgin
    generator = make_deepgin(load_config("deepgin-tiny", ["generator.ngf=8"]).generator).eval()
    image, mask = torch.rand(1, 3, 40, 56), torch.zeros(1, 1, 40, 56)
    mask[..., 8:24, 8:40] = 1
    with torch.no_grad():
        prediction = CompletedImage(generator)(torch.cat([image * (1 - mask), mask], dim=1))
    assert prediction.shape == (1, 3, 40, 56) and torch.isfinite(prediction).all()


# --- end to end ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_deepgin_tiny_trains_checkpoints_resumes_and_exports(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    photos = write_photos(tmp_path / "photos", 4)
    eval_dir = tmp_path / "eval"
    assert lama_train(["make-eval-set", "--images", str(write_photos(tmp_path / "held_out", 1, seed=1)), "--out",
                       str(eval_dir), "--size", "64", "--policy", "thin-256", "--count", "2"]) == 0
    first = tmp_path / "first"
    # two L1 warm-up steps, then two adversarial steps; the resume point (step 2) is the phase change
    common = ["train", "--config", "deepgin-tiny", "--train-dir", str(photos), *FAST, "--set", "trainer.max_steps=4",
              "--set", "schedule.warmup_steps=2", "--set", "schedule.decay_start=2"]
    assert lama_train([*common, "--eval-dir", str(eval_dir), "--run-dir", str(first),
                       "--set", "trainer.checkpoint_every=2"]) == 0
    records = train_records(first)
    assert sorted(records) == [1, 2, 3, 4]
    assert [records[s]["adversarial_phase"] for s in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 1.0]
    assert "discr_total" not in records[2] and "discr_total" in records[3] and "gen_adv" in records[4]
    assert records[3]["lr_g"] == 1e-4 and records[4]["lr_g"] == pytest.approx(1e-4 * 0.5)
    lines = [json.loads(line) for line in (first / "metrics.jsonl").read_text().splitlines()]
    start = next(record for record in lines if record["kind"] == "start")
    assert start["family"] == "deepgin" and start["samples_per_batch"] == 3 * start["effective_batch"]
    evals = [record for record in lines if record["kind"] == "eval"]
    assert [record["step"] for record in evals] == [0, 2, 4] and all(0 <= r["l1_hole"] <= 1 for r in evals)
    assert (first / "checkpoints" / "step_0000002.pt").is_file() and (first / "samples" / "step_0000004.png").is_file()
    assert "family: deepgin" in (first / "config.yaml").read_text()

    resumed = tmp_path / "resumed"
    assert lama_train([*common, "--run-dir", str(resumed), "--resume",
                       str(first / "checkpoints" / "step_0000002.pt")]) == 0
    again = train_records(resumed)
    assert sorted(again) == [3, 4]
    for step in (3, 4):
        for key in ("gen_total", "gen_l1", "gen_adv", "gen_tv", "discr_total"):
            # same ops on the same data in the same order on one thread: bit-identical on CPU
            assert again[step][key] == records[step][key], (step, key)

    from lama_backend.models import DeepGINModel
    from lama_backend.weights import load_model, read_metadata
    from lama_training.trainer.export import generator_from_checkpoint

    exported = first / "generator.safetensors"
    metadata = read_metadata(exported)
    assert (metadata["family"], metadata["format_version"], metadata["preset"]) == ("deepgin", 2, None)  # ngf 8
    assert metadata["provenance"]["step"] == 4 and metadata["provenance"]["config_name"] == "deepgin-tiny"
    model = load_model(exported, device="cpu")
    assert isinstance(model, DeepGINModel) and model.family == "deepgin" and model.pad_modulo == 16
    generator, _, info = generator_from_checkpoint(first / "checkpoints" / "last.pt")
    assert info["step"] == 4
    image, mask = torch.rand(1, 3, 48, 64), torch.zeros(1, 1, 48, 64)
    mask[..., 16:40, 8:40] = 1
    with torch.no_grad():
        direct = generator(image, mask).completed
    assert torch.equal(model.predict(image, mask), direct)  # same float32 weights, same ops
