"""The GIMP plug-in in real GIMP 3.0 (gimp-console-3.0 in a Debian 13 root) against a real backend.

One GIMP run (tests/gimp/batch_inpaint.py) builds images, selects, calls the plug-in through the
PDB and dumps what it sees; a core hook preloaded into gimp-console (tests/gimp/undo_hook.c)
reports the undo stack and performs one real undo. The checks here compare those dumps with what
the same `lama-backend serve` (tiny random model) returns for the same request on the host.

Needs root (debootstrap, mount, chroot) and a host C compiler. Outside CI a missing prerequisite
skips this module with the reason; with CI=true it fails, so the tier cannot vanish silently.
Run alone: `.venv/bin/python -m pytest tests/test_gimp_integration.py -m gimp`.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lama_backend.client import BackendUnavailable, InpaintRequest, LamaClient, region
from tests.helpers.tiny_model import write_tiny_weights

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "gimp"))

import gimp_root  # noqa: E402

pytestmark = pytest.mark.gimp

MAX_PIXELS = 3000  # the backend's budget: the "too-large" case (72 x 56 = 4032 px) must be refused
LAYER_NAME = "Inpainted (LaMa)"
UNDO_GROUP = "Inpaint Selection (LaMa)"  # GIMP names a plug-in's undo group after its menu label


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail("the real-GIMP tier cannot run in CI: " + reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """A real `lama-backend serve` with a tiny random model on a free loopback port."""
    folder = tmp_path_factory.mktemp("gimp-backend")
    weights = write_tiny_weights(folder / "tiny.safetensors")
    address = "tcp://127.0.0.1:%d" % _free_port()
    log = open(folder / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "lama_backend.cli", "serve", "--bind", address, "--weights",
                                str(weights), "--max-pixels", str(MAX_PIXELS)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with LamaClient(address, timeout=1.0) as client:
                    client.hello()
                break
            except BackendUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("lama-backend serve did not start:\n" + (folder / "serve.log").read_text()[-3000:])
        yield address
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The zip `lama-backend package-plugin gimp` builds, unpacked as `unzip` would (modes kept)."""
    out = tmp_path_factory.mktemp("gimp-bundle")
    subprocess.run([sys.executable, "-m", "lama_backend.cli", "package-plugin", "gimp", "-o", str(out)],
                   check=True, capture_output=True)
    (archive,) = out.glob("*.zip")
    target = out / "plug-ins"
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            path = Path(zipped.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)
    return target / "lama_inpaint"


