"""C2SP tlog-tiles: tile and entry-bundle paths, tile contents, entry bundles, tile math.

A tile at level ``L``, index ``N`` (c2sp.org/tlog-tiles) holds up to 256 consecutive hashes
of tree level ``8·L``: hash ``i`` is the root of the complete subtree of ``256**L`` leaves
starting at leaf ``(N·256 + i)·256**L``. A tree of size ``s`` has, at tile level ``L``,
``floor(s / 256**(L+1))`` full tiles and one partial tile of width
``floor(s / 256**L) mod 256`` when that is not zero. Paths are
``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, where ``N`` is written in
zero-padded three-digit groups, all but the last prefixed with ``x`` (``x001/x234/067``).
An entry bundle is the concatenation of ``uint16 big-endian length || entry``.

Parsing is strict: only canonical paths are accepted, so one resource has one name.
Hand-written because no maintained Python library implements tlog-tiles.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from ironroot.errors import LimitExceeded, MalformedInput
from ironroot.merkle import node_hash

__all__ = [
    "HASH_SIZE",
    "MAX_ENTRY_SIZE",
    "TILE_HEIGHT",
    "TILE_INDEX_PATTERN",
    "TILE_LEVEL_PATTERN",
    "TILE_WIDTH",
    "TileAddress",
    "encode_entry_bundle",
    "entry_bundle_path",
    "entry_bundles_for_size",
    "parse_entry_bundle",
    "parse_tile",
    "parse_tile_path",
    "partial_tile_width",
    "tile_hash_range",
    "tile_path",
    "tiles_for_size",
]

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 256
HASH_SIZE: Final = 32
MAX_ENTRY_SIZE: Final = 0xFFFF
MAX_TILE_LEVEL: Final = 63
_MAX_GROUPS: Final = 7
_MAX_INDEX: Final = ((1 << 63) - 1) >> TILE_HEIGHT

_LEVEL: Final = r"[0-9]|[1-5][0-9]|6[0-3]"
_INDEX: Final = r"(?:x[0-9]{3}/){0,5}[0-9]{3}"
_WIDTH: Final = r"[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]"
#: What a tile's level and index segments may be (also the OpenAPI path patterns).
TILE_LEVEL_PATTERN: Final = f"^(?:{_LEVEL})$"
TILE_INDEX_PATTERN: Final = f"^{_INDEX}(?:\\.p/(?:{_WIDTH}))?$"
_PATH_RE: Final = re.compile(f"/?tile/(entries|{_LEVEL})/({_INDEX})(?:\\.p/({_WIDTH}))?")


@dataclass(frozen=True, slots=True)
class TileAddress:
    """One tile or entry bundle: ``level`` (0 for entry bundles), ``index``, ``width``.

    ``width`` is ``None`` for a full tile (256 items) and 1..255 for a partial one.
    """

    level: int
    index: int
    width: int | None = None
    entries: bool = False

    def __post_init__(self) -> None:
        _check_level(self.level)
        _check_index(self.index)
        _check_width(self.width)
        if self.entries and self.level != 0:
            raise MalformedInput("an entry bundle has no level")

    @property
    def count(self) -> int:
        """The number of hashes (or entries) in the resource."""
        return TILE_WIDTH if self.width is None else self.width

    @property
    def path(self) -> str:
        if self.entries:
            return entry_bundle_path(self.index, self.width)
        return tile_path(self.level, self.index, self.width)


def _check_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedInput(f"{what} must be an integer")
    return value


def _check_level(level: object) -> int:
    value = _check_int(level, "a tile level")
    if not 0 <= value <= MAX_TILE_LEVEL:
        raise MalformedInput(f"a tile level must be between 0 and {MAX_TILE_LEVEL}")
    return value


def _check_index(index: object) -> int:
    value = _check_int(index, "a tile index")
    if not 0 <= value <= _MAX_INDEX:
        raise MalformedInput("a tile index is out of range")
    return value


def _check_width(width: object) -> int | None:
    if width is None:
        return None
    value = _check_int(width, "a tile width")
    if not 1 <= value < TILE_WIDTH:
        raise MalformedInput("a partial tile width must be between 1 and 255")
    return value


def _encode_index(index: int) -> str:
    groups = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        groups.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int | None) -> str:
    return "" if width is None else f".p/{width}"


def tile_path(level: int, index: int, width: int | None = None) -> str:
    """``tile/<L>/<N>[.p/<W>]`` for a hash tile."""
    _check_level(level)
    _check_index(index)
    _check_width(width)
    return f"tile/{level}/{_encode_index(index)}{_suffix(width)}"


def entry_bundle_path(index: int, width: int | None = None) -> str:
    """``tile/entries/<N>[.p/<W>]`` for an entry bundle."""
    _check_index(index)
    _check_width(width)
    return f"tile/entries/{_encode_index(index)}{_suffix(width)}"


def parse_tile_path(path: str) -> TileAddress:
    """Parse a canonical tile or entry-bundle path (a single leading ``/`` is allowed).

    Raises :class:`MalformedInput` for anything that is not the one canonical spelling.
    """
    if not isinstance(path, str):
        raise MalformedInput("a tile path must be a string")
    if len(path) > 128:
        raise MalformedInput("the tile path is too long")
    match = _PATH_RE.fullmatch(path)
    if match is None:
        raise MalformedInput(f"not a canonical tile path: {path[:80]!r}")
    kind, digits, width_text = match.groups()
    groups = digits.split("/")
    if len(groups) > _MAX_GROUPS:
        raise MalformedInput("the tile index is out of range")
    if len(groups) > 1 and groups[0] == "x000":
        raise MalformedInput("the tile index has a leading zero group")
    index = int("".join(g.lstrip("x") for g in groups))
    width = None if width_text is None else int(width_text)
    if kind == "entries":
        return TileAddress(level=0, index=index, width=width, entries=True)
    return TileAddress(level=int(kind), index=index, width=width)


def parse_tile(data: bytes, width: int | None = None) -> tuple[bytes, ...]:
    """Split a tile into its hashes; its length must be exactly ``width`` (256 if None) hashes."""
    count = TILE_WIDTH if _check_width(width) is None else width
    assert count is not None
    if not isinstance(data, bytes) or len(data) != count * HASH_SIZE:
        raise MalformedInput(f"a tile of width {count} must be {count * HASH_SIZE} bytes")
    return tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE))


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Concatenate ``uint16 length || entry`` for 1 to 256 entries."""
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise MalformedInput("an entry bundle holds 1 to 256 entries")
    parts = []
    for entry in entries:
        if not isinstance(entry, bytes):
            raise MalformedInput("a log entry must be bytes")
        if len(entry) > MAX_ENTRY_SIZE:
            raise LimitExceeded(f"a log entry is at most {MAX_ENTRY_SIZE} bytes")
        parts.append(struct.pack(">H", len(entry)))
        parts.append(entry)
    return b"".join(parts)


