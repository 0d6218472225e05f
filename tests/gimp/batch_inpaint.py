"""python-fu-eval batch script: call the LaMa plug-in through the PDB in real GIMP 3 and dump results.

Runs inside gimp-console-3.0 (Python 3.13 in the trixie root). For each case it builds an image,
selects a region, calls the plug-in non-interactively and writes what it sees (layer stack,
pixels before and after, the selection, the new layer and its offsets) to $LAMA_TEST_DIR, where
tests/test_gimp_integration.py checks them against the backend on the host. When $LAMA_UNDO_HOOK
is set (the core hook preloaded into gimp-console, see undo_hook.c), it also records the undo
stack's depth around the call, undoes once, and dumps the layers again.
"""
import json
import os
import time
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

OUT = os.environ["LAMA_TEST_DIR"]
CASES = os.environ.get("LAMA_TEST_CASES", "u8,u16-soft,float-visible,empty-selection,too-large,gray").split(",")
PROCEDURE = "plug-in-lama-inpaint-selection"
WIDTH, HEIGHT = 72, 56
PAINT_RECT = (8, 6, 56, 44)  # x, y, w, h of the layer the plug-in runs on (it has offsets)
SELECTION = (20, 18, 16, 12)
FLOAT = "R'G'B'A float"


def rect(x, y, w, h):
    return Gegl.Rectangle.new(x, y, w, h)


def pattern(width, height, seed):
    """Deterministic smooth colours plus fine stripes, opaque, as float RGBA bytes."""
    import numpy as np

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rgba = np.stack([(xx / width + 0.1 * seed) % 1.0, yy / height, ((xx + yy) % 7) / 7.0,
                     np.ones_like(xx)], axis=-1)
    return rgba.astype(np.float32).tobytes()


def add_layer(image, name, x, y, w, h, position, seed):
    rgb = image.get_base_type() == Gimp.ImageBaseType.RGB
    kind = Gimp.ImageType.RGBA_IMAGE if rgb else Gimp.ImageType.GRAYA_IMAGE
    layer = Gimp.Layer.new(image, name, w, h, kind, 100.0, Gimp.LayerMode.NORMAL)
    layer.set_offsets(x, y)
    image.insert_layer(layer, None, position)
    buffer = layer.get_buffer()
    buffer.set(rect(0, 0, w, h), FLOAT, pattern(w, h, seed))
    buffer.flush()
    layer.update(0, 0, w, h)
    return layer


def read(drawable, babl_format):
    w, h = drawable.get_width(), drawable.get_height()
    return bytes(drawable.get_buffer().get(rect(0, 0, w, h), 1.0, babl_format, Gegl.AbyssPolicy.NONE))


def dump(name, data):
    with open(os.path.join(OUT, name), "wb") as handle:
        handle.write(data)
    return name


def stack(image):
    layers = []
    for layer in image.get_layers():
        _ok, x, y = layer.get_offsets()
        layers.append({"name": layer.get_name(), "x": x, "y": y, "w": layer.get_width(), "h": layer.get_height()})
    return layers


def selection_state(image):
    sel = image.get_selection()
    return bytes(sel.get_buffer().get(rect(0, 0, WIDTH, HEIGHT), 1.0, "Y u8", Gegl.AbyssPolicy.NONE))


def call_plugin(image, drawable, margin, grow, feather, source):
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    if procedure is None:
        raise RuntimeError("procedure %s is not registered (plug-in not found or not executable)" % PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [drawable])
    config.set_property("margin", margin)
    config.set_property("grow", grow)
    config.set_property("feather", feather)
    config.set_property("source", source)
    start = time.monotonic()
    result = procedure.run(config)
    status = result.index(0)
    message = Gimp.get_pdb().get_last_error() if status != Gimp.PDBStatusType.SUCCESS else ""
    return {"status": status.value_nick, "message": message, "seconds": time.monotonic() - start}


def hook(command, image):
    """Ask the core hook preloaded into gimp-console (undo_hook.c) for "depth" or "undo"."""
    hook_dir = os.environ["LAMA_UNDO_HOOK"]
    request, reply = os.path.join(hook_dir, "request"), os.path.join(hook_dir, "reply")
    if os.path.exists(reply):
        os.unlink(reply)
    with open(request + ".tmp", "w") as handle:
        handle.write("%s %d\n" % (command, image.get_id()))
    os.rename(request + ".tmp", request)
    deadline = time.monotonic() + 20
    while not os.path.exists(reply):
        if time.monotonic() > deadline:
            raise RuntimeError("the undo hook did not answer (is it preloaded into gimp-console?)")
        time.sleep(0.02)
    with open(reply) as handle:
        return handle.read().strip()


# name: (precision, babl format the test reads, source, margin, grow, feather, feather the selection by)
CASE_SETUP = {
    "u8": ("U8_NON_LINEAR", "R'G'B'A u8", "layer", 16, 2, 1, 0.0),
    "u16-soft": ("U16_NON_LINEAR", FLOAT, "layer", 16, 2, 1, 6.0),
    "float-visible": ("FLOAT_LINEAR", FLOAT, "visible", 16, 2, 1, 0.0),
    "empty-selection": ("U8_NON_LINEAR", "R'G'B'A u8", "layer", 16, 2, 1, None),
    "too-large": ("U8_NON_LINEAR", "R'G'B'A u8", "visible", 64, 0, 0, 0.0),  # over the server's pixel budget
    "gray": ("U8_NON_LINEAR", "R'G'B'A u8", "layer", 16, 2, 1, 0.0),  # a grayscale image (GRAYA layers)
}


