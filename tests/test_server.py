"""The server over real sockets: validation, limits, fairness, vanished clients, OOM, shutdown, auth."""
from __future__ import annotations

import os
import threading
import time

import msgpack
import numpy as np
import pytest

from lama_backend.client import BackendError, LamaClient
from lama_backend.client.protocol import ERROR_CODES, MAX_HEADER_BYTES, PROTOCOL_VERSION
from lama_backend.server import IdentityInpainter, JobCancelledError, Server, ServerConfig, ServerError
from lama_backend.server.config import check_bind_allowed
from lama_backend.server.scheduler import FairQueue, Job, QueueFull
from lama_backend.server.validation import MAX_FRAMES, InpaintSpec
from tests.helpers.server import GatedInpainter, RawDealer, free_port, make_job, running_server


def inpaint_header(job_id: str = "job", width: int = 8, height: int = 4, **fields) -> dict:
    header = {"op": "inpaint", "id": job_id, "protocol": PROTOCOL_VERSION, "width": width, "height": height,
              "dtype": "u8", "layout": "RGBA", "tile": 64, "options": {}}
    header.update(fields)
    return header


def frames_for(width: int = 8, height: int = 4, channels: int = 4) -> list[bytes]:
    return [bytes(range(width * height * channels)) if width * height * channels < 256 else
            b"\x07" * (width * height * channels), b"\x00" * (width * height)]


@pytest.fixture
def identity_server():
    with running_server(IdentityInpainter(), max_pixels=100_000, max_queued_per_client=3) as server:
        yield server


@pytest.fixture
def dealer(identity_server):
    raw = RawDealer(identity_server.address)
    yield raw
    raw.close()


def error_of(dealer: RawDealer) -> dict:
    """The next reply that is not progress of a running job; it must be an error."""
    header, frames = dealer.recv()
    while header["type"] in ("progress", "heartbeat"):
        header, frames = dealer.recv()
    assert header["type"] == "error" and frames == []
    assert header["code"] in ERROR_CODES and header["message"]
    return header


