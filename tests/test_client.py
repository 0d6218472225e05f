"""Both client implementations (pyzmq and the built-in ZMTP) against the real server and engine."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from lama_backend.client import (BackendError, BackendUnavailable, InpaintRequest, JobCancelled, LamaClient,
                                 PROTOCOL_VERSION)
from lama_backend.client.protocol import STRATEGIES
from lama_backend.engine import InpaintOptions
from lama_backend.server import ServerConfig
from tests.helpers.server import GatedInpainter, free_port, make_job, running_server, tiny_engine, to_layout

IMPLEMENTATIONS = ["zmq", "pure"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return tiny_engine(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def server(engine):
    with running_server(engine) as running:
        yield running


@pytest.fixture(params=IMPLEMENTATIONS)
def client(request, server):
    with LamaClient(server.address, implementation=request.param, timeout=5.0) as connected:
        yield connected


def engine_output(engine, rgb: np.ndarray, mask: np.ndarray, request: InpaintRequest) -> np.ndarray:
    options = InpaintOptions(grow=request.grow, feather=request.feather, margin=request.margin,
                             strategy=request.strategy, soft_mask=request.soft_mask, output=request.output)
    return engine.engine.inpaint(rgb, mask, options)


def test_hello_names_the_protocol_and_the_weights_serving(client, server):
    info = client.hello()
    assert info["protocol"] == PROTOCOL_VERSION
    assert info["model"]["family"] == "lama"
    assert info["model"]["source"].endswith("tiny.safetensors (safetensors)")
    assert info["device"] == "cpu"
    assert info["limits"]["max_pixels"] == ServerConfig().max_pixels
    assert info["strategies"] == list(STRATEGIES) and info["outputs"] == ["composite", "layer"]
    assert info["layouts"] == ["RGB", "BGR", "RGBA", "BGRA"] and info["dtypes"] == ["u8", "u16", "f32"]
    assert client.implementation in IMPLEMENTATIONS


@pytest.mark.parametrize("width,height,tile,layout,dtype", [
    (96, 80, 1024, "RGBA", "u8"),     # untiled
    (150, 131, 64, "RGB", "u8"),      # 3 x 3 tiles, last row and column partial
    (130, 70, 64, "BGRA", "u16"),     # tiled, 16-bit, editor channel order
    (70, 66, 1024, "BGR", "u16"),     # untiled 16-bit
    (65, 129, 64, "RGBA", "f32"),
])
def test_inpaint_equals_the_engine_byte_for_byte(client, engine, width, height, tile, layout, dtype):
    request, rgb, mask = make_job(np.random.default_rng(width * height), width, height, layout, dtype, tile,
                                  grow=2, feather=3, margin=16)
    progress: list[tuple[float, str]] = []
    result = client.inpaint(request, on_progress=lambda fraction, stage: progress.append((fraction, stage)))
    expected = engine_output(engine, rgb, mask, request)
    assert (result.width, result.height, result.dtype, result.layout) == (width, height, dtype, layout)
    assert result.pixels == to_layout(expected, layout)
    assert result.pixels != request.pixels  # the hole really changed
    assert progress and progress[-1][0] == 1.0 and all(0.0 <= f <= 1.0 for f, _ in progress)
    assert [f for f, _ in progress] == sorted(f for f, _ in progress)


def test_layer_output_of_an_rgb_request_comes_back_with_alpha_in_editor_order(client, engine):
    request, rgb, mask = make_job(np.random.default_rng(7), 100, 90, "BGR", "u8", 64, output="layer")
    result = client.inpaint(request)
    assert result.layout == "BGRA" and result.channels == 4
    assert result.pixels == to_layout(engine_output(engine, rgb, mask, request), "BGR")


def test_engine_refusal_is_a_backend_error_and_the_connection_goes_on(client):
    request, _, _ = make_job(np.random.default_rng(1), 64, 64, "RGB", "u8")
    request.grow = 5000  # over the protocol's range: refused before the engine runs
    with pytest.raises(BackendError) as refused:
        client.inpaint(request)
    assert refused.value.code == "bad_request" and "grow" in refused.value.message
    assert client.hello()["protocol"] == PROTOCOL_VERSION


def test_pipelined_jobs_come_back_to_their_own_waiters(client, engine):
    rng = np.random.default_rng(3)
    jobs = [make_job(rng, 40 + 7 * i, 33 + 5 * i, "RGBA", "u8", 64) for i in range(4)]
    ids = [client.submit(request) for request, _, _ in jobs]
    for job_id, (request, rgb, mask) in zip(reversed(ids), reversed(jobs)):
        assert client.wait(job_id).pixels == to_layout(engine_output(engine, rgb, mask, request), "RGBA")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_cancel_a_running_and_a_queued_job(engine, implementation):
    gated = GatedInpainter(engine)
    with running_server(gated) as server:
        with LamaClient(server.address, implementation=implementation) as first, \
                LamaClient(server.address, implementation=implementation) as second:
            rng = np.random.default_rng(5)
            running_request, _, _ = make_job(rng, 64, 64)
            queued_request, rgb, mask = make_job(rng, 72, 60)
            running_id = first.submit(running_request)
            assert gated.started.wait(5)
            queued_id = second.submit(queued_request)
            cancel_queued = threading.Event()
            cancel_queued.set()
            started = time.monotonic()
            with pytest.raises(JobCancelled):
                second.wait(queued_id, cancel_event=cancel_queued)
            assert time.monotonic() - started < 2.0
            cancel_running = threading.Event()
            timer = threading.Timer(0.3, cancel_running.set)
            timer.start()
            with pytest.raises(JobCancelled):
                first.wait(running_id, cancel_event=cancel_running)
            timer.join()
            # The worker is free again: a new job runs through the real engine.
            gated.gate.set()
            result = second.inpaint(queued_request)
            assert result.pixels == to_layout(engine_output(engine, rgb, mask, queued_request), "RGBA")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_reconnects_after_the_backend_restarts_on_the_same_port(engine, implementation):
    address = f"tcp://127.0.0.1:{free_port()}"
    client = LamaClient(address, implementation=implementation, timeout=1.0)
    with running_server(engine, bind=address):
        assert client.hello()["protocol"] == PROTOCOL_VERSION
    with pytest.raises(BackendUnavailable):
        client.hello()
    with running_server(engine, bind=address):
        assert client.hello()["protocol"] == PROTOCOL_VERSION
    client.close()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_nothing_listening_is_backend_unavailable_within_the_timeout(implementation):
    client = LamaClient(f"tcp://127.0.0.1:{free_port()}", implementation=implementation, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        client.hello()
    assert time.monotonic() - started < 2.0


def test_token_is_sent_with_every_request(engine):
    with running_server(engine, token="s3cret") as server:
        for implementation in IMPLEMENTATIONS:
            with LamaClient(server.address, token="s3cret", implementation=implementation) as good:
                assert good.hello()["auth"] == "token"
                request, rgb, mask = make_job(np.random.default_rng(2), 50, 40)
                assert good.inpaint(request).pixels == to_layout(engine_output(engine, rgb, mask, request), "RGBA")
            with LamaClient(server.address, token="wrong", implementation=implementation) as bad:
                with pytest.raises(BackendError) as refused:
                    bad.hello()
                assert refused.value.code == "unauthorized"


def test_request_mistakes_are_caught_before_sending():
    client = LamaClient("tcp://127.0.0.1:1", implementation="pure")
    with pytest.raises(ValueError, match="pixels hold"):
        client.submit(InpaintRequest(4, 4, 4, "u8", "RGBA", b"\0" * 10, b"\0" * 16))
    with pytest.raises(ValueError, match="3 channels"):
        client.submit(InpaintRequest(4, 4, 4, "u8", "RGB", b"\0" * 64, b"\0" * 16))


def test_builtin_client_answers_zmtp_pings_and_survives_being_dropped_while_idle(engine):
    """The server drops peers that do not answer its ZMTP PINGs within 3 intervals (here 0.15 s)."""
    gated = GatedInpainter(engine)
    with running_server(gated, zmq_heartbeat=0.05) as server:
        client = LamaClient(server.address, implementation="pure")
        assert client.hello()["protocol"] == PROTOCOL_VERSION
        time.sleep(0.5)  # idle: PINGs go unread, the server drops the connection
        assert client.hello()["protocol"] == PROTOCOL_VERSION  # found stale before sending: reconnected
        request, rgb, mask = make_job(np.random.default_rng(9), 48, 40)
        threading.Timer(0.6, gated.gate.set).start()
        # Waiting 0.6 s for the gate means answering a dozen PINGs, or the job would be lost.
        assert client.inpaint(request).pixels == to_layout(engine_output(engine, rgb, mask, request), "RGBA")
        client.close()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_client_ignores_unknown_reply_types_and_fields(implementation):
    """A newer server may add reply types and fields: a hand-made ROUTER sends some."""
    import msgpack
    import zmq

    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve_one() -> None:
        if not router.poll(5000):
            return
        frames = router.recv_multipart()
        identity, header = frames[0], msgpack.unpackb(frames[1])
        job = header["id"]
        pixels = frames[2]
        for reply in ({"type": "accepted", "id": job, "queued": 1, "eta": 3.5},
                      {"type": "thinking", "id": job, "about": ["new", "things"]},
                      {"type": "heartbeat", "jobs": 1, "load": 0.5},
                      {"type": "progress", "id": job, "fraction": 0.5, "stage": "half", "extra": {"a": 1}},
                      {"type": "result", "id": "someone-else", "width": 1, "height": 1, "dtype": "u8",
                       "layout": "RGB", "tile": 64}):
            router.send_multipart([identity, msgpack.packb(reply)])
        router.send_multipart([identity, msgpack.packb(
            {"type": "result", "id": job, "width": 2, "height": 2, "dtype": "u8", "layout": "RGB", "tile": 64,
             "channels": 3, "seconds": 0.0, "model_hash": "abc"}), pixels])

    thread = threading.Thread(target=serve_one)
    thread.start()
    try:
        with LamaClient(f"tcp://127.0.0.1:{port}", implementation=implementation) as client:
            stages = []
            request = InpaintRequest(2, 2, 3, "u8", "RGB", bytes(range(12)), b"\x01" * 4)
            result = client.inpaint(request, on_progress=lambda f, s: stages.append((f, s)))
            assert result.pixels == bytes(range(12)) and result.header["model_hash"] == "abc"
            assert stages == [(0.5, "half")]
    finally:
        thread.join(10)
        router.close(linger=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_cancel_from_another_thread_while_waiting(engine, implementation):
    gated = GatedInpainter(engine)
    with running_server(gated) as server, LamaClient(server.address, implementation=implementation) as client:
        request, _, _ = make_job(np.random.default_rng(4), 64, 64)
        job_id = client.submit(request)
        assert gated.started.wait(5)
        threading.Timer(0.2, client.cancel, args=(job_id,)).start()
        with pytest.raises(JobCancelled):
            client.wait(job_id)
        assert client.hello()["queued"] == 0


def test_ensure_backend_reports_a_command_that_exits(tmp_path):
    import sys

    from lama_backend.client import ensure_backend

    log = tmp_path / "start.log"
    command = [sys.executable, "-c", "import sys; print('no weights here'); sys.exit(3)"]
    with pytest.raises(BackendUnavailable, match="exited with code 3"):
        ensure_backend(f"tcp://127.0.0.1:{free_port()}", command, timeout=20, log_path=str(log),
                       implementation="pure")  # a refused connection shows at once, no 1 s probes
    assert "no weights here" in log.read_text()
    with pytest.raises(BackendUnavailable):
        ensure_backend(f"tcp://127.0.0.1:{free_port()}", None, implementation="pure")


def test_detached_start_flags_per_platform(monkeypatch):
    from lama_backend.client import autostart

    monkeypatch.setattr(autostart.sys, "platform", "linux")
    assert autostart.detached_popen_kwargs() == {"start_new_session": True}
    monkeypatch.setattr(autostart.sys, "platform", "win32")
    flags = autostart.detached_popen_kwargs()["creationflags"]
    assert flags & 0x00000008 and flags & 0x00000200  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP


def test_pure_implementation_is_forced_by_the_environment(monkeypatch):
    monkeypatch.setenv("LAMA_CLIENT_PURE", "1")
    assert LamaClient("tcp://127.0.0.1:1").implementation == "pure"
    monkeypatch.setenv("LAMA_CLIENT_PURE", "0")
    assert LamaClient("tcp://127.0.0.1:1").implementation == "zmq"
    with pytest.raises(ValueError):
        LamaClient("tcp://127.0.0.1:1", implementation="carrier-pigeon")
    with pytest.raises(ValueError, match="tcp://"):
        LamaClient("ipc:///tmp/x", implementation="pure").hello()


PY38_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from lama_client import InpaintRequest, LamaClient, __name__ as name
client = LamaClient(sys.argv[2])
info = client.hello()
width, height = 150, 70
pixels = bytes(i % 251 for i in range(width * height * 4))
result = client.inpaint(InpaintRequest(width, height, 4, "u8", "BGRA", pixels, b"\\x01" * (width * height), tile=64),
                        on_progress=lambda fraction, stage: None)
print(json.dumps({"implementation": client.implementation, "version": list(sys.version_info[:2]),
                  "same": result.pixels == pixels, "model": info["model"]["family"]}))
"""


