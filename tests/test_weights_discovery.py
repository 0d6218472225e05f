"""Discovery order: explicit path, $LAMA_WEIGHTS, project cache, IOPaint cache, bundled model."""
from __future__ import annotations

from pathlib import Path

import pytest

from lama_backend.weights import WeightsError, discover_weights, load_model
from lama_backend.weights import discovery
from tests.helpers.tiny_model import write_tiny_weights


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every location discovery reads, pointed into an empty temporary tree."""
    places = {"home": tmp_path / "home", "xdg": tmp_path / "xdg", "bundled": tmp_path / "bundled",
              "files": tmp_path / "files"}
    for place in places.values():
        place.mkdir()
    monkeypatch.setenv("HOME", str(places["home"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(places["xdg"]))
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.delenv("LAMA_WEIGHTS", raising=False)
    monkeypatch.setattr(discovery, "BUNDLED_DIR", places["bundled"])
    return places


def test_nothing_anywhere_says_how_to_get_weights(isolated: dict[str, Path]) -> None:
    with pytest.raises(WeightsError) as caught:
        discover_weights()
    message = str(caught.value)
    assert "lama-backend fetch big-lama" in message
    assert str(isolated["xdg"] / "lama-backend") in message
    assert "\n" not in message


def test_each_location_takes_precedence_over_the_later_ones(isolated: dict[str, Path],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = write_tiny_weights(isolated["bundled"] / "default.safetensors")
    assert discover_weights() == bundled

    iopaint = isolated["xdg"] / "torch" / "hub" / "checkpoints" / "big-lama.pt"
    iopaint.parent.mkdir(parents=True)
    iopaint.write_bytes(b"stand-in")  # discovery only locates; loading is load_model's job
    assert discover_weights() == iopaint

    cache = isolated["xdg"] / "lama-backend"
    exported = write_tiny_weights(cache / "mine.safetensors")
    assert discover_weights() == exported
    fetched = cache / "big-lama" / "models"
    fetched.mkdir(parents=True)
    assert discover_weights() == cache / "big-lama"  # what `fetch big-lama` installs comes first

    from_env = write_tiny_weights(isolated["files"] / "env.safetensors")
    monkeypatch.setenv("LAMA_WEIGHTS", str(from_env))
    assert discover_weights() == from_env

    explicit = write_tiny_weights(isolated["files"] / "explicit.safetensors")
    assert discover_weights(explicit) == explicit
    assert discover_weights(str(explicit)) == explicit


def test_default_cache_is_under_home_without_xdg(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert discovery.cache_dir() == isolated["home"] / ".cache" / "lama-backend"
    iopaint = isolated["home"] / ".cache" / "torch" / "hub" / "checkpoints" / "big-lama.pt"
    iopaint.parent.mkdir(parents=True)
    iopaint.write_bytes(b"x")
    assert discover_weights() == iopaint


def test_torch_home_moves_the_iopaint_cache(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(isolated["files"]))
    iopaint = isolated["files"] / "hub" / "checkpoints" / "big-lama.pt"
    iopaint.parent.mkdir(parents=True)
    iopaint.write_bytes(b"x")
    assert discover_weights() == iopaint


def test_named_paths_that_do_not_exist_are_errors_not_fallbacks(isolated: dict[str, Path],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_tiny_weights(isolated["bundled"] / "default.safetensors")
    with pytest.raises(WeightsError, match="weights not found: .*absent.safetensors"):
        discover_weights(isolated["files"] / "absent.safetensors")
    monkeypatch.setenv("LAMA_WEIGHTS", str(isolated["files"] / "gone.ckpt"))
    with pytest.raises(WeightsError, match="LAMA_WEIGHTS points to .*gone.ckpt, which does not exist"):
        discover_weights()


def test_discovered_cache_file_loads(isolated: dict[str, Path]) -> None:
    write_tiny_weights(isolated["xdg"] / "lama-backend" / "tiny.safetensors")
    model = load_model(discover_weights(), device="cpu")
    assert "tiny.safetensors" in model.source


def test_partial_downloads_are_not_discovered(isolated: dict[str, Path]) -> None:
    cache = isolated["xdg"] / "lama-backend"
    cache.mkdir()
    (cache / "big-lama.zip.part").write_bytes(b"half")
    (cache / "big-lama.pt.part").write_bytes(b"half")
    with pytest.raises(WeightsError, match="no LaMa weights found"):
        discover_weights()
