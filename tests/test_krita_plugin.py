"""Fast tests of the Krita plugin against the mock `krita` module (tests/mock_krita).

Logic, byte orders, offsets, undo steps, settings, and the threaded controller with a scripted
backend client. Real Krita runs the same code in tests/test_krita_real.py.
"""
import os
import struct
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
for path in (ROOT / "tests" / "mock_krita", ROOT / "krita_plugin"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from PyQt5.QtCore import QEventLoop, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication, QPushButton  # noqa: E402

import krita  # noqa: E402  (the mock)
from lama_backend.client import BackendError  # noqa: E402
from scripted_backend import ScriptedBackend  # noqa: E402

_qt_app = QApplication.instance() or QApplication(["test"])

import lama_inpaint  # noqa: E402,F401  (registers the extension and docker with the mock)
IMPORT_TIME_KRITA = krita.Krita.instance()
from lama_inpaint import controller as controller_module  # noqa: E402
from lama_inpaint import job  # noqa: E402
from lama_inpaint.client_api import region  # noqa: E402
from lama_inpaint.document_io import LAYER_NAME, PluginError, apply_result, layer_pixels, prepare_inpaint  # noqa: E402
from lama_inpaint.settings import InpaintSettings, load_settings, save_settings  # noqa: E402

SAMPLE = {"U8": ("B", 255), "U16": ("H", 65535), "F16": ("e", 1.0), "F32": ("f", 1.0)}


def pack_rgba(rgba, depth):
    """One pixel from 0..1 floats in Krita's memory order (BGRA for integers, RGBA for floats)."""
    code, scale = SAMPLE[depth]
    r, g, b, a = rgba
    order = (b, g, r, a) if depth in ("U8", "U16") else (r, g, b, a)
    if code in "BH":
        return struct.pack("=4" + code, *(int(round(v * scale)) for v in order))
    return struct.pack("=4" + code, *order)


def gradient_canvas(width, height, depth, seed=0):
    """Distinct pixels everywhere, so any offset or channel-order mistake shows up."""
    return b"".join(pack_rgba(((x * 13 + seed) % 256 / 255, (y * 29 + seed) % 256 / 255, ((x + y) * 7) % 256 / 255, 1.0), depth)
                    for y in range(height) for x in range(width))


@pytest.fixture
def app():
    krita.Krita._instance = None
    controller_module._controller = None
    instance = krita.Krita.instance()
    yield instance
    controller_module._controller = None


def make_document(app, width=40, height=30, model="RGBA", depth="U8", select=(10, 8, 6, 5), value=255):
    doc = krita.Document(width, height, model, depth)
    if model == "RGBA":
        doc.projection[:] = gradient_canvas(width, height, depth)
        background = doc.add_layer("Background", gradient_canvas(width, height, depth, seed=3))
        paint = doc.add_layer("Paint", gradient_canvas(width, height, depth, seed=5))
    else:
        background = doc.add_layer("Background", bytes(width * height * doc.bpp))
        paint = doc.add_layer("Paint", bytes(width * height * doc.bpp))
    doc.setActiveNode(background)
    if select is not None:
        selection = krita.Selection(width, height)
        selection.select(*select, value)
        doc.setSelection(selection)
    app.docs.append(doc)
    app.active_document = doc
    return doc, background, paint


def snapshot_layers(doc):
    return [(node.name(), bytes(node.pixels)) for node in doc.root.children]


# -- reading the document ----------------------------------------------------------------------
@pytest.mark.parametrize("depth, dtype, layout", [("U8", "u8", "BGRA"), ("U16", "u16", "BGRA"),
                                                  ("F32", "f32", "RGBA"), ("F16", "f32", "RGBA")])
def test_prepare_sends_region_in_kritas_byte_order(app, depth, dtype, layout):
    doc, _, _ = make_document(app, depth=depth)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=4))
    assert job_.selection_bounds == region.Rect(10, 8, 6, 5)
    assert job_.region == region.Rect(6, 4, 14, 13)
    fields = job_.request_fields(InpaintSettings(margin=4))
    assert (fields["dtype"], fields["layout"], fields["channels"]) == (dtype, layout, 4)
    assert fields["output"] == "layer" and fields["soft_mask"] is True and fields["seamless"] is True
    assert job_.request_fields(InpaintSettings(margin=4, seamless=False))["seamless"] is False
    # pixels are the projection's bytes unchanged (no reordering), half floats widened exactly
    expected = doc.pixelData(6, 4, 14, 13)
    if depth == "F16":
        expected = region.half_to_float32(expected)
    assert fields["pixels"] == expected
    # the first pixel of the region really is canvas pixel (6, 4), in Krita's channel order
    first = pack_rgba(((6 * 13) % 256 / 255, (4 * 29) % 256 / 255, (10 * 7) % 256 / 255, 1.0), depth)
    if depth == "F16":
        first = region.half_to_float32(first)
    assert fields["pixels"][:len(first)] == first
    assert fields["mask"] == doc.selection().pixelData(6, 4, 14, 13)
    assert doc.wait_calls == 1


