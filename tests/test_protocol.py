"""The protocol's constants, its document, the msgpack subset, tiling, and the client's portability."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lama_backend.client import msgpack_lite, protocol
from lama_backend.client.tiles import join_tiles, split_tiles
from lama_backend.server.pixels import assemble

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "protocol.md").read_text()
CLIENT_DIR = ROOT / "backend" / "client"


def test_document_states_the_protocol_version_of_the_code():
    match = re.search(r"^Protocol version: \*\*(\d+\.\d+)\*\*$", DOC, re.MULTILINE)
    assert match, "docs/protocol.md must state 'Protocol version: **X.Y**'"
    assert match.group(1) == protocol.PROTOCOL_VERSION
    assert f"- **{protocol.PROTOCOL_VERSION}**" in DOC  # and has a changelog entry for it


def test_document_lists_every_error_code_op_and_reply_type():
    documented_codes = set(re.findall(r"^\| `([a-z_]+)` \| ", DOC.split("### Error codes")[1], re.MULTILINE))
    assert documented_codes == set(protocol.ERROR_CODES)
    for op in protocol.OPS:
        assert f"### `{op}`" in DOC
    replies = set(re.findall(r"^\| `([a-z]+)` \| ", DOC.split("## Replies (server -> client)")[1].split("###")[0],
                             re.MULTILINE))
    assert replies == set(protocol.REPLY_TYPES)


def test_protocol_major():
    assert protocol.protocol_major("1.0") == 1 and protocol.protocol_major("12.3") == 12
    assert protocol.protocol_major("x.1") == -1 and protocol.protocol_major(1) == -1


msgpack_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False),
              st.text(max_size=300), st.binary(max_size=300)),
    lambda inner: st.one_of(st.lists(inner, max_size=20), st.dictionaries(st.text(max_size=10), inner, max_size=20)),
    max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(msgpack_values)
def test_msgpack_subset_agrees_with_msgpack(value):
    ours = msgpack_lite.packb(value)
    assert msgpack.unpackb(ours, raw=False, strict_map_key=False) == value
    assert msgpack_lite.unpackb(msgpack.packb(value, use_bin_type=True)) == value
    assert msgpack_lite.unpackb(ours) == value


def test_msgpack_subset_reads_float32_and_refuses_bad_input():
    assert msgpack_lite.unpackb(msgpack.packb(1.5, use_single_float=True)) == 1.5
    for bad in (b"", b"\x92\x01", b"\xc1", b"\xd9\x05ab", b"\x01\x02", b"\xc7\x01\x01\x00", b"\xa2\xff\xfe"):
        with pytest.raises(msgpack_lite.MsgpackError):
            msgpack_lite.unpackb(bad)
    deep = b"\x91" * 100 + b"\x00"
    with pytest.raises(msgpack_lite.MsgpackError, match="deep"):
        msgpack_lite.unpackb(deep)
    with pytest.raises(msgpack_lite.MsgpackError):
        msgpack_lite.packb(object())


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 300), height=st.integers(1, 300), tile=st.sampled_from([64, 100, 128, 1024]),
       pixel_bytes=st.sampled_from([1, 3, 4, 8, 16]))
def test_tiles_cover_the_region_and_round_trip(width, height, tile, pixel_bytes):
    grid = protocol.tile_grid(width, height, tile)
    assert len(grid) == protocol.tile_count(width, height, tile)
    assert sum(w * h for _, _, w, h in grid) == width * height
    data = np.random.default_rng(width * height).integers(0, 256, width * height * pixel_bytes, dtype=np.uint8)
    tiles = split_tiles(data.tobytes(), width, height, pixel_bytes, tile)
    assert [memoryview(t).nbytes for t in tiles] == [w * h * pixel_bytes for _, _, w, h in grid]
    assert bytes(join_tiles(tiles, width, height, pixel_bytes, tile)) == data.tobytes()
    # The server's numpy reassembly agrees with the client's pure-Python tiling.
    image = assemble([bytes(t) for t in tiles], width, height, pixel_bytes, np.dtype("u1"), tile)
    assert image.tobytes() == data.tobytes()


def test_split_tiles_refuses_a_buffer_of_the_wrong_size():
    with pytest.raises(ValueError, match="needs 48"):
        split_tiles(b"\x00" * 47, 4, 4, 3, 64)


def client_modules() -> list[Path]:
    return sorted(CLIENT_DIR.glob("*.py"))


@pytest.mark.parametrize("path", client_modules(), ids=lambda p: p.name)
def test_client_package_is_python38_stdlib_only_with_relative_imports(path):
    tree = ast.parse(path.read_text(), feature_version=(3, 8))
    allowed_optional = {"zmq", "msgpack"}  # imported lazily, only when present
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                top = (node.module or "").split(".")[0]
                assert top in sys.stdlib_module_names or top == "__future__", f"{path.name}: from {node.module}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                assert top in sys.stdlib_module_names or top in allowed_optional, f"{path.name}: import {alias.name}"
                if top in allowed_optional:
                    assert path.name == "transport.py", f"{path.name} must not need {top}"