def python38() -> str | None:
    import shutil
    import subprocess

    from pathlib import Path

    candidates = [shutil.which("python3.8")] + sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))
    for path in filter(None, candidates):
        probe = subprocess.run([path, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "True":
            return path
    return None


def test_client_bundle_runs_on_python38_without_pyzmq_or_msgpack(tmp_path):
    """What a plugin bundle does: the package copied under another name, run by a bare 3.8."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    interpreter = python38()
    if interpreter is None:
        pytest.skip("no Python 3.8 interpreter on this machine (the syntax check in test_protocol still runs)")
    shutil.copytree(Path(__file__).resolve().parents[1] / "backend" / "client", tmp_path / "lama_client")
    from lama_backend.server import IdentityInpainter

    with running_server(IdentityInpainter()) as server:
        done = subprocess.run([interpreter, "-I", "-c", PY38_SCRIPT, str(tmp_path), server.address],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"implementation": "pure", "version": [3, 8], "same": True,
                                       "model": "identity"}


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_cancel_returns_within_the_grace_while_the_engine_cannot_stop(implementation):
    """A torch call cannot be interrupted: the waiter gets JobCancelled without waiting for it."""
    from lama_backend.server import IdentityInpainter

    class Uninterruptible(IdentityInpainter):
        def __call__(self, image, mask, options, progress, cancelled):
            started.set()
            release.wait(10)  # ignores `cancelled`, like one long model pass
            return np.array(image)

    started, release = threading.Event(), threading.Event()
    with running_server(Uninterruptible()) as server, \
            LamaClient(server.address, implementation=implementation, cancel_grace=0.3) as client:
        request, _, _ = make_job(np.random.default_rng(6), 32, 32)
        cancel = threading.Event()
        job_id = client.submit(request)
        assert started.wait(5)
        cancel.set()
        begun = time.monotonic()
        with pytest.raises(JobCancelled, match="next step"):
            client.wait(job_id, cancel_event=cancel)
        assert time.monotonic() - begun < 1.5
        release.set()
        follow_up, _, _ = make_job(np.random.default_rng(7), 24, 24)
        assert client.inpaint(follow_up).pixels == bytes(follow_up.pixels)  # the late reply did not confuse it