def test_prepare_clamps_margin_to_canvas_and_keeps_soft_values(app):
    doc, _, _ = make_document(app, select=(1, 25, 4, 5), value=96)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=16))
    assert job_.region == region.Rect(0, 9, 21, 21)
    assert set(job_.mask) == {0, 96}  # the soft selection travels as-is; the server blends with it
    assert region.mask_bounds(job_.mask, 21, 21) == region.Rect(1, 16, 4, 5)


def test_prepare_margin_covers_grow_and_feather(app):
    doc, _, _ = make_document(app, width=100, height=100, select=(40, 40, 10, 10))
    job_ = prepare_inpaint(doc, InpaintSettings(margin=2, grow=6, feather=4))
    assert job_.region == region.Rect(30, 30, 30, 30)


def test_prepare_keeps_kritas_bytes_and_widens_half_floats_only_for_the_wire(app):
    doc, _, _ = make_document(app, depth="F16")
    job_ = prepare_inpaint(doc, InpaintSettings(margin=2))
    area = job_.region
    assert job_.pixels == doc.pixelData(area.x, area.y, area.width, area.height)
    assert len(job_.request_fields(InpaintSettings())["pixels"]) == 2 * len(job_.pixels)


def test_prepare_active_layer_source_reads_that_layer(app):
    doc, background, _ = make_document(app)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=2, source="layer"))
    assert job_.pixels == background.pixelData(8, 6, 10, 9)
    assert job_.pixels != doc.pixelData(8, 6, 10, 9)


def test_prepare_layer_source_with_other_colour_space_is_refused(app):
    doc, _, _ = make_document(app)
    odd = doc.add_layer("16 bit", color=("RGBA", "U16"))
    doc.setActiveNode(odd)
    with pytest.raises(PluginError, match="16-bit integer"):
        prepare_inpaint(doc, InpaintSettings(source="layer"))


@pytest.mark.parametrize("model, depth, words", [("CMYKA", "U8", "CMYK"), ("LABA", "U16", "L\\*a\\*b"),
                                                 ("GRAYA", "U8", "Grayscale")])
def test_unsupported_colour_models_get_a_clear_message(app, model, depth, words):
    doc, _, _ = make_document(app, model=model, depth=depth)
    with pytest.raises(PluginError, match="RGB/Alpha.*%s.*Convert" % words):
        prepare_inpaint(doc, InpaintSettings())


def test_no_document_no_selection_and_empty_selection(app):
    with pytest.raises(PluginError, match="Open an image"):
        prepare_inpaint(None, InpaintSettings())
    doc, _, _ = make_document(app, select=None)
    with pytest.raises(PluginError, match="Select the area"):
        prepare_inpaint(doc, InpaintSettings())
    doc.setSelection(krita.Selection(40, 30))
    with pytest.raises(PluginError, match="selection is empty"):
        prepare_inpaint(doc, InpaintSettings())


