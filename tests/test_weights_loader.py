"""`load_model` recognises files by their bytes and folders by their layout; anything else is one clear line."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from lama_backend.weights import WeightsError, load_model
from tests.helpers.fake_archive import big_lama_zip_bytes
from tests.helpers.tiny_model import write_tiny_weights


def test_kind_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    disguised = write_tiny_weights(tmp_path / "best.ckpt")  # safetensors under a checkpoint's name
    assert "(safetensors)" in load_model(disguised, device="cpu").source


def test_the_zip_itself_asks_to_be_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "big-lama.zip"
    path.write_bytes(big_lama_zip_bytes())
    with pytest.raises(WeightsError, match="unpack big-lama.zip first, or run `lama-backend fetch big-lama`"):
        load_model(path, device="cpu")


def test_truncated_zip_is_named_as_such(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x/data.pkl", b"0" * 1000)
    path = tmp_path / "cut.ckpt"
    path.write_bytes(buffer.getvalue()[:600])
    with pytest.raises(WeightsError, match="damaged zip file"):
        load_model(path, device="cpu")


def test_folder_laid_out_like_the_cache(tmp_path: Path) -> None:
    write_tiny_weights(tmp_path / "b.safetensors")
    write_tiny_weights(tmp_path / "a.safetensors")
    assert str(tmp_path / "a.safetensors") in load_model(tmp_path, device="cpu").source
    archive_dir = tmp_path / "big-lama" / "models"
    archive_dir.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(big_lama_zip_bytes())) as archive:
        (archive_dir / "best.ckpt").write_bytes(archive.read("big-lama/models/best.ckpt"))
    assert str(archive_dir / "best.ckpt") in load_model(tmp_path, device="cpu").source  # fetch's install wins


def test_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(WeightsError, match="directory holds no weights"):
        load_model(tmp_path, device="cpu")