@pytest.fixture(scope="module")
def gimp_session():
    """The cached Debian 13 root, mounted and locked for this module."""
    try:
        context = gimp_root.session(log=lambda line: print("[gimp-root]", line, flush=True))
        session = context.__enter__()
    except gimp_root.RootError as exc:
        _unavailable(str(exc))
    try:
        yield session
    finally:
        context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def gimp_run(gimp_session, backend, bundle, tmp_path_factory):
    """Run the batch script once in real GIMP; returns (results by case, log, files folder)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        _unavailable("no C compiler on the host to build tests/gimp/undo_hook.c (apt-get install gcc)")
    session = gimp_session
    hook_so = session.workdir / "undo_hook.so"
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-Wl,-z,lazy", "-o", str(hook_so),
                    str(REPO / "tests" / "gimp" / "undo_hook.c")], check=True)
    hook_dir = session.workdir / "hook"
    out = session.workdir / "out"
    hook_dir.mkdir()
    out.mkdir()
    profile = session.new_profile([bundle])
    assert os.stat(profile / "plug-ins" / "lama_inpaint" / "lama_inpaint.py").st_mode & stat.S_IXUSR
    env = {"LAMA_TEST_DIR": session.inside(out), "LAMA_BACKEND_ADDRESS": backend, "LAMA_BACKEND_COMMAND": "none",
           "LD_PRELOAD": session.inside(hook_so), "LAMA_UNDO_HOOK": session.inside(hook_dir)}
    result = session.run_batch((REPO / "tests" / "gimp" / "batch_inpaint.py").read_text(), profile, env)
    if not (out / "results.json").exists():
        pytest.fail("the batch script wrote no results (exit %d):\n%s" % (result.returncode, result.log[-5000:]))
    records = {record["case"]: record for record in json.loads((out / "results.json").read_text())}
    files = tmp_path_factory.mktemp("gimp-out")
    shutil.copytree(out, files, dirs_exist_ok=True)
    print("gimp-console run: %.1f s" % result.seconds)
    return records, result.log, files


LAST_VALUES = "plug-in-settings/GimpProcedureConfigRun-plug-in-lama-inpaint-selection.last"


@pytest.fixture(scope="module")
def dialog_run(gimp_session, backend, bundle):
    """The full GIMP on Xvfb answering the plug-in's dialog (tests/gimp/batch_dialog.py)."""
    session = gimp_session
    out = session.workdir / "dialog-out"
    out.mkdir()
    profile = session.new_profile([bundle])
    last = profile / LAST_VALUES  # as if the user had run it before with these values
    last.parent.mkdir(parents=True, exist_ok=True)
    last.write_text('# settings\n\n(margin 5)\n(grow 1)\n(feather 0)\n(source "layer")\n\n# end of settings\n')
    env = {"LAMA_TEST_DIR": session.inside(out), "LAMA_BACKEND_ADDRESS": backend, "LAMA_BACKEND_COMMAND": "none"}
    result = session.run_gui_batch((REPO / "tests" / "gimp" / "batch_dialog.py").read_text(), profile, env)
    if not (out / "dialog.json").exists():
        pytest.fail("the dialog batch wrote no results (exit %d):\n%s" % (result.returncode, result.log[-5000:]))
    record = json.loads((out / "dialog.json").read_text())
    assert "exception" not in record, record.get("exception", "") + "\nGIMP log:\n" + result.log[-4000:]
    print("gimp-3.0 GUI run: %.1f s" % result.seconds)
    return record, last.read_text(), result.log


def _case(gimp_run, name):
    records, log, files = gimp_run
    record = records[name]
    assert "exception" not in record, record.get("exception", "") + "\nGIMP log:\n" + log[-4000:]
    return record, files


def _raw(files: Path, name: str, babl: str, shape) -> np.ndarray:
    dtype = np.uint8 if babl.endswith("u8") else np.float32
    return np.frombuffer((files / name).read_bytes(), dtype).reshape(shape)


def _expected(record, files, backend):
    """Region, mask and the backend's own answer for the request the plug-in should have sent."""
    width, height = record["size"]
    babl = record["babl"]
    selection = np.frombuffer((files / record["selection"]).read_bytes(), np.uint8).reshape(height, width)
    px, py, pw, ph = record["paint_rect"]
    canvas = region.Rect(px, py, pw, ph) if record["source"] == "layer" else region.Rect(0, 0, width, height)
    bounds = region.mask_bounds(selection.tobytes(), width, height)
    rect = region.expand_rect(bounds.intersect(canvas), record["margin"] + record["grow"], canvas)
    mask = selection[rect.y:rect.bottom, rect.x:rect.right].copy()
    if record["source"] == "layer":
        source = _raw(files, record["before_layers"]["paint"], babl, (ph, pw, 4))
        pixels = source[rect.y - py:rect.bottom - py, rect.x - px:rect.right - px]
    else:
        pixels = _raw(files, record["visible"], babl, (height, width, 4))[rect.y:rect.bottom, rect.x:rect.right]
    fmt = region.PixelFormat("u8" if babl.endswith("u8") else "f32", "RGBA")
    request = InpaintRequest(rect.width, rect.height, 4, fmt.dtype, "RGBA", np.ascontiguousarray(pixels).tobytes(),
                             mask.tobytes(), grow=record["grow"], feather=record["feather"], margin=record["margin"],
                             soft_mask=region.mask_has_soft_values(mask.tobytes()), output="layer")
    with LamaClient(backend) as client:
        answer = client.inpaint(request)
    layer = region.build_layer_pixels(answer.pixels, rect, fmt)
    expected = np.frombuffer(layer, np.uint8 if fmt.dtype == "u8" else np.float32).reshape(rect.height, rect.width, 4)
    return rect, mask, expected


