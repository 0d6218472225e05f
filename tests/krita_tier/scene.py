"""Test scenes built inside real Krita: documents with known pixels, layers and a soft selection.

Shared by the headless checks (kritarunner) and the GUI driver; runs on Krita's own Python, so
stdlib + Krita's PyQt5 only.
"""
import struct

from krita import Krita, Selection

_SAMPLES = {"U8": ("B", 255), "U16": ("H", 65535), "F16": ("e", 1.0), "F32": ("f", 1.0)}


def pack_rgba(rgba, depth):
    """One pixel from 0..1 floats in Krita's memory order (integer: B,G,R,A; float: R,G,B,A)."""
    code, scale = _SAMPLES[depth]
    r, g, b, a = rgba
    order = (b, g, r, a) if depth in ("U8", "U16") else (r, g, b, a)
    if code in "BH":
        return struct.pack("=4" + code, *(int(round(v * scale)) for v in order))
    return struct.pack("=4" + code, *order)


def landscape(width, height, depth, post=None):
    """Sky and grass, with an optional red post (x, y, w, h): something to remove in the screenshot."""
    rows = []
    px, py, pw, ph = post or (0, 0, 0, 0)
    for y in range(height):
        row = []
        for x in range(width):
            if px <= x < px + pw and py <= y < py + ph:
                row.append(pack_rgba((0.75, 0.15, 0.1, 1.0), depth))
                continue
            horizon = height * 0.55 + 0.08 * height * ((x * 7919) % 97 / 97.0 - 0.5) + 0.1 * height * (
                (x / max(width, 1)) - 0.5)
            if y < horizon:
                rgba = (0.35 + 0.4 * y / height, 0.6 + 0.3 * y / height, 0.95, 1.0)
            else:
                shade = 0.25 + 0.35 * ((x * 31 + y * 17) % 23) / 23.0
                rgba = (0.15 * shade, 0.45 + 0.3 * shade, 0.1 + 0.1 * shade, 1.0)
            row.append(pack_rgba(rgba, depth))
        rows.append(b"".join(row))
    return b"".join(rows)


def stripes(width, height, depth):
    """A half-transparent striped overlay: the composite then differs from every single layer."""
    on = pack_rgba((0.9, 0.8, 0.1, 0.5), depth)
    off = pack_rgba((0.0, 0.0, 0.0, 0.0), depth)
    return b"".join((on if (x // 6) % 2 == 0 and y > height // 3 else off)
                    for y in range(height) for x in range(width))


def make_document(width, height, depth, model="RGBA", post=None):
    """A document with a filled background, a striped top layer, the background active."""
    app = Krita.instance()
    doc = app.createDocument(width, height, "lama-test-%s-%s" % (model, depth), model, depth, "", 72.0)
    root = doc.rootNode()
    background = [n for n in root.childNodes() if n.type() == "paintlayer"][0]
    if model == "RGBA":
        background.setPixelData(landscape(width, height, depth, post), 0, 0, width, height)
        top = doc.createNode("Stripes", "paintlayer")
        top.setPixelData(stripes(width, height, depth), 0, 0, width, height)
        root.addChildNode(top, background)
    doc.setActiveNode(background)
    doc.refreshProjection()
    doc.waitForDone()
    return doc, background


def select_post(doc, x, y, w, h, soft_border=6):
    """A rectangle selected fully, with a soft (value 128) band on its right: a real soft selection."""
    selection = Selection()
    selection.select(x, y, w, h, 255)
    selection.select(x + w, y, soft_border, h, 128)
    doc.setSelection(selection)
    return selection


def paint_layers(doc):
    """Every paint layer, bottom to top (the root also holds a "selectionmask" node once selected)."""
    return [n for n in doc.rootNode().childNodes() if n.type() == "paintlayer"]
