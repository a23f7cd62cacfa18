"""A smaller checkpoint kept to be settled (``behind``) is not pushed out by others while a URL
still serves it.

The monitor keeps 64 smaller checkpoints per origin (it used to drop the oldest first; it
now refuses a 65th, test_monitor_behind_flood.py). One seen again
kept the time it was first seen, so a log's key holder who showed a mirror another view (a
fork at a smaller size) and then served 64 genuine older checkpoints at its own URL before
any round read the verified tree had the fork's signed checkpoint dropped, though the mirror
served it at every round: the round that read the verified tree then proved the others
consistent and never found the fork. A checkpoint served again is seen again now.
"""

from __future__ import annotations

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import InconsistentCheckpoint, LimitExceeded
from ironroot.log import (
    Checkpoint,
    Log,
    NoteSigner,
    NoteVerifier,
    TileTree,
    parse_tile_path,
    sign_checkpoint,
)
from ironroot.monitor import Monitor, MonitorStore
from ironroot.witness import ForkProof

ORIGIN = "kept.example/log"
_SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
_VERIFIED = 100


class _Served:
    """A log's tiles and entry bundles, and ``note`` as its checkpoint."""

    def __init__(self, log: Log, note: bytes) -> None:
        self.log, self.note = log, note

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.note
        address = parse_tile_path(path)
        if address.entries:
            return self.log.read_entry_bundle(address.index, address.width)
        return self.log.read_tile(address.level, address.index, address.width)


def _log(items: list[bytes]) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[_SIGNER])
    log.start()
    for ticket in log.submit_many(items):
        ticket.integrated.result(30)
    return log


def _signed(size: int, root: bytes) -> bytes:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), [_SIGNER])


def test_a_fork_a_mirror_keeps_serving_is_not_pushed_out_by_older_checkpoints() -> None:
    keys = (NoteVerifier.from_vkey(_SIGNER.verifier().vkey),)
    honest = _log([b"entry %d" % i for i in range(_VERIFIED)])
    forked = _log([b"other %d" % i for i in range(50)])
    now = [0]
    store = MonitorStore(":memory:")
    try:
        monitor = Monitor(store, clock=lambda: now[0])
        verified = honest.checkpoint()
        monitor.check("https://log.example", _Served(honest, verified), keys)
        tree = TileTree(_Served(honest, verified), _VERIFIED)
        mirror = _Served(forked, forked.checkpoint())  # another view at 50, signed
        now[0] = 1
        with pytest.raises(InconsistentCheckpoint):
            monitor.check("https://mirror.example", mirror, keys)
        for size in range(1, 65):  # the log's own URL goes back, a genuine size at a time
            now[0] = size + 1
            for url, served in (
                ("https://mirror.example", mirror),
                ("https://log.example", _Served(honest, _signed(size, tree.root(size)))),
            ):
                if size == 64 and url == "https://log.example":  # full: refused, none dropped
                    with pytest.raises(LimitExceeded):
                        monitor.check(url, served, keys)
                    continue
                with pytest.raises(InconsistentCheckpoint):
                    monitor.check(url, served, keys)
        now[0] = 100
        events = monitor.check("https://log.example", _Served(honest, verified), keys)
        forks = [e for e in events if e.kind == "fork"]
        assert [(e.url, e.size) for e in forks] == [("https://mirror.example", _VERIFIED)]
        ((_, _, proof, _),) = store.forks()
        assert ForkProof.parse(proof).first == forked.checkpoint()
        assert len([e for e in events if e.kind == "behind"]) == 63
    finally:
        store.close()
        honest.close()
        forked.close()
