"""The times a sequencer signs never go back: a receipt's ``iat`` (CWT claim 6 in its protected
header, RFC 9942 with Ironroot's claims) is never earlier than the latest one stored for the
log, even when the sequencer taking over (a failover between replicas, a restart on another
host) has a clock that is behind. The log's own checkpoint signatures carry no time (C2SP
signed-note Ed25519 signatures have none; Ironroot signs its timestamped ML-DSA ones with
timestamp 0), so the receipts are what there is to keep in order."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cose import Receipt, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.transparency import TransparencyService

T0 = datetime(2026, 6, 1, tzinfo=UTC)
_LOGGER = "ironroot.transparency"


def _iats(data: Path, vendor: PrivateKey, times: Sequence[datetime], tag: str) -> list[int]:
    """Open a sequencer over ``data``'s log, register one statement per time of ``times``
    (one batch each) with the sequencer's clock then at that time, close it: the ``iat`` of
    each receipt, in order."""
    out = []
    now = [times[0]]
    with TransparencyService.open(data, clock=lambda: now[0]) as service:
        for n, time in enumerate(times):
            now[0] = time
            statement = create_statement(
                vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:{tag}/{n}"
            )
            ticket = service.submit(statement)
            ticket.integrated.result(30)
            receipts = service.receipts(ticket.entry_id)
            assert receipts is not None
            iat = Receipt.parse(receipts[0]).iat
            assert iat is not None
            out.append(iat)
    return out


def test_a_sequencer_whose_clock_is_behind_never_signs_an_earlier_receipt_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The receipts of a sequencer whose clock was 100 s behind the previous sequencer's
    carried an ``iat`` 100 s earlier than the receipts already issued for the same log. It
    now signs the stored latest time until its clock catches up, and says by how much its
    clock is behind."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=100)).timestamp())
    first = _iats(data, vendor, [T0 + timedelta(seconds=100)] * 2, "a")
    assert first == [ahead, ahead]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        second = _iats(data, vendor, [T0, T0], "b")
    assert second == [ahead, ahead]
    warnings = [r.getMessage() for r in caplog.records if r.name == _LOGGER]
    assert warnings == [
        f"this sequencer's clock is 100.0 s behind the latest receipt time stored for the log "
        f"(iat {ahead}): receipts carry iat {ahead} until the clock catches up"
    ]
    # A clock ahead again is followed, without a warning.
    caplog.clear()
    later = int((T0 + timedelta(seconds=200)).timestamp())
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert _iats(data, vendor, [T0 + timedelta(seconds=200)], "c") == [later]
    assert [r for r in caplog.records if r.name == _LOGGER] == []


def test_a_clock_that_steps_back_while_sequencing_does_not_move_receipt_times_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Within one sequencer too (a clock stepped back by NTP): the signed time holds; a skew
    of a second or less is absorbed without a warning, a larger one is named once."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    times = [T0 + timedelta(seconds=s) for s in (11, 10.5, 10, 9.5)]
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        iats = _iats(data, vendor, times, "s")
    start = int(T0.timestamp())
    assert iats == [start + 11] * 4
    warnings = [r.getMessage() for r in caplog.records if r.name == _LOGGER]
    assert warnings == [
        f"this sequencer's clock is 1.5 s behind the latest receipt time stored for the log "
        f"(iat {start + 11}): receipts carry iat {start + 11} until the clock catches up"
    ]
