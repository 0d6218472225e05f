"""The Krita plugin in real Krita 5 (marker `krita`): headless via kritarunner, and full Krita under Xvfb.

Both tiers install the zip from `lama-backend package-plugin krita` with Krita's own plugin
importer into a temporary profile, and talk to a real `lama-backend serve` (tiny random weights)
on a free loopback port. Without Krita these tests skip locally and FAIL when CI=true; install
Krita with tests/krita_tier/run_real_krita.sh (what .ci/run calls).
"""
from __future__ import annotations

import configparser
import json
import os
import shutil
from pathlib import Path

import pytest

from lama_backend.commands.package_plugin import build_bundle
from tests.helpers.tiny_model import write_tiny_weights
from tests.krita_tier import harness

pytestmark = [pytest.mark.krita, pytest.mark.slow]

WIRE = {"U8": ("u8", "BGRA"), "U16": ("u16", "BGRA"), "F16": ("f32", "RGBA"), "F32": ("f32", "RGBA")}
MARGIN = 24
# tests/krita_tier/headless_checks.py selects x 70..87 fully and a soft band x 88..93, rows 30..89
SELECTION = (70, 30, 24, 60)
REGION = (70 - MARGIN, 30 - MARGIN, 24 + 2 * MARGIN, 60 + 2 * MARGIN)


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    harness.require("kritarunner")
    profile = tmp_path / "profile"
    installed = harness.install_plugin(build_bundle("krita", tmp_path / "lama_inpaint.zip"), profile / "data" / "krita")
    assert installed == ["lama_inpaint"]
    resources = profile / "data" / "krita"
    assert (resources / "pykrita" / "lama_inpaint.desktop").is_file()
    assert (resources / "pykrita" / "lama_inpaint" / "lama_client" / "region.py").is_file()
    assert (resources / "actions" / "lama_inpaint.action").is_file(), "the default shortcut comes from this file"
    return profile


