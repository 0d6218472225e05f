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


LOMIRI_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: lomiri-wallpapers

Files: *
Copyright: 2010-2016 Ubuntu community contributors
License: CC-BY-SA-3.0

Files: 16.04/aitzgorri_by_Aitzol_Berasategi.jpg
Copyright: Aitzol Berasategi, 2018
License: CC-BY-4.0

Files: 16.04/seeding_by_Clements_Engelhardt.jpg
Copyright: Clemens Engelhardt, 2018
License: CC0-1.0

License: CC0-1.0
 To the extent possible under law, ...
"""


def test_lomiri_photographs_carry_their_own_dep5_licence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    from lama_training import offline_data

    backgrounds, docs = tmp_path / "backgrounds", tmp_path / "doc"
    (docs / "lomiri-wallpapers-16.04").mkdir(parents=True)
    (docs / "lomiri-wallpapers-16.04" / "copyright").write_text(LOMIRI_COPYRIGHT)
    backgrounds.mkdir()
    for name in ("aitzgorri_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
                 "umang_by_Abhishek_Mudgal.jpg"):  # umang: a gradient, not on the photo list
        _photo(backgrounds / name, 3)
    found = offline_data.find_lomiri_photos(backgrounds, docs)
    assert {(c.name, c.source, c.licence) for c in found} == {
        ("lomiri-aitzgorri_by_Aitzol_Berasategi", "debian:lomiri-wallpapers-16.04", "CC-BY-4.0"),
        ("lomiri-seeding_by_Clements_Engelhardt", "debian:lomiri-wallpapers-16.04", "CC0-1.0"),
    }
    # the other listed photographs are missing; -20.04 is not installed: both said, neither fatal
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "lomiri-wallpapers-20.04 is not installed" in messages and "Bridge_by_Sander_Klootwijk.jpg" in messages


def test_dep5_licences_maps_every_file_pattern() -> None:
    from lama_training.offline_data import dep5_licences

    licences = dep5_licences(LOMIRI_COPYRIGHT)
    assert licences == {"*": "CC-BY-SA-3.0", "16.04/aitzgorri_by_Aitzol_Berasategi.jpg": "CC-BY-4.0",
                        "16.04/seeding_by_Clements_Engelhardt.jpg": "CC0-1.0"}
