"""Any one resource of a grown log served with a byte changed, cut or extended: the monitor's
round fails with a typed error or verifies the honest tree, and the state it keeps is the one
verified before or the honest new one, never another; no fork is recorded (the log's key
signed nothing new).

The log is read from memory (the HTTP shell has its own hostile-server tests): what is
fuzzed here is what the monitor makes of the bytes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import IronrootError, NotFound
from ironroot.log import (
    Log,
    NoteSigner,
    NoteVerifier,
    entry_bundles_for_size,
    tiles_for_size,
)
from ironroot.monitor import Monitor, MonitorStore, Watch

ORIGIN = "flips.example/log"
_SIGNER = NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ED25519))
# verified at 300 (tiles 0/000, 0/001.p/44, 1/000.p/1; bundles 000, 001.p/44), then grown to
# 556: the round reads tiles 0/001, 0/002.p/44, 1/000.p/2 and bundles 001, 002.p/44
_OLD, _NEW = 300, 556


def _log(count: int) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[_SIGNER], max_batch=_NEW)
    log.start()
    for ticket in log.submit_many([b"statement %d" % i for i in range(count)]):
        ticket.integrated.result(60)
    return log


def _served(log: Log, size: int) -> dict[str, bytes]:
    """Every resource of the log's read API at ``size`` (its size), by path."""
    out = {"checkpoint": log.checkpoint()}
    for address in tiles_for_size(size):
        out[address.path] = log.read_tile(address.level, address.index, address.width)
    for address in entry_bundles_for_size(size):
        out[address.path] = log.read_entry_bundle(address.index, address.width)
    return out


class _Served:
    """A LogFetcher over a dict of resources (``NotFound`` for any other path)."""

    def __init__(self, resources: dict[str, bytes]) -> None:
        self.resources = resources

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        found = self.resources.get(path)
        if found is None:
            raise NotFound(f"{path} was not found")
        return found


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[dict[str, bytes], dict[str, bytes]]]:
    old, new = _log(_OLD), _log(_NEW)
    try:
        yield _served(old, _OLD), _served(new, _NEW)
    finally:
        old.close()
        new.close()


_MUTATIONS = st.sampled_from(["flip", "cut", "extend"])


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), how=_MUTATIONS)
def test_a_resource_changed_anywhere_never_advances_the_state_past_what_verified(
    served: tuple[dict[str, bytes], dict[str, bytes]], data: st.DataObject, how: str
) -> None:
    old, new = served
    keys = (NoteVerifier.from_vkey(_SIGNER.verifier().vkey),)
    path = data.draw(st.sampled_from(sorted(new)), label="path")
    body = new[path]
    if how == "flip":
        at = data.draw(st.integers(0, len(body) - 1), label="at")
        mask = data.draw(st.integers(1, 255), label="mask")
        changed = body[:at] + bytes([body[at] ^ mask]) + body[at + 1 :]
    elif how == "cut":
        changed = body[: data.draw(st.integers(0, len(body) - 1), label="kept")]
    else:
        changed = body + data.draw(st.binary(min_size=1, max_size=64), label="tail")
    store = MonitorStore(":memory:")
    try:
        monitor = Monitor(store, watch=Watch(frozenset({"statement"})))
        monitor.check("https://flips.example", _Served(old), keys)
        verified = store.state(ORIGIN)
        assert verified is not None
        assert verified.size == _OLD
        try:
            monitor.check("https://flips.example", _Served({**new, path: changed}), keys)
        except IronrootError:
            assert store.state(ORIGIN) == verified
        else:  # only a change nothing reads (bytes of a tile past what the tree needs)
            after = store.state(ORIGIN)
            assert after is not None
            assert (after.size, after.note) == (_NEW, new["checkpoint"])
        assert store.forks() == []
    finally:
        store.close()