def run_case(name):
    precision_name, babl, source, margin, grow, feather, feather_selection = CASE_SETUP[name]
    precision = getattr(Gimp.Precision, precision_name)
    base = Gimp.ImageBaseType.GRAY if name == "gray" else Gimp.ImageBaseType.RGB
    image = Gimp.Image.new_with_precision(WIDTH, HEIGHT, base, precision)
    add_layer(image, "background", 0, 0, WIDTH, HEIGHT, 0, seed=1)
    paint = add_layer(image, "paint", *PAINT_RECT, 0, seed=2)
    add_layer(image, "overlay", 60, 44, 10, 10, 0, seed=3)  # above the drawable; must stay on top
    if feather_selection is not None:
        image.select_rectangle(Gimp.ChannelOps.REPLACE, *SELECTION)
    if feather_selection:
        Gimp.Selection.feather(image, feather_selection)
    record = {"case": name, "babl": babl, "source": source, "margin": margin, "grow": grow, "feather": feather,
              "paint_rect": PAINT_RECT, "size": [WIDTH, HEIGHT], "before_stack": stack(image)}
    record["before_layers"] = {layer.get_name(): dump("%s-before-%s.raw" % (name, layer.get_name()), read(layer, babl))
                               for layer in image.get_layers()}
    record["selection"] = dump("%s-selection.raw" % name, selection_state(image))
    if source == "visible":
        visible = Gimp.Layer.new_from_visible(image, image, "check")
        record["visible"] = dump("%s-visible.raw" % name, read(visible, babl))
        visible.delete()
    use_hook = bool(os.environ.get("LAMA_UNDO_HOOK"))
    if use_hook:
        record["undo_before"] = hook("depth", image)
    record["call"] = call_plugin(image, paint, margin, grow, feather, source)
    if use_hook:
        record["undo_after"] = hook("depth", image)
    record["after_stack"] = stack(image)
    record["after_layers"] = {}
    for layer in image.get_layers():
        record["after_layers"][layer.get_name()] = dump("%s-after-%s.raw" % (name, layer.get_name()), read(layer, babl))
    record["selection_after"] = dump("%s-selection-after.raw" % name, selection_state(image))
    if use_hook and record["call"]["status"] == "success":
        record["undo_reply"] = hook("undo", image)
        record["undone_stack"] = stack(image)
        record["undone_layers"] = {layer.get_name(): dump("%s-undone-%s.raw" % (name, layer.get_name()),
                                                          read(layer, babl)) for layer in image.get_layers()}
    image.delete()
    return record


# Every Gimp/GimpUi attribute the plug-in uses (tests/gimp/fake_gimp.py mirrors these).
API = ("Gimp.PlugIn", "Gimp.ImageProcedure.new", "Gimp.Choice.new", "Gimp.ProcedureSensitivityMask.DRAWABLE",
       "Gimp.PDBProcType.PLUGIN", "Gimp.RunMode.INTERACTIVE", "Gimp.PDBStatusType.EXECUTION_ERROR",
       "Gimp.progress_init", "Gimp.progress_update", "Gimp.progress_set_text", "Gimp.progress_end",
       "Gimp.displays_flush", "Gimp.Selection.bounds", "Gimp.Layer.new", "Gimp.Layer.new_from_visible",
       "Gimp.Item.is_layer", "Gimp.Item.delete", "Gimp.Item.get_parent", "Gimp.Image.get_item_position",
       "Gimp.Image.insert_layer", "Gimp.Image.undo_group_start", "Gimp.Image.undo_group_end",
       "Gimp.Image.get_precision", "Gimp.Image.get_base_type", "Gimp.Image.get_selection",
       "Gimp.Drawable.get_offsets", "Gimp.Drawable.get_buffer", "Gimp.Layer.set_offsets",
       "Gimp.ImageType.RGBA_IMAGE", "Gimp.ImageType.GRAYA_IMAGE", "Gimp.LayerMode.NORMAL",
       "Gegl.Rectangle.new", "Gegl.AbyssPolicy.NONE", "Gegl.Buffer.get", "Gegl.Buffer.set", "Gegl.Buffer.flush",
       "GimpUi.init", "GimpUi.ProcedureDialog.new", "GimpUi.ProcedureDialog.fill", "GimpUi.ProcedureDialog.run")


def registration():
    """How the real PDB sees the procedure, and which used API names are missing."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi

    modules = {"Gimp": Gimp, "Gegl": Gegl, "GimpUi": GimpUi}
    missing = []
    for dotted in API:
        obj = modules[dotted.split(".")[0]]
        for part in dotted.split(".")[1:]:
            obj = getattr(obj, part, None)
        if obj is None:
            missing.append(dotted)
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    arguments = {}
    for spec in procedure.get_arguments():
        arguments[spec.get_name()] = [type(spec).__name__, getattr(spec, "minimum", None),
                                      getattr(spec, "maximum", None), str(spec.get_default_value())]
    return {"case": "registration", "missing_api": missing, "menu_paths": list(procedure.get_menu_paths()),
            "menu_label": procedure.get_menu_label(), "image_types": procedure.get_image_types(),
            "arguments": arguments}


def main():
    results = []
    try:
        results.append(registration())
    except Exception:
        results.append({"case": "registration", "exception": traceback.format_exc()})
    for name in CASES:
        try:
            results.append(run_case(name))
        except Exception:
            results.append({"case": name, "exception": traceback.format_exc()})
    with open(os.path.join(OUT, "results.json.tmp"), "w") as handle:
        json.dump(results, handle, indent=1)
    os.rename(os.path.join(OUT, "results.json.tmp"), os.path.join(OUT, "results.json"))


main()
