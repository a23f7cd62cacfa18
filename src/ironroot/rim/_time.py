"""The one reading of ``now`` for every RIM check: a timezone-aware instant, in UTC."""

from __future__ import annotations

import datetime as dt

from ironroot.errors import ConfigError

__all__ = ["utc"]


def utc(now: dt.datetime) -> dt.datetime:
    """``now`` in UTC; ``ConfigError`` for a naive datetime (the chain check would read it as
    UTC and the statement's CWT dates as the machine's local time: two instants)."""
    if not isinstance(now, dt.datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ConfigError("now must be a timezone-aware datetime")
    return now.astimezone(dt.UTC)
