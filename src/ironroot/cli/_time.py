"""The one date-time parser of every ``--at`` (and every other time a command takes).

Accepted: RFC 3339 / ISO 8601 with ``Z`` or a UTC offset (``2026-12-04T10:00:00Z``,
``2026-12-04T11:00:00+01:00``, fractions allowed); a date alone (``2026-12-04``: midnight UTC);
POSIX seconds (``1796379200``, ``@1796379200``). A date-time without an offset is refused: it
would mean a different instant on every machine. The result is always timezone-aware UTC.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Final

from ironroot.errors import ConfigError

__all__ = ["EARLIEST", "LATEST", "instant", "now_or", "parse_instant"]

EARLIEST: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
"""The earliest instant a command takes."""
LATEST: Final = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)
"""The first instant past those a command takes."""

_EPOCH: Final = re.compile(r"@?\d{1,12}(\.\d{1,9})?")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
# RFC 3339's shape (seconds may be left out); Python's ISO 8601 parser alone would also take
# week dates (2026-W49-5) and the basic format (20261204T100000)
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:\d{2})?)?"
)


def parse_instant(text: str, what: str = "--at", *, bounded: bool = True) -> dt.datetime:
    """``text`` as an aware UTC datetime (module docs); ``ConfigError`` naming ``what``.
    ``bounded=False`` takes any year (a firmware manifest's validity, where 9999-12-31 is the
    usual "no end"): for a time that is given, not one to compute from."""
    value = text.strip()
    when = _parsed(text, value, what)
    if bounded and not EARLIEST <= when < LATEST:
        raise ConfigError(f"{what} {text!r} is out of range: give a time from 1970 to 8999 (UTC)")
    return when


def _parsed(text: str, value: str, what: str) -> dt.datetime:
    if _EPOCH.fullmatch(value):
        try:
            return dt.datetime.fromtimestamp(float(value.lstrip("@")), dt.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ConfigError(f"{what} {text!r}: POSIX seconds out of range") from exc
    try:
        if not _RFC3339.fullmatch(value):
            raise ValueError(value)
        when = dt.datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ConfigError(
            f"{what} {text!r} is not a time: give RFC 3339 (2026-12-04T10:00:00Z), a date "
            "(2026-12-04) or POSIX seconds"
        ) from exc
    if when.tzinfo is None:
        if _DATE.fullmatch(value):
            return when.replace(tzinfo=dt.UTC)
        raise ConfigError(f"{what} {text!r} needs Z or a UTC offset (e.g. {value}Z)")
    try:
        return when.astimezone(dt.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before year 1 in UTC
        raise ConfigError(f"{what} {text!r} is out of range in UTC") from exc


def instant(text: str) -> dt.datetime:
    """:func:`parse_instant` as an argparse ``type`` (a bad value is a usage error, exit 2)."""
    try:
        return parse_instant(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def now_or(value: str | dt.datetime | None, what: str = "--at") -> dt.datetime:
    """``value`` parsed (or passed through), or the current time when it is ``None``."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(value, dt.datetime):
        return value
    return parse_instant(value, what)
