"""Which Krita colour spaces the plugin handles, and their real byte order in memory.

Krita hands out integer RGBA pixels as B, G, R, A (its KoBgrU8/KoBgrU16 traits) and float RGBA
as R, G, B, A; the backend is told the layout and converts. Half floats travel as float32.
"""
from .client_api import region

# (colorModel(), colorDepth()) -> memory layout.
KRITA_PIXEL_FORMATS = {
    ("RGBA", "U8"): region.PixelFormat("u8", "BGRA"),
    ("RGBA", "U16"): region.PixelFormat("u16", "BGRA"),
    ("RGBA", "F16"): region.PixelFormat("f16", "RGBA"),
    ("RGBA", "F32"): region.PixelFormat("f32", "RGBA"),
}

_MODEL_NAMES = {"RGBA": "RGB/Alpha", "CMYKA": "CMYK/Alpha", "LABA": "L*a*b*/Alpha", "GRAYA": "Grayscale/Alpha",
                "XYZA": "XYZ/Alpha", "YCbCrA": "YCbCr/Alpha"}
_DEPTH_NAMES = {"U8": "8-bit integer", "U16": "16-bit integer", "F16": "16-bit float", "F32": "32-bit float"}


class UnsupportedColorSpace(ValueError):
    """The document or layer uses a colour model/depth LaMa cannot take; the message says what to do."""


def describe(model: str, depth: str) -> str:
    return "%s (%s)" % (_MODEL_NAMES.get(model, model), _DEPTH_NAMES.get(depth, depth))


def pixel_format(model: str, depth: str) -> region.PixelFormat:
    """The memory layout of a Krita colour space, or UnsupportedColorSpace with a clear message."""
    try:
        return KRITA_PIXEL_FORMATS[(model, depth)]
    except KeyError:
        raise UnsupportedColorSpace(
            "Inpaint Selection works on RGB/Alpha images (8 or 16-bit integer, 16 or 32-bit float); "
            "this one is %s. Convert a copy with Image > Convert Image Color Space, then try again. "
            "Nothing was changed." % describe(model, depth)) from None
