"""Pixels in and out of GIMP 3: selection, drawable or visible region, and the result layer.

Everything that touches Gimp/Gegl objects lives here so the rest of the plug-in works on plain
bytes. Coordinates passed in and out are image (canvas) coordinates; layer buffers are read in
layer coordinates, so the layer offsets are subtracted here and nowhere else.
"""
from typing import Optional, Tuple

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp  # noqa: E402

from lama_gimp_client import region  # noqa: E402

Rect = region.Rect
PixelFormat = region.PixelFormat

# 8-bit images go to the backend as u8; every other precision as float32 so no depth is lost.
_U8_PRECISIONS = ("U8_LINEAR", "U8_NON_LINEAR", "U8_PERCEPTUAL")
# Perceptual (sRGB-encoded) samples: what the model was trained on, whatever the image stores.
BABL_FORMATS = {"u8": "R'G'B'A u8", "f32": "R'G'B'A float"}
MASK_FORMAT = "Y u8"


def pixel_format(image: "Gimp.Image") -> Tuple[PixelFormat, str]:
    """The wire format and the babl format used to read and write `image`'s pixels."""
    precision = image.get_precision()
    u8 = any(precision == getattr(Gimp.Precision, name) for name in _U8_PRECISIONS)
    fmt = PixelFormat("u8" if u8 else "f32", "RGBA")
    return fmt, BABL_FORMATS[fmt.dtype]


def selection_bounds(image: "Gimp.Image") -> Optional[Rect]:
    """Bounds of the selection in image coordinates, or None when nothing is selected."""
    _ok, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    if not non_empty:
        return None
    return Rect(x1, y1, x2 - x1, y2 - y1)


def drawable_rect(drawable: "Gimp.Drawable") -> Rect:
    """Where the drawable lies on the canvas (its offsets and size)."""
    _ok, x, y = drawable.get_offsets()
    return Rect(x, y, drawable.get_width(), drawable.get_height())


def is_layer(drawable: "Gimp.Drawable") -> bool:
    """True for layers (and layer groups); False for channels and layer masks."""
    return bool(drawable.is_layer())


def image_rect(image: "Gimp.Image") -> Rect:
    return Rect(0, 0, image.get_width(), image.get_height())


def _gegl_rect(rect: Rect) -> "Gegl.Rectangle":
    return Gegl.Rectangle.new(rect.x, rect.y, rect.width, rect.height)


def read_mask(image: "Gimp.Image", rect: Rect) -> bytes:
    """Selection values (0 keep .. 255 fully selected) of `rect`, one byte per pixel."""
    buffer = image.get_selection().get_buffer()
    return bytes(buffer.get(_gegl_rect(rect), 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE))


def read_drawable(drawable: "Gimp.Drawable", rect: Rect, babl_format: str) -> bytes:
    """Pixels of `rect` (image coordinates, inside the drawable) from the drawable itself."""
    origin = drawable_rect(drawable)
    local = Rect(rect.x - origin.x, rect.y - origin.y, rect.width, rect.height)
    buffer = drawable.get_buffer()
    return bytes(buffer.get(_gegl_rect(local), 1.0, babl_format, Gegl.AbyssPolicy.NONE))


def read_visible(image: "Gimp.Image", rect: Rect, babl_format: str) -> bytes:
    """Pixels of `rect` from the composite of all visible layers.

    The composite comes from a temporary layer that is never inserted into the image, so it
    leaves no trace in the layer stack or the undo history; it is deleted before returning.
    """
    visible = Gimp.Layer.new_from_visible(image, image, "LaMa visible copy")
    try:
        return read_drawable(visible, rect, babl_format)
    finally:
        visible.delete()


def new_result_layer(image: "Gimp.Image", rect: Rect, babl_format: str, pixels: bytes,
                     name: str) -> "Gimp.Layer":
    """A layer of `rect`'s size at `rect`'s position holding `pixels`, not yet in the image."""
    rgb = image.get_base_type() == Gimp.ImageBaseType.RGB
    kind = Gimp.ImageType.RGBA_IMAGE if rgb else Gimp.ImageType.GRAYA_IMAGE
    layer = Gimp.Layer.new(image, name, rect.width, rect.height, kind, 100.0, Gimp.LayerMode.NORMAL)
    try:
        layer.set_offsets(rect.x, rect.y)
        buffer = layer.get_buffer()
        buffer.set(_gegl_rect(Rect(0, 0, rect.width, rect.height)), babl_format, pixels)
        buffer.flush()
    except Exception:
        layer.delete()
        raise
    return layer


def insert_above(image: "Gimp.Image", drawable: "Gimp.Drawable", layer: "Gimp.Layer") -> None:
    """Insert `layer` directly above `drawable` (same parent, same position) as one undo step."""
    parent = drawable.get_parent()
    position = image.get_item_position(drawable)
    image.undo_group_start()
    try:
        if not image.insert_layer(layer, parent, position):
            raise RuntimeError("GIMP refused to insert the result layer")
    finally:
        image.undo_group_end()
