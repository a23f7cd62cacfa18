"""Checkpoint bodies, tile paths, tile math and entry bundles (C2SP tlog-checkpoint, tlog-tiles)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import LimitExceeded, MalformedInput
from ironroot.log import (
    Checkpoint,
    TileAddress,
    encode_entry_bundle,
    entry_bundle_path,
    entry_bundles_for_size,
    parse_entry_bundle,
    parse_tile,
    parse_tile_path,
    partial_tile_width,
    tile_path,
    tiles_for_size,
)

SPEC_BODY = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ROOT = base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")

# --- checkpoints ----------------------------------------------------------------------------


def test_spec_checkpoint_body_round_trips() -> None:
    checkpoint = Checkpoint.parse(SPEC_BODY)
    assert checkpoint == Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    assert checkpoint.encode() == SPEC_BODY


def test_extension_lines_round_trip() -> None:
    body = SPEC_BODY + b"ext one\next two\n"
    checkpoint = Checkpoint.parse(body)
    assert checkpoint.extensions == ("ext one", "ext two")
    assert checkpoint.encode() == body


def test_empty_tree_checkpoint() -> None:
    body = Checkpoint("o.example", 0, bytes(32)).encode()
    assert body.split(b"\n")[1] == b"0"
    assert Checkpoint.parse(body).size == 0


@settings(max_examples=examples(60), deadline=None)
@given(
    origin=st.text(
        alphabet=st.characters(min_codepoint=0x21, blacklist_categories=("Cs",)),
        min_size=1,
        max_size=30,
    ),
    size=st.integers(min_value=0, max_value=(1 << 63) - 1),
    root=st.binary(min_size=32, max_size=32),
)
def test_checkpoint_round_trip(origin: str, size: int, root: bytes) -> None:
    checkpoint = Checkpoint(origin, size, root)
    assert Checkpoint.parse(checkpoint.encode()) == checkpoint


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"example.com\n1\n",
        b"example.com\n1\n" + base64.b64encode(ROOT),  # no final newline
        b"\n1\n" + base64.b64encode(ROOT) + b"\n",  # empty origin
        b"example.com\n01\n" + base64.b64encode(ROOT) + b"\n",  # leading zero
        b"example.com\n-1\n" + base64.b64encode(ROOT) + b"\n",
        b"example.com\n+1\n" + base64.b64encode(ROOT) + b"\n",
        b"example.com\n 1\n" + base64.b64encode(ROOT) + b"\n",
        b"example.com\n1e3\n" + base64.b64encode(ROOT) + b"\n",
        "example.com\n\u0661\n".encode() + base64.b64encode(ROOT) + b"\n",  # Arabic-Indic 1
        b"example.com\n1\n" + base64.b64encode(ROOT[:31]) + b"\n",  # short root
        b"example.com\n1\n" + base64.b64encode(ROOT + b"x") + b"\n",  # long root
        b"example.com\n1\n" + base64.b64encode(ROOT).rstrip(b"=") + b"\n",  # no padding
        b"example.com\n1\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=\n",  # non-canonical
        b"example.com\n1\n" + base64.urlsafe_b64encode(b"\xff" * 32) + b"\n",  # URL alphabet
        SPEC_BODY + b"\n",  # empty extension line
        SPEC_BODY.replace(b"sofa", b"so\x00fa"),  # control character
        SPEC_BODY.replace(b"sofa", b"so\xfffa"),  # not UTF-8
    ],
)
def test_malformed_checkpoints_are_rejected(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        Checkpoint.parse(body)


def test_oversized_tree_size_is_a_limit() -> None:
    with pytest.raises(LimitExceeded):
        Checkpoint.parse(b"o\n" + b"9" * 30 + b"\n" + base64.b64encode(ROOT) + b"\n")
    with pytest.raises(LimitExceeded):
        Checkpoint.parse(b"o\n9223372036854775808\n" + base64.b64encode(ROOT) + b"\n")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root": ROOT},
        {"origin": "a\nb", "size": 1, "root": ROOT},
        {"origin": "\udc80", "size": 1, "root": ROOT},
        {"origin": "o", "size": -1, "root": ROOT},
        {"origin": "o", "size": True, "root": ROOT},
        {"origin": "o", "size": 1, "root": ROOT[:5]},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("",)},
        {"origin": "o", "size": 1, "root": ROOT, "extensions": ("a\nb",)},
    ],
)
def test_invalid_checkpoint_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(MalformedInput):
        Checkpoint(**kwargs)  # type: ignore[arg-type]


# --- tile paths -----------------------------------------------------------------------------


def test_spec_index_encoding() -> None:
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 0) == "tile/2/000"
    assert tile_path(1, 999) == "tile/1/999"
    assert tile_path(1, 1000) == "tile/1/x001/000"
    assert tile_path(0, 5, 17) == "tile/0/005.p/17"
    assert entry_bundle_path(1234067, 255) == "tile/entries/x001/x234/067.p/255"
    assert parse_tile_path("tile/0/x001/x234/067") == TileAddress(0, 1234067)
    assert parse_tile_path("/tile/entries/000.p/1") == TileAddress(0, 0, 1, entries=True)


@settings(max_examples=examples(150), deadline=None)
@given(
    level=st.integers(min_value=0, max_value=63),
    index=st.integers(min_value=0, max_value=((1 << 63) - 1) >> 8),
    width=st.one_of(st.none(), st.integers(min_value=1, max_value=255)),
    entries=st.booleans(),
)
def test_tile_path_round_trip(level: int, index: int, width: int | None, entries: bool) -> None:
    address = TileAddress(0 if entries else level, index, width, entries)
    assert parse_tile_path(address.path) == address


@pytest.mark.parametrize(
    "path",
    [
        "tile/00/000",
        "tile/0/0",
        "tile/0/00",
        "tile/0/0000",
        "tile/0/x000/001",
        "tile/0/001/002",
        "tile/0/x001",
        "tile/0/X001/000",
        "tile/64/000",
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/05",
        "tile/0/000.p/",
        "tile/0/000.p",
        "tile/0/000/",
        "tile/0/000.p/5/",
        "tile//0/000",
        "//tile/0/000",
        "tile/entries/000.p/",
        "tile/entry/000",
        "tile/-1/000",
        "tile/0/\u0660\u0660\u0660",
        "tile/0/x001/x002/x003/x004/x005/x006/x007/000",
        "tile/0/000?x=1",
        "TILE/0/000",
        "",
    ],
)
def test_non_canonical_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(MalformedInput):
        parse_tile_path(path)


@pytest.mark.parametrize(
    ("level", "index", "width"),
    [(-1, 0, None), (64, 0, None), (0, -1, None), (0, 0, 0), (0, 0, 256), (True, 0, None)],
)
def test_invalid_tile_addresses_are_refused(level: int, index: int, width: int | None) -> None:
    with pytest.raises(MalformedInput):
        tile_path(level, index, width)


# --- tile math ------------------------------------------------------------------------------


def test_spec_example_tree_of_70000() -> None:
    tiles = list(tiles_for_size(70000))
    level0 = [t for t in tiles if t.level == 0]
    assert [t for t in level0 if t.width is None] == [TileAddress(0, i) for i in range(273)]
    assert TileAddress(0, 273, 112) in level0
    assert [t for t in tiles if t.level == 1] == [TileAddress(1, 0), TileAddress(1, 1, 17)]
    assert [t for t in tiles if t.level == 2] == [TileAddress(2, 0, 1)]
    assert len(tiles) == 273 + 1 + 2 + 1


def test_spec_example_tree_of_256() -> None:
    assert list(tiles_for_size(256)) == [TileAddress(0, 0), TileAddress(1, 0, 1)]
    assert list(tiles_for_size(0)) == []
    assert list(tiles_for_size(255)) == [TileAddress(0, 0, 255)]
    assert partial_tile_width(0, 70000) == 112
    assert partial_tile_width(1, 70000) == 17


def test_entry_bundles_for_size() -> None:
    assert list(entry_bundles_for_size(513)) == [
        TileAddress(0, 0, entries=True),
        TileAddress(0, 1, entries=True),
        TileAddress(0, 2, 1, entries=True),
    ]
    assert list(entry_bundles_for_size(512))[-1] == TileAddress(0, 1, entries=True)


# --- tiles and entry bundles ----------------------------------------------------------------


def test_parse_tile() -> None:
    data = bytes(range(32)) * 3
    assert parse_tile(data, 3) == (bytes(range(32)),) * 3
    with pytest.raises(MalformedInput):
        parse_tile(data, 2)
    with pytest.raises(MalformedInput):
        parse_tile(data)
    with pytest.raises(MalformedInput):
        parse_tile(data[:-1], 3)


def test_entry_bundle_layout() -> None:
    bundle = encode_entry_bundle([b"", b"a", b"xyz"])
    assert bundle == b"\x00\x00" + b"\x00\x01a" + b"\x00\x03xyz"
    assert parse_entry_bundle(bundle, 3) == (b"", b"a", b"xyz")


@settings(max_examples=examples(40), deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=256))
def test_entry_bundle_round_trip(items: list[bytes]) -> None:
    assert parse_entry_bundle(encode_entry_bundle(items), len(items)) == tuple(items)
    assert parse_entry_bundle(encode_entry_bundle(items)) == tuple(items)


def test_largest_entry_fits_and_one_more_byte_does_not() -> None:
    assert parse_entry_bundle(encode_entry_bundle([b"x" * 65535]), 1) == (b"x" * 65535,)
    with pytest.raises(LimitExceeded):
        encode_entry_bundle([b"x" * 65536])


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"", None),
        (b"\x00", 1),
        (b"\x00\x05abc", 1),
        (b"\x00\x01a\x00\x01b", 1),
        (b"\x00\x01a", 2),
        (b"\x00\x01a\x00", None),
        (b"\x00\x00" * 257, None),
    ],
)
def test_malformed_entry_bundles_are_rejected(data: bytes, count: int | None) -> None:
    with pytest.raises(MalformedInput):
        parse_entry_bundle(data, count)


def test_entry_bundle_count_is_bounded() -> None:
    with pytest.raises(MalformedInput):
        encode_entry_bundle([])
    with pytest.raises(MalformedInput):
        encode_entry_bundle([b""] * 257)
