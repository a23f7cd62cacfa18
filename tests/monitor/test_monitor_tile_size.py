"""A hostile log serving an endless hash tile: the reader stops near the largest tile there is
(256 hashes, 8 KiB), not near the largest entry bundle (16 MiB), and says so with a typed
error; entry bundles keep their own, larger bound."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ironroot.errors import PayloadTooLarge, VerificationFailed
from ironroot.log import HttpLogFetcher, TileTree


def _endless(sent: list[int]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(5000):  # past 16 MiB, in 4 KiB chunks
                sent[0] += 4096
                yield b"\0" * 4096

        return httpx.Response(200, content=chunks())

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("path", ["tile/0/000", "tile/1/x001/234.p/7", "/tile/0/000"])
def test_a_hash_tile_past_8_kib_is_refused_as_it_streams_in(path: str) -> None:
    sent = [0]
    with (
        httpx.Client(transport=_endless(sent)) as client,
        HttpLogFetcher("https://log.example", client=client) as fetcher,
        pytest.raises(PayloadTooLarge, match="larger than a hash tile"),
    ):
        fetcher.fetch(path)
    assert sent[0] <= 16 * 1024  # stopped within a chunk or two of 8 KiB, not at 16 MiB


def test_an_endless_tile_fails_the_tree_with_the_log_s_failure() -> None:
    sent = [0]
    with (
        httpx.Client(transport=_endless(sent)) as client,
        HttpLogFetcher("https://log.example", client=client) as fetcher,
        pytest.raises(VerificationFailed, match="larger than a hash tile"),
    ):
        TileTree(fetcher, 300).root()
    assert sent[0] <= 16 * 1024


def test_an_entry_bundle_keeps_the_larger_bound() -> None:
    sent = [0]
    with (
        httpx.Client(transport=_endless(sent)) as client,
        HttpLogFetcher("https://log.example", client=client) as fetcher,
        pytest.raises(PayloadTooLarge, match="larger than any log resource"),
    ):
        fetcher.fetch("tile/entries/000")
    assert sent[0] > 1 << 20
