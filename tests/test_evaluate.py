"""`lama-train evaluate` and its report: the model against OpenCV Telea and the untrained network."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from lama_training.cli import main as lama_train
from lama_training.evaluation import EvalSet, make_eval_set
from lama_training.evaluation.report import (
    METHODS, METRICS, Report, TeleaInpainter, build_report, generator_config_of, regroup, untrained_generator,
)
from lama_training.modules import GENERATOR_PRESETS
from tests.helpers.tiny_model import TINY_CONFIG, write_tiny_weights

SIZE = 64  # crops of 64 px keep the three networks' passes to milliseconds


def smooth(height: int, width: int, seed: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(x / 11.0 + seed), np.cos(y / 13.0 + seed), np.sin((x + y) / 17.0)], axis=-1)
    return np.clip(127 + 100 * base, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    for seed in range(3):
        Image.fromarray(smooth(72, 90, seed)).save(root / f"{seed}.png")
    return root


@pytest.fixture(scope="module")
def eval_dir(image_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("set") / "eval"
    make_eval_set(image_dir, out, size=SIZE, count=2, seed=5)
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors", seed=0)


def test_telea_fills_a_thin_hole_in_a_smooth_image_closely() -> None:
    image = torch.from_numpy(smooth(64, 64, 1).astype(np.float32) / 255).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 30:33, 8:56] = 1
    filled = TeleaInpainter()(torch.cat([image * (1 - mask), mask], dim=1))
    assert filled.shape == image.shape and 0 <= float(filled.min()) and float(filled.max()) <= 1
    hole = mask.expand_as(image) > 0
    # the masked input is 0 in the hole (error ~0.5 there); a 3 px gap in a smooth ramp is easy
    assert float((filled - image).abs()[hole].mean()) < 0.02
    # outside the hole Telea keeps the pixels (8-bit round trip of 8-bit values: exact)
    assert torch.equal((filled * 255).round()[~hole], (image * 255).round()[~hole])


def test_telea_rejects_inputs_without_a_mask_channel() -> None:
    with pytest.raises(ValueError, match="N x 4 x H x W"):
        TeleaInpainter()(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="radius"):
        TeleaInpainter(radius=0)


def test_untrained_generator_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = untrained_generator(TINY_CONFIG, seed=4).state_dict()
    assert torch.equal(torch.random.get_rng_state(), before)
    b = untrained_generator(TINY_CONFIG, seed=4).state_dict()
    c = untrained_generator(TINY_CONFIG, seed=5).state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert any(not torch.equal(a[key], c[key]) for key in a)


def test_generator_config_comes_from_the_model_or_its_preset() -> None:
    class Scripted:  # what TorchScriptModel looks like to the report: a preset, no generator
        preset, source = "big-lama", "big-lama.pt"

    class Unknown:
        preset, source = None, "mystery.pt"

    assert generator_config_of(Scripted()) == GENERATOR_PRESETS["big-lama"]
    with pytest.raises(ValueError, match="mystery.pt"):
        generator_config_of(Unknown())


def test_regroup_refuses_missing_or_nan_metrics() -> None:
    values = {"thin-256/psnr_hole": 20.0, "thin-256/ssim_hole": 0.5, "thin-256/l1_hole": 0.1,
              "psnr_hole": 20.0, "ssim_hole": 0.5, "l1_hole": 0.1}
    grouped = regroup({"model": values}, ["thin-256"])
    assert grouped["thin-256"]["model"] == {"psnr_hole": 20.0, "ssim_hole": 0.5, "l1_hole": 0.1}
    with pytest.raises(ValueError, match="thin-256/ssim_hole"):
        regroup({"model": {**values, "thin-256/ssim_hole": math.nan}}, ["thin-256"])
    with pytest.raises(ValueError, match="medium-256/psnr_hole"):
        regroup({"model": values}, ["thin-256", "medium-256"])


def test_report_scores_each_method_on_the_same_items(eval_dir) -> None:
    eval_set = EvalSet(eval_dir)
    report = build_report({"telea": TeleaInpainter(), "untrained": untrained_generator(TINY_CONFIG, 0)}, eval_set,
                          batch_size=4)
    assert report.policies == ["thin-256", "medium-256", "thick-256"]
    assert report.info["images"] == 6
    for policy in report.policies + ["all"]:
        assert set(report.results[policy]) == {"telea", "untrained"}
    # on smooth images Telea is far better than a random network's output
    for policy in report.policies:
        assert report.results[policy]["telea"]["psnr_hole"] > report.results[policy]["untrained"]["psnr_hole"] + 3
    table = report.table().splitlines()
    assert len(table) == 1 + 4 * 2 and table[1].split()[:2] == ["thin-256", "telea"]


def test_cli_builds_the_set_scores_every_method_and_writes_json(image_dir, weights, tmp_path, capsys) -> None:
    out, set_dir = tmp_path / "report.json", tmp_path / "built"
    code = lama_train(["evaluate", "--weights", str(weights), "--images", str(image_dir), "--eval-set", str(set_dir),
                       "--size", str(SIZE), "--count", "2", "--seed", "5", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert (set_dir / "index.json").is_file() and len(EvalSet(set_dir)) == 6
    report = json.loads(out.read_text())
    assert report["format"] == "lama-eval-report" and report["eval_set"]["seed"] == 5
    assert report["eval_set"]["size"] == SIZE and report["eval_set"]["count_per_policy"] == 2
    assert report["baselines"] == {"telea": {"radius": 3}, "untrained": {"seed": 0}}
    for policy in ["thin-256", "medium-256", "thick-256", "all"]:
        for method in METHODS:
            assert all(math.isfinite(report["results"][policy][method][m]) for m in METRICS)
            assert any(line.split()[:2] == [policy, method] for line in stdout.splitlines())
    # the tiny weights are the seed-0 initialisation of their config, exactly what the untrained
    # baseline builds with --untrained-seed 0: the rows agree up to float32 rounding (the loaded
    # model runs under inference_mode with its own tensor layout, so sums may differ in the last bits)
    model, untrained = report["results"]["all"]["model"], report["results"]["all"]["untrained"]
    assert model == {metric: pytest.approx(value, rel=1e-6) for metric, value in untrained.items()}
    assert report["results"]["all"]["model"] != report["results"]["all"]["telea"]
    # as served, the untrained network's fill is shifted to meet the smooth surroundings: closer
    served = report["results"]["all"]["served"]
    assert served["psnr_hole"] > model["psnr_hole"] + 1 and served["l1_hole"] < model["l1_hole"]


def test_cli_reads_an_existing_set_and_seeds_the_untrained_baseline(eval_dir, weights, tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    code = lama_train(["evaluate", "--weights", str(weights), "--eval-set", str(eval_dir), "--untrained-seed", "1",
                       "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["eval_set"]["seed"] == 5 and report["images"] == 6
    assert report["results"]["all"]["model"] != report["results"]["all"]["untrained"]


def test_cli_errors_are_one_line(weights, image_dir, tmp_path, capsys) -> None:
    cases = [
        (["--weights", str(weights), "--out", str(tmp_path / "r.json")], "give --images DIR"),
        (["--weights", str(weights), "--eval-set", str(tmp_path / "empty"), "--out", str(tmp_path / "r.json")],
         "holds no evaluation set"),
        (["--weights", str(tmp_path / "missing.safetensors"), "--images", str(image_dir), "--out",
          str(tmp_path / "r.json")], "not found"),
        (["--weights", str(weights), "--images", str(image_dir), "--out", str(tmp_path / "r.txt")], "ending in .json"),
        (["--weights", str(weights), "--images", str(image_dir), "--policy", "wide", "--out", str(tmp_path / "r.json")],
         "unknown mask policy"),
        (["--weights", str(weights), "--images", str(image_dir), "--batch-size", "0", "--out", str(tmp_path / "r.json")],
         "--batch-size"),
    ]
    for arguments, message in cases:
        code = lama_train(["evaluate", *arguments])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err, (arguments, err)
    assert not (tmp_path / "r.json").exists()


def test_report_json_has_no_nan(tmp_path) -> None:
    report = Report({"all": {"model": {"psnr_hole": math.nan, "ssim_hole": 0.0, "l1_hole": 0.0}}}, [])
    with pytest.raises(ValueError):
        report.write_json(tmp_path / "r.json")


def test_cli_draws_the_before_after_picture(eval_dir, weights, tmp_path, capsys) -> None:
    picture = tmp_path / "ba.png"
    code = lama_train(["evaluate", "--weights", str(weights), "--eval-set", str(eval_dir), "--out",
                       str(tmp_path / "r.json"), "--before-after", str(picture), "--item", "1"])
    assert code == 0, capsys.readouterr().err
    with Image.open(picture) as opened:
        grid = np.asarray(opened.convert("RGB"))
    # 3 policies x 5 columns (input + mask, telea, model, served, original) under an 18 px label strip
    assert grid.shape == (18 + 3 * SIZE, 5 * SIZE, 3)
    eval_set = EvalSet(eval_dir)
    thin = eval_set[1]  # item 1 of the first policy
    original = (thin["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    hole = thin["mask"][0].numpy() > 0.5
    row = grid[18:18 + SIZE]
    assert np.array_equal(row[:, 4 * SIZE:][~hole][:, :], original[~hole])  # the original column
    overlay = row[:, :SIZE].astype(int)
    assert (overlay[hole][:, 0] - overlay[hole][:, 1]).mean() > 50  # the hole is tinted red
    for column in (1, 2, 3):  # composited results keep every known pixel
        assert np.array_equal(row[:, column * SIZE:(column + 1) * SIZE][~hole], original[~hole])
    code = lama_train(["evaluate", "--weights", str(weights), "--eval-set", str(eval_dir), "--out",
                       str(tmp_path / "r.json"), "--before-after", str(picture), "--item", "2"])
    assert code == 2 and "--item must be in 0..1" in capsys.readouterr().err
    code = lama_train(["evaluate", "--weights", str(weights), "--eval-set", str(eval_dir), "--out",
                       str(tmp_path / "r.json"), "--before-after", str(tmp_path / "ba.jpg")])
    assert code == 2 and "ending in .png" in capsys.readouterr().err
