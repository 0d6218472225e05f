"""Tiles on the wire <-> numpy arrays in RGB(A) order, on the server side.

Editors send pixels in their own channel order (Krita's 8/16-bit RGBA is B,G,R,A in memory) so
that they need no numpy; the conversion happens here, and results go back in the same order
and dtype.
"""
from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from lama_backend.client.protocol import iter_tiles

from .validation import InpaintSpec

NUMPY_DTYPES = {"u8": np.dtype("u1"), "u16": np.dtype("<u2"), "f32": np.dtype("<f4")}


def _buffer(frame: Any) -> Any:
    return getattr(frame, "buffer", frame)


def assemble(frames: Sequence[Any], width: int, height: int, channels: int, dtype: np.dtype, tile: int) -> np.ndarray:
    """One H x W x C (or H x W for channels == 0) array from row-major tiles."""
    shape = (height, width, channels) if channels else (height, width)
    grid = list(iter_tiles(width, height, tile))
    if len(grid) == 1:
        return np.frombuffer(_buffer(frames[0]), dtype=dtype).reshape(shape)
    out = np.empty(shape, dtype=dtype)
    for frame, (x, y, w, h) in zip(frames, grid):
        tile_shape = (h, w, channels) if channels else (h, w)
        out[y:y + h, x:x + w] = np.frombuffer(_buffer(frame), dtype=dtype).reshape(tile_shape)
    return out


def to_rgb_order(image: np.ndarray, layout: str) -> np.ndarray:
    """Swap R and B for BGR(A) layouts (a new array); RGB(A) comes back as is."""
    if layout == "BGR":
        return image[..., [2, 1, 0]]
    if layout == "BGRA":
        return image[..., [2, 1, 0, 3]]
    return image


def from_rgb_order(image: np.ndarray, layout: str) -> np.ndarray:
    return to_rgb_order(image, layout)  # swapping R and B is its own inverse


def decode_job(spec: InpaintSpec, frames: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(image in RGB(A) order, mask u8) from a validated job's frames."""
    dtype = NUMPY_DTYPES[spec.dtype]
    n = spec.tiles
    image = assemble(frames[:n], spec.width, spec.height, spec.channels, dtype, spec.tile)
    mask = assemble(frames[n:], spec.width, spec.height, 0, np.dtype("u1"), spec.tile)
    return to_rgb_order(image, spec.layout), mask


def result_layout(spec: InpaintSpec, channels: int) -> str:
    """The request's layout, gaining an alpha channel when the result has one more (output=layer)."""
    if channels == spec.channels:
        return spec.layout
    if channels == 4 and spec.channels == 3:
        return spec.layout + "A"
    raise ValueError(f"the engine returned {channels} channels for a {spec.layout} request")


def encode_result(spec: InpaintSpec, result: np.ndarray) -> tuple[dict, List[Any]]:
    """(header fields, tile buffers) of a result: the request's dtype and channel order."""
    if result.ndim != 3 or result.shape[:2] != (spec.height, spec.width):
        raise ValueError(f"the engine returned shape {result.shape} for a {spec.width}x{spec.height} request")
    dtype = NUMPY_DTYPES[spec.dtype]
    if result.dtype.newbyteorder("<") != dtype.newbyteorder("<"):
        raise ValueError(f"the engine returned {result.dtype} for a {spec.dtype} request")
    layout = result_layout(spec, result.shape[2])
    out = np.ascontiguousarray(from_rgb_order(result, layout).astype(dtype, copy=False))
    tiles: List[Any] = []
    for x, y, w, h in iter_tiles(spec.width, spec.height, spec.tile):
        if w == spec.width:
            tiles.append(out[y:y + h])  # whole rows: a contiguous view, sent without a copy
        else:
            tiles.append(np.ascontiguousarray(out[y:y + h, x:x + w]))
    fields = {"width": spec.width, "height": spec.height, "dtype": spec.dtype, "layout": layout,
              "channels": int(result.shape[2]), "tile": spec.tile}
    return fields, tiles
