"""``ironroot log serve-tiles DIR`` never tells a cache to keep a file that is not the resource
its name says: a full tile cut short (a copy still under way, a disk that filled up), a
partial tile longer than its width, an entry bundle that does not hold its entries. Served
``immutable`` for a year, a CDN kept it that long and every client failed to verify the log
meanwhile. Such a file is a 503 problem (``no-store``), said in the mirror's log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from ironroot.cose import Problem
from ironroot.log import CACHE_FULL, CACHE_PARTIAL, encode_entry_bundle
from ironroot.transparency import create_tiles_app

STORE_INDEPENDENT = True  # files on disk only: no log store is opened

TILE = b"\x01" * (256 * 32)
BUNDLE = encode_entry_bundle([b"entry %d" % i for i in range(256)])


def _get(directory: Path, path: str) -> httpx.Response:
    app = create_tiles_app(directory)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mirror") as client:
            return await client.get(path)

    return asyncio.run(run())


def _mirror(tmp_path: Path, files: dict[str, bytes]) -> Path:
    out = tmp_path / "mirror"
    for name, data in {"checkpoint": b"a checkpoint\n", **files}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    return out


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("tile/0/000", TILE[:4096]),  # half a full tile
        ("tile/0/000", TILE + TILE[:32]),  # a full tile and a hash more
        ("tile/1/000.p/3", TILE[: 4 * 32]),  # four hashes named three
        ("tile/entries/000", BUNDLE[: len(BUNDLE) // 2]),  # cut inside an entry
        ("tile/entries/000", encode_entry_bundle([b"x"] * 255)),  # an entry short
        ("tile/entries/000.p/2", encode_entry_bundle([b"x"] * 3)),  # an entry more
    ],
)
def test_a_file_that_is_not_its_resource_is_never_served_as_one(
    tmp_path: Path, path: str, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = _mirror(tmp_path, {path: data})
    with caplog.at_level(logging.WARNING, logger="ironroot.tiles"):
        answer = _get(mirror, f"/{path}")
    assert answer.status_code == 503
    assert answer.headers["cache-control"] == "no-store"
    assert Problem.from_cbor(answer.content).detail == f"this mirror cannot serve {path}"
    assert f"cannot serve {path}: {mirror / path} is not the resource its name says" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("path", "data", "cache"),
    [
        ("tile/0/000", TILE, CACHE_FULL),
        ("tile/1/000.p/3", TILE[: 3 * 32], CACHE_PARTIAL),
        ("tile/entries/000", BUNDLE, CACHE_FULL),
        ("tile/entries/000.p/2", encode_entry_bundle([b"x", b""]), CACHE_PARTIAL),
    ],
)
def test_whole_resources_are_served_with_their_cache_rule(
    tmp_path: Path, path: str, data: bytes, cache: str
) -> None:
    answer = _get(_mirror(tmp_path, {path: data}), f"/{path}")
    assert (answer.status_code, answer.content) == (200, data)
    assert answer.headers["cache-control"] == cache