# Reading back through the layer's own storage: u8 and float storage return what was written up to
# float rounding in the sRGB<->linear conversion (float-visible is stored linear); u16 storage
# quantises each sample to 1/65535.
TOLERANCE = {"u8": 0, "u16-soft": 1.0 / 65535, "float-visible": 2e-6}


@pytest.mark.parametrize("name", ["u8", "u16-soft", "float-visible"])
def test_new_layer_holds_the_backend_output(gimp_run, backend, name):
    record, files = _case(gimp_run, name)
    assert record["call"]["status"] == "success", record["call"]["message"]
    rect, mask, expected = _expected(record, files, backend)
    before = [layer["name"] for layer in record["before_stack"]]
    after = record["after_stack"]
    assert [layer["name"] for layer in after] == [before[0], LAYER_NAME] + before[1:]  # directly above "paint"
    new = after[1]
    assert (new["x"], new["y"], new["w"], new["h"]) == (rect.x, rect.y, rect.width, rect.height)
    got = _raw(files, record["after_layers"][LAYER_NAME], record["babl"], (rect.height, rect.width, 4))
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=0, atol=TOLERANCE[name])
    # the inpainted pixels really are inside the selection: content where selected, clear elsewhere
    alpha = got[..., 3].astype(np.float64) / (255.0 if got.dtype == np.uint8 else 1.0)
    assert alpha[mask > 0].min() > 0
    if name != "u16-soft":
        assert alpha[mask == 255].min() > 0.99
    else:  # a feathered selection blends: partial alpha where the selection is partial
        partial = (mask > 20) & (mask < 235)
        assert partial.any() and 0.02 < alpha[partial].mean() < 0.98
    ys, xs = np.nonzero(mask)
    reach = record["grow"] + record["feather"] + 1  # the hole may grow this far beyond the selection
    far = np.ones_like(mask, dtype=bool)
    far[max(ys.min() - reach, 0):ys.max() + reach + 1, max(xs.min() - reach, 0):xs.max() + reach + 1] = False
    assert far.any() and alpha[far].max() == 0


def test_grayscale_image_gets_a_grey_layer_with_the_backend_alpha(gimp_run, backend):
    record, files = _case(gimp_run, "gray")
    assert record["call"]["status"] == "success", record["call"]["message"]
    rect, _mask, expected = _expected(record, files, backend)
    assert [layer["name"] for layer in record["after_stack"]][1] == LAYER_NAME
    got = _raw(files, record["after_layers"][LAYER_NAME], record["babl"], (rect.height, rect.width, 4))
    np.testing.assert_array_equal(got[..., 3], expected[..., 3])  # alpha survives the grey conversion exactly
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()  # stored as grey


@pytest.mark.parametrize("name", ["u8", "u16-soft", "float-visible", "empty-selection", "too-large", "gray"])
def test_other_layers_and_the_selection_are_unchanged(gimp_run, name):
    record, files = _case(gimp_run, name)
    for layer, dump in record["before_layers"].items():
        assert (files / record["after_layers"][layer]).read_bytes() == (files / dump).read_bytes(), layer
    assert (files / record["selection_after"]).read_bytes() == (files / record["selection"]).read_bytes()
    stack_after = [layer for layer in record["after_stack"] if layer["name"] != LAYER_NAME]
    assert stack_after == record["before_stack"]


