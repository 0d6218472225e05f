"""Fixed evaluation sets: `make_eval_set`, the `make-eval-set` command, `EvalSet` and evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lama_training.cli import main as lama_train
from lama_training.evaluation import (
    EvalSet, EvalSetError, evaluate_generator, make_eval_set, make_evaluator, masked_l1, resolve_policies,
)
from lama_training.masks import mask_coverage

SIZE = 256


def textured(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([np.sin(x / 9.0 + seed), np.cos(y / 13.0), np.sin((x + y) / 17.0)], axis=-1)
    return np.clip(127 + 100 * base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    (root / "nested").mkdir()
    Image.fromarray(textured(300, 420, 1)).save(root / "a.jpg", quality=95)
    Image.fromarray(textured(512, 512, 2)).save(root / "nested" / "b.png")
    Image.fromarray(textured(700, 300, 3)).save(root / "c.webp")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(textured(40, 60, 4)).save(root / "tiny.png")  # shorter side < SIZE / 2
    return root


@pytest.fixture(scope="module")
def eval_dir(image_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("evalset") / "set"
    make_eval_set(image_dir, out, size=SIZE, policies=["thin", "medium", "thick"], count=4, seed=3)
    return out


def test_the_index_lists_every_item_with_its_files(eval_dir):
    index = json.loads((eval_dir / "index.json").read_text())
    assert index["format"] == "lama-eval-set" and index["version"] == 1
    assert index["policies"] == ["thin-256", "medium-256", "thick-256"]
    assert index["size"] == SIZE and index["seed"] == 3 and index["max_coverage"] == 0.5
    assert len(index["items"]) == 12
    for item in index["items"]:
        image = np.asarray(Image.open(eval_dir / item["image"]))
        mask = np.asarray(Image.open(eval_dir / item["mask"]))
        assert image.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE)
        assert set(np.unique(mask)) <= {0, 255}
        assert 0 < mask_coverage(mask) <= 0.5
        assert mask_coverage(mask) == pytest.approx(item["coverage"], abs=1e-6)
        assert item["source"] in ("a.jpg", "nested/b.png", "c.webp")


def test_policies_share_the_crops_and_differ_in_masks(eval_dir):
    index = json.loads((eval_dir / "index.json").read_text())
    by_policy = {p: [i for i in index["items"] if i["policy"] == p] for p in index["policies"]}
    for thin, thick in zip(by_policy["thin-256"], by_policy["thick-256"]):
        assert (eval_dir / thin["image"]).read_bytes() == (eval_dir / thick["image"]).read_bytes()
        assert (eval_dir / thin["mask"]).read_bytes() != (eval_dir / thick["mask"]).read_bytes()
    mean_width = {p: np.mean([i["width"] for i in items]) for p, items in by_policy.items()}
    assert mean_width["thin-256"] < mean_width["medium-256"] < mean_width["thick-256"]


def test_same_seed_same_set_and_masks_independent_of_other_policies(image_dir, eval_dir, tmp_path):
    make_eval_set(image_dir, tmp_path / "again", size=SIZE, policies=["thick"], count=4, seed=3)
    make_eval_set(image_dir, tmp_path / "other", size=SIZE, policies=["thick"], count=4, seed=4)
    for i in range(4):
        name = f"thick-256/{i:05d}_mask.png"
        assert (tmp_path / "again" / name).read_bytes() == (eval_dir / name).read_bytes()
    assert any((tmp_path / "other" / f"thick-256/{i:05d}.png").read_bytes() !=
               (eval_dir / f"thick-256/{i:05d}.png").read_bytes() for i in range(4))


def test_bad_and_tiny_images_are_skipped_with_a_warning(image_dir, tmp_path, caplog):
    make_eval_set(image_dir, tmp_path / "set", size=SIZE, policies=["thin"], count=5, seed=0)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "broken.jpg" in messages and "tiny.png" in messages
    sources = {i["source"] for i in json.loads((tmp_path / "set" / "index.json").read_text())["items"]}
    assert sources == {"a.jpg", "nested/b.png", "c.webp"}  # 5 items cycle over the 3 usable images


def test_unsatisfiable_coverage_is_a_clear_error(image_dir, tmp_path):
    with pytest.raises(EvalSetError, match="no mask with coverage"):
        make_eval_set(image_dir, tmp_path / "set", size=SIZE, policies=["thick"], count=1, max_coverage=0.001)


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=100), "multiple of 8"), (dict(count=0), "count"), (dict(max_coverage=0), "coverage"),
    (dict(policies=["fat"]), "unknown mask policy"), (dict(policies=["thin", "thin"]), "once each"),
])
def test_bad_options_are_clear_errors(image_dir, tmp_path, kwargs, message):
    with pytest.raises(EvalSetError, match=message):
        make_eval_set(image_dir, tmp_path / "set", **kwargs)


def test_an_existing_non_empty_output_is_never_overwritten(image_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(EvalSetError, match="not an empty folder"):
        make_eval_set(image_dir, tmp_path, count=1)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_a_folder_without_usable_images_is_a_clear_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.jpg").write_bytes(b"junk")
    with pytest.raises(EvalSetError, match="no usable image"):
        make_eval_set(tmp_path / "in", tmp_path / "out", count=1)


def test_resolve_policies_accepts_kinds_and_full_names():
    assert resolve_policies(["thin", "thick-512", "big-lama"], 256) == ["thin-256", "thick-512", "big-lama"]
    assert resolve_policies(["medium"], 512) == ["medium-512"]


def test_eval_set_items_match_the_files(eval_dir):
    dataset = EvalSet(eval_dir)
    assert len(dataset) == 12 and dataset.policies == ["thin-256", "medium-256", "thick-256"]
    item = dataset[5]
    assert item["image"].shape == (3, SIZE, SIZE) and item["mask"].shape == (1, SIZE, SIZE)
    saved = np.asarray(Image.open(eval_dir / dataset.items[5].mask)) > 0
    assert torch.equal(item["mask"][0], torch.from_numpy(saved.astype(np.float32)))
    assert item["policy"] == "medium-256"
    picked = EvalSet(eval_dir, policies=["thick-256"], max_images=2)
    assert [i.policy for i in picked.items] == ["thick-256"] * 2


@pytest.mark.parametrize("damage, message", [
    ("no_index", "not an evaluation set"), ("bad_json", "not readable JSON"), ("version", "version 99"),
    ("missing_file", "missing"), ("unknown_policy", "no policy"),
])
def test_damaged_sets_are_clear_errors(eval_dir, tmp_path, damage, message):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(eval_dir, root)
    index = json.loads((root / "index.json").read_text())
    policies = None
    if damage == "no_index":
        (root / "index.json").unlink()
    elif damage == "bad_json":
        (root / "index.json").write_text("{")
    elif damage == "version":
        index["version"] = 99
        (root / "index.json").write_text(json.dumps(index))
    elif damage == "missing_file":
        (root / index["items"][0]["mask"]).unlink()
    else:
        policies = ["thick-512"]
    with pytest.raises(EvalSetError, match=message):
        EvalSet(root, policies=policies)


class ConstantFill(torch.nn.Module):
    """A stand-in generator that predicts mid-grey everywhere (its composite fills the hole with 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 4  # masked image + mask, the generator contract
        return torch.full_like(x[:, :3], 0.5)


def test_evaluate_generator_scores_the_composite_inside_the_hole(eval_dir):
    dataset = EvalSet(eval_dir, max_images=2)  # 2 per policy keep the float64 SSIM quick
    metrics = evaluate_generator(ConstantFill(), dataset, "cpu", batch_size=4)
    items = [dataset[i] for i in range(len(dataset))]
    expected = [float(masked_l1(torch.full((1, 3, SIZE, SIZE), 0.5), it["image"][None], it["mask"][None])) for it in items]
    assert metrics["images"] == 6
    assert metrics["l1_hole"] == pytest.approx(np.mean(expected), rel=1e-5)
    thin = [e for e, it in zip(expected, items) if it["policy"] == "thin-256"]
    assert metrics["thin-256/l1_hole"] == pytest.approx(np.mean(thin), rel=1e-5)
    assert {"psnr_hole", "ssim_hole", "thick-256/ssim_hole"} <= set(metrics)
    assert metrics["ssim_hole"] < 0.5  # a flat fill has no structure


def test_make_evaluator_reads_the_set_up_front(eval_dir, tmp_path):
    evaluate = make_evaluator(eval_dir, batch_size=4, max_images=1)
    assert evaluate(ConstantFill(), torch.device("cpu"))["images"] == 3
    with pytest.raises(EvalSetError):
        make_evaluator(tmp_path)


def test_the_command_writes_a_set_and_reports_errors_in_one_line(image_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    code = lama_train(["make-eval-set", "--images", str(image_dir), "--out", str(out), "--size", "256",
                       "--policy", "thin,thick", "--count", "2", "--seed", "7"])
    assert code == 0 and capsys.readouterr().out.strip() == str(out / "index.json")
    assert len(EvalSet(out)) == 4
    code = lama_train(["make-eval-set", "--images", str(image_dir), "--out", str(out), "--count", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "not an empty folder" in err and "Traceback" not in err
    code = lama_train(["make-eval-set", "--images", str(tmp_path / "none"), "--out", str(tmp_path / "o2")])
    assert code == 2 and "image folder not found" in capsys.readouterr().err
