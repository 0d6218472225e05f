"""Runs inside real Krita via kritarunner: the plugin's action code against a real backend.

    kritarunner -s headless_checks -f main -- CONFIG_JSON

CONFIG_JSON names the backend address, the autostart command and the output file. For RGBA U8,
U16, F16 and F32 documents it snapshots the request the plugin will send, runs the plugin's
controller (worker thread, real client, autostarting the backend on the first case), asks the
backend directly for the same request, and records what the test asserts on: the new layer's
place, offset and size, its pixels against the backend's output, and every other layer's pixels.
Then CMYK/grayscale/no-selection documents must give a message and change nothing.
"""
import json
import sys
import time
import traceback

from PyQt5.QtCore import QEventLoop, QTimer

from krita import Krita

import scene

WIDTH, HEIGHT = 160, 120
POST = (70, 30, 18, 60)  # x, y, w, h of the selected "post"


def wait_finished(controller, seconds):
    outcome = []
    loop = QEventLoop()
    controller.finished.connect(lambda kind: (outcome.append(kind), loop.quit()))
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    if not controller.is_running():
        return "not running"
    loop.exec_()
    return outcome[0] if outcome else "timeout"


def layer_snapshot(doc):
    return [(n.name(), bytes(n.pixelData(0, 0, WIDTH, HEIGHT))) for n in scene.paint_layers(doc)]


def run_rgba_case(depth, cfg, messages):
    from lama_inpaint.controller import InpaintController
    from lama_inpaint.document_io import LAYER_NAME, prepare_inpaint
    from lama_inpaint.lama_client import InpaintRequest, LamaClient, region
    from lama_inpaint.settings import load_settings

    app = Krita.instance()
    doc, background = scene.make_document(WIDTH, HEIGHT, depth)
    scene.select_post(doc, *POST)
    before = layer_snapshot(doc)
    settings = load_settings(app)
    snapshot = prepare_inpaint(doc, settings)  # exactly what the controller will send
    fields = snapshot.request_fields(settings)
    anchor_name = snapshot.anchor.name() if snapshot.anchor is not None else None

    controller = InpaintController(app, notify=messages.append, show_dialog=True)
    started = time.monotonic()
    if not controller.start(doc):
        return {"depth": depth, "error": "controller refused: %s" % messages[-1:]}
    outcome = wait_finished(controller, cfg["job_timeout"])
    seconds = time.monotonic() - started
    if outcome != "done":
        return {"depth": depth, "error": "outcome %s, status %r, messages %r" % (outcome, controller.status, messages)}
    doc.waitForDone()

    client = LamaClient(cfg["address"], timeout=10.0)
    try:
        expected = client.inpaint(InpaintRequest(**fields)).pixels
    finally:
        client.close()
    expected_layer = region.build_layer_pixels(expected, snapshot.region, snapshot.fmt)

    layers = scene.paint_layers(doc)
    names = [n.name() for n in layers]
    new = [n for n in layers if n.name() == LAYER_NAME]
    area = snapshot.region
    layer = new[0] if len(new) == 1 else None
    result = {
        "depth": depth, "seconds": seconds, "names": names, "anchor": anchor_name,
        "region": list(area), "selection_bounds": list(snapshot.selection_bounds),
        "request": {k: fields[k] for k in ("dtype", "layout", "channels", "width", "height", "soft_mask", "output")},
        "new_layers": len(new),
    }
    if layer is None:
        return result
    bounds = layer.bounds()
    bpp = snapshot.fmt.bytes_per_pixel
    got = bytes(layer.pixelData(area.x, area.y, area.width, area.height))
    # where the expected layer has any non-zero byte: its extent is what Krita should report
    coverage = bytes(1 if any(expected_layer[i:i + bpp]) else 0 for i in range(0, len(expected_layer), bpp))
    extent = region.mask_bounds(coverage, area.width, area.height)
    mask_inside = [i for i, m in enumerate(snapshot.mask) if m]
    result.update({
        "bounds": [bounds.x(), bounds.y(), bounds.width(), bounds.height()],
        "expected_bounds": [area.x + extent.x, area.y + extent.y, extent.width, extent.height] if extent else None,
        "pixels_equal_backend": got == expected_layer,
        "selected_pixels": len(mask_inside),
        "selected_pixels_equal_backend": all(got[i * bpp:(i + 1) * bpp] == expected_layer[i * bpp:(i + 1) * bpp]
                                             for i in mask_inside),
        "selected_pixels_visible": sum(1 for i in mask_inside if any(got[i * bpp:(i + 1) * bpp])),
        "outside_region_empty": not any(bytes(layer.pixelData(0, 0, WIDTH, area.y))),
        "others_unchanged": [b for b in before] == [(n.name(), bytes(n.pixelData(0, 0, WIDTH, HEIGHT)))
                                                    for n in scene.paint_layers(doc) if n.name() != LAYER_NAME],
        "status": controller.status,
    })
    doc.close()
    return result


def run_refusal_case(kind, messages):
    from lama_inpaint.controller import InpaintController

    app = Krita.instance()
    model, depth = {"cmyk": ("CMYKA", "U8"), "gray": ("GRAYA", "U8"), "lab": ("LABA", "U16"),
                    "noselection": ("RGBA", "U8")}[kind]
    doc, _ = scene.make_document(64, 48, depth, model)
    if kind != "noselection":
        scene.select_post(doc, 10, 10, 8, 8)
    before = [bytes(n.pixelData(0, 0, 64, 48)) for n in scene.paint_layers(doc)]
    count = len(doc.rootNode().childNodes())
    controller = InpaintController(app, notify=messages.append, show_dialog=False)
    started = controller.start(doc)
    result = {"kind": kind, "started": started, "message": messages[-1] if messages else None,
              "unchanged": [bytes(n.pixelData(0, 0, 64, 48)) for n in scene.paint_layers(doc)] == before
              and len(doc.rootNode().childNodes()) == count}
    doc.close()
    return result


def main(args):
    with open(args[0]) as handle:
        cfg = json.load(handle)
    out = {"cases": [], "refusals": [], "errors": []}
    try:
        import lama_inpaint  # noqa: F401  (the packaged plugin, as Krita's importer installed it)
        from lama_inpaint.settings import InpaintSettings, save_settings

        app = Krita.instance()
        # Nothing answers at the address yet: the first job must autostart the backend.
        save_settings(app, InpaintSettings(address=cfg["address"], autostart_command=cfg["autostart_command"],
                                           margin=24, grow=0, feather=0, source="composite"))
        for depth in cfg["depths"]:
            messages = []
            out["cases"].append(run_rgba_case(depth, cfg, messages))
        for kind in ("cmyk", "gray", "lab", "noselection"):
            out["refusals"].append(run_refusal_case(kind, []))
        # A backend address where nothing answers and no autostart: the "how to start" message.
        save_settings(app, InpaintSettings(address=cfg["dead_address"], margin=24))
        messages = []
        from lama_inpaint.controller import InpaintController
        doc, _ = scene.make_document(64, 48, "U8")
        scene.select_post(doc, 10, 10, 8, 8)
        count = len(doc.rootNode().childNodes())
        controller = InpaintController(app, notify=messages.append, show_dialog=False)
        controller.start(doc)
        outcome = wait_finished(controller, 30)
        out["no_backend"] = {"outcome": outcome, "messages": messages,
                             "unchanged": len(doc.rootNode().childNodes()) == count}
        doc.close()
    except Exception:
        out["errors"].append(traceback.format_exc())
    with open(cfg["out"], "w") as handle:
        json.dump(out, handle, indent=1)
    sys.stdout.flush()
