"""`lama-backend fetch` against a real HTTP server on 127.0.0.1, and offline."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from lama_backend.cli import main
from lama_backend.models import GeneratorModel, TorchScriptModel
from lama_backend.weights import WeightsError, discover_weights, load_model
from lama_backend.weights.download import ProgressBar
from lama_backend.weights.fetch import fetch, fetch_entry
from lama_backend.weights.registry import REGISTRY
from tests.helpers.fake_archive import CONFIG_YAML, big_lama_zip_bytes
from tests.helpers.http_server import serve_files


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LAMA_WEIGHTS", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    return tmp_path / "xdg" / "lama-backend"


def closed_port_url() -> str:
    """A 127.0.0.1 URL nobody listens on: connecting is refused at once, like an offline machine."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/big-lama.zip"


def test_cli_downloads_verifies_and_unpacks_the_archive(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = big_lama_zip_bytes(seed=4)
    with serve_files({"/big-lama.zip": archive}) as server:
        code = main(["fetch", "big-lama", "--url", f"{server.base_url}/big-lama.zip"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    installed = cache / "big-lama"
    assert (installed / "config.yaml").read_text() == CONFIG_YAML
    assert (installed / "models" / "best.ckpt").is_file()
    assert not (cache / "big-lama.zip").exists() and not (cache / "big-lama.zip.part").exists()
    assert hashlib.sha256(archive).hexdigest() in captured.out
    assert "100%" in captured.err  # the progress bar reached its end
    assert discover_weights() == installed
    model = load_model(discover_weights(), device="cpu")
    assert isinstance(model, GeneratorModel) and model.generator.config.ngf == 8

    code = main(["fetch", "big-lama", "--url", "http://127.0.0.1:9/never-contacted"])
    assert code == 0 and "already installed" in capsys.readouterr().out


def test_a_file_downloaded_elsewhere_is_verified_and_installed(cache: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    copied = tmp_path / "usb" / "big-lama.zip"
    copied.parent.mkdir()
    copied.write_bytes(big_lama_zip_bytes(seed=2))
    assert main(["fetch", "big-lama", "--url", str(copied)]) == 0, capsys.readouterr().err
    assert (cache / "big-lama" / "models" / "best.ckpt").is_file()
    assert copied.is_file()  # the user's copy is left alone


def test_interrupted_download_resumes_with_a_range_request(cache: Path) -> None:
    archive = big_lama_zip_bytes(seed=5)
    cache.mkdir(parents=True)
    (cache / "big-lama.zip.part").write_bytes(archive[: len(archive) // 3])
    with serve_files({"/a.zip": archive}) as server:
        result = fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert server.requests == [("/a.zip", f"bytes={len(archive) // 3}-")]
    assert result.sha256 == hashlib.sha256(archive).hexdigest()  # the hash covers the resumed part too
    assert (result.installed / "models" / "best.ckpt").is_file()


def test_dropped_connection_leaves_a_part_file_that_the_next_run_continues(cache: Path) -> None:
    archive = big_lama_zip_bytes(seed=7)
    with serve_files({"/a.zip": archive}) as server:
        server.cut_after = 5000
        with pytest.raises(WeightsError) as caught:
            fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
        assert str(caught.value).endswith(f"(5000 of {len(archive)} bytes); run the same command again to continue")
        assert (cache / "big-lama.zip.part").read_bytes() == archive[:5000]
        assert not (cache / "big-lama").exists()
        server.cut_after = None
        result = fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert server.requests[-1] == ("/a.zip", "bytes=5000-")
    assert result.sha256 == hashlib.sha256(archive).hexdigest()


def test_complete_part_file_is_verified_without_downloading_again(cache: Path) -> None:
    archive = big_lama_zip_bytes(seed=8)
    cache.mkdir(parents=True)
    (cache / "big-lama.zip.part").write_bytes(archive)
    with serve_files({"/a.zip": archive}) as server:  # answers 416: nothing left to send
        result = fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert server.requests == [("/a.zip", f"bytes={len(archive)}-")]
    assert result.sha256 == hashlib.sha256(archive).hexdigest()
    assert (result.installed / "models" / "best.ckpt").is_file()


def test_server_that_ignores_range_restarts_cleanly(cache: Path) -> None:
    archive = big_lama_zip_bytes(seed=6)
    cache.mkdir(parents=True)
    (cache / "big-lama.zip.part").write_bytes(b"stale bytes from another file")
    with serve_files({"/a.zip": archive}, ranges=False) as server:
        result = fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert result.sha256 == hashlib.sha256(archive).hexdigest()


def test_offline_fails_fast_with_one_line_saying_what_to_do(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    code = main(["fetch", "big-lama", "--url", closed_port_url()])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "cannot reach" in err and str(cache) in err
    assert "download big-lama.zip on a connected machine, then run `lama-backend fetch big-lama --url" in err
    assert elapsed < 5  # a refused connection is reported at once, not after retries
    assert not (cache / "big-lama").exists()


def test_silent_server_hits_the_timeout(cache: Path) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/big-lama.zip"
        started = time.monotonic()
        with pytest.raises(WeightsError, match="cannot reach .*timed out"):
            fetch("big-lama", url=url, timeout=0.5, progress=lambda *a: None)
        assert time.monotonic() - started < 4


def test_http_error_is_reported(cache: Path) -> None:
    with serve_files({}) as server:
        with pytest.raises(WeightsError, match="HTTP 404"):
            fetch("big-lama", url=f"{server.base_url}/missing.zip", progress=lambda *a: None)


@pytest.mark.parametrize("members, message", [
    ({"big-lama/config.yaml": b"x"}, r"missing big-lama/models/best\.ckpt"),
    ({"big-lama/config.yaml": b"x", "big-lama/models/best.ckpt": b"x", "../evil.txt": b"x"}, "outside the archive"),
    ({"big-lama/config.yaml": b"x", "big-lama/models/best.ckpt": b"not a checkpoint"}, "does not load"),
    (None, "damaged zip archive"),
])
def test_bad_archives_are_refused_and_nothing_is_installed(cache: Path, members: dict, message: str) -> None:
    data = big_lama_zip_bytes(members=members) if members is not None else b"PK\x03\x04 truncated"
    with serve_files({"/a.zip": data}) as server:
        with pytest.raises(WeightsError, match=message) as caught:
            fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert str(caught.value).endswith("(download deleted; run the command again)")
    assert list(cache.iterdir()) == []  # no install, no .part to resume, no unpacking folder
    assert not (cache.parent / "evil.txt").exists()


def test_archive_with_extra_generator_keys_is_refused(cache: Path) -> None:
    with serve_files({"/a.zip": big_lama_zip_bytes(extra_generator_key=True)}) as server:
        with pytest.raises(WeightsError, match=r"unexpected generator keys \[model\.99\.weight\]"):
            fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
    assert list(cache.iterdir()) == []


def scripted_bytes() -> bytes:
    class Script(torch.nn.Module):
        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return image * (1 - mask) + 0.5 * mask

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit.script is deprecated, yet it is how big-lama.pt was made
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(Script()), buffer)
    return buffer.getvalue()


def test_torchscript_is_verified_by_md5(cache: Path) -> None:
    data = scripted_bytes()
    entry = dataclasses.replace(REGISTRY["big-lama-torchscript"], md5=hashlib.md5(data).hexdigest())
    with serve_files({"/big-lama.pt": data}) as server:
        result = fetch_entry(dataclasses.replace(entry, url=f"{server.base_url}/big-lama.pt"),
                             progress=lambda *a: None)
    assert result.installed == cache / "big-lama.pt"
    assert result.installed.read_bytes() == data
    assert isinstance(load_model(discover_weights(), device="cpu"), TorchScriptModel)


def test_torchscript_with_wrong_md5_is_deleted(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with serve_files({"/big-lama.pt": b"not the published file"}) as server:
        code = main(["fetch", "big-lama-torchscript", "--url", f"{server.base_url}/big-lama.pt"])
    err = capsys.readouterr().err
    assert code == 2 and "differs from the published e3aa4aaa15225a33ec84f9f4bc47e500" in err
    assert not (cache / "big-lama.pt").exists() and not (cache / "big-lama.pt.part").exists()


def test_pinned_sha256_is_checked(cache: Path) -> None:
    archive = big_lama_zip_bytes()
    entry = dataclasses.replace(REGISTRY["big-lama"], sha256="0" * 64)
    with serve_files({"/a.zip": archive}) as server:
        with pytest.raises(WeightsError, match="SHA-256 .* differs from the pinned 0000"):
            fetch_entry(dataclasses.replace(entry, url=f"{server.base_url}/a.zip"), progress=lambda *a: None)


def test_registry_holds_the_published_locations() -> None:
    assert REGISTRY["big-lama"].url == "https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip"
    assert REGISTRY["big-lama-torchscript"].url.endswith("/add_big_lama/big-lama.pt")
    assert REGISTRY["big-lama-torchscript"].md5 == "e3aa4aaa15225a33ec84f9f4bc47e500"


def test_cli_list_and_usage_errors(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "--list"]) == 0
    out = capsys.readouterr().out
    assert "big-lama-torchscript" in out and str(cache) in out
    assert main(["fetch"]) == 2
    assert "say which weights to fetch" in capsys.readouterr().err
    assert main(["fetch", "big-lama", "--timeout", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["fetch", "huge-lama"])


def test_force_downloads_again(cache: Path) -> None:
    with serve_files({"/a.zip": big_lama_zip_bytes(seed=1)}) as server:
        fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
        again = fetch("big-lama", url=f"{server.base_url}/a.zip", progress=lambda *a: None)
        assert again.already_present and len(server.requests) == 1
        forced = fetch("big-lama", url=f"{server.base_url}/a.zip", force=True, progress=lambda *a: None)
    assert not forced.already_present and len(server.requests) == 2
    assert (cache / "big-lama" / "models" / "best.ckpt").is_file()


def test_progress_bar_lines() -> None:
    stream = io.StringIO()
    bar = ProgressBar("big-lama", stream=stream, width=10)
    for done in range(0, 101, 5):
        bar(done * 1_000_000, 100_000_000, done * 1_000_000)
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("big-lama [##########] 100% 100.0/100.0 MB")
    assert 2 <= len(lines) <= 12  # not a terminal: about one line per 10 %, not one per chunk


def test_installed_command_offline_exits_2_with_one_line(cache: Path) -> None:
    """The real console script, as a user runs it: no traceback, one line, exit code 2."""
    script = Path(sys.executable).with_name("lama-backend")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lama_backend.cli"]
    env = dict(os.environ)  # the cache fixture's XDG_CACHE_HOME and HOME
    url = closed_port_url().replace(".zip", ".pt")
    result = subprocess.run([*command, "fetch", "big-lama-torchscript", "--url", url],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lama-backend: error: cannot reach http://127.0.0.1:")
    assert f"save it as {cache / 'big-lama.pt'}" in lines[0]
