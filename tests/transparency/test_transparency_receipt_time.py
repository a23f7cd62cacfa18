"""The times a sequencer signs never go back: a receipt's ``iat`` (CWT claim 6 in its protected
header, RFC 9942 with Ironroot's claims) is never earlier than the latest one stored for the
log, even when the sequencer taking over (a failover between replicas, a restart on another
host) has a clock that is behind. The log's own checkpoint signatures carry no time (C2SP
signed-note Ed25519 signatures have none; Ironroot signs its timestamped ML-DSA ones with
timestamp 0), so the receipts are what there is to keep in order."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config

from ironroot.cli import main
from ironroot.cose import Receipt, create_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ClockSkew, ConfigError, StoreUnavailable
from ironroot.log import LogView
from ironroot.transparency import ServiceThread, TransparencyService
from ironroot.transparency._config import load_config

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


def _set_max_clock_skew(data: Path, seconds: object) -> None:
    path = data / "ironroot.toml"
    text = path.read_text()
    path.write_text(
        text.replace("[transparency]\n", f"[transparency]\nmax_clock_skew = {seconds}\n")
    )


def _wait_for(caplog: pytest.LogCaptureFixture, level: int, fragment: str) -> str:
    """The first record at ``level`` holding ``fragment``, waiting for the log's writer
    thread (a deadline against a hang, not a timing assertion)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for record in list(caplog.records):
            if record.levelno == level and fragment in record.getMessage():
                return record.getMessage()
        time.sleep(0.02)
    raise AssertionError(f"no log line with {fragment!r}")


def test_a_sequencer_whose_clock_is_far_behind_the_stored_receipt_time_stops_integrating(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A predecessor whose clock ran 1000 s ahead left receipts with that time; its successor,
    with a correct clock, signed that same time on every receipt until its clock caught up, a
    time 1000 s in the future, without saying more than a warning. Beyond ``max_clock_skew``
    (default 300 s) it now signs nothing: the entry is durable (pending), an error names the
    skew once, and integration resumes, with a time that has not gone back, once the clock is
    within the bound."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=1000)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=1000)], "a") == [ahead]
    now = [T0]
    statement = create_statement(vendor, b'{"n": 1}', iss=VENDOR_ISS, sub="pkg:b/1")
    with (
        caplog.at_level(logging.WARNING, logger="ironroot"),
        TransparencyService.open(data, clock=lambda: now[0]) as service,
    ):
        ticket = service.submit(statement)
        ticket.durable.result(30)  # acknowledged: pending, durable
        error = _wait_for(caplog, logging.ERROR, "max_clock_skew")
        assert error == (
            f"the latest receipt time of the log (iat {ahead}) is 1000.0 s ahead of this "
            "sequencer's clock, more than max_clock_skew (300 s): no receipt is signed "
            "(entries stay pending) until the clocks agree"
        )
        assert not ticket.integrated.done()
        assert service.receipts(ticket.entry_id) is None
        now[0] = T0 + timedelta(seconds=800)  # within 300 s of the stored time
        ticket.integrated.result(60)
        receipts = service.receipts(ticket.entry_id)
        assert receipts is not None
        assert Receipt.parse(receipts[0]).iat == ahead
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == _LOGGER]
    assert len(errors) == 1  # said once, however often the writer retried
    _wait_for(caplog, logging.WARNING, f"again (iat {ahead}): integration resumes")