@pytest.mark.parametrize("header,frames,code,fragment", [
    (b"\xc1", [], "bad_request", "msgpack"),                                     # 0xc1: never valid msgpack
    (msgpack.packb([1, 2]), [], "bad_request", "map"),
    (msgpack.packb({"op": "hello"}), [], "bad_request", "'id'"),
    (msgpack.packb({"op": "hello", "id": "x" * 129}), [], "bad_request", "'id'"),
    (msgpack.packb({"op": 5, "id": "a"}), [], "bad_request", "'op'"),
    (msgpack.packb({"op": "teleport", "id": "a"}), [], "unknown_op", "teleport"),
    (msgpack.packb({"op": "hello", "id": "a", "protocol": "2.0"}), [], "unsupported_protocol", "2.0"),
    (msgpack.packb({"op": "hello", "id": "a"}), [b"x"], "bad_request", "no pixel frames"),
    (msgpack.packb({"op": "hello", "id": "a", "pad": "x" * MAX_HEADER_BYTES}), [], "bad_request", "limit"),
    (msgpack.packb({"op": "hello", "id": "a"}) + b"\x00", [], "bad_request", "msgpack"),  # trailing bytes
    (msgpack.packb({"op": "hello", "id": "a", "blob": b"\x00" * 10}), [], "bad_request", "msgpack"),
    (b"", [], "bad_request", "empty"),
    (msgpack.packb(inpaint_header(width=0)), frames_for(), "bad_request", "'width'"),
    (msgpack.packb(inpaint_header(width="8")), frames_for(), "bad_request", "'width'"),
    (msgpack.packb(inpaint_header(width=True)), frames_for(), "bad_request", "'width'"),
    (msgpack.packb(inpaint_header(height=70000)), frames_for(), "bad_request", "'height'"),
    (msgpack.packb(inpaint_header(width=1000, height=1000)), frames_for(), "too_large", "budget"),
    (msgpack.packb(inpaint_header(dtype="u32")), frames_for(), "bad_request", "'dtype'"),
    (msgpack.packb(inpaint_header(layout="ARGB")), frames_for(), "bad_request", "'layout'"),
    (msgpack.packb(inpaint_header(tile=8)), frames_for(), "bad_request", "'tile'"),
    (msgpack.packb(inpaint_header(tile=4096)), frames_for(), "bad_request", "'tile'"),
    (msgpack.packb(inpaint_header(options=[])), frames_for(), "bad_request", "'options'"),
    (msgpack.packb(inpaint_header(options={"grow": -1})), frames_for(), "bad_request", "'grow'"),
    (msgpack.packb(inpaint_header(options={"feather": 1.5})), frames_for(), "bad_request", "'feather'"),
    (msgpack.packb(inpaint_header(options={"strategy": "tiles"})), frames_for(), "bad_request", "'strategy'"),
    (msgpack.packb(inpaint_header(options={"output": "mask"})), frames_for(), "bad_request", "'output'"),
    (msgpack.packb(inpaint_header(options={"soft_mask": 1})), frames_for(), "bad_request", "'soft_mask'"),
    (msgpack.packb(inpaint_header(options={"seamless": "yes"})), frames_for(), "bad_request", "'seamless'"),
    (msgpack.packb(inpaint_header()), frames_for()[:1], "bad_request", "needs 1 image + 1 mask"),
    (msgpack.packb(inpaint_header()), frames_for() + [b""], "bad_request", "needs 1 image + 1 mask"),
    (msgpack.packb(inpaint_header()), [b"\x00" * 127, b"\x00" * 32], "bad_request", "image tile 0"),
    (msgpack.packb(inpaint_header()), [b"\x00" * 128, b"\x00" * 33], "bad_request", "mask tile 0"),
    (msgpack.packb(inpaint_header(layout="RGB")), frames_for(), "bad_request", "image tile 0"),
    (msgpack.packb({"op": "cancel", "id": "nothing"}), [], "unknown_job", "nothing"),
])
def test_bad_requests_get_a_clear_error_and_the_server_goes_on(dealer, header, frames, code, fragment):
    dealer.send(header, frames, raw=True)
    error = error_of(dealer)
    assert error["code"] == code
    assert fragment in error["message"]
    dealer.send({"op": "hello", "id": "after"})
    assert dealer.recv()[0]["type"] == "hello"


def test_error_replies_carry_the_request_id_when_readable(dealer):
    dealer.send(inpaint_header("mine", dtype="bad"), frames_for())
    assert error_of(dealer)["id"] == "mine"
    dealer.send(b"\xc1", raw=True)
    assert error_of(dealer)["id"] is None


def test_too_many_frames(dealer):
    dealer.send(inpaint_header(), [b""] * MAX_FRAMES)
    assert "frames" in error_of(dealer)["message"]


def test_unknown_fields_are_ignored(dealer):
    dealer.send({"op": "hello", "id": "h", "protocol": "1.7", "future": {"nested": [1, 2]}})
    assert dealer.recv()[0]["type"] == "hello"
    dealer.send(inpaint_header("j", options={"new_option": 3}, extra="x"), frames_for())
    replies = dealer.recv_until(lambda h: h["type"] == "result")
    assert [r["type"] for r in replies][0] == "accepted"


def test_identity_job_round_trip_and_reply_order(dealer):
    dealer.send(inpaint_header("j1"), frames_for())
    replies = []
    while not replies or replies[-1]["type"] != "result":
        header, frames = dealer.recv()
        if header["type"] != "heartbeat":
            replies.append(header)
    assert replies[0] == {"type": "accepted", "id": "j1", "queued": 1}
    assert all(r["type"] == "progress" for r in replies[1:-1])
    assert frames == [frames_for()[0]]
    assert replies[-1]["layout"] == "RGBA" and replies[-1]["tile"] == 64


def test_ping(dealer):
    dealer.send({"op": "ping", "id": "p"})
    assert dealer.recv()[0] == {"type": "pong", "id": "p"}


