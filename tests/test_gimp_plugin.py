"""Fast tests of the GIMP 3 plug-in against small fakes of Gimp/Gegl and of the backend client.

The real GIMP tier (tests/test_gimp_integration.py) runs the same code in gimp-console-3.0; these
tests pin the details that are cheap to check here: the exact request, where the layer goes, the
undo structure, and that every failure leaves the image untouched.
"""
from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest

from lama_backend.client import BackendError, BackendUnavailable, InpaintResult, JobCancelled

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = REPO / "gimp_plugin" / "lama_inpaint"
sys.path.insert(0, str(REPO / "tests" / "gimp"))

import fake_gimp  # noqa: E402


@pytest.fixture
def plugin():
    """The plug-in modules imported against fake gi modules; `plugin.calls` records progress."""
    recorder = fake_gimp.Recorder()
    modules = fake_gimp.install(recorder, str(PLUGIN_DIR))
    ns = type("Plugin", (), {})()
    ns.io, ns.job, ns.main, ns.calls = modules["lama_gimp_io"], modules["lama_gimp_job"], modules["lama_inpaint"], recorder.calls
    ns.gimpui = sys.modules["gi.repository.GimpUi"]
    yield ns
    fake_gimp.uninstall(str(PLUGIN_DIR))


@dataclass
class FakeClient:
    """Answers like the backend's "layer" output: fill colour inside the mask, junk colour outside."""

    address: str
    token: Any = None
    log: List[Any] = field(default_factory=list)
    hello_error: Any = None
    inpaint_error: Any = None
    truncate: bool = False

    def hello(self):
        self.log.append("hello")
        if self.hello_error is not None:
            raise self.hello_error
        return {"type": "hello", "protocol": "1.0"}

    def inpaint(self, request, on_progress=None, cancel_event=None):
        self.log.append(request)
        if on_progress:
            on_progress(0.25, "inpainting")
            on_progress(1.5, "inpainting")  # out of range on purpose: the plug-in clamps
        if self.inpaint_error is not None:
            raise self.inpaint_error
        dtype = {"u8": np.uint8, "f32": np.float32}[request.dtype]
        top = 255 if request.dtype == "u8" else 1.0
        mask = np.frombuffer(request.mask, np.uint8).reshape(request.height, request.width)
        out = np.empty((request.height, request.width, 4), dtype)
        out[...] = np.array([top, 0, 0, 0], dtype)  # junk colour, alpha 0 outside the hole
        hole = mask > 0
        out[hole] = np.array([0, top, 0, top], dtype) if request.dtype == "u8" else np.array([0.25, 0.5, 0.75, 1.0], dtype)
        data = out.tobytes()
        if self.truncate:
            data = data[:-4]
        return InpaintResult("job", request.width, request.height, 4, request.dtype, "RGBA", data)

    def close(self):
        self.log.append("close")


class Clients:
    """A client factory that hands out FakeClients configured by the test."""

    def __init__(self, **options: Any) -> None:
        self.options, self.made = options, []

    def __call__(self, address, token=None):
        client = FakeClient(address, token, **self.options)
        self.made.append(client)
        return client

    def requests(self):
        return [item for client in self.made for item in client.log if not isinstance(item, str)]


def make_image(precision=fake_gimp.Precision.U8_NON_LINEAR, width=40, height=30):
    """Background (full size) and a 'paint' layer with offsets (5, 4), size 30 x 20, the drawable."""
    image = fake_gimp.Image(width, height, precision)
    dtype = image.sample_dtype()
    rng = np.random.default_rng(0)
    if dtype == np.uint8:
        paint = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
        paint[..., 3] = 255
        background = np.full((height, width, 4), 77, np.uint8)
    else:
        paint = rng.random((20, 30, 4), dtype=np.float32)
        paint[..., 3] = 1.0
        background = np.full((height, width, 4), 0.3, np.float32)
    image.add_layer("overlay", 0, 0, np.zeros((3, 3, 4), dtype))
    layer = image.add_layer("paint", 5, 4, paint)
    image.add_layer("background", 0, 0, background)
    image.visible = background.copy()
    return image, layer


