"""Two checkpoints of one size and origin (a fork: one key, two trees that extend the
cosigned size 5 with valid proofs) submitted at the same moment, over real HTTP, many
times: never both are cosigned. One is (200), the other is answered 409 with size 11 (its
``old 5`` is stale) or, once the first is stored, refused as a fork; the witness keeps the
first one's tree, whatever the interleaving."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from witness_testkit import ORIGIN, entries, grown, sqlite_witness

import http_calls
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Checkpoint, Note
from ironroot.witness import AddCheckpoint, WitnessThread

pytestmark = pytest.mark.integration


def _post(url: str, body: bytes) -> httpx.Response:
    return http_calls.post(f"{url}/add-checkpoint", content=body, timeout=10)


def test_two_checkpoints_of_one_size_at_once_are_never_both_cosigned(tmp_path: Path) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    one = grown(key, entries(5), entries(6, 5))
    other = grown(key, entries(5), [b"other %d" % i for i in range(6)])
    try:
        bodies = [
            AddCheckpoint(5, tuple(log.consistency_proof(5, 11)), log.checkpoint()).encode()
            for log in (one, other)
        ]
        roots = {one.root(11): 0, other.root(11): 1}
        assert len(roots) == 2
        for attempt in range(12):
            with (
                sqlite_witness(
                    tmp_path / f"witness{attempt}.sqlite3",
                    key,
                    PrivateKey.generate(Algorithm.ED25519),
                ) as witness,
                WitnessThread(witness) as server,
            ):
                first = AddCheckpoint(0, (), one.checkpoint_at(5)).encode()
                assert _post(server.url, first).is_success
                barrier = threading.Barrier(2)
                answers: dict[int, httpx.Response] = {}

                def submit(
                    i: int,
                    url: str = server.url,
                    b: threading.Barrier = barrier,
                    out: dict[int, httpx.Response] = answers,
                ) -> None:
                    b.wait()
                    out[i] = _post(url, bodies[i])

                threads = [threading.Thread(target=submit, args=(i,)) for i in (0, 1)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                cosigned = [i for i in (0, 1) if answers[i].status_code == 200]
                assert len(cosigned) == 1, {i: a.status_code for i, a in answers.items()}
                (loser,) = {0, 1} - set(cosigned)
                assert answers[loser].status_code in (409, 422), answers[loser].text
                if answers[loser].status_code == 409:
                    assert answers[loser].content == b"11\n"
                latest = witness.latest(ORIGIN)
                assert latest is not None
                stored = Checkpoint.parse(Note.parse(latest.note).body)
                assert roots[stored.root] == cosigned[0]
    finally:
        one.close()
        other.close()
