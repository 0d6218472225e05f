"""The offline training folder records where every file came from, and keeps reserved data out."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lama_training.offline_data import Candidate, assemble, procedural_texture


def _photo(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_manifest_records_source_licence_checksum_and_split(tmp_path: Path) -> None:
    candidates = [Candidate("skimage-coffee", "pypi:scikit-image", _photo(tmp_path / "coffee.png", 0), "CC0"),
                  Candidate("mate-nature-Aqua", "debian:mate-backgrounds", _photo(tmp_path / "Aqua.png", 1), "GPL-2+")]
    out = tmp_path / "out"
    entries = assemble(out, textures=2, candidates=candidates)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["files"]) == len(entries) == 4
    by_file = {entry["file"]: entry for entry in manifest["files"]}
    assert by_file["heldout/skimage-coffee.png"]["split"] == "heldout"  # a fixed held-out name
    assert by_file["train/mate-nature-Aqua.png"]["licence"] == "GPL-2+"
    assert by_file["train/texture-001.png"]["source"] == "generated:procedural_texture"
    for name, entry in by_file.items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert (out / "heldout/skimage-coffee.png").read_bytes() == (tmp_path / "coffee.png").read_bytes()


def test_reserved_evaluation_packages_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lama_training import offline_data

    reserved = tmp_path / "plasma-workspace-wallpapers"
    reserved.mkdir()
    _photo(reserved / "a.jpg", 2)
    monkeypatch.setattr(offline_data, "MATE_NATURE_DIR", reserved)  # as if a reserved folder were scanned
    with pytest.raises(RuntimeError, match="reserved for evaluation"):
        offline_data.find_package_photos()


def test_no_training_images_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no training images"):
        assemble(tmp_path / "out", textures=0, candidates=[])


def test_procedural_textures_are_deterministic_and_varied() -> None:
    first, again, other = procedural_texture(3, 64), procedural_texture(3, 64), procedural_texture(4, 64)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.std() > 10


def test_cli_warns_when_generated_textures_outnumber_the_photographs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from lama_training.cli import main as lama_train
    from lama_training.commands import assemble_data

    photo = Candidate("mate-nature-Aqua", "debian:mate-backgrounds", _photo(tmp_path / "Aqua.png", 1), "GPL-2+")
    monkeypatch.setattr(assemble_data, "assemble",
                        lambda out, textures: assemble(out, textures=textures, candidates=[photo]))
    assert lama_train(["assemble-data", "--out", str(tmp_path / "balanced"), "--textures", "1"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert lama_train(["assemble-data", "--out", str(tmp_path / "textured"), "--textures", "2"]) == 0
    assert "2 generated textures outnumber the 1 training photographs" in capsys.readouterr().err