def select(image, x, y, w, h, value=255):
    image.selection.buffer.array[y:y + h, x:x + w, 0] = value


def snapshot(image):
    return [(layer.name, layer.x, layer.y, layer.buffer.array.copy()) for layer in image.layers]


def assert_unchanged(image, before):
    assert [(n, x, y) for n, x, y, _ in before] == [(layer.name, layer.x, layer.y) for layer in image.layers]
    for (_, _, _, array), layer in zip(before, image.layers):
        np.testing.assert_array_equal(array, layer.buffer.array)


def no_autostart(job):
    return job.BackendSettings("tcp://127.0.0.1:1", None, None)


def run_job(plugin, image, layer, clients, **settings):
    progress = plugin.main.Progress()
    return plugin.job.inpaint_selection(image, layer, plugin.job.InpaintSettings(**settings), no_autostart(plugin.job),
                                        progress, client_factory=clients)


# -- registration -----------------------------------------------------------------------------------
def test_procedure_registration(plugin):
    procedure = plugin.main.LamaInpaint().do_create_procedure(plugin.main.PROCEDURE_NAME)
    assert plugin.main.LamaInpaint().do_query_procedures() == ["plug-in-lama-inpaint-selection"]
    assert procedure.menu_paths == ["<Image>/Filters/Enhance"]
    assert procedure.menu_label == "Inpaint Selection (LaMa)"
    assert procedure.sensitivity == fake_gimp.ProcedureSensitivityMask.DRAWABLE
    assert procedure.image_types == "RGB*, GRAY*"
    assert procedure.arguments == {"margin": ("int", 0, 2048, 128), "grow": ("int", 0, 256, 0),
                                   "feather": ("int", 0, 256, 0), "seamless": ("boolean", True),
                                   "source": ("choice", ["layer", "visible"], "layer")}
    assert procedure.run_func is plugin.main.run


def test_plugin_file_is_an_executable_python3_script():
    main = PLUGIN_DIR / "lama_inpaint.py"
    assert main.read_text().splitlines()[0] == "#!/usr/bin/env python3"
    assert os.stat(main).st_mode & stat.S_IXUSR, "GIMP silently ignores a plug-in without the executable bit"
    tracked = subprocess.run(["git", "ls-files", "-s", str(main)], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout:
        assert tracked.stdout.split()[0] == "100755", "the executable bit must be recorded in git"


@pytest.mark.parametrize("path", sorted(PLUGIN_DIR.glob("*.py")), ids=lambda p: p.name)
def test_plugin_sources_parse_as_python_3_8(path):
    ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))


# -- the happy path ---------------------------------------------------------------------------------
def test_u8_layer_request_and_result_layer(plugin):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)
    before = snapshot(image)
    clients = Clients()
    new = run_job(plugin, image, layer, clients, margin=3, grow=1, feather=2)

    (request,) = clients.requests()
    # selection (12, 10, 6, 5) grown by margin + grow = 4, inside the paint layer (5, 4, 30, 20)
    assert (new.x, new.y, new.get_width(), new.get_height()) == (8, 6, 14, 13)
    assert (request.width, request.height, request.channels, request.dtype, request.layout) == (14, 13, 4, "u8", "RGBA")
    assert (request.grow, request.feather, request.margin, request.output, request.soft_mask) == (1, 2, 3, "layer", False)
    assert request.seamless and request.options()["seamless"] is True
    paint = before[1][3]
    expected_pixels = paint[6 - 4:6 - 4 + 13, 8 - 5:8 - 5 + 14]  # layer offsets subtracted
    assert request.pixels == expected_pixels.tobytes()
    mask = np.frombuffer(request.mask, np.uint8).reshape(13, 14)
    assert mask.sum() == 6 * 5 * 255 and mask[4:9, 4:10].min() == 255

    # inserted directly above the drawable, same parent, with the backend's pixels inside the hole
    assert [entry.name for entry in image.layers] == ["overlay", new.name, "paint", "background"]
    assert new.name == "Inpainted (LaMa)"
    hole = mask > 0
    np.testing.assert_array_equal(new.buffer.array[hole], np.tile([0, 255, 0, 255], (hole.sum(), 1)))
    np.testing.assert_array_equal(new.buffer.array[~hole], 0)  # transparent colour cleared
    assert image.events == [("layer-new", "Inpainted (LaMa)"), ("undo-group-start",),
                            ("insert", "Inpainted (LaMa)", None, 1), ("undo-group-end",)]
    for name, x, y, array in before:
        match = [entry for entry in image.layers if entry.name == name][0]
        assert (match.x, match.y) == (x, y)
        np.testing.assert_array_equal(match.buffer.array, array)


