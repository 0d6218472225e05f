"""Cutting a row-major pixel buffer into protocol tiles and putting tiles back, without numpy.

Editors hand over one contiguous buffer; the wire carries tiles of at most tile x tile pixels so
no single frame is huge. When a tile spans whole rows it is a zero-copy slice of the input.
"""
from typing import List, Sequence, Union

from .protocol import iter_tiles

Buffer = Union[bytes, bytearray, memoryview]


def split_tiles(data: Buffer, width: int, height: int, pixel_bytes: int, tile: int) -> List[Buffer]:
    view = memoryview(data).cast("B")
    stride = width * pixel_bytes
    if view.nbytes != stride * height:
        raise ValueError("buffer holds %d bytes, %dx%d at %d bytes per pixel needs %d"
                         % (view.nbytes, width, height, pixel_bytes, stride * height))
    tiles: List[Buffer] = []
    for x, y, w, h in iter_tiles(width, height, tile):
        if w == width:
            tiles.append(view[y * stride:(y + h) * stride])
            continue
        out = bytearray(w * h * pixel_bytes)
        row = w * pixel_bytes
        for r in range(h):
            start = (y + r) * stride + x * pixel_bytes
            out[r * row:(r + 1) * row] = view[start:start + row]
        tiles.append(out)
    return tiles


def join_tiles(frames: Sequence[Buffer], width: int, height: int, pixel_bytes: int, tile: int) -> bytearray:
    grid = list(iter_tiles(width, height, tile))
    if len(frames) != len(grid):
        raise ValueError("expected %d tiles, got %d" % (len(grid), len(frames)))
    stride = width * pixel_bytes
    out = bytearray(stride * height)
    for frame, (x, y, w, h) in zip(frames, grid):
        view = memoryview(frame).cast("B")
        row = w * pixel_bytes
        if view.nbytes != row * h:
            raise ValueError("tile at (%d, %d) holds %d bytes, expected %d" % (x, y, view.nbytes, row * h))
        if w == width:
            out[y * stride:(y + h) * stride] = view
            continue
        for r in range(h):
            start = (y + r) * stride + x * pixel_bytes
            out[start:start + row] = view[r * row:(r + 1) * row]
    return out