def test_oversized_frame_drops_only_that_connection(identity_server):
    config = identity_server.config
    big = RawDealer(identity_server.address)
    big.send({"op": "hello", "id": "a"}, [b"\x00" * (config.max_frame_bytes + 1)])
    with pytest.raises(TimeoutError):  # libzmq disconnects the peer instead of delivering
        big.recv(timeout=0.5)
    big.close()
    other = RawDealer(identity_server.address)
    other.send({"op": "hello", "id": "b"})
    assert other.recv()[0]["type"] == "hello"
    other.close()


def test_duplicate_and_queue_limits():
    gated = GatedInpainter(IdentityInpainter())
    with running_server(gated, max_queued_per_client=2, max_queued_total=3) as server:
        first, second = RawDealer(server.address), RawDealer(server.address)
        first.send(inpaint_header("run"), frames_for())
        assert first.recv()[0]["type"] == "accepted"
        assert gated.started.wait(5)
        first.send(inpaint_header("run"), frames_for())
        assert error_of(first)["code"] == "duplicate_job"
        for name in ("q1", "q2"):
            first.send(inpaint_header(name), frames_for())
            assert first.recv_until(lambda h: h["type"] != "progress")[-1]["type"] == "accepted"
        first.send(inpaint_header("q3"), frames_for())
        assert first.recv_until(lambda h: h["type"] == "error")[-1]["code"] == "queue_full"
        second.send(inpaint_header("s1"), frames_for())
        assert second.recv()[0]["type"] == "accepted"
        second.send(inpaint_header("s2"), frames_for())
        assert error_of(second)["code"] == "queue_full"  # the total limit (3 queued)
        gated.gate.set()
        done = first.recv_until(lambda h: h["type"] == "result" and h["id"] == "q2", timeout=10)
        assert [h["id"] for h in done if h["type"] == "result"] == ["run", "q1", "q2"]
        first.close()
        second.close()


def test_fair_queue_serves_clients_round_robin():
    queue = FairQueue(max_per_client=10, max_total=100)
    spec = InpaintSpec("x", 1, 1, "u8", "RGB", 64, {})
    for client, count in ((b"a", 4), (b"b", 2), (b"c", 1)):
        for i in range(count):
            queue.put(Job(client, InpaintSpec(f"{client.decode()}{i}", 1, 1, "u8", "RGB", 64, {}), []))
    order = [queue.take(0).spec.job_id for _ in range(7)]
    assert order == ["a0", "b0", "c0", "a1", "b1", "a2", "a3"]
    assert queue.take(0.01) is None
    with pytest.raises(QueueFull):
        for _ in range(11):
            queue.put(Job(b"a", spec, []))