def test_margin_is_clamped_to_the_layer(plugin):
    image, layer = make_image()
    select(image, 6, 5, 4, 4)
    new = run_job(plugin, image, layer, Clients(), margin=100)
    assert (new.x, new.y, new.get_width(), new.get_height()) == (5, 4, 30, 20)


def test_selection_outside_the_layer_part_is_ignored(plugin):
    image, layer = make_image()
    select(image, 0, 0, 8, 8)  # overlaps the layer (starts at 5, 4) only partly
    clients = Clients()
    new = run_job(plugin, image, layer, clients, margin=0)
    (request,) = clients.requests()
    assert (new.x, new.y, new.get_width(), new.get_height()) == (5, 4, 3, 4)
    assert request.mask == b"\xff" * 12


def test_high_bit_depth_is_sent_as_float32(plugin):
    image, layer = make_image(fake_gimp.Precision.U16_NON_LINEAR)
    select(image, 12, 10, 6, 5)
    clients = Clients()
    new = run_job(plugin, image, layer, clients, margin=2)
    (request,) = clients.requests()
    assert request.dtype == "f32" and len(request.pixels) == request.width * request.height * 16
    paint = image.layers[2].buffer.array
    np.testing.assert_array_equal(np.frombuffer(request.pixels, np.float32).reshape(9, 10, 4),
                                  paint[10 - 2 - 4:10 - 2 - 4 + 9, 12 - 2 - 5:12 - 2 - 5 + 10])
    mask = np.frombuffer(request.mask, np.uint8).reshape(9, 10) > 0
    np.testing.assert_array_equal(new.buffer.array[mask], np.tile(np.float32([0.25, 0.5, 0.75, 1.0]), (mask.sum(), 1)))


def test_soft_selection_asks_for_a_blend(plugin):
    image, layer = make_image()
    select(image, 12, 10, 6, 5, value=255)
    select(image, 11, 10, 1, 5, value=128)
    clients = Clients()
    run_job(plugin, image, layer, clients, margin=0)
    (request,) = clients.requests()
    assert request.soft_mask is True
    assert request.mask[:1] == b"\x80"


def test_visible_source_reads_the_composite_and_leaves_no_temporary_layer(plugin):
    image, layer = make_image()
    image.visible[...] = 200
    select(image, 2, 1, 4, 3)  # outside the paint layer but on the canvas: fine for "visible"
    clients = Clients()
    new = run_job(plugin, image, layer, clients, margin=1, source="visible")
    (request,) = clients.requests()
    assert request.pixels == bytes([200]) * (request.width * request.height * 4)
    assert (new.x, new.y) == (1, 0)
    assert image.temporary and all(temp.deleted for temp in image.temporary)
    assert [entry.name for entry in image.layers] == ["overlay", "Inpainted (LaMa)", "paint", "background"]