def test_ready_says_when_the_sequencer_refuses_for_its_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sequencer that refuses to sign for its clock (``ClockSkew``) integrates nothing, yet
    ``/ready`` answered 200 ``ready`` and no metric moved: only the log line told. ``/ready``
    now fails its ``clock`` check with the refusal (503, ``Retry-After``) while it lasts, and
    is ready again once integration resumes."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=1000)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=1000)], "a") == [ahead]
    now = [T0]
    statement = create_statement(vendor, b'{"n": 1}', iss=VENDOR_ISS, sub="pkg:b/1")
    with (
        caplog.at_level(logging.WARNING, logger="ironroot"),
        TransparencyService.open(data, clock=lambda: now[0]) as service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        assert client.get("/ready").json()["status"] == "ready"
        ticket = service.submit(statement)
        ticket.durable.result(30)
        _wait_for(caplog, logging.ERROR, "max_clock_skew")
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert int(ready.headers["retry-after"]) >= 1
        check = ready.json()["checks"]["clock"]
        assert check == "clock-skew: Service Unavailable"  # why, in detail: in the log
        assert any(
            r.name == "ironroot.ready"
            and f"check clock fails: clock-skew: the latest receipt time of the log (iat {ahead})"
            in r.getMessage()
            for r in caplog.records
        )
        now[0] = T0 + timedelta(seconds=800)
        ticket.integrated.result(60)
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["clock"] == "ok"


def test_a_store_outage_while_the_stored_receipt_time_is_read_does_not_drop_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored receipt time was read once, when the sequencer opened the log, and a store
    error then (a database blip while a replica took over) was taken for "no receipt": no
    floor, so a sequencer with a clock 100 s behind signed a time 100 s before receipts
    already issued, and no ``max_clock_skew`` check either. The outage now fails the opening
    (``StoreUnavailable``, retried as any), and the next one signs the stored time."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=100)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=100)], "a") == [ahead]
    real = LogView.batch_data
    blips = [1]

    def blip(self: LogView, tree_size: int) -> Mapping[str, bytes]:
        if blips:
            blips.pop()
            raise StoreUnavailable("cannot read from the log store: connection lost")
        return real(self, tree_size)

    monkeypatch.setattr(LogView, "batch_data", blip)
    with pytest.raises(StoreUnavailable) as caught:
        _iats(data, vendor, [T0], "b")
    assert type(caught.value) is StoreUnavailable
    assert "connection lost" in caught.value.detail
    assert _iats(data, vendor, [T0], "c") == [ahead]


def test_a_clock_that_leaps_ahead_between_two_checks_signs_no_time_far_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A replica checks its clock against the database server's before it stands and at each
    renewal; a wall clock that leapt 1000 s ahead between two checks signed receipts 1000 s in
    the future meanwhile, and as receipt times never go back every later sequencer had to
    refuse (``ClockSkew``) or carry that time. The service now holds each batch to the
    replica's reference (the database's time at the last check, carried forward by the
    monotonic clock): beyond ``max_clock_skew`` of it nothing is signed, the entry stays
    pending, and it is integrated at a sane time once the clock is back."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    start = T0.timestamp()
    now, reference = [T0], [start]
    TransparencyService.open(data, clock=lambda: T0).close()  # its keys made
    store = load_config(data).store.open(data)
    statements = [
        create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:leap/{n}")
        for n in range(2)
    ]
    with (
        caplog.at_level(logging.WARNING, logger=_LOGGER),
        TransparencyService.open_on_store(
            data, store, clock=lambda: now[0], clock_reference=lambda: reference[0]
        ) as service,
    ):
        first = service.submit(statements[0])
        first.integrated.result(30)
        now[0] = T0 + timedelta(seconds=1000)  # the wall clock leaps; the reference does not
        second = service.submit(statements[1])
        second.durable.result(30)
        error = _wait_for(caplog, logging.ERROR, "database server's")
        assert error == (
            "this sequencer's clock is 1000.0 s ahead of the database server's (as last read, "
            "carried forward by the monotonic clock), more than max_clock_skew (300 s): no "
            "receipt is signed (entries stay pending) until the clocks agree"
        )
        assert service.receipts(second.entry_id) is None
        now[0] = T0 + timedelta(seconds=10)
        reference[0] = start + 10
        second.integrated.result(60)
        receipts = service.receipts(second.entry_id)
        assert receipts is not None
        assert Receipt.parse(receipts[0]).iat == int(start) + 10


def test_a_service_on_its_own_whose_clock_is_stepped_forward_signs_no_time_far_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A service with no replica had no time to hold its clock to: a wall clock stepped 1000 s
    forward while it ran (a mistyped ``date -s``, a spoofed NTP answer) signed receipts 1000 s
    in the future, and as receipt times never go back, the log then refused to integrate
    anything once the clock was set right. It now holds each batch to its own time at open
    carried forward by the boot-time clock, which no step of the wall clock moves: nothing is
    signed while they part by more than ``max_clock_skew``, the entry stays pending and is
    integrated at a sane time once the clock is set back."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    start = datetime.now(UTC)
    step = [timedelta(0)]

    def clock() -> datetime:  # the real clock, and a step an operator could make to it
        return datetime.now(UTC) + step[0]

    statements = [
        create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:step/{n}")
        for n in range(2)
    ]
    with (
        caplog.at_level(logging.WARNING, logger=_LOGGER),
        TransparencyService.open(data, clock=clock, watch_steps=True) as service,
    ):
        first = service.submit(statements[0])
        first.integrated.result(30)
        step[0] = timedelta(seconds=1000)
        second = service.submit(statements[1])
        second.durable.result(30)
        error = _wait_for(caplog, logging.ERROR, "stepped")
        assert error.startswith("this sequencer's clock is 1000.")
        assert error.endswith(
            " s ahead of its own time when the service started, carried forward by the "
            "boot-time clock: the wall clock was stepped since (restart the service to take "
            "its time as it is now), more than max_clock_skew (300 s): no receipt is signed "
            "(entries stay pending) until the clocks agree"
        )
        assert service.receipts(second.entry_id) is None
        assert isinstance(service.clock_refusal, ClockSkew)
        step[0] = timedelta(0)
        second.integrated.result(60)
        receipts = service.receipts(second.entry_id)
        assert receipts is not None
        iat = Receipt.parse(receipts[0]).iat
        assert iat is not None
        assert start.timestamp() - 1 <= iat < start.timestamp() + 300
    assert service.clock_refusal is None


