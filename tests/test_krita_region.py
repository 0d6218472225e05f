"""The editor-neutral region logic (lama_backend.client.region) against brute-force references."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lama_backend.client import region
from lama_backend.client.region import PixelFormat, Rect, RegionError


def brute_bounds(mask: bytes, width: int, height: int):
    hits = [(i % width, i // width) for i, v in enumerate(mask) if v]
    if not hits:
        return None
    xs, ys = [h[0] for h in hits], [h[1] for h in hits]
    return Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


@st.composite
def masks(draw):
    width = draw(st.integers(1, 12))
    height = draw(st.integers(1, 12))
    values = draw(st.lists(st.sampled_from([0, 0, 0, 1, 128, 255]), min_size=width * height, max_size=width * height))
    return bytes(values), width, height


@settings(max_examples=200, deadline=None)
@given(masks())
def test_mask_bounds_matches_brute_force(case):
    mask, width, height = case
    assert region.mask_bounds(mask, width, height) == brute_bounds(mask, width, height)


def test_mask_bounds_empty_and_single_pixel():
    assert region.mask_bounds(bytes(20), 5, 4) is None
    mask = bytearray(20)
    mask[2 * 5 + 3] = 7  # a faint soft-selection pixel still counts
    assert region.mask_bounds(bytes(mask), 5, 4) == Rect(3, 2, 1, 1)


def test_mask_bounds_rejects_wrong_size():
    with pytest.raises(RegionError, match="expected 20"):
        region.mask_bounds(bytes(19), 5, 4)


def test_expand_rect_clamps_to_canvas():
    canvas = Rect(0, 0, 100, 80)
    assert region.expand_rect(Rect(10, 10, 5, 5), 4, canvas) == Rect(6, 6, 13, 13)
    assert region.expand_rect(Rect(2, 70, 5, 8), 16, canvas) == Rect(0, 54, 23, 26)
    assert region.expand_rect(Rect(0, 0, 100, 80), 128, canvas) == canvas
    with pytest.raises(RegionError):
        region.expand_rect(Rect(0, 0, 1, 1), -1, canvas)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.data())
def test_crop_matches_per_pixel_reference(width, height, bpp, data):
    buffer = bytes((i * 7 + 3) % 256 for i in range(width * height * bpp))
    x = data.draw(st.integers(0, width - 1))
    y = data.draw(st.integers(0, height - 1))
    rect = Rect(x, y, data.draw(st.integers(1, width - x)), data.draw(st.integers(1, height - y)))
    expected = b"".join(buffer[((rect.y + r) * width + rect.x + c) * bpp:((rect.y + r) * width + rect.x + c + 1) * bpp]
                        for r in range(rect.height) for c in range(rect.width))
    assert region.crop(buffer, width, height, bpp, rect) == expected


def test_crop_outside_buffer_is_an_error():
    with pytest.raises(RegionError, match="outside"):
        region.crop(bytes(16), 2, 2, 4, Rect(1, 1, 2, 1))


def test_soft_mask_detection():
    assert not region.mask_has_soft_values(bytes([0, 255, 255, 0]))
    assert region.mask_has_soft_values(bytes([0, 255, 128, 0]))


def test_half_float_round_trip_and_saturation():
    values = [0.0, 1.0, 0.5, -2.0, 0.333251953125]  # all exactly representable in half precision
    half = struct.pack("=5e", *values)
    wide = region.half_to_float32(half)
    assert struct.unpack("=5f", wide) == tuple(values)
    assert region.float32_to_half(wide) == half
    big = region.float32_to_half(struct.pack("=2f", 1e6, -1e6))
    assert struct.unpack("=2e", big) == (65504.0, -65504.0)


def test_wire_format_widens_half_only():
    assert PixelFormat("f16", "RGBA").wire_format() == PixelFormat("f32", "RGBA")
    assert PixelFormat("u16", "BGRA").wire_format() == PixelFormat("u16", "BGRA")
    assert PixelFormat("u16", "BGRA").bytes_per_pixel == 8


@pytest.mark.parametrize("fmt, pack", [
    (PixelFormat("u8", "BGRA"), lambda px: struct.pack("=4B", *px)),
    (PixelFormat("u16", "BGRA"), lambda px: struct.pack("=4H", *px)),
    (PixelFormat("f32", "RGBA"), lambda px: struct.pack("=4f", *px)),
])
def test_clear_transparent_zeroes_only_fully_transparent_pixels(fmt, pack):
    # alpha is the last sample; one pixel has alpha 1 in the lowest byte only (must be kept)
    pixels = [(9, 8, 7, 0), (1, 2, 3, 4), (5, 6, 7, 0), (5, 5, 5, 1), (200, 100, 50, 0)]
    if fmt.dtype == "f32":
        pixels = [(r / 10, g / 10, b / 10, a / 10) for r, g, b, a in pixels]
    data = b"".join(pack(p) for p in pixels)
    out = region.clear_transparent(data, fmt)
    bpp = fmt.bytes_per_pixel
    for i, p in enumerate(pixels):
        chunk = out[i * bpp:(i + 1) * bpp]
        assert chunk == (bytes(bpp) if p[3] == 0 else data[i * bpp:(i + 1) * bpp])


def test_clear_transparent_keeps_u16_alpha_with_only_high_byte_set():
    data = struct.pack("=4H", 10, 20, 30, 256)
    assert region.clear_transparent(data, PixelFormat("u16", "BGRA")) == data


def test_build_layer_pixels_checks_size_and_narrows_half():
    area = Rect(3, 4, 2, 1)
    wide = struct.pack("=8f", 0.5, 0.25, 1.0, 1.0, 0.7, 0.1, 0.2, 0.0)
    layer = region.build_layer_pixels(wide, area, PixelFormat("f16", "RGBA"))
    assert struct.unpack("=8e", layer) == (0.5, 0.25, 1.0, 1.0, 0, 0, 0, 0)
    with pytest.raises(RegionError, match="backend result"):
        region.build_layer_pixels(wide[:-4], area, PixelFormat("f16", "RGBA"))


def test_half_conversion_works_across_chunks(monkeypatch):
    monkeypatch.setattr(region, "_CONVERT_CHUNK", 3)  # force several chunks and a short last one
    values = [i / 8 for i in range(11)] + [1e6]
    wide = struct.pack("=12f", *values)
    half = region.float32_to_half(wide)
    assert struct.unpack("=12e", half) == tuple(values[:11]) + (65504.0,)
    assert struct.unpack("=12f", region.half_to_float32(half)) == tuple(values[:11]) + (65504.0,)