def test_progress_goes_to_gimp_clamped(plugin):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)
    run_job(plugin, image, layer, Clients())
    updates = [call[1] for call in plugin.calls if call[0] == "update"]
    assert updates == [0.0, 0.25, 1.0]
    assert ("text", "Inpainted (LaMa): inpainting") in plugin.calls


# -- failures leave the image alone ------------------------------------------------------------------
@pytest.mark.parametrize("case, pattern", [
    ("empty", "Nothing is selected"),
    ("outside", "outside the layer"),
    ("unavailable", "lama-backend serve --bind tcp://127.0.0.1:1"),
    ("refused", "could not inpaint this selection: image too big. Select a smaller area"),
    ("died", "stopped while inpainting"),
    ("cancelled", "cancelled the job"),
    ("truncated", "wrong size"),
    ("negative", "Margin must be 0 or more"),
    ("source", "Unknown source"),
])
def test_failures_give_a_clear_message_and_change_nothing(plugin, case, pattern):
    image, layer = make_image()
    if case != "empty":
        select(image, 1, 0, 3, 3) if case == "outside" else select(image, 12, 10, 6, 5)
    options = {"unavailable": {"hello_error": BackendUnavailable("no answer")},
               "refused": {"inpaint_error": BackendError("too_large", "image too big")},
               "died": {"inpaint_error": BackendUnavailable("gone")},
               "cancelled": {"inpaint_error": JobCancelled("server stopping")},
               "truncated": {"truncate": True}}.get(case, {})
    settings = {"negative": {"margin": -1}, "source": {"source": "canvas"}}.get(case, {})
    before = snapshot(image)
    clients = Clients(**options)
    with pytest.raises(plugin.job.PluginError, match=pattern):
        run_job(plugin, image, layer, clients, **settings)
    assert_unchanged(image, before)
    assert not [event for event in image.events if event[0] != "layer-new"]
    for client in clients.made:
        assert client.log[-1] == "close"


def test_refused_insert_deletes_the_new_layer(plugin):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)
    image.refuse_insert = True
    created = []
    original_new = fake_gimp.Layer.new

    def spy(*args):
        created.append(original_new(*args))
        return created[-1]

    fake_gimp.Layer.new = spy
    try:
        with pytest.raises(RuntimeError, match="refused"):
            run_job(plugin, image, layer, Clients())
    finally:
        fake_gimp.Layer.new = original_new
    assert created[0].deleted
    assert image.events[-1] == ("undo-group-end",)  # the group is closed even when insert fails


def test_a_channel_is_refused(plugin):
    image, _layer = make_image()
    select(image, 12, 10, 6, 5)
    with pytest.raises(plugin.job.PluginError, match="Select a layer"):
        run_job(plugin, image, fake_gimp.Channel(), Clients())


# -- backend settings and autostart ------------------------------------------------------------------
def test_backend_settings_from_environment(plugin):
    settings = plugin.job.BackendSettings.from_environment({}, which=lambda name: None)
    assert (settings.address, settings.token, settings.autostart) == ("tcp://127.0.0.1:57311", None, None)
    settings = plugin.job.BackendSettings.from_environment({}, which=lambda name: "/opt/bin/" + name)
    assert settings.autostart == ["/opt/bin/lama-backend", "serve", "--bind", "tcp://127.0.0.1:57311"]
    env = {"LAMA_BACKEND_ADDRESS": "tcp://127.0.0.1:6000", "LAMA_BACKEND_TOKEN": "s3cret",
           "LAMA_BACKEND_COMMAND": "/x/lama-backend"}
    settings = plugin.job.BackendSettings.from_environment(env, which=lambda name: None)
    assert settings.address == "tcp://127.0.0.1:6000" and settings.token == "s3cret"
    assert settings.autostart == ["/x/lama-backend", "serve", "--bind", "tcp://127.0.0.1:6000", "--token", "s3cret"]
    env["LAMA_BACKEND_COMMAND"] = "python -m lama_backend.cli serve --bind tcp://127.0.0.1:6000"
    assert plugin.job.BackendSettings.from_environment(env).autostart[:3] == ["python", "-m", "lama_backend.cli"]
    env["LAMA_BACKEND_COMMAND"] = "none"
    assert plugin.job.BackendSettings.from_environment(env, which=lambda name: "/x").autostart is None


