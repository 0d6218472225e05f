"""`lama-backend serve` as a real process: autostart, status, a busy port, killed clients and servers."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lama_backend.client import (BackendError, BackendUnavailable, InpaintRequest, LamaClient, ensure_backend)
from tests.helpers.tiny_model import write_tiny_weights
from tests.helpers.server import REPO_ROOT, backend_command, backend_env, free_port, make_job

pytestmark = pytest.mark.slow

# A job that keeps the tiny model busy for about a second: the whole 768 x 768 image is the hole.
LONG_SIDE = 768
CLIENT_SCRIPT = """
import sys
from lama_backend.client import InpaintRequest, LamaClient
client = LamaClient(sys.argv[1], implementation=sys.argv[2])
side = int(sys.argv[3])
request = InpaintRequest(side, side, 3, "u8", "RGB", bytes(side * side * 3), b"\\xff" * (side * side), strategy="whole")
def progress(fraction, stage):
    if stage.startswith("inpainting"):
        print("running", flush=True)
client.inpaint(request, on_progress=progress)
print("finished", flush=True)
"""


def long_request() -> InpaintRequest:
    side = LONG_SIDE
    return InpaintRequest(side, side, 3, "u8", "RGB", bytes(side * side * 3), b"\xff" * (side * side),
                          strategy="whole")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors")


def wait_for_hello(address: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    client = LamaClient(address, timeout=1.0)
    try:
        while True:
            try:
                return client.hello()
            except BackendUnavailable:
                if time.monotonic() > deadline:
                    raise
    finally:
        client.close()


def run_long_job(client: LamaClient, running: threading.Event, outcomes: dict, name: str) -> None:
    """Run `long_request()`; set `running` once the model works on it; note how it ended and when."""
    def progress(fraction: float, stage: str) -> None:
        if stage.startswith("inpainting"):
            running.set()
    try:
        outcomes[name] = (client.inpaint(long_request(), on_progress=progress), time.monotonic())
    except Exception as exc:  # the outcome under test
        outcomes[name] = (exc, time.monotonic())


def test_backend_process_lifecycle(weights, tmp_path):
    """One backend process after another (each start costs seconds, so the steps share them):

    autostart detached -> status -> a second server on the port fails -> a killed client costs
    only its job -> the server killed mid-job is reported within 2 s by both client kinds -> a
    restarted server is picked up by the same client objects -> SIGTERM mid-job exits 0.
    """
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "backend.log"
    command = backend_command("serve", "--bind", address, "--weights", str(weights), "--log-file", str(log))
    info = ensure_backend(address, command, timeout=60, log_path=str(tmp_path / "stdout.log"))
    pid = info["pid"]
    try:
        assert info["model"]["source"] == f"{weights} (safetensors)"
        if hasattr(os, "getsid"):
            assert os.getsid(pid) != os.getsid(0)  # its own session: a killed plug-in group spares it
        assert ensure_backend(address, command)["pid"] == pid  # already running: not started twice

        status = subprocess.run(backend_command("status", "--address", address), env=backend_env(), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and "tiny.safetensors" in status.stdout

        second = subprocess.run(command, env=backend_env(), cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2 and "already in use" in second.stderr

        doomed = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, address, "pure", str(LONG_SIDE)],
                                  env=backend_env(), cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        assert doomed.stdout.readline().strip() == "running"
        doomed.kill()
        doomed.wait()
        clients = {name: LamaClient(address, implementation=name) for name in ("zmq", "pure")}
        assert clients["zmq"].hello()["pid"] == pid
        request, _, _ = make_job(np.random.default_rng(0), 64, 48)
        assert clients["pure"].inpaint(request).width == 64
        assert "went away; dropped its 1 job(s)" in log.read_text()

        running = threading.Event()
        outcomes: dict[str, tuple[object, float]] = {}
        threads = [threading.Thread(target=run_long_job, args=(client, running, outcomes, name))
                   for name, client in clients.items()]
        for thread in threads:
            thread.start()
        assert running.wait(30)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        for thread in threads:
            thread.join(10)
        assert set(outcomes) == {"zmq", "pure"}
        for name, (outcome, when) in outcomes.items():
            assert isinstance(outcome, BackendUnavailable), (name, outcome)
            assert when - killed_at < 2.0, (name, when - killed_at)
    finally:
        if hasattr(signal, "SIGKILL"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    server = subprocess.Popen(command, env=backend_env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_hello(address)
        for client in clients.values():  # the same objects reconnect by themselves
            request, _, _ = make_job(np.random.default_rng(1), 40, 40)
            assert client.inpaint(request).height == 40

        running.clear()
        outcomes.clear()
        thread = threading.Thread(target=run_long_job, args=(clients["pure"], running, outcomes, "pure"))
        thread.start()
        assert running.wait(30)
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        thread.join(10)
        outcome = outcomes["pure"][0]
        # The engine finishes the region it is in (torch cannot be interrupted mid-call), so the job
        # ends with its result or with shutting_down, never with silence.
        assert not isinstance(outcome, BackendUnavailable), outcome
        assert not isinstance(outcome, BackendError) or outcome.code == "shutting_down"
        assert log.read_text().rstrip().endswith("stopped")
        for client in clients.values():
            client.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
