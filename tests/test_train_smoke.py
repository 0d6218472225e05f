"""`lama-train train --config tiny` end to end on CPU: train, checkpoint, resume, export, serve."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lama_training.cli import main as lama_train

FAST = ["--set", "trainer.progress_bar=false", "--set", "trainer.log_every=1", "--set", "data.batch_size=2",
        "--set", "trainer.sample_every=2", "--set", "trainer.eval_every=2"]


def write_photos(folder: Path, count: int, seed: int = 0) -> Path:
    """Smooth colour fields with a few hard-edged shapes: structure the generator can learn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for index in range(count):
        low = rng.random((4, 4, 3))
        field = np.asarray(Image.fromarray((low * 255).astype(np.uint8)).resize((192, 160), Image.BICUBIC))
        image = field.copy()
        for _ in range(3):
            y, x = rng.integers(0, 120), rng.integers(0, 150)
            image[y:y + 30, x:x + 30] = rng.integers(0, 256, 3)
        Image.fromarray(image).save(folder / f"photo_{index:02d}.png")
    return folder


def train_records(run_dir: Path) -> dict[int, dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record for record in map(json.loads, lines) if record["kind"] == "train"}


@pytest.mark.slow
def test_tiny_trains_resumes_deterministically_and_exports_a_servable_generator(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    photos = write_photos(tmp_path / "photos", 6)
    held_out = write_photos(tmp_path / "held_out", 2, seed=1)
    eval_dir = tmp_path / "eval"
    assert lama_train(["make-eval-set", "--images", str(held_out), "--out", str(eval_dir), "--size", "128",
                       "--policy", "thin-256,medium-256", "--count", "2"]) == 0
    first = tmp_path / "first"
    common = ["train", "--config", "tiny", "--train-dir", str(photos), *FAST]
    assert lama_train([*common, "--eval-dir", str(eval_dir), "--run-dir", str(first), "--set", "trainer.max_steps=4",
                       "--set", "trainer.checkpoint_every=2"]) == 0
    records = train_records(first)
    assert sorted(records) == [1, 2, 3, 4]
    lines = (first / "metrics.jsonl").read_text().splitlines()
    evals = [record for record in map(json.loads, lines) if record["kind"] == "eval"]
    assert [record["step"] for record in evals] == [0, 2, 4]  # step 0: the untrained baseline
    assert all(record["images"] == 4 and 0 <= record["l1_hole"] <= 1 and "thin-256/psnr_hole" in record
               for record in evals)
    assert (first / "checkpoints" / "step_0000002.pt").is_file() and (first / "samples" / "step_0000004.png").is_file()

    # resume from step 2 in a new run directory: step 3 and 4 see the same data and give the same
    # losses; the architecture comes from the checkpoint even when the command line asks otherwise
    resumed = tmp_path / "resumed"
    assert lama_train([*common, "--run-dir", str(resumed), "--set", "trainer.max_steps=4",
                       "--set", "generator.n_blocks=5", "--set", "discriminator.ndf=8",
                       "--resume", str(first / "checkpoints" / "step_0000002.pt")]) == 0
    again = train_records(resumed)
    assert sorted(again) == [3, 4]
    for step in (3, 4):
        for key in ("gen_total", "gen_l1", "gen_fm", "discr_total", "discr_r1"):
            # same ops on the same data in the same order on one thread: bit-identical on CPU
            assert again[step][key] == records[step][key], (step, key)

    # resuming with a new learning rate (decaying it at the end of a run) takes the new rate:
    # the optimizer state saved in the checkpoint must not bring the old one back
    from lama_training.trainer.checkpoint import load_checkpoint

    decayed = tmp_path / "decayed"
    assert lama_train([*common, "--run-dir", str(decayed), "--set", "trainer.max_steps=3",
                       "--set", "trainer.lr_g=0.00002", "--set", "trainer.lr_d=0.000003",
                       "--resume", str(first / "checkpoints" / "step_0000002.pt")]) == 0
    saved = load_checkpoint(decayed / "checkpoints" / "last.pt")
    assert [group["lr"] for group in saved["optimizer_g"]["param_groups"]] == [0.00002]
    assert [group["lr"] for group in saved["optimizer_d"]["param_groups"]] == [0.000003]

    # the exported generator is what lama-backend serves, and it equals the trained one
    from lama_backend.weights import load_model
    from lama_training.trainer.export import generator_from_checkpoint

    exported = first / "generator.safetensors"
    assert exported.is_file()
    model = load_model(exported, device="cpu")
    model.set_precision("fp32")  # the float32 network itself (auto is bf16 on CPUs with AMX / AVX512-BF16)
    assert model.preset == "tiny"
    generator, _, info = generator_from_checkpoint(first / "checkpoints" / "last.pt")
    assert info["step"] == 4
    image = torch.rand(1, 3, 64, 96)
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 16:40, 24:72] = 1
    served = model.predict(image, mask)
    with torch.no_grad():
        direct = generator(torch.cat([image * (1 - mask), mask], dim=1))
    assert served.shape == (1, 3, 64, 96)
    assert torch.allclose(served, direct, atol=1e-6)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lama_train(["train", "--config", "tiny", "--run-dir", str(tmp_path / "r")]) == 2
    assert "--train-dir" in capsys.readouterr().err
    assert lama_train(["train", "--config", "tiny", "--train-dir", str(tmp_path), "--run-dir", str(tmp_path / "r"),
                       "--set", "trainer.lr_q=1"]) == 2
    assert "unknown config key in trainer: lr_q" in capsys.readouterr().err
    photos = write_photos(tmp_path / "photos", 2)
    assert lama_train(["train", "--config", "big-lama", "--train-dir", str(photos), "--run-dir", str(tmp_path / "r"),
                       "--set", f"losses.perceptual_weights={tmp_path / 'encoder_epoch_20.pth'}",
                       "--set", "data.batch_size=1", "--set", "trainer.device=cpu"]) == 2
    assert "encoder_epoch_20.pth" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = write_photos(tmp_path / "photos", 3)
    assert lama_train(["train", "--config", "lama-regular", "--train-dir", str(photos), "--run-dir",
                       str(tmp_path / "r"), "--dry-run", "--set", "trainer.lr_d=2e-4"]) == 0
    out = capsys.readouterr().out
    assert "kind: pix2pixhd_global" in out and "lr_d: 0.0002" in out and "# 3 training images" in out
    assert not (tmp_path / "r").exists()


def test_max_minutes_stops_early_with_a_final_checkpoint_and_export(tmp_path: Path) -> None:
    """A wall-time budget (a lent GPU for N minutes): the run ends at the first step past it, and
    that step still gets its log record, checkpoint and the exported generator."""
    torch.set_num_threads(1)
    photos = write_photos(tmp_path / "photos", 4)
    run_dir = tmp_path / "run"
    assert lama_train(["train", "--config", "tiny", "--train-dir", str(photos), "--run-dir", str(run_dir), *FAST,
                       "--set", "trainer.log_every=3", "--set", "trainer.max_steps=1000",
                       "--set", "trainer.max_minutes=0.00001", "--set", "data.repeat=3"]) == 0
    assert sorted(train_records(run_dir)) == [1]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert checkpoint["step"] == 1
    assert (run_dir / "generator.safetensors").is_file()
