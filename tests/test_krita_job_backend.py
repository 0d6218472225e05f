"""The plugin's network job (lama_inpaint.job) with the real client against a real `lama-backend serve`.

No Krita needed: this is the worker-thread side of the action. The backend runs as its own
process with tiny random weights, so it can be killed mid-job like a crashing backend would be.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests" / "mock_krita", ROOT / "krita_plugin"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from lama_backend.client import LamaClient, JobCancelled  # noqa: E402
from tests.helpers.tiny_model import write_tiny_weights  # noqa: E402
from tests.krita_tier.harness import free_port, shutdown_backend  # noqa: E402

pytestmark = pytest.mark.slow
LAMA_BACKEND = str(Path(sys.executable).with_name("lama-backend"))


def start_backend(address: str, weights: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen([LAMA_BACKEND, "serve", "--bind", address, "--weights", str(weights), "--device", "cpu",
                                *extra], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        client = LamaClient(address, timeout=0.5, token=extra[1] if extra[:1] == ("--token",) else None)
        try:
            client.hello()
            return process
        except Exception:
            assert process.poll() is None, "lama-backend serve exited early"
            time.sleep(0.2)
        finally:
            client.close()
    process.kill()
    raise AssertionError("lama-backend serve did not answer within 120 s")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def fields(width: int, height: int) -> dict:
    """A BGRA u8 region with a hole in the middle, as the Krita plugin sends it."""
    pixels = bytearray((i * 37) % 251 for i in range(width * height * 4))
    pixels[3::4] = b"\xff" * (width * height)  # opaque, like a flattened image
    mask = bytearray(width * height)
    for y in range(height // 4, 3 * height // 4):
        mask[y * width + width // 4:y * width + 3 * width // 4] = b"\xff" * (width // 2)
    return dict(width=width, height=height, channels=4, dtype="u8", layout="BGRA", pixels=bytes(pixels), mask=bytes(mask),
                grow=0, feather=0, margin=16, strategy="crop", soft_mask=True, output="layer")


def test_job_gets_a_layer_result_and_wrong_token_gets_a_hint(weights: Path) -> None:
    from lama_inpaint.document_io import PluginError
    from lama_inpaint.job import run_inpaint
    from lama_inpaint.settings import InpaintSettings

    address = "tcp://127.0.0.1:%d" % free_port()
    process = start_backend(address, weights, "--token", "right")
    try:
        progress = []
        request = fields(64, 48)
        soft = bytearray(request["mask"])
        soft[24 * 64 + 20:24 * 64 + 44] = b"\x80" * 24  # one row of the hole half-selected
        request["mask"] = bytes(soft)
        result = run_inpaint(request, InpaintSettings(address=address, token="right"),
                             lambda f, s: progress.append(f), threading.Event())
        assert len(result) == 64 * 48 * 4
        alpha = result[3::4]
        hole = request["mask"]
        assert all(a == 0 for a, m in zip(alpha, hole) if m == 0), "layer output: transparent outside the hole"
        assert all(a == 255 for a, m in zip(alpha, hole) if m == 255)
        assert [a for a, m in zip(alpha, hole) if m == 128] == [128] * 24, "soft selection = blend alpha"
        assert progress and max(progress) <= 1.0
        with pytest.raises(PluginError, match="token in the LaMa Inpaint docker"):
            run_inpaint(fields(16, 16), InpaintSettings(address=address, token="wrong"), lambda f, s: None,
                        threading.Event())
    finally:
        process.terminate()
        process.wait(30)


def test_backend_killed_mid_job_is_a_clear_error(weights: Path) -> None:
    from lama_inpaint.document_io import PluginError
    from lama_inpaint.job import run_inpaint
    from lama_inpaint.settings import InpaintSettings

    address = "tcp://127.0.0.1:%d" % free_port()
    process = start_backend(address, weights)
    killed = []

    def kill_on_first_progress(fraction: float, stage: str) -> None:
        if stage != "sending" and not killed:
            os.kill(process.pid, signal.SIGKILL)
            killed.append(stage)
    try:
        with pytest.raises(PluginError, match="stopped while inpainting.*Nothing was changed"):
            # big enough that the tiny model is still working when the kill lands
            run_inpaint(fields(1536, 1536), InpaintSettings(address=address), kill_on_first_progress,
                        threading.Event())
        assert killed
    finally:
        process.kill()
        process.wait(30)


def test_cancel_stops_the_job_and_the_backend_keeps_serving(weights: Path) -> None:
    from lama_inpaint.job import run_inpaint
    from lama_inpaint.settings import InpaintSettings

    address = "tcp://127.0.0.1:%d" % free_port()
    process = start_backend(address, weights)
    cancel = threading.Event()
    try:
        with pytest.raises(JobCancelled):
            run_inpaint(fields(1536, 1536), InpaintSettings(address=address),
                        lambda f, s: cancel.set() if s != "sending" else None, cancel)
        client = LamaClient(address, timeout=5.0)
        try:
            assert client.hello()["type"] == "hello"
        finally:
            client.close()
    finally:
        process.terminate()
        process.wait(30)


def test_autostart_with_the_path_of_lama_backend(weights: Path, monkeypatch) -> None:
    """The documented setup: the autostart setting holds only the path; weights come from $LAMA_WEIGHTS."""
    from lama_inpaint.job import run_inpaint
    from lama_inpaint.settings import InpaintSettings

    monkeypatch.setenv("LAMA_WEIGHTS", str(weights))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    address = "tcp://127.0.0.1:%d" % free_port()
    stages = []
    try:
        result = run_inpaint(fields(32, 32), InpaintSettings(address=address, autostart_command=LAMA_BACKEND),
                             lambda f, s: stages.append(s), threading.Event())
        assert len(result) == 32 * 32 * 4 and "starting the backend" in stages
    finally:
        shutdown_backend(address)