def test_active_mask_places_result_above_its_layer(app):
    doc, background, _ = make_document(app)
    mask = krita.Node(doc, "Transparency Mask", "transparencymask")
    background.children.append(mask)
    mask.parent = background
    doc.setActiveNode(mask)
    assert prepare_inpaint(doc, InpaintSettings()).anchor is background


# -- writing the result ------------------------------------------------------------------------
def layer_result(job_):
    """A fake "layer" output: a colour inside the hole (alpha = mask), junk colour where alpha is 0."""
    area, wire = job_.region, job_.fmt.wire_format()
    depth = {"u8": "U8", "u16": "U16", "f32": "F32"}[wire.dtype]
    return b"".join(pack_rgba((0.25, 0.5, 0.75, m / 255), depth) if m else pack_rgba((0.9, 0.1, 0.3, 0.0), depth)
                    for m in job_.mask), area


@pytest.mark.parametrize("depth", ["U8", "U16", "F32", "F16"])
def test_apply_adds_one_layer_above_active_in_one_undo_step(app, depth):
    doc, background, paint = make_document(app, depth=depth)
    before = snapshot_layers(doc)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=3))
    result, area = layer_result(job_)
    layer = apply_result(app, job_, layer_pixels(job_, result))
    names = [n.name() for n in doc.root.children]
    assert names == ["Background", LAYER_NAME, "Paint"]
    assert doc.undo_log == [("addChildNode", LAYER_NAME)]  # one undo step, nothing else
    assert snapshot_layers(doc)[0] == before[0] and snapshot_layers(doc)[2] == before[1]
    bounds = layer.bounds()
    # transparent junk colour was cleared, so the layer's extent is exactly the selection
    assert (bounds.x(), bounds.y(), bounds.width(), bounds.height()) == (10, 8, 6, 5)
    expected = region.build_layer_pixels(result, area, job_.fmt)
    assert layer.pixelData(area.x, area.y, area.width, area.height) == expected
    assert doc.refreshed == 1


def test_apply_refuses_malformed_result_without_adding_a_layer(app):
    doc, _, _ = make_document(app)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=3))
    result, _ = layer_result(job_)
    with pytest.raises(PluginError, match="malformed"):
        layer_pixels(job_, result[:-4])
    with pytest.raises(PluginError, match="region needs"):
        apply_result(app, job_, layer_pixels(job_, result)[:-4])
    assert len(doc.root.children) == 2 and doc.undo_log == []


def test_apply_after_document_closed_or_resized_changes_nothing(app):
    doc, _, _ = make_document(app)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=3))
    result = layer_pixels(job_, layer_result(job_)[0])
    doc.resize_for_test(41, 30)
    with pytest.raises(PluginError, match="changed size"):
        apply_result(app, job_, result)
    doc.resize_for_test(40, 30)
    app.docs.remove(doc)
    with pytest.raises(PluginError, match="closed"):
        apply_result(app, job_, result)
    assert doc.undo_log == []


def test_apply_when_anchor_was_deleted_goes_on_top(app):
    doc, background, _ = make_document(app)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=3))
    background.remove()
    apply_result(app, job_, layer_pixels(job_, layer_result(job_)[0]))
    assert [n.name() for n in doc.root.children] == ["Paint", LAYER_NAME]


def test_apply_reports_refused_insert(app):
    doc, _, _ = make_document(app)
    job_ = prepare_inpaint(doc, InpaintSettings(margin=3))
    doc.refuse_add = True
    with pytest.raises(PluginError, match="refused"):
        apply_result(app, job_, layer_pixels(job_, layer_result(job_)[0]))


# -- settings ----------------------------------------------------------------------------------
def test_settings_round_trip_through_krita(app):
    custom = InpaintSettings(address="tcp://127.0.0.1:6000", token="s3cret", autostart_command="/opt/lama-backend",
                             margin=64, grow=3, feather=5, seamless=False, source="layer")
    save_settings(app, custom)
    assert app.settings[("lama_inpaint", "margin")] == "64"
    assert app.settings[("lama_inpaint", "seamless")] == "False"
    assert load_settings(app) == custom


