"""python-fu-eval batch script for the full GIMP (gimp-3.0 on Xvfb): the plug-in's dialog.

Calls the plug-in INTERACTIVE twice while xdotool answers its dialog, first with Escape (Cancel),
then with Return (OK), then once WITH_LAST_VALS (Filters > Repeat, no dialog). The test seeds the
profile's last values beforehand, so the dialog must open with them and the runs must use them.
Writes $LAMA_TEST_DIR/dialog.json.
"""
import json
import os
import subprocess
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
from gi.repository import Gimp  # noqa: E402

OUT = os.environ["LAMA_TEST_DIR"]
PROCEDURE = "plug-in-lama-inpaint-selection"
WINDOW = "Inpaint Selection"  # the dialog's title starts with the menu label


def answer_dialog(key):
    """Wait for the dialog window in the background and press `key` in it; prints the window id."""
    script = ('w=$(timeout 60 xdotool search --sync --onlyvisible --name "%s" | head -n 1) && '
              'xdotool windowfocus --sync "$w" key --clearmodifiers %s && echo "$w"') % (WINDOW, key)
    return subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, text=True)


def run(image, layer, run_mode):
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", run_mode)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    start = time.monotonic()
    result = procedure.run(config)
    layers = []
    for item in image.get_layers():
        _ok, x, y = item.get_offsets()
        layers.append([item.get_name(), x, y, item.get_width(), item.get_height()])
    return {"status": result.index(0).value_nick, "seconds": time.monotonic() - start, "layers": layers}


def main():
    record = {}
    try:
        image = Gimp.Image.new(64, 48, Gimp.ImageBaseType.RGB)
        layer = Gimp.Layer.new(image, "paint", 64, 48, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL)
        image.insert_layer(layer, None, 0)
        layer.fill(Gimp.FillType.WHITE)
        image.select_rectangle(Gimp.ChannelOps.REPLACE, 20, 16, 12, 8)
        for name, key, mode in (("cancel", "Escape", Gimp.RunMode.INTERACTIVE),
                                ("ok", "Return", Gimp.RunMode.INTERACTIVE),
                                ("repeat", None, Gimp.RunMode.WITH_LAST_VALS)):
            presser = answer_dialog(key) if key else None
            record[name] = run(image, layer, mode)
            if presser is not None:
                out, _ = presser.communicate(timeout=60)
                record[name]["dialog_window"] = out.strip()
    except Exception:
        record["exception"] = traceback.format_exc()
    with open(os.path.join(OUT, "dialog.json"), "w") as handle:
        json.dump(record, handle, indent=1)


main()
