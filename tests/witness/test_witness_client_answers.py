"""What a log's witness client reads from a hostile or broken witness: never more than the
largest answer it could use."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from witness_testkit import entries, grown

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.witness import WitnessClient


def test_an_endless_answer_is_cut_off_after_a_mebibyte() -> None:
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            nonlocal sent
            for _ in range(64):
                sent += 1 << 20
                yield b"\xe2\x80\x94 w.example AAAA\n" * (1 << 16)

        return httpx.Response(200, content=chunks())

    log = grown(PrivateKey.generate(Algorithm.ED25519), entries(2))
    try:
        with WitnessClient("https://w.example", transport=httpx.MockTransport(handler)) as client:
            with pytest.raises(StorageError, match="more than 1048576 bytes"):
                client.add_checkpoint(log.checkpoint(), 0)
            with pytest.raises(StorageError, match="more than 1048576 bytes"):
                client.latest(log.origin)
    finally:
        log.close()
    assert sent < 2 * (4 << 20)  # two requests, each stopped near the limit, not 64 MiB each
