"""`lama-backend serve` and `status` run in this process (fast); the process tests cover signals."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from lama_backend.cli import main
from lama_backend.client import BackendError, LamaClient
from tests.helpers.tiny_model import write_tiny_weights
from tests.helpers.server import free_port, make_job


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("cli") / "tiny.safetensors")


def test_serve_options_reach_the_server_then_shutdown_ends_it(weights, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LAMA_TOKEN", raising=False)
    address = f"tcp://127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    seen: dict = {}

    def drive() -> None:
        client = LamaClient(address, token="tok", timeout=30)
        try:
            seen["hello"] = client.hello()
            request, _, _ = make_job(np.random.default_rng(0), 40, 30)
            seen["small"] = client.inpaint(request).width
            too_big, _, _ = make_job(np.random.default_rng(0), 50, 50)
            try:
                client.inpaint(too_big)
            except BackendError as exc:
                seen["big"] = exc.code
            seen["status"] = main(["status", "--address", address, "--token", "tok"])
            seen["status_bad_token"] = main(["status", "--address", address, "--token", "nope"])
        finally:
            client.shutdown()
            client.close()

    driver = threading.Thread(target=drive)
    driver.start()
    code = main(["serve", "--bind", address, "--weights", str(weights), "--device", "cpu", "--token", "tok",
                 "--max-pixels", "2000", "--max-queued", "3", "--log-file", str(log), "--precision", "fp32"])
    driver.join(30)
    assert code == 0
    assert seen["hello"]["model"]["source"] == f"{weights} (safetensors)" and seen["hello"]["auth"] == "token"
    assert seen["hello"]["model"]["bundled"] is False and seen["hello"]["model"]["precision"] == "fp32"
    assert seen["hello"]["limits"]["max_pixels"] == 2000
    assert seen["hello"]["limits"]["max_queued_per_client"] == 3
    assert seen["small"] == 40 and seen["big"] == "too_large"
    assert seen["status"] == 0 and seen["status_bad_token"] == 1
    out = capsys.readouterr()
    assert "tiny.safetensors" in out.out and "unauthorized" in out.err
    text = log.read_text()
    assert "serving lama" in text and "precision fp32" in text and "shutdown requested" in text and text.rstrip().endswith("stopped")


def test_status_without_a_backend_exits_1(capsys):
    assert main(["status", "--address", f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.3"]) == 1
    assert "no backend answering" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--bind", "tcp://0.0.0.0:{port}"], "refusing to bind"),
    (["--weights", "/nonexistent/weights.safetensors"], "weights not found"),
    (["--max-pixels", "0"], "--max-pixels"),
])
def test_serve_user_errors_exit_2_with_one_line(args, message, capsys, monkeypatch):
    monkeypatch.delenv("LAMA_TOKEN", raising=False)
    port = free_port()
    args = [a.format(port=port) for a in args]
    if "--bind" not in args:
        args += ["--bind", f"tcp://127.0.0.1:{port}"]
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_serve_refuses_a_precision_this_machine_cannot_run(weights, monkeypatch, capsys):
    """fp16 on a CPU is refused with a message naming the option, before serving anything."""
    address = f"tcp://127.0.0.1:{free_port()}"
    code = main(["serve", "--bind", address, "--weights", str(weights), "--device", "cpu", "--precision", "fp16"])
    assert code != 0
    assert "--precision" in capsys.readouterr().err