class _SteppedClock(datetime):
    """``datetime`` whose ``now`` is the real time plus :attr:`step` (the wall clock set)."""

    step = timedelta(0)

    @classmethod
    def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
        return datetime.now(UTC) + cls.step


def test_a_service_on_its_own_watches_the_real_clock_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is on with the real clock (``clock`` not given), off with a clock a caller
    drives (a replay, a test) unless asked for; a restart takes the wall clock as it is."""
    import ironroot.transparency._service as service_module

    monkeypatch.setattr(service_module, "datetime", _SteppedClock)
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    statements = [
        create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:real/{n}")
        for n in range(3)
    ]
    with TransparencyService.open(data) as service:
        service.submit(statements[0]).integrated.result(30)
        monkeypatch.setattr(_SteppedClock, "step", timedelta(seconds=1000))
        pending = service.submit(statements[1])
        pending.durable.result(30)
        deadline = time.monotonic() + 60
        while service.clock_refusal is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert isinstance(service.clock_refusal, ClockSkew)
        assert "the wall clock was stepped since" in service.clock_refusal.detail
        assert service.receipts(pending.entry_id) is None
    # Restarted, the service takes the clock as it is now (the operator's call).
    with TransparencyService.open(data) as service:
        assert pending.entry_id is not None
        service.submit(statements[2]).integrated.result(30)
        assert service.clock_refusal is None
        receipts = service.receipts(pending.entry_id)
        assert receipts is not None
    # A driven clock is not watched unless asked: it may leap as its caller likes.
    driven = [datetime.now(UTC) + timedelta(seconds=1000)]
    with TransparencyService.open(data, clock=lambda: driven[0]) as service:
        driven[0] += timedelta(seconds=1000)
        service.submit(
            create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:real/driven")
        ).integrated.result(30)
        assert service.clock_refusal is None


def test_max_clock_skew_lets_an_operator_accept_the_stored_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The way on when the stored time is far ahead and waiting is not an option: raise
    ``max_clock_skew`` past the skew; receipts then carry the stored time (never an earlier
    one) until the clock catches up, with the warning of a clock behind."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=1000)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=1000)], "a") == [ahead]
    _set_max_clock_skew(data, 2000)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert _iats(data, vendor, [T0], "b") == [ahead]
    assert [r.getMessage() for r in caplog.records if r.name == _LOGGER] == [
        f"this sequencer's clock is 1000.0 s behind the latest receipt time stored for the log "
        f"(iat {ahead}): receipts carry iat {ahead} until the clock catches up"
    ]


_RANGE = "transparency.max_clock_skew must be between 1 and 31622400 seconds"
_TYPE = "transparency.max_clock_skew must be a float"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0.5", _RANGE),
        ("31622401", _RANGE),
        ("nan", _RANGE),
        ("inf", _RANGE),
        ("-inf", _RANGE),
        ('"300"', _TYPE),
        ("true", _TYPE),
    ],
)
def test_max_clock_skew_out_of_range_is_refused(tmp_path: Path, value: str, message: str) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _set_max_clock_skew(data, value)
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert info.value.detail == f"{data / 'ironroot.toml'}: {message}"


def _set_reset(data: Path, value: object) -> None:
    path = data / "ironroot.toml"
    text = path.read_text()
    path.write_text(
        text.replace("[transparency]\n", f"[transparency]\nreset_receipt_time_from = {value}\n")
    )


def _refused_for_the_clock(data: Path, vendor: PrivateKey, at: datetime, tag: str) -> None:
    """A sequencer at ``at`` takes one registration durable and signs nothing for its clock."""
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub=f"pkg:{tag}/0")
    with TransparencyService.open(data, clock=lambda: at) as service:
        ticket = service.submit(statement)
        ticket.durable.result(30)
        deadline = time.monotonic() + 60
        while service.clock_refusal is None:
            assert time.monotonic() < deadline, "no clock refusal"
            time.sleep(0.02)
        assert type(service.clock_refusal) is ClockSkew
        assert not ticket.integrated.done()


def test_a_receipt_time_beyond_any_max_clock_skew_is_reset_only_by_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A clock that once jumped 400 days ahead left that receipt time in the log. Raising
    ``max_clock_skew`` past the skew was the only way on, and it stops at 366 days: the log
    integrated nothing until real time caught up, with no way out. ``reset_receipt_time_from``
    naming that stored time lets one sequencer sign its own clock's time, earlier (said at
    error level); once a batch carries a sane time, the setting does nothing (it names a time
    that is no longer the latest: a warning says to remove it)."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    jumped = int((T0 + timedelta(days=400)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(days=400)], "a") == [jumped]
    _set_max_clock_skew(data, 31622400)  # the most any setting accepts: 366 days
    _refused_for_the_clock(data, vendor, T0, "b")
    path = data / "ironroot.toml"
    bounded = path.read_text()
    _set_reset(data, jumped + 1)  # not the stored time: no effect
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        _refused_for_the_clock(data, vendor, T0, "c")
    assert (
        f"transparency.reset_receipt_time_from ({jumped + 1}) is not the latest receipt time "
        f"of the log (iat {jumped}): it has no effect; remove it"
    ) in [r.getMessage() for r in caplog.records]
    path.write_text(bounded)
    _set_reset(data, jumped)
    caplog.clear()
    later = T0 + timedelta(seconds=5)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert _iats(data, vendor, [later, later + timedelta(seconds=1)], "d") == [
            int(later.timestamp()),
            int(later.timestamp()) + 1,
        ]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"receipt times go back: the latest receipt time of the log (iat {jumped}) is "
        f"{jumped - later.timestamp():.1f} s ahead of this sequencer's clock, and "
        f"transparency.reset_receipt_time_from names it as wrong: receipts are signed with "
        f"this clock's time from iat {int(later.timestamp())} on; remove the setting"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert _iats(data, vendor, [later + timedelta(seconds=2)], "e") == [
            int(later.timestamp()) + 2
        ]
    assert [r.getMessage() for r in caplog.records] == [
        f"transparency.reset_receipt_time_from ({jumped}) is not the latest receipt time of "
        f"the log (iat {int(later.timestamp()) + 1}): it has no effect; remove it"
    ]


def test_reset_receipt_time_from_does_nothing_within_max_clock_skew(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Naming the stored time moves receipt times back only where they would otherwise stop:
    within ``max_clock_skew`` the stored time is carried, as without the setting."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=100)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=100)], "a") == [ahead]
    _set_reset(data, ahead)
    with caplog.at_level(logging.ERROR, logger=_LOGGER):
        assert _iats(data, vendor, [T0], "b") == [ahead]
    assert caplog.records == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "transparency.reset_receipt_time_from must be a receipt time (0 or more)"),
        ("1.5", "transparency.reset_receipt_time_from must be a int"),
        ('"1780000000"', "transparency.reset_receipt_time_from must be a int"),
        ("true", "transparency.reset_receipt_time_from must be a int"),
    ],
)
def test_reset_receipt_time_from_out_of_range_is_refused(
    tmp_path: Path, value: str, message: str
) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _set_reset(data, value)
    with pytest.raises(ConfigError) as info:
        load_config(data)
    assert info.value.detail == f"{data / 'ironroot.toml'}: {message}"


def test_a_batch_refused_for_the_clock_is_not_counted_as_integrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch-size listeners (``ironroot_log_batch_size``) were told of a batch before its
    receipt time was checked: a batch refused for the clock counted as integrated, and the
    batch integrated later was counted short by the entries of the refused one (two batches
    of one entry where one of two was integrated). A refused batch is now not counted."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = T0 + timedelta(seconds=1000)
    assert _iats(data, vendor, [ahead], "a") == [int(ahead.timestamp())]
    now = [T0]
    statements = [
        create_statement(vendor, b'{"n": %d}' % n, iss=VENDOR_ISS, sub=f"pkg:b/{n}")
        for n in range(2)
    ]
    sizes: list[int] = []
    with (
        caplog.at_level(logging.WARNING, logger="ironroot"),
        TransparencyService.open(data, clock=lambda: now[0]) as service,
    ):
        service.add_batch_listener(sizes.append)
        first = service.submit(statements[0])
        first.durable.result(30)
        _wait_for(caplog, logging.ERROR, "max_clock_skew")
        second = service.submit(statements[1])
        second.durable.result(30)
        now[0] = ahead
        first.integrated.result(60)
        second.integrated.result(60)
    assert sizes == [2]


def test_a_latest_batch_whose_signature_no_longer_verifies_still_holds_the_floor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The stored receipt time was taken only from a batch signature that verifies: once the
    latest batch's did not (its receipt key replaced and ``keys/receipt-keys.cbor`` lost, or a
    damaged row), the sequencer had no floor at all, and one with its clock 100 s behind
    signed a time 100 s before receipts already handed out (and a clock any distance off was
    signed unchecked). The times the stored batch carries now hold the floor all the same:
    they may be in receipts already issued."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    ahead = int((T0 + timedelta(seconds=100)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(seconds=100)], "a") == [ahead]
    for key in (data / "keys").glob("receipt*"):  # a new receipt key; the old one unknown
        key.unlink()
    with caplog.at_level(logging.ERROR, logger=_LOGGER):
        assert _iats(data, vendor, [T0], "b") == [ahead]
    far = T0 - timedelta(seconds=1000)
    _refused_for_the_clock(data, vendor, far, "c")


def test_reset_receipt_time_from_signs_nothing_with_a_clock_off_the_database_s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Naming the stored time as wrong moves receipt times back only to a clock that agrees
    with the database's (a replica's reference): a clock 1000 s off it still signs nothing."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    jumped = int((T0 + timedelta(days=400)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(days=400)], "a") == [jumped]
    _set_reset(data, jumped)
    start = T0.timestamp()
    reference = [start - 1000]  # this clock is 1000 s ahead of the database's
    store = load_config(data).store.open(data)
    statement = create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:off/0")
    with (
        caplog.at_level(logging.WARNING, logger=_LOGGER),
        TransparencyService.open_on_store(
            data, store, clock=lambda: T0, clock_reference=lambda: reference[0]
        ) as service,
    ):
        ticket = service.submit(statement)
        ticket.durable.result(30)
        _wait_for(caplog, logging.ERROR, "database server's")
        assert service.receipts(ticket.entry_id) is None
        assert not [r for r in caplog.records if "go back" in r.getMessage()]
        reference[0] = start
        ticket.integrated.result(60)
        receipts = service.receipts(ticket.entry_id)
        assert receipts is not None
        assert Receipt.parse(receipts[0]).iat == int(start)


def test_log_verify_reports_each_batch_whose_receipt_time_goes_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ironroot log verify`` said nothing of receipt times: a log whose receipts went back
    (``reset_receipt_time_from`` after a clock that jumped 400 days ahead) verified with the
    same summary as any other. An auditor now sees every batch whose receipt ``iat`` is
    earlier than the batch before it, as a finding: legitimate after a reset, so the log still
    verifies (exit 0)."""
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    jumped = int((T0 + timedelta(days=400)).timestamp())
    assert _iats(data, vendor, [T0 + timedelta(days=400)], "a") == [jumped]
    _set_reset(data, jumped)
    later = int(T0.timestamp()) + 5
    assert _iats(data, vendor, [T0 + timedelta(seconds=5), T0 + timedelta(seconds=6)], "b") == [
        later,
        later + 1,
    ]
    capsys.readouterr()
    assert main(["log", "verify", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: log ")
    back = jumped - later
    finding = (
        f"finding: receipt time goes back at tree size 2: iat {later}, {back} s before the "
        f"batch at size 1 (iat {jumped}); expected only after reset_receipt_time_from"
    )
    assert [line for line in out.splitlines() if line.startswith("finding:")] == [finding]
    assert main(["log", "verify", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["findings"] == [
        {
            "code": "receipt-time-back",
            "size": 2,
            "iat": later,
            "previous_size": 1,
            "previous_iat": jumped,
            "detail": finding.removeprefix("finding: "),
        }
    ]


def test_log_verify_finds_nothing_in_a_log_whose_receipt_times_never_go_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _iats(data, vendor, [T0 + timedelta(seconds=100), T0 + timedelta(seconds=100)], "a")
    _iats(data, vendor, [T0], "b")  # behind: the stored time is carried, never earlier
    capsys.readouterr()
    assert main(["log", "verify", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["findings"], report["batch_signatures"]) == (True, [], 3)
    assert main(["log", "verify", str(data)]) == 0
    assert "finding:" not in capsys.readouterr().out
