"""Constants and tiling rules of the LaMa backend protocol (docs/protocol.md).

This module is the single source of truth for both sides: the server imports it from the
client package, which is why it is stdlib-only and Python 3.8 compatible. The protocol is
versioned apart from the package; `tests/test_protocol.py` checks that docs/protocol.md states
the same version.
"""
from typing import Iterator, List, Tuple

# "MAJOR.MINOR": peers with the same MAJOR understand each other; MINOR adds optional fields only.
PROTOCOL_VERSION = "1.3"
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])

DEFAULT_ADDRESS = "tcp://127.0.0.1:57311"
DEFAULT_TILE = 1024
MIN_TILE = 64
MAX_TILE = 2048

# Bytes per channel on the wire (little-endian); the mask is always one u8 per pixel.
DTYPE_SIZES = {"u8": 1, "u16": 2, "f32": 4}
# Channel order of the pixel frames; the result comes back in the request's order.
LAYOUT_CHANNELS = {"RGB": 3, "BGR": 3, "RGBA": 4, "BGRA": 4}

STRATEGIES = ("crop", "whole", "subimage")
OUTPUTS = ("composite", "layer")

# Request operations and reply types.
OPS = ("hello", "ping", "inpaint", "cancel", "shutdown")
REPLY_TYPES = ("hello", "pong", "accepted", "progress", "heartbeat", "result", "error", "cancelled", "bye")

# Stable error codes: clients branch on these, people read the message beside them.
ERROR_CODES = (
    "bad_request",           # malformed message: not msgpack, wrong types, frame sizes that do not match
    "unsupported_protocol",  # the request's protocol major version differs from the server's
    "unknown_op",            # an op this server does not know
    "unauthorized",          # missing or wrong token
    "forbidden",             # allowed op, not from this peer (shutdown from a non-loopback peer)
    "too_large",             # over the pixel budget or another limit announced in hello
    "queue_full",            # too many queued jobs for this client or in total
    "duplicate_job",         # a job with this id is still pending for this client
    "unknown_job",           # cancel for a job this server does not hold (finished or never sent)
    "out_of_memory",         # the job ran out of memory; the server goes on
    "inpaint_failed",        # the engine refused the input (its message says why)
    "shutting_down",         # the server is stopping; the job was not run
    "internal",              # a bug: the message carries the exception text
)

MAX_JOB_ID_LENGTH = 128
MAX_HEADER_BYTES = 64 * 1024


def tile_grid(width: int, height: int, tile: int) -> List[Tuple[int, int, int, int]]:
    """The (x, y, w, h) tiles covering a width x height region, row by row, left to right.

    The last column and row are narrower when the size is not a multiple of `tile`.
    """
    return list(iter_tiles(width, height, tile))


def iter_tiles(width: int, height: int, tile: int) -> Iterator[Tuple[int, int, int, int]]:
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            yield x, y, min(tile, width - x), min(tile, height - y)


def tile_count(width: int, height: int, tile: int) -> int:
    return (-(-width // tile)) * (-(-height // tile))


def protocol_major(version: object) -> int:
    """MAJOR of a "MAJOR.MINOR" string; -1 when it is not one."""
    if not isinstance(version, str):
        return -1
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else -1