def test_autostart_when_no_backend_answers(plugin):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)
    answers = [BackendUnavailable("nobody home")]

    class StartingClients(Clients):
        def __call__(self, address, token=None):
            client = super().__call__(address, token)
            client.hello_error = answers.pop(0) if answers else None
            return client

    started = []

    def starter(address, argv, timeout, token, log_path):
        started.append((address, argv, token, log_path))

    backend = plugin.job.BackendSettings("tcp://127.0.0.1:7000", "tok", ["lama-backend", "serve"])
    clients = StartingClients()
    plugin.job.inpaint_selection(image, layer, plugin.job.InpaintSettings(), backend, plugin.main.Progress(),
                                 client_factory=clients, starter=starter)
    assert started == [("tcp://127.0.0.1:7000", ["lama-backend", "serve"], "tok", plugin.job.AUTOSTART_LOG)]
    assert len(clients.requests()) == 1 and clients.made[-1].token == "tok"


def test_the_default_starter_detaches_the_backend(plugin):
    """GIMP SIGKILLs the plug-in's process group on Cancel: the started backend needs its own session."""
    from lama_backend.client import autostart

    assert plugin.job.ensure_backend is autostart.ensure_backend  # what call_backend uses by default
    if os.name != "nt":
        assert autostart.detached_popen_kwargs() == {"start_new_session": True}


# -- the procedure body ---------------------------------------------------------------------------------
def _config(**overrides):
    values = {"margin": 2, "grow": 0, "feather": 0, "source": "layer", "seamless": True}
    values.update(overrides)
    return fake_gimp.Config(**values)


def _procedure(plugin):
    return plugin.main.LamaInpaint().do_create_procedure(plugin.main.PROCEDURE_NAME)


def test_run_reports_errors_as_execution_error(plugin, monkeypatch):
    image, layer = make_image()
    monkeypatch.setenv("LAMA_BACKEND_COMMAND", "none")
    status, message = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.NONINTERACTIVE, image, [layer],
                                      _config(), None)
    assert status == fake_gimp.PDBStatusType.EXECUTION_ERROR and "Nothing is selected" in message
    assert plugin.calls[-1] == ("end",)  # the progress bar is always closed
    status, message = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.NONINTERACTIVE, image, [layer, layer],
                                      _config(), None)
    assert status == fake_gimp.PDBStatusType.EXECUTION_ERROR and "exactly one layer" in message


def test_run_turns_a_bug_into_an_execution_error(plugin, monkeypatch, capsys):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(plugin.main, "inpaint_selection", broken)
    status, message = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.NONINTERACTIVE, image, [layer],
                                      _config(), None)
    assert status == fake_gimp.PDBStatusType.EXECUTION_ERROR and "unexpectedly: KeyError" in message
    assert "Traceback" in capsys.readouterr().err


def test_interactive_run_shows_the_dialog_and_honours_cancel(plugin, monkeypatch):
    image, layer = make_image()
    select(image, 12, 10, 6, 5)
    plugin.gimpui.dialog_answers[:] = [False]
    status, _ = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.INTERACTIVE, image, [layer], _config(), None)
    assert status == fake_gimp.PDBStatusType.CANCEL
    assert ("dialog", "Inpaint Selection (LaMa)") in plugin.calls and ("dialog-destroy",) in plugin.calls
    assert [entry.name for entry in image.layers] == ["overlay", "paint", "background"]

    plugin.gimpui.dialog_answers[:] = [True]
    used = []
    monkeypatch.setattr(plugin.main, "inpaint_selection", lambda image, drawable, settings, backend, progress:
                        used.append(settings))
    status, _ = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.INTERACTIVE, image, [layer],
                                _config(margin=9, grow=3, feather=4, source="visible", seamless=False), None)
    assert status == fake_gimp.PDBStatusType.SUCCESS
    assert used == [plugin.job.InpaintSettings(margin=9, grow=3, feather=4, source="visible", seamless=False)]
    assert ("flush",) in plugin.calls
    assert not [call for call in plugin.calls if call[0] == "message"]


