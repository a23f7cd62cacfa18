"""The one parser of every ``--at``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cli._time import parse_instant
from ironroot.errors import ConfigError

UTC = dt.UTC


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-04T10:00:00Z", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("2026-12-04T11:00:00+01:00", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("2026-12-04T10:00:00.250Z", dt.datetime(2026, 12, 4, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-12-04", dt.datetime(2026, 12, 4, tzinfo=UTC)),
        ("1796378400", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
        ("@1796378400", dt.datetime(2026, 12, 4, 10, tzinfo=UTC)),
    ],
)
def test_accepted_forms(text: str, expected: dt.datetime) -> None:
    got = parse_instant(text)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-12-04T10:00:00", "needs Z or a UTC offset"),
        ("yesterday", "is not a time"),
        ("2026-13-40", "is not a time"),
        ("99999999999999", "is not a time"),
        ("0001-01-01T00:00:00+01:00", "out of range"),  # before year 1 in UTC
        ("9999-12-31T23:00:00-01:00", "out of range"),  # after year 9999 in UTC
        ("1969-12-31T23:59:59Z", "out of range"),  # before POSIX time
        ("0001-01-01", "out of range"),
        ("9000-01-01", "out of range"),  # a lifetime from it would pass year 9999
        ("9999-12-31T23:59:59Z", "out of range"),
        ("2026-W49-5", "is not a time"),  # ISO week date: Python reads it, RFC 3339 does not
        ("20261204T100000", "is not a time"),  # ISO basic format, likewise
    ],
)
def test_refused_forms(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_instant(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["evidence", "verify", "x", "--at", "2026-12-04T10:00:00"],
        ["attest", "appraise", "x", "--data", "d", "--at", "soon"],
        ["evidence", "verify", "x", "--at", "0001-01-01T00:00:00+01:00"],
        ["evidence", "verify", "x", "--at", "9999-12-31T23:00:00-01:00", "--json"],
    ],
)
def test_a_bad_at_is_a_usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("at", ["0001-01-01", "9999-12-31T23:59:59Z"])
def test_an_at_no_certificate_can_start_at_is_refused_not_a_bug(
    at: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rot ca-init --at 0001-01-01`` reached the certificate builder (``internal-error``:
    not valid before must be on or after 1950), ``fleet operator issue --at 9999-12-31``
    an overflow adding the lifetime: an instant outside 1970-8999 is refused as it is read."""
    assert main(["rot", "ca-init", "--out", str(tmp_path / "ca"), "--at", at]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: config: --at {at!r} is out of range: give a time from 1970 to 8999 (UTC)\n"
    )
    assert not (tmp_path / "ca").exists()