def parse_entry_bundle(data: bytes, count: int | None = None) -> tuple[bytes, ...]:
    """Split an entry bundle; with ``count``, exactly that many entries must be present."""
    if not isinstance(data, bytes):
        raise MalformedInput("an entry bundle must be bytes")
    if count is not None and not 1 <= count <= TILE_WIDTH:
        raise MalformedInput("an entry bundle holds 1 to 256 entries")
    limit = TILE_WIDTH if count is None else count
    entries: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        if len(entries) == limit:
            raise MalformedInput("the entry bundle has more entries than expected")
        if offset + 2 > end:
            raise MalformedInput("the entry bundle ends inside a length prefix")
        (size,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + size > end:
            raise MalformedInput("the entry bundle ends inside an entry")
        entries.append(data[offset : offset + size])
        offset += size
    if count is not None and len(entries) != count:
        raise MalformedInput(f"the entry bundle has {len(entries)} entries, not {count}")
    if not entries:
        raise MalformedInput("the entry bundle is empty")
    return tuple(entries)


def partial_tile_width(level: int, tree_size: int) -> int:
    """Width of the partial tile at ``level`` for a tree of ``tree_size`` (0: none)."""
    _check_level(level)
    return (tree_size >> (TILE_HEIGHT * level)) % TILE_WIDTH


def tiles_for_size(tree_size: int) -> Iterator[TileAddress]:
    """Every hash tile (full, then partial) that represents a tree of ``tree_size``."""
    if _check_int(tree_size, "a tree size") < 0:
        raise MalformedInput("a tree size must not be negative")
    level = 0
    while level <= MAX_TILE_LEVEL:
        n = tree_size >> (TILE_HEIGHT * level)
        if n == 0:
            return
        full, width = divmod(n, TILE_WIDTH)
        for index in range(full):
            yield TileAddress(level, index)
        if width:
            yield TileAddress(level, full, width)
        level += 1


def entry_bundles_for_size(tree_size: int) -> Iterator[TileAddress]:
    """Every entry bundle (full, then partial) that holds the entries of ``tree_size``."""
    if _check_int(tree_size, "a tree size") < 0:
        raise MalformedInput("a tree size must not be negative")
    full, width = divmod(tree_size, TILE_WIDTH)
    for index in range(full):
        yield TileAddress(0, index, entries=True)
    if width:
        yield TileAddress(0, full, width, entries=True)


def tile_hash_range(hashes: Sequence[bytes]) -> bytes:
    """Root of a perfect subtree given its 2**r bottom hashes (within one tile)."""
    layer = list(hashes)
    if not layer or len(layer) & (len(layer) - 1):
        raise MalformedInput("a perfect subtree has a power-of-two number of hashes")
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]
