"""A smaller checkpoint kept to be settled (``behind``) is never dropped unsettled.

The monitor keeps at most 64 smaller checkpoints per origin. It used to drop the oldest seen
past that: a log's key holder who showed the monitor a fork at a smaller size once (a split
view served to it alone, one round) and then served 64 genuine older checkpoints had the
fork's signed checkpoint dropped before any round read the verified tree; that round proved
the 64 consistent and never found the fork. The 65th is now refused instead
(``LimitExceeded``, code ``behind-limit``, exit 1), and nothing kept is dropped before it is
settled.
"""

from __future__ import annotations

import pytest
from test_monitor_behind_kept import _SIGNER as SIGNER
from test_monitor_behind_kept import _VERIFIED, ORIGIN, _log, _Served, _signed

from ironroot.errors import InconsistentCheckpoint, LimitExceeded
from ironroot.log import NoteVerifier, TileTree
from ironroot.monitor import Monitor, MonitorStore
from ironroot.witness import ForkProof


def test_a_fork_shown_once_is_not_laundered_by_64_older_checkpoints() -> None:
    keys = (NoteVerifier.from_vkey(SIGNER.verifier().vkey),)
    honest = _log([b"entry %d" % i for i in range(_VERIFIED)])
    forked = _log([b"other %d" % i for i in range(50)])
    now = [0]
    store = MonitorStore(":memory:")
    try:
        monitor = Monitor(store, clock=lambda: now[0])
        verified = honest.checkpoint()
        monitor.check("https://log.example", _Served(honest, verified), keys)
        tree = TileTree(_Served(honest, verified), _VERIFIED)
        now[0] = 1
        with pytest.raises(InconsistentCheckpoint):  # the split view, shown once
            monitor.check("https://log.example", _Served(forked, forked.checkpoint()), keys)
        for size in range(1, 64):  # 63 genuine older ones: kept beside it
            now[0] = size + 1
            genuine = _Served(honest, _signed(size, tree.root(size)))
            with pytest.raises(InconsistentCheckpoint):
                monitor.check("https://log.example", genuine, keys)
        now[0] = 70
        with pytest.raises(LimitExceeded, match="64 smaller checkpoints") as err:
            monitor.check("https://log.example", _Served(honest, _signed(64, tree.root(64))), keys)
        assert err.value.code == "behind-limit"
        assert err.value.exit_code == 1
        assert len(store.behind(ORIGIN)) == 64
        now[0] = 100
        events = monitor.check("https://log.example", _Served(honest, verified), keys)
        forks = [e for e in events if e.kind == "fork"]
        assert [(e.url, e.size) for e in forks] == [("https://log.example", _VERIFIED)]
        ((_, _, proof, _),) = store.forks()
        assert ForkProof.parse(proof).first == forked.checkpoint()
        assert len([e for e in events if e.kind == "behind"]) == 63
        assert store.behind(ORIGIN) == []
    finally:
        store.close()
        honest.close()
        forked.close()
