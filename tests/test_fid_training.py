"""Training evaluation logs LPIPS and FID when their weight files are configured (and only then);
wrong paths stop `lama-train train` before training with an error naming the file."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lama_training.cli import main as lama_train
from lama_training.trainer.config import ConfigError, load_config
from tests.test_fid import write_random_inception_file
from tests.test_lpips import write_random_lpips_files
from tests.test_train_smoke import FAST, write_photos


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fid_training")
    photos = write_photos(root / "photos", 3)
    eval_dir = root / "eval"
    assert lama_train(["make-eval-set", "--images", str(write_photos(root / "held_out", 2, seed=1)),
                       "--out", str(eval_dir), "--size", "64", "--policy", "thin-256,medium-256", "--count", "2"]) == 0
    alexnet, linear = write_random_lpips_files(root / "lpips")
    inception = write_random_inception_file(root / "pt_inception-2015-12-05-6726825d.pth")
    return {"root": root, "photos": photos, "eval": eval_dir, "alexnet": alexnet, "linear": linear,
            "inception": inception}


def run_tiny(setup: dict[str, Path], run_dir: Path, *metric_settings: str) -> int:
    return lama_train(["train", "--config", "tiny", "--train-dir", str(setup["photos"]), "--eval-dir", str(setup["eval"]),
                       "--run-dir", str(run_dir), *FAST, "--set", "data.crop_size=64", "--set", "trainer.max_steps=1",
                       *metric_settings])


def eval_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["kind"] == "eval"]


@pytest.mark.slow
def test_training_logs_lpips_and_fid_when_configured(setup, tmp_path) -> None:
    torch.set_num_threads(1)
    run_dir = tmp_path / "with_metrics"
    assert run_tiny(setup, run_dir, "--set", f"data.eval_lpips_alexnet={setup['alexnet']}",
                    "--set", f"data.eval_lpips_linear={setup['linear']}",
                    "--set", f"data.eval_fid_inception={setup['inception']}") == 0
    records = eval_records(run_dir)
    assert [record["step"] for record in records] == [0, 1]
    for record in records:
        assert record["images"] == 4
        assert record["lpips"] > 0 and record["fid"] > 0  # an untrained fill differs from the originals
        for policy in ("thin-256", "medium-256"):
            assert record[f"{policy}/lpips"] > 0 and f"{policy}/fid" in record


@pytest.mark.slow
def test_no_paths_no_perceptual_metrics_and_bad_paths_stop_before_training(setup, tmp_path, capsys) -> None:
    torch.set_num_threads(1)
    plain = tmp_path / "plain"
    assert run_tiny(setup, plain) == 0
    assert all("lpips" not in record and "fid" not in record and "l1_hole" in record for record in eval_records(plain))

    missing = setup["root"] / "absent" / "pt_inception-2015-12-05-6726825d.pth"
    failed = tmp_path / "failed"
    assert run_tiny(setup, failed, "--set", f"data.eval_fid_inception={missing}") != 0
    assert f"{missing}: file not found" in capsys.readouterr().err
    assert not (failed / "metrics.jsonl").exists()


def test_config_validates_the_metric_paths(tmp_path) -> None:
    with pytest.raises(ConfigError, match="given together"):
        load_config("tiny", ["data.eval_dir=x", "data.eval_lpips_alexnet=a.pth"])
    with pytest.raises(ConfigError, match="give data.eval_dir"):
        load_config("tiny", ["data.eval_fid_inception=f.pth"])
    config = load_config("tiny", ["data.eval_dir=x", "data.eval_lpips_alexnet=a.pth", "data.eval_lpips_linear=b.pth",
                                  "data.eval_fid_inception=f.pth"])
    assert (config.data.eval_lpips_alexnet, config.data.eval_lpips_linear, config.data.eval_fid_inception) == \
        ("a.pth", "b.pth", "f.pth")