def test_settings_invalid_values_fall_back_to_defaults(app):
    for name, value in (("margin", "lots"), ("grow", "-3"), ("feather", "9999"), ("source", "magic"), ("address", "  "),
                        ("seamless", "maybe")):
        app.writeSetting("lama_inpaint", name, value)
    assert load_settings(app) == InpaintSettings()


def test_docker_edits_are_saved(app):
    from lama_inpaint.docker import LamaInpaintDocker
    docker = LamaInpaintDocker()
    docker.margin.setValue(200)
    docker.grow.setValue(7)
    docker.source.setCurrentIndex(1)
    assert docker.seamless.isChecked()
    docker.seamless.setChecked(False)
    docker.token.setText("abc")
    docker.token.editingFinished.emit()
    saved = load_settings(app)
    assert (saved.margin, saved.grow, saved.source, saved.token, saved.seamless) == (200, 7, "layer", "abc", False)
    assert docker.status.text() == "Ready"
    docker.deleteLater()


def test_plugin_registers_extension_action_and_docker():
    from lama_inpaint.docker import DOCKER_ID, LamaInpaintDocker
    from lama_inpaint.extension import ACTION_ID, LamaInpaintExtension
    extensions, factories = IMPORT_TIME_KRITA.extensions, IMPORT_TIME_KRITA.docker_factories
    assert len(extensions) == 1 and isinstance(extensions[0], LamaInpaintExtension)
    assert [(f.docker_id, f.cls) for f in factories] == [(DOCKER_ID, LamaInpaintDocker)]
    window = krita.Window()
    extensions[0].createActions(window)
    action, location = window.actions[ACTION_ID]
    assert (action.text(), location) == ("Inpaint Selection", "tools/scripts")


def test_action_file_and_desktop_file_match_the_package():
    import configparser
    import xml.etree.ElementTree as ET
    from lama_inpaint.extension import ACTION_ID
    tree = ET.parse(ROOT / "krita_plugin" / "lama_inpaint.action")
    action = tree.find(".//Action")
    assert action.get("name") == ACTION_ID
    assert action.findtext("shortcut") == "Ctrl+Alt+Shift+I"
    assert action.findtext("text") == "Inpaint Selection"
    desktop = configparser.ConfigParser()
    desktop.read(ROOT / "krita_plugin" / "lama_inpaint.desktop")
    assert desktop["Desktop Entry"]["X-KDE-Library"] == "lama_inpaint"
    assert (ROOT / "krita_plugin" / "lama_inpaint" / desktop["Desktop Entry"]["X-Krita-Manual"]).is_file()


# -- the network job ---------------------------------------------------------------------------
def run_job(backend, settings, fields=None):
    fields = fields or dict(width=2, height=1, channels=4, dtype="u8", layout="BGRA", pixels=bytes(8),
                            mask=b"\xff\x00", grow=0, feather=0, margin=8, strategy="crop", soft_mask=True,
                            output="layer")
    progress = []
    result = job.run_inpaint(fields, settings, lambda f, s: progress.append((f, s)), threading.Event(),
                             backend.client_factory, backend.starter)
    return result, progress


def test_job_without_backend_or_autostart_says_how_to_start():
    backend = ScriptedBackend(available=False)
    with pytest.raises(PluginError, match="lama-backend serve --bind tcp://127.0.0.1:7000"):
        run_job(backend, InpaintSettings(address="tcp://127.0.0.1:7000"))
    assert backend.requests == [] and all(c.closed for c in backend.clients)


