"""Turning untrusted frames into a checked request, or a `RequestError` with a stable code.

Every field is type- and range-checked; frame counts and sizes must match the header exactly.
The header frame's length is checked before msgpack sees it, and msgpack runs with tight limits,
so nothing a client sends can make the server allocate much or crash.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import msgpack

from lama_backend.client.protocol import (
    DTYPE_SIZES, LAYOUT_CHANNELS, MAX_HEADER_BYTES, MAX_JOB_ID_LENGTH, MAX_TILE, MIN_TILE, OPS, OUTPUTS,
    PROTOCOL_MAJOR, PROTOCOL_VERSION, STRATEGIES, iter_tiles, protocol_major, tile_count)

MAX_DIMENSION = 65535
MAX_TILES = 4096
MAX_FRAMES = 1 + 2 * MAX_TILES
OPTION_RANGES = {"grow": (0, 1024), "feather": (0, 1024), "margin": (0, 8192)}
DEFAULT_OPTIONS: Dict[str, Any] = {"grow": 0, "feather": 0, "margin": 128, "strategy": "crop",
                                   "soft_mask": False, "output": "composite", "seamless": True}


class RequestError(Exception):
    """A request the server refuses: `code` from protocol.ERROR_CODES, a message, and its id if known."""

    def __init__(self, code: str, message: str, request_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass
class InpaintSpec:
    job_id: str
    width: int
    height: int
    dtype: str
    layout: str
    tile: int
    options: Dict[str, Any]

    @property
    def channels(self) -> int:
        return LAYOUT_CHANNELS[self.layout]

    @property
    def tiles(self) -> int:
        return tile_count(self.width, self.height, self.tile)


def decode_header(raw: bytes | memoryview) -> Dict[str, Any]:
    size = memoryview(raw).nbytes
    if size == 0:
        raise RequestError("bad_request", "empty header frame")
    if size > MAX_HEADER_BYTES:
        raise RequestError("bad_request", f"header frame of {size} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        header = msgpack.unpackb(raw, raw=False, strict_map_key=True, use_list=True,
                                 max_str_len=MAX_HEADER_BYTES, max_bin_len=0, max_array_len=256,
                                 max_map_len=64, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, StackError...)
        raise RequestError("bad_request", f"header is not valid msgpack: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise RequestError("bad_request", f"header must be a msgpack map, not {type(header).__name__}")
    return header


def request_id(header: Dict[str, Any]) -> Optional[str]:
    value = header.get("id")
    if isinstance(value, str) and 0 < len(value) <= MAX_JOB_ID_LENGTH:
        return value
    return None


def check_common(header: Dict[str, Any], token: Optional[str]) -> tuple[str, str]:
    """(op, id) of any request: op known, id a short string, protocol and token right."""
    rid = request_id(header)
    if rid is None:
        raise RequestError("bad_request", f"'id' must be a string of 1..{MAX_JOB_ID_LENGTH} characters")
    op = header.get("op")
    if not isinstance(op, str):
        raise RequestError("bad_request", "'op' must be a string", rid)
    version = header.get("protocol", PROTOCOL_VERSION)
    if protocol_major(version) != PROTOCOL_MAJOR:
        raise RequestError("unsupported_protocol",
                           f"client speaks protocol {version!r}, this server speaks {PROTOCOL_VERSION}", rid)
    if token is not None:
        given = header.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), token.encode()):
            raise RequestError("unauthorized", "missing or wrong access token", rid)
    if op not in OPS:
        raise RequestError("unknown_op", f"unknown op {op!r}; this server knows {', '.join(OPS)}", rid)
    return op, rid


def _int_field(header: Dict[str, Any], name: str, low: int, high: int, rid: str, default: Any = None) -> int:
    value = header.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("bad_request", f"'{name}' must be an integer, got {type(value).__name__}", rid)
    if not low <= value <= high:
        raise RequestError("bad_request", f"'{name}' must be in {low}..{high}, got {value}", rid)
    return value


def parse_options(raw: Any, rid: str) -> Dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RequestError("bad_request", "'options' must be a map", rid)
    options = dict(DEFAULT_OPTIONS)
    for name, (low, high) in OPTION_RANGES.items():
        options[name] = _int_field(raw, name, low, high, rid, DEFAULT_OPTIONS[name])
    for name, allowed in (("strategy", STRATEGIES), ("output", OUTPUTS)):
        value = raw.get(name, DEFAULT_OPTIONS[name])
        if value not in allowed:
            raise RequestError("bad_request", f"'{name}' must be one of {', '.join(allowed)}, got {value!r}", rid)
        options[name] = value
    for name in ("soft_mask", "seamless"):
        value = raw.get(name, DEFAULT_OPTIONS[name])
        if not isinstance(value, bool):
            raise RequestError("bad_request", f"'{name}' must be true or false", rid)
        options[name] = value
    return options  # unknown option keys are ignored: a newer client may send more


def parse_inpaint(header: Dict[str, Any], frames: Sequence[Any], rid: str, max_pixels: int) -> InpaintSpec:
    width = _int_field(header, "width", 1, MAX_DIMENSION, rid)
    height = _int_field(header, "height", 1, MAX_DIMENSION, rid)
    if width * height > max_pixels:
        raise RequestError("too_large", f"{width}x{height} is {width * height} pixels; this server's budget "
                           f"per job is {max_pixels} (inpaint a smaller region)", rid)
    dtype = header.get("dtype")
    if dtype not in DTYPE_SIZES:
        raise RequestError("bad_request", f"'dtype' must be one of {', '.join(DTYPE_SIZES)}, got {dtype!r}", rid)
    layout = header.get("layout")
    if layout not in LAYOUT_CHANNELS:
        raise RequestError("bad_request", f"'layout' must be one of {', '.join(LAYOUT_CHANNELS)}, got {layout!r}", rid)
    tile = _int_field(header, "tile", MIN_TILE, MAX_TILE, rid)
    options = parse_options(header.get("options"), rid)
    spec = InpaintSpec(rid, width, height, dtype, layout, tile, options)
    if spec.tiles > MAX_TILES:
        raise RequestError("too_large", f"{spec.tiles} tiles; at most {MAX_TILES} (use a larger tile)", rid)
    check_frames(spec, frames)
    return spec


def check_frames(spec: InpaintSpec, frames: Sequence[Any]) -> None:
    """Exactly `tiles` image frames then `tiles` mask frames, each exactly its tile's size."""
    expected = 2 * spec.tiles
    if len(frames) != expected:
        raise RequestError("bad_request", f"{len(frames)} pixel frames; {spec.width}x{spec.height} in tiles of "
                           f"{spec.tile} needs {spec.tiles} image + {spec.tiles} mask frames", spec.job_id)
    pixel_bytes = spec.channels * DTYPE_SIZES[spec.dtype]
    grid = list(iter_tiles(spec.width, spec.height, spec.tile))
    for index, (x, y, w, h) in enumerate(grid):
        for kind, frame, bpp in (("image", frames[index], pixel_bytes), ("mask", frames[spec.tiles + index], 1)):
            size = len(frame)
            if size != w * h * bpp:
                raise RequestError("bad_request", f"{kind} tile {index} at ({x}, {y}) holds {size} bytes; "
                                   f"{w}x{h} needs {w * h * bpp}", spec.job_id)