@pytest.mark.parametrize("name", ["u8", "u16-soft", "float-visible", "gray"])
def test_one_undo_removes_the_layer_and_restores_the_image(gimp_run, name):
    record, files = _case(gimp_run, name)
    depth_before, depth_after = int(record["undo_before"].split()[1]), int(record["undo_after"].split()[1])
    assert depth_after == depth_before + 1, "the plug-in must add exactly one undo step"
    assert record["undo_after"].split(" ", 2)[2] == UNDO_GROUP
    assert record["undo_reply"].startswith("undone ")
    assert record["undone_stack"] == record["before_stack"]
    for layer, dump in record["before_layers"].items():
        assert (files / record["undone_layers"][layer]).read_bytes() == (files / dump).read_bytes(), layer


@pytest.mark.parametrize("name, message", [
    ("empty-selection", "Nothing is selected"),
    ("too-large", "Select a smaller area"),
])
def test_errors_reach_the_caller_and_insert_nothing(gimp_run, name, message):
    record, _files = _case(gimp_run, name)
    assert record["call"]["status"] == "execution-error"
    assert message in record["call"]["message"]
    assert record["after_stack"] == record["before_stack"]
    assert record["undo_after"] == record["undo_before"], "a failed run must leave no undo step"


def test_registration_as_the_real_pdb_sees_it(gimp_run):
    """Menu, types and arguments as GIMP registered them; every API name the plug-in (and its fake) uses exists.

    The sensitivity mask does not travel over the PDB to other plug-ins, so tests/test_gimp_plugin.py checks it.
    """
    record, _files = _case(gimp_run, "registration")
    assert record["missing_api"] == []
    assert record["menu_paths"] == ["<Image>/Filters/Enhance"]
    assert record["menu_label"] == "Inpaint Selection (LaMa)"
    assert record["image_types"] == "RGB*, GRAY*"
    arguments = record["arguments"]
    assert list(arguments)[:3] == ["run-mode", "image", "drawables"]
    assert {name: value[1:] for name, value in arguments.items() if name in ("margin", "grow", "feather")} == {
        "margin": [0, 2048, "128"], "grow": [0, 256, "0"], "feather": [0, 256, "0"]}
    assert arguments["source"][0] == "ParamChoice" and arguments["source"][3] == "layer"
    assert arguments["seamless"][0] == "ParamSpecBoolean" and arguments["seamless"][3] == "True"


def test_dialog_cancel_ok_and_remembered_values_in_the_full_gimp(dialog_run):
    """The dialog opens with the last values, Escape cancels, Return runs with them, Repeat reuses them."""
    record, last_values, log = dialog_run
    assert "Traceback" not in log and "duplicate mnemonic" not in log  # GTK warns about clashing shortcuts
    assert record["cancel"]["status"] == "cancel" and record["cancel"]["dialog_window"]
    assert [layer[0] for layer in record["cancel"]["layers"]] == ["paint"]
    assert record["ok"]["status"] == "success" and record["ok"]["dialog_window"]
    # selection (20, 16, 12 x 8) grown by the remembered margin 5 + grow 1; the default margin
    # (128) would have given the whole 64 x 48 layer
    assert record["ok"]["layers"] == [[LAYER_NAME, 14, 10, 24, 20], ["paint", 0, 0, 64, 48]]
    assert record["repeat"]["status"] == "success"
    # the repeat's layer goes directly above "paint", under the first one; GIMP numbers the name
    assert record["repeat"]["layers"] == [[LAYER_NAME, 14, 10, 24, 20], [LAYER_NAME + " #1", 14, 10, 24, 20],
                                          ["paint", 0, 0, 64, 48]]
    assert "(margin 5)" in last_values and "(grow 1)" in last_values


def test_gimp_log_is_clean(gimp_run):
    _records, log, _files = gimp_run
    assert "inconsistent state" not in log
    assert "Traceback" not in log
    assert "batch command executed successfully" in log