def test_job_autostarts_the_configured_backend():
    backend = ScriptedBackend(available=False)
    result, progress = run_job(backend, InpaintSettings(address="tcp://127.0.0.1:7000", token="t",
                                                        autostart_command="/opt/lama/bin/lama-backend"))
    assert backend.starts[0][1] == ["/opt/lama/bin/lama-backend", "serve", "--bind", "tcp://127.0.0.1:7000",
                                    "--token", "t"]
    assert backend.clients[-1].token == "t"
    assert result == bytes(8) and (0.0, "starting the backend") in progress and (0.5, "model") in progress


def test_job_autostart_failure_is_reported():
    backend = ScriptedBackend(available=False, start_works=False)
    with pytest.raises(PluginError, match="Could not start the backend with /x/lama-backend serve"):
        run_job(backend, InpaintSettings(autostart_command="/x/lama-backend"))


def test_autostart_full_command_line_is_kept():
    assert job.session.autostart_argv("python3 -m lama_backend.cli serve --bind tcp://h:1", "tcp://x:2", "") == [
        "python3", "-m", "lama_backend.cli", "serve", "--bind", "tcp://h:1"]


def test_job_backend_dying_mid_job_is_a_clear_error():
    backend = ScriptedBackend(die_mid_job=True)
    with pytest.raises(PluginError, match="stopped while inpainting.*Nothing was changed"):
        run_job(backend, InpaintSettings())


def test_job_backend_errors_carry_hints():
    backend = ScriptedBackend(error=BackendError("unauthorized", "wrong token"))
    with pytest.raises(PluginError, match="wrong token.*token in the LaMa Inpaint docker"):
        run_job(backend, InpaintSettings())


def test_job_rejects_result_of_another_shape():
    backend = ScriptedBackend()
    backend_result = backend.client_factory  # keep the factory, but make results come back as RGBA

    def factory(address, token=None):
        client = backend_result(address, token)
        original = client.inpaint

        def inpaint(request, **kwargs):
            out = original(request, **kwargs)
            out.layout = "RGBA"
            return out
        client.inpaint = inpaint
        return client
    backend.client_factory = factory
    with pytest.raises(PluginError, match="answered with a 2x1 u8 RGBA image for a 2x1 u8 BGRA"):
        run_job(backend, InpaintSettings())


# -- the controller: threads, dialog, cancel ---------------------------------------------------
def wait_for(controller, seconds=10.0):
    outcome = []
    loop = QEventLoop()
    controller.finished.connect(lambda kind: (outcome.append(kind), loop.quit()))
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec_()
    assert outcome, "the job did not finish within %.0f s" % seconds
    return outcome[0]


def make_controller(app, backend):
    messages = []
    ctl = controller_module.InpaintController(app, backend.client_factory, backend.starter, messages.append)
    return ctl, messages


def test_controller_runs_the_job_off_the_gui_thread_and_adds_the_layer(app):
    doc, _, _ = make_document(app)
    save_settings(app, InpaintSettings(margin=3))
    gui_thread = threading.get_ident()
    seen_threads = []

    def fake_model(request):
        seen_threads.append(threading.get_ident())
        return layer_result(prepare_inpaint(doc, InpaintSettings(margin=3)))[0]
    backend = ScriptedBackend(result=fake_model)
    ctl, messages = make_controller(app, backend)
    statuses, progress = [], []
    ctl.status_changed.connect(statuses.append)
    ctl.progress_changed.connect(progress.append)
    assert ctl.run_on_active_document()
    assert ctl.is_running()
    assert wait_for(ctl) == "done"
    assert messages == [] and seen_threads and seen_threads[0] != gui_thread
    assert [n.name() for n in doc.root.children] == ["Background", LAYER_NAME, "Paint"]
    assert doc.undo_log == [("addChildNode", LAYER_NAME)]
    assert 500 in progress and progress[-1] == 1000
    assert statuses[-1].startswith("Done") and not ctl.is_running()


