"""The log monitor: follow transparency logs, verify each new checkpoint's consistency with
the last one verified, read the new entries from tiles, report statements about watched
subjects and issuers, and keep the proof of any fork (``ironroot monitor``; docs/witness.md).

Layering: above ``transparency`` (and ``witness``, ``log``, ``cose``), below ``cli``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.monitor._checks import (
        MALFORMED,
        REUSED,
        EntryCheck,
        KeyReuse,
        OneTimeKeyUse,
    )
    from ironroot.monitor._monitor import DEFAULT_MAX_NEW_ENTRIES, Monitor, MonitorEvent, Watch
    from ironroot.monitor._store import Behind, LogState, MonitorStore

__all__ = [
    "DEFAULT_MAX_NEW_ENTRIES",
    "MALFORMED",
    "REUSED",
    "Behind",
    "EntryCheck",
    "KeyReuse",
    "LogState",
    "Monitor",
    "MonitorEvent",
    "MonitorStore",
    "OneTimeKeyUse",
    "Watch",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