class RecordingIdentity(IdentityInpainter):
    """Identity that notes the width of every image it runs (widths tell jobs apart)."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: list[int] = []

    def __call__(self, image, mask, options, progress, cancelled):
        self.widths.append(image.shape[1])
        return super().__call__(image, mask, options, progress, cancelled)


def test_jobs_of_two_clients_interleave():
    recorder = RecordingIdentity()
    gated = GatedInpainter(recorder)
    with running_server(gated) as server:
        greedy, polite = RawDealer(server.address), RawDealer(server.address)
        greedy.send(inpaint_header("g0", width=8), frames_for(8))
        assert gated.started.wait(5)
        for i in range(1, 4):
            greedy.send(inpaint_header(f"g{i}", width=8 + i), frames_for(8 + i))
        greedy.recv_until(lambda h: h["type"] == "accepted" and h["id"] == "g3")
        polite.send(inpaint_header("p0", width=12), frames_for(12))
        polite.recv_until(lambda h: h["type"] == "accepted")
        gated.gate.set()
        result = polite.recv_until(lambda h: h["type"] == "result")[-1]
        assert result["width"] == 12
        greedy.recv_until(lambda h: h["type"] == "result" and h["id"] == "g3", timeout=10)
        # First come first served would give 8, 9, 10, 11, 12: the polite client waits for one
        # greedy job at most, not for all of them.
        assert recorder.widths == [8, 9, 12, 10, 11]
        greedy.close()
        polite.close()


class SlowCancellable:
    """An inpainter that would take a minute but stops as soon as it is cancelled."""

    model_info = {"family": "test", "preset": None, "source": "slow", "device": "cpu"}

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled_jobs = 0

    def __call__(self, image, mask, options, progress, cancelled):
        self.started.set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cancelled():
                self.cancelled_jobs += 1
                raise JobCancelledError("stopped")
            time.sleep(0.01)
        return image


def test_a_vanished_client_costs_only_its_job():
    slow = SlowCancellable()
    with running_server(slow) as server:
        doomed = RawDealer(server.address)
        doomed.send(inpaint_header("doomed"), frames_for())
        doomed.send(inpaint_header("doomed-queued"), frames_for())
        assert slow.started.wait(5)
        doomed.close()  # like a plug-in process killed mid-job
        deadline = time.monotonic() + 3
        while slow.cancelled_jobs == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slow.cancelled_jobs == 1  # noticed within a heartbeat, the running job stopped
        assert server.stats["clients_gone"] == 1 and not server.pending and len(server.queue) == 0
        survivor = RawDealer(server.address)
        survivor.send({"op": "hello", "id": "still-there"})
        assert survivor.recv()[0]["type"] == "hello"
        survivor.close()


class Failing:
    model_info = {"family": "test", "preset": None, "source": "failing", "device": "cpu"}

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __call__(self, image, mask, options, progress, cancelled):
        raise self.exc


@pytest.mark.parametrize("exc,code", [
    (MemoryError(), "out_of_memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), "out_of_memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory"),
    (ZeroDivisionError("a bug"), "internal"),
])
def test_job_failures_are_errors_and_the_server_stays_up(exc, code):
    with running_server(Failing(exc)) as server:
        client = LamaClient(server.address, implementation="zmq")
        request, _, _ = make_job(np.random.default_rng(0), 32, 32)
        with pytest.raises(BackendError) as failed:
            client.inpaint(request)
        assert failed.value.code == code
        if code == "out_of_memory":
            assert "smaller region" in failed.value.message
        assert client.hello()["protocol"] == PROTOCOL_VERSION
        client.close()


def test_shutdown_from_loopback_stops_the_server_and_tells_queued_jobs():
    gated = GatedInpainter(IdentityInpainter())
    server = Server(ServerConfig(bind="tcp://127.0.0.1:*"), gated)
    server.bind()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    worker, stopper = RawDealer(server.address), LamaClient(server.address, implementation="pure")
    worker.send(inpaint_header("running"), frames_for())
    assert gated.started.wait(5)
    worker.send(inpaint_header("queued"), frames_for())
    worker.recv_until(lambda h: h["type"] == "accepted" and h["id"] == "queued")
    stopper.shutdown()
    thread.join(10)
    assert not thread.is_alive()
    replies = worker.recv_until(lambda h: h["id"] == "running" and h["type"] != "progress", timeout=3)
    codes = {h["id"]: h.get("code") for h in replies if h["type"] != "progress"}
    assert codes == {"queued": "shutting_down", "running": "shutting_down"}
    worker.close()
    stopper.close()


def test_shutdown_op_is_refused_from_other_machines(monkeypatch):
    from lama_backend.server import server as server_module

    monkeypatch.setattr(server_module, "is_loopback_host", lambda host: False)  # pretend the peer is remote
    with running_server(IdentityInpainter()) as server:
        client = LamaClient(server.address, implementation="zmq")
        with pytest.raises(BackendError) as refused:
            client.shutdown()
        assert refused.value.code == "forbidden"
        assert client.hello()["type"] == "hello"
        client.close()


def test_only_loopback_binds_without_a_token_or_keys(tmp_path):
    check_bind_allowed(ServerConfig(bind="tcp://127.0.0.1:5000"))
    check_bind_allowed(ServerConfig(bind="tcp://[::1]:5000"))
    check_bind_allowed(ServerConfig(bind="tcp://localhost:5000"))
    for address in ("tcp://0.0.0.0:5000", "tcp://*:5000", "tcp://192.168.1.4:5000"):
        with pytest.raises(ValueError, match="--token"):
            check_bind_allowed(ServerConfig(bind=address))
        check_bind_allowed(ServerConfig(bind=address, token="t"))
    with pytest.raises(ValueError, match="--curve-clients"):
        check_bind_allowed(ServerConfig(bind="tcp://0.0.0.0:5000", curve_secret_file=tmp_path / "k"))
    with pytest.raises(ServerError, match="refusing"):
        Server(ServerConfig(bind="tcp://0.0.0.0:0"), IdentityInpainter()).bind()


def test_a_second_server_on_the_same_port_fails_clearly():
    address = f"tcp://127.0.0.1:{free_port()}"
    with running_server(IdentityInpainter(), bind=address):
        second = Server(ServerConfig(bind=address), IdentityInpainter())
        with pytest.raises(ServerError, match="already in use"):
            second.bind()
        second.close()


def test_curve_keys_admit_only_known_clients(tmp_path):
    import zmq.auth

    clients = tmp_path / "clients"
    clients.mkdir()
    _, server_secret_file = zmq.auth.create_certificates(tmp_path, "server")
    _, client_secret_file = zmq.auth.create_certificates(clients, "plugin")
    client_keys = zmq.auth.load_certificate(client_secret_file)
    os.unlink(client_secret_file)  # the server's directory keeps only public keys
    _, stranger_secret_file = zmq.auth.create_certificates(tmp_path, "stranger")
    server_public, _ = zmq.auth.load_certificate(server_secret_file)
    port = free_port()
    with running_server(IdentityInpainter(), bind=f"tcp://0.0.0.0:{port}", curve_secret_file=server_secret_file,
                        curve_clients_dir=clients):
        address = f"tcp://127.0.0.1:{port}"
        known = LamaClient(address, implementation="zmq", curve=(server_public, *client_keys))
        assert known.hello()["auth"] == "curve"
        known.close()
        stranger = LamaClient(address, implementation="zmq", timeout=0.5, curve=(
            server_public, *zmq.auth.load_certificate(stranger_secret_file)))
        with pytest.raises(Exception):
            stranger.hello()
        stranger.close()
        with pytest.raises(Exception):
            LamaClient(address, implementation="pure", timeout=0.5).hello()


def test_ipv6_loopback_bind():
    with running_server(IdentityInpainter(), bind="tcp://[::1]:*") as server:
        for implementation in ("zmq", "pure"):
            with LamaClient(server.address, implementation=implementation) as client:
                assert client.hello()["type"] == "hello"


def test_a_job_cancelled_while_the_engine_finishes_is_still_cancelled():
    """The engine cannot stop mid-pass; a cancel that arrives during it must still win."""
    class Stubborn(IdentityInpainter):
        def __call__(self, image, mask, options, progress, cancelled):
            started.set()
            while not cancelled():
                time.sleep(0.005)
            return np.array(image)  # ignores the flag, like one long torch call

    started = threading.Event()
    with running_server(Stubborn()) as server:
        dealer = RawDealer(server.address)
        dealer.send(inpaint_header("j"), frames_for())
        assert started.wait(5)
        dealer.send({"op": "cancel", "id": "j"})
        assert dealer.recv_until(lambda h: h["type"] in ("result", "cancelled", "error"))[-1]["type"] == "cancelled"
        dealer.close()


class Allocating:
    """Asks numpy or torch for an absurd buffer: a real allocation failure, not a raised stand-in."""

    model_info = {"family": "test", "preset": None, "source": "allocating", "device": "cpu"}

    def __init__(self, library: str) -> None:
        self.library = library

    def __call__(self, image, mask, options, progress, cancelled):
        if self.library == "torch":
            import torch

            return torch.empty(2 ** 60, dtype=torch.uint8).numpy()
        return np.empty(2 ** 60, dtype=np.uint8)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_real_allocation_failures_are_out_of_memory(library):
    with running_server(Allocating(library)) as server, LamaClient(server.address, implementation="pure") as client:
        request, _, _ = make_job(np.random.default_rng(0), 16, 16)
        with pytest.raises(BackendError) as failed:
            client.inpaint(request)
        assert failed.value.code == "out_of_memory"
        assert client.hello()["type"] == "hello"