def test_controller_keeps_the_bundled_model_notice_in_the_final_status(app):
    doc, _, _ = make_document(app)
    backend = ScriptedBackend(bundled_model=True)
    ctl, messages = make_controller(app, backend)
    statuses = []
    ctl.status_changed.connect(statuses.append)
    assert ctl.start(doc)
    assert wait_for(ctl) == "done"
    assert statuses[-1].startswith("Done: added layer") and "lama-backend fetch big-lama" in statuses[-1]
    assert messages == []

    backend.bundled_model = False  # the next job, on big-lama: no notice left over
    assert ctl.start(doc)
    assert wait_for(ctl) == "done"
    assert "fetch big-lama" not in ctl.status


def test_controller_cancel_stops_the_backend_job_and_adds_nothing(app):
    doc, _, _ = make_document(app)
    backend = ScriptedBackend(wait_for_cancel=True)
    ctl, messages = make_controller(app, backend)
    assert ctl.start(doc)
    assert backend.job_started.wait(5.0)
    ctl._dialog.findChild(QPushButton).click()  # the progress dialog's Cancel button
    assert wait_for(ctl) == "cancelled", messages
    assert backend.saw_cancel and messages == []
    assert len(doc.root.children) == 2 and doc.undo_log == []
    assert ctl.status.startswith("Cancelled")


def test_controller_backend_death_shows_message_and_adds_nothing(app):
    doc, _, _ = make_document(app)
    ctl, messages = make_controller(app, ScriptedBackend(die_mid_job=True))
    assert ctl.start(doc)
    assert wait_for(ctl) == "failed"
    assert len(messages) == 1 and "stopped while inpainting" in messages[0]
    assert len(doc.root.children) == 2 and doc.undo_log == []


def test_controller_refuses_without_selection_and_while_running(app):
    doc, _, _ = make_document(app, select=None)
    backend = ScriptedBackend(wait_for_cancel=True)
    ctl, messages = make_controller(app, backend)
    assert not ctl.start(doc)
    assert "Select the area" in messages[-1] and backend.requests == []
    selection = krita.Selection(40, 30)
    selection.select(0, 0, 4, 4, 255)
    doc.setSelection(selection)
    assert ctl.start(doc)
    assert not ctl.start(doc)
    assert "still running" in messages[-1]
    ctl.cancel()
    assert wait_for(ctl) == "cancelled"


def test_controller_shutdown_cancels_a_running_job(app):
    doc, _, _ = make_document(app)
    backend = ScriptedBackend(wait_for_cancel=True)
    ctl, _ = make_controller(app, backend)
    assert ctl.start(doc)
    assert backend.job_started.wait(5.0)
    worker = ctl._worker
    ctl.shutdown()  # what Krita's aboutToQuit triggers
    assert worker.isFinished() and backend.saw_cancel
    assert wait_for(ctl) == "cancelled"  # the queued signal still lands; nothing is added
    assert len(doc.root.children) == 2


def test_get_controller_is_one_instance_hooked_to_quit(app):
    qt_app = QApplication.instance()
    before = qt_app.receivers(qt_app.aboutToQuit)
    first = controller_module.get_controller()
    assert controller_module.get_controller() is first
    assert qt_app.receivers(qt_app.aboutToQuit) == before + 1


def test_docker_follows_the_controller(app):
    from lama_inpaint.docker import LamaInpaintDocker
    doc, _, _ = make_document(app)
    save_settings(app, InpaintSettings(margin=3))
    backend = ScriptedBackend(wait_for_cancel=True)
    controller_module._controller, _ = make_controller(app, backend)
    docker = LamaInpaintDocker()
    assert docker.run_button.isEnabled() and not docker.cancel_button.isEnabled()
    docker.run_button.click()  # runs on the active document, like the action
    assert backend.job_started.wait(5.0)
    assert not docker.run_button.isEnabled() and docker.cancel_button.isEnabled()
    assert docker.status.text().startswith("Inpainting")
    docker.cancel_button.click()
    assert wait_for(controller_module._controller) == "cancelled"
    assert docker.status.text().startswith("Cancelled") and docker.run_button.isEnabled()
    assert backend.saw_cancel and len(doc.root.children) == 2
    docker.deleteLater()