def test_headless_krita_runs_the_action_code_against_a_real_backend(profile: Path, tmp_path: Path) -> None:
    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    address = "tcp://127.0.0.1:%d" % harness.free_port()
    config = {"address": address, "dead_address": "tcp://127.0.0.1:%d" % harness.free_port(),
              # the documented setup: only the path of lama-backend; the weights come from $LAMA_WEIGHTS
              "autostart_command": harness.backend_command(address, weights)[0],
              "depths": ["U8", "U16", "F16", "F32"], "job_timeout": 120, "out": str(tmp_path / "result.json")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    try:
        run = harness.run_kritarunner(profile, "headless_checks", "main", [str(tmp_path / "config.json")],
                                      [harness.KRITA_TESTS, profile / "data" / "krita" / "pykrita"], timeout=480,
                                      env_extra={"LAMA_WEIGHTS": str(weights)})
    finally:
        harness.shutdown_backend(address)  # the plugin autostarted it: detached, so stop it here
    log = "kritarunner rc=%s\n%s\n%s" % (run.returncode, run.stdout[-4000:], run.stderr[-4000:])
    # kritarunner may segfault on exit after threads ran (Krita 5.1.5): judge by the written results
    assert (tmp_path / "result.json").is_file(), log
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["errors"] == [], log + "\n".join(result["errors"])

    assert [c["depth"] for c in result["cases"]] == config["depths"]
    for case in result["cases"]:
        assert "error" not in case, case
        dtype, layout = WIRE[case["depth"]]
        assert case["request"] == {"dtype": dtype, "layout": layout, "channels": 4, "width": REGION[2],
                                   "height": REGION[3], "soft_mask": True, "output": "layer"}, case["depth"]
        assert case["selection_bounds"] == list(SELECTION)
        assert case["region"] == list(REGION)
        assert case["new_layers"] == 1
        # Without a view kritarunner has no active layer (setActiveNode needs one): the layer goes on
        # top. Placement above the active layer is checked in full Krita below.
        assert case["anchor"] is None
        assert case["names"] == ["Background", "Stripes", "Inpaint Selection"]
        assert case["bounds"] == case["expected_bounds"], "layer offset/size = the result's extent in the region"
        assert REGION[0] <= case["bounds"][0] and case["bounds"][0] + case["bounds"][2] <= REGION[0] + REGION[2]
        assert case["pixels_equal_backend"], case["depth"]
        assert case["selected_pixels"] == 24 * 60 and case["selected_pixels_equal_backend"]
        assert case["selected_pixels_visible"] == case["selected_pixels"]
        assert case["outside_region_empty"]
        assert case["others_unchanged"], "the source layers must never change"
        assert case["status"].startswith("Done")

    refusals = {r["kind"]: r for r in result["refusals"]}
    for kind, words in (("cmyk", "CMYK"), ("gray", "Grayscale"), ("lab", "L*a*b*"), ("noselection", "Select the area")):
        assert not refusals[kind]["started"] and words in refusals[kind]["message"] and refusals[kind]["unchanged"], kind
    assert result["no_backend"]["outcome"] == "failed"
    assert "lama-backend serve --bind" in result["no_backend"]["messages"][0]
    assert result["no_backend"]["unchanged"]


GUI_SIZE = (640, 400)
GUI_POST = (300, 120, 36, 200)  # x, y, w, h of the fully selected part; a soft band of 6 px follows


@pytest.fixture
def backend(tmp_path: Path):
    """A real `lama-backend serve` with tiny random weights, started detached like the autostart does."""
    from lama_backend.client import ensure_backend

    weights = write_tiny_weights(tmp_path / "tiny.safetensors")
    address = "tcp://127.0.0.1:%d" % harness.free_port()
    ensure_backend(address, harness.backend_command(address, weights), timeout=120,
                   log_path=str(tmp_path / "backend.log"))
    yield address
    harness.shutdown_backend(address)


def test_full_krita_loads_the_plugin_runs_the_action_and_one_undo_removes_the_layer(
        profile: Path, backend: str, tmp_path: Path) -> None:
    harness.require("xvfb-run", "krita")
    harness.install_driver(profile)
    harness.enable_plugins(profile, ["lama_inpaint", "lama_gui_test"])
    screenshot = tmp_path / "krita-screenshot.png"
    config = {"address": backend, "width": GUI_SIZE[0], "height": GUI_SIZE[1], "post": list(GUI_POST), "margin": 32,
              "job_timeout": 120, "out": str(tmp_path / "gui.json"), "screenshot": str(screenshot)}
    (tmp_path / "gui.json.in").write_text(json.dumps(config))
    run = harness.run_gui_krita(profile, {"LAMA_KRITA_GUI_CONFIG": str(tmp_path / "gui.json.in")}, timeout=300)
    log = "krita rc=%s\n%s" % (run.returncode, run.stdout[-6000:])
    assert (tmp_path / "gui.json").is_file(), log
    result = json.loads((tmp_path / "gui.json").read_text())
    assert result["errors"] == [], log + "\n".join(result["errors"])
    assert result["action_exists"] and result["action_text"] == "Inpaint Selection"
    assert result["menu_path"] == ["Tools", "Scripts"]
    assert result["shortcut"] == "Ctrl+Alt+Shift+I" and result["shortcut_clashes"] == []
    assert result["dockers"] == 1
    assert result["saved_settings"]["address"] == backend and result["saved_settings"]["margin"] == "32"
    assert not result["enabled_without_selection"] and result["enabled_with_selection"]
    assert result["active_before"] == "Background"
    assert result["running_after_trigger"], "the job runs on a worker thread: the trigger returns at once"
    assert result["outcome"] == "done", result["status"]
    assert result["names_after_run"] == ["Background", "Inpaint Selection", "Stripes"], "above the active layer"
    x, y, w, h = GUI_POST
    assert result["layer_bounds"] == [x, y, w + 6, h]  # the hard part plus the soft band
    assert result["docker_status"].startswith("Done")
    assert result["layer_docker_rows"] == ["Stripes", "Inpaint Selection", "Background"], "Krita's Layers docker lists it"
    assert result["names_after_undo"] == ["Background", "Stripes"], "one undo removes the result layer"
    assert result["layer_docker_rows_after_undo"] == ["Stripes", "Background"]
    assert result["others_unchanged"]
    assert result["layer_source_setting"] == "layer"
    assert result["layer_source_reads_active_layer"] and result["layer_source_differs_from_composite"]
    assert result["layer_source_outcome"] == "done"
    assert result["names_after_layer_source"] == ["Background", "Inpaint Selection", "Stripes"]
    assert result["layer_source_pixels_equal_backend"]
    assert screenshot.stat().st_size > 10000
    # the docker's settings outlive Krita: they are in the profile's kritarc
    kritarc = configparser.ConfigParser(interpolation=None, strict=False)
    kritarc.read_string("[top]\n" + (profile / "config" / "kritarc").read_text())  # KConfig allows keys before any group
    assert kritarc["lama_inpaint"]["address"] == backend and kritarc["lama_inpaint"]["margin"] == "32"
    target = os.environ.get("LAMA_KRITA_SCREENSHOT")  # set to docs/krita-screenshot.png to refresh the docs
    if target:
        shutil.copyfile(screenshot, target)
