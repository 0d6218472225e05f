"""The msgpack subset the protocol uses, for editors whose Python has no `msgpack` package.

Covers nil, bool, int (-2**63 .. 2**64-1), float, str, bin, array and map; unpacking also reads
float32. Extension types are refused. Headers are small maps, so speed does not matter here;
pixels never travel inside msgpack.
"""
import struct
from typing import Any, Tuple

MAX_DEPTH = 32


class MsgpackError(ValueError):
    """Raised for data this subset cannot pack or that is not valid msgpack."""


def packb(obj: Any) -> bytes:
    out = bytearray()
    _pack(obj, out, 0)
    return bytes(out)


def _pack(obj: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MsgpackError("nesting too deep")
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, float):
        out.append(0xCB)
        out += struct.pack(">d", obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 0x100:
            out += struct.pack(">BB", 0xD9, n)
        elif n < 0x10000:
            out += struct.pack(">BH", 0xDA, n)
        else:
            out += struct.pack(">BI", 0xDB, n)
        out += data
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        n = len(data)
        if n < 0x100:
            out += struct.pack(">BB", 0xC4, n)
        elif n < 0x10000:
            out += struct.pack(">BH", 0xC5, n)
        else:
            out += struct.pack(">BI", 0xC6, n)
        out += data
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out += struct.pack(">BH", 0xDC, n)
        else:
            out += struct.pack(">BI", 0xDD, n)
        for item in obj:
            _pack(item, out, depth + 1)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out += struct.pack(">BH", 0xDE, n)
        else:
            out += struct.pack(">BI", 0xDF, n)
        for key, value in obj.items():
            _pack(key, out, depth + 1)
            _pack(value, out, depth + 1)
    else:
        raise MsgpackError("cannot pack %s" % type(obj).__name__)


def _pack_int(value: int, out: bytearray) -> None:
    if 0 <= value < 0x80:
        out.append(value)
    elif -32 <= value < 0:
        out += struct.pack(">b", value)
    elif 0 <= value < 0x100:
        out += struct.pack(">BB", 0xCC, value)
    elif 0 <= value < 0x10000:
        out += struct.pack(">BH", 0xCD, value)
    elif 0 <= value < 0x100000000:
        out += struct.pack(">BI", 0xCE, value)
    elif 0 <= value < 0x10000000000000000:
        out += struct.pack(">BQ", 0xCF, value)
    elif -0x80 <= value < 0:
        out += struct.pack(">Bb", 0xD0, value)
    elif -0x8000 <= value < 0:
        out += struct.pack(">Bh", 0xD1, value)
    elif -0x80000000 <= value < 0:
        out += struct.pack(">Bi", 0xD2, value)
    elif -0x8000000000000000 <= value < 0:
        out += struct.pack(">Bq", 0xD3, value)
    else:
        raise MsgpackError("integer out of msgpack range")


def unpackb(data: bytes) -> Any:
    """Decode exactly one object; trailing bytes are an error, as in msgpack.unpackb."""
    view = memoryview(bytes(data))
    obj, pos = _unpack(view, 0, 0)
    if pos != len(view):
        raise MsgpackError("extra data after the object")
    return obj


_FIXED = {
    0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
    0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q",
    0xCA: ">f", 0xCB: ">d",
}


def _take(view: memoryview, pos: int, n: int) -> Tuple[memoryview, int]:
    if n < 0 or pos + n > len(view):
        raise MsgpackError("truncated msgpack data")
    return view[pos:pos + n], pos + n


def _unpack(view: memoryview, pos: int, depth: int) -> Tuple[Any, int]:
    if depth > MAX_DEPTH:
        raise MsgpackError("nesting too deep")
    head, pos = _take(view, pos, 1)
    b = head[0]
    if b <= 0x7F:
        return b, pos
    if b >= 0xE0:
        return b - 0x100, pos
    if 0xA0 <= b <= 0xBF:
        return _str(view, pos, b & 0x1F)
    if 0x90 <= b <= 0x9F:
        return _array(view, pos, b & 0x0F, depth)
    if 0x80 <= b <= 0x8F:
        return _map(view, pos, b & 0x0F, depth)
    if b == 0xC0:
        return None, pos
    if b == 0xC2:
        return False, pos
    if b == 0xC3:
        return True, pos
    if b in _FIXED:
        fmt = _FIXED[b]
        raw, pos = _take(view, pos, struct.calcsize(fmt))
        return struct.unpack(fmt, raw)[0], pos
    if b in (0xD9, 0xDA, 0xDB, 0xC4, 0xC5, 0xC6, 0xDC, 0xDD, 0xDE, 0xDF):
        fmt = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I",
               0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}[b]
        raw, pos = _take(view, pos, struct.calcsize(fmt))
        n = struct.unpack(fmt, raw)[0]
        if b in (0xD9, 0xDA, 0xDB):
            return _str(view, pos, n)
        if b in (0xC4, 0xC5, 0xC6):
            raw, pos = _take(view, pos, n)
            return bytes(raw), pos
        if b in (0xDC, 0xDD):
            return _array(view, pos, n, depth)
        return _map(view, pos, n, depth)
    raise MsgpackError("unsupported msgpack type byte 0x%02x" % b)


def _str(view: memoryview, pos: int, n: int) -> Tuple[str, int]:
    raw, pos = _take(view, pos, n)
    try:
        return bytes(raw).decode("utf-8"), pos
    except UnicodeDecodeError:
        raise MsgpackError("invalid UTF-8 in a string") from None


def _array(view: memoryview, pos: int, n: int, depth: int) -> Tuple[list, int]:
    if n > len(view) - pos:  # every element takes at least one byte
        raise MsgpackError("truncated msgpack data")
    items = []
    for _ in range(n):
        item, pos = _unpack(view, pos, depth + 1)
        items.append(item)
    return items, pos


def _map(view: memoryview, pos: int, n: int, depth: int) -> Tuple[dict, int]:
    if 2 * n > len(view) - pos:
        raise MsgpackError("truncated msgpack data")
    result = {}
    for _ in range(n):
        key, pos = _unpack(view, pos, depth + 1)
        if not isinstance(key, (str, int, bool)) and key is not None:
            raise MsgpackError("map keys must be scalars")
        value, pos = _unpack(view, pos, depth + 1)
        result[key] = value
    return result, pos