def test_interactive_run_on_the_bundled_model_says_how_to_get_better_fills(plugin, monkeypatch):
    image, layer = make_image()
    plugin.gimpui.dialog_answers[:] = [True, True]

    def job(image, drawable, settings, backend, progress, stage):
        progress(0.0, stage)
        progress(1.0, "done")
    monkeypatch.setattr(plugin.main, "inpaint_selection", lambda *args: job(*args, plugin.main.session.BUNDLED_MODEL_STAGE))
    status, _ = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.INTERACTIVE, image, [layer], _config(), None)
    assert status == fake_gimp.PDBStatusType.SUCCESS
    messages = [call[1] for call in plugin.calls if call[0] == "message"]
    assert len(messages) == 1 and "lama-backend fetch big-lama" in messages[0]

    monkeypatch.setattr(plugin.main, "inpaint_selection", lambda *args: job(*args, "inpainting"))
    status, _ = plugin.main.run(_procedure(plugin), fake_gimp.RunMode.INTERACTIVE, image, [layer], _config(), None)
    assert status == fake_gimp.PDBStatusType.SUCCESS
    assert len([call for call in plugin.calls if call[0] == "message"]) == 1  # no new notice


# -- a real backend started by the plug-in outlives GIMP's kill --------------------------------------
_PLUGIN_PROCESS = """
import sys, time
sys.path.insert(0, {fakes!r})
import fake_gimp
fake_gimp.install(fake_gimp.Recorder(), {plugin!r})
import lama_gimp_job as job
backend = job.BackendSettings.from_environment()
client = job.connect(backend, job.LamaClient, job.ensure_backend, lambda fraction, stage: None)
print(client.hello()["pid"], flush=True)
time.sleep(600)
"""


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="process groups and SIGKILL are POSIX; Windows uses DETACHED_PROCESS")
def test_autostarted_backend_survives_gimp_killing_the_plugin_process_group(tmp_path):
    """GIMP's Cancel SIGKILLs the plug-in's process group; the backend it started must keep serving."""
    import signal
    import socket

    from lama_backend.client import LamaClient
    from tests.helpers.tiny_model import write_tiny_weights

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = "tcp://127.0.0.1:%d" % probe.getsockname()[1]
    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    command = "%s -m lama_backend.cli serve --bind %s --weights %s" % (sys.executable, address, weights)
    env = dict(os.environ, LAMA_BACKEND_ADDRESS=address, LAMA_BACKEND_COMMAND=command)
    script = _PLUGIN_PROCESS.format(fakes=str(REPO / "tests" / "gimp"), plugin=str(PLUGIN_DIR))
    # GIMP starts each plug-in as the leader of its own process group, and kills that group.
    plugin_process = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=str(REPO),
                                      stdout=subprocess.PIPE, start_new_session=True)
    backend_pid = None
    try:
        backend_pid = int(plugin_process.stdout.readline() or 0)
        assert backend_pid, "the plug-in process did not reach a backend"
        os.killpg(plugin_process.pid, signal.SIGKILL)
        plugin_process.wait(timeout=10)
        with LamaClient(address, timeout=5.0) as client:
            assert client.hello()["pid"] == backend_pid
            client.shutdown()
        backend_pid = None
    finally:
        if plugin_process.poll() is None:
            os.killpg(plugin_process.pid, signal.SIGKILL)
        plugin_process.stdout.close()
        if backend_pid:
            os.kill(backend_pid, signal.SIGTERM)
