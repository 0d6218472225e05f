"""Editor-neutral pixel bookkeeping shared by the Krita and GIMP plugins.

Both plugins do the same arithmetic around the backend call: find the tight bounds of a
selection mask, grow them by a context margin clamped to the canvas, cut rows out of packed pixel
buffers, convert half floats (which the protocol does not carry) to float32 and back, and clean
the result before it becomes a new layer. Keeping that here gives both editors one tested copy.

Everything works on packed, row-major `bytes` (what the editors' APIs hand out), uses only the
standard library and Python 3.8 syntax, and stays fast enough for multi-megapixel regions by doing
per-row or per-channel work with C-level bytes operations instead of per-pixel Python loops.
"""
import re
import struct
from typing import NamedTuple, Optional

# The protocol's sample types and their size in bytes ("f16" exists only on the editor side).
SAMPLE_SIZES = {"u8": 1, "u16": 2, "f16": 2, "f32": 4}
# Where alpha sits in each channel order the protocol knows (None: no alpha).
ALPHA_INDEX = {"RGBA": 3, "BGRA": 3, "RGB": None, "BGR": None}

_ZERO_RUNS = re.compile(b"\x00+")


class RegionError(ValueError):
    """Inputs that do not describe a valid image, mask or rectangle (a caller bug, not user input)."""


class Rect(NamedTuple):
    """An axis-aligned rectangle in canvas pixels; `x`, `y` is the top-left corner."""

    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        """One past the last column."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """One past the last row."""
        return self.y + self.height

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0

    def intersect(self, other: "Rect") -> "Rect":
        """The overlap of both rectangles; width/height 0 when they do not overlap."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        return Rect(x0, y0, max(x1 - x0, 0), max(y1 - y0, 0))

    def contains(self, other: "Rect") -> bool:
        return (other.x >= self.x and other.y >= self.y
                and other.right <= self.right and other.bottom <= self.bottom)


class PixelFormat(NamedTuple):
    """How an editor lays out one pixel in memory: sample type and channel order."""

    dtype: str   # "u8" | "u16" | "f16" | "f32"
    layout: str  # "RGBA" | "BGRA" | "RGB" | "BGR"

    @property
    def channels(self) -> int:
        return len(self.layout)

    @property
    def sample_size(self) -> int:
        return SAMPLE_SIZES[self.dtype]

    @property
    def bytes_per_pixel(self) -> int:
        return self.channels * self.sample_size

    def wire_format(self) -> "PixelFormat":
        """The format sent to the backend: half floats travel as float32, the rest unchanged."""
        return PixelFormat("f32", self.layout) if self.dtype == "f16" else self


def _check_buffer(data: bytes, width: int, height: int, bytes_per_pixel: int, what: str) -> None:
    if width < 0 or height < 0:
        raise RegionError("%s size %dx%d is negative" % (what, width, height))
    expected = width * height * bytes_per_pixel
    if len(data) != expected:
        raise RegionError("%s has %d bytes, expected %d (%dx%d x %d bytes)"
                          % (what, len(data), expected, width, height, bytes_per_pixel))


def mask_bounds(mask: bytes, width: int, height: int) -> Optional[Rect]:
    """Tight bounds of the non-zero bytes of a `width` x `height` one-byte-per-pixel mask.

    Returns None when every byte is zero (an empty selection). Coordinates are relative to the
    mask's own top-left corner.
    """
    _check_buffer(mask, width, height, 1, "mask")
    top = bottom = -1
    left, right = width, 0
    for row in range(height):
        line = mask[row * width:(row + 1) * width]
        stripped_left = line.lstrip(b"\x00")
        if not stripped_left:
            continue
        if top < 0:
            top = row
        bottom = row
        left = min(left, width - len(stripped_left))
        right = max(right, len(line.rstrip(b"\x00")))
    if top < 0:
        return None
    return Rect(left, top, right - left, bottom - top + 1)


def expand_rect(rect: Rect, margin: int, canvas: Rect) -> Rect:
    """`rect` grown by `margin` pixels on every side, clamped to `canvas`.

    The margin is the context the model sees around the hole; clamping keeps the region inside
    the image so every pixel sent is a real one.
    """
    if margin < 0:
        raise RegionError("margin must be >= 0, got %d" % margin)
    grown = Rect(rect.x - margin, rect.y - margin, rect.width + 2 * margin, rect.height + 2 * margin)
    return grown.intersect(canvas)


def crop(data: bytes, width: int, height: int, bytes_per_pixel: int, rect: Rect) -> bytes:
    """The pixels of `rect` (in the buffer's own coordinates) cut out of a packed buffer."""
    _check_buffer(data, width, height, bytes_per_pixel, "buffer")
    if not Rect(0, 0, width, height).contains(rect):
        raise RegionError("crop %r lies outside the %dx%d buffer" % (rect, width, height))
    stride = width * bytes_per_pixel
    start = rect.x * bytes_per_pixel
    end = start + rect.width * bytes_per_pixel
    return b"".join(data[row * stride + start:row * stride + end] for row in range(rect.y, rect.bottom))


def mask_has_soft_values(mask: bytes) -> bool:
    """True when the mask holds values other than 0 and 255 (a feathered or partial selection)."""
    return bool(mask.translate(None, b"\x00\xff"))


# Samples converted per struct call: bounds the temporary Python floats to a few MB per step.
_CONVERT_CHUNK = 1 << 18
_HALF_MAX = 65504.0


def half_to_float32(data: bytes) -> bytes:
    """IEEE half floats (native byte order, as editors store them) widened to float32."""
    if len(data) % 2:
        raise RegionError("half-float buffer has an odd number of bytes (%d)" % len(data))
    out = bytearray()
    step = 2 * _CONVERT_CHUNK
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        count = len(chunk) // 2
        out += struct.pack("=%df" % count, *struct.unpack("=%de" % count, chunk))
    return bytes(out)


def float32_to_half(data: bytes) -> bytes:
    """float32 narrowed to IEEE half floats; values beyond the half range saturate to +-65504."""
    if len(data) % 4:
        raise RegionError("float32 buffer length %d is not a multiple of 4" % len(data))
    out = bytearray()
    step = 4 * _CONVERT_CHUNK
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        count = len(chunk) // 4
        values = struct.unpack("=%df" % count, chunk)
        try:
            out += struct.pack("=%de" % count, *values)
        except OverflowError:
            out += struct.pack("=%de" % count, *(min(max(v, -_HALF_MAX), _HALF_MAX) for v in values))
    return bytes(out)


def to_wire(pixels: bytes, fmt: PixelFormat) -> bytes:
    """Editor pixels in the form the backend accepts (see `PixelFormat.wire_format`)."""
    return half_to_float32(pixels) if fmt.dtype == "f16" else pixels


def from_wire(pixels: bytes, fmt: PixelFormat) -> bytes:
    """Backend pixels turned back into the editor's format `fmt`."""
    return float32_to_half(pixels) if fmt.dtype == "f16" else pixels


def _alpha_zero_flags(pixels: bytes, fmt: PixelFormat) -> bytes:
    """One byte per pixel: 0 where the pixel's alpha sample is all zero bytes, non-zero elsewhere."""
    alpha = ALPHA_INDEX[fmt.layout]
    bpp, size = fmt.bytes_per_pixel, fmt.sample_size
    first = alpha * size
    flags = pixels[first::bpp]
    for k in range(1, size):
        other = pixels[first + k::bpp]
        # OR the alpha sample's bytes together through big integers: C speed, no per-pixel loop.
        combined = int.from_bytes(flags, "little") | int.from_bytes(other, "little")
        flags = combined.to_bytes(len(flags), "little")
    return flags


def clear_transparent(pixels: bytes, fmt: PixelFormat) -> bytes:
    """Set every sample of fully transparent pixels to zero.

    The backend's "layer" output has alpha 0 outside the hole, but the colour there is whatever
    the model produced. Zeroing it keeps invisible colour out of the new layer (it would reappear
    with "alpha lock off" edits) and lets the editor compute the layer's bounds from the hole.
    """
    if ALPHA_INDEX[fmt.layout] is None:
        return pixels
    bpp = fmt.bytes_per_pixel
    if len(pixels) % bpp:
        raise RegionError("pixel buffer length %d is not a multiple of %d" % (len(pixels), bpp))
    out = bytearray(pixels)
    for run in _ZERO_RUNS.finditer(_alpha_zero_flags(pixels, fmt)):
        start, end = run.start() * bpp, run.end() * bpp
        out[start:end] = bytes(end - start)
    return bytes(out)


def build_layer_pixels(result: bytes, region: Rect, fmt: PixelFormat) -> bytes:
    """The bytes of the new layer for `region`, in the editor's format, from the backend's result.

    `result` is the backend's "layer" output for the region in the wire format of `fmt`. Checks
    the size (a truncated reply must never become a half-written layer), converts back to the
    editor's sample type and clears transparent pixels.
    """
    wire = fmt.wire_format()
    _check_buffer(result, region.width, region.height, wire.bytes_per_pixel, "backend result")
    return clear_transparent(from_wire(result, fmt), fmt)
