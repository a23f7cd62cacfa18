"""Log lines for every service: timestamped text, or one JSON object per line (stdlib only, so a
command can set up logging without loading the HTTP stack).

A text line's message is shown as :func:`ironroot._text.shown` spells it: what a record
quotes may come from a client or a peer (a request's path, a witness's answer), and an
escape sequence or a line break in it must not reach an operator's terminal or forge a
line. (JSON lines escape them as JSON does.)"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Final

from ironroot._text import shown
from ironroot.errors import ConfigError

__all__ = ["LOG_FORMATS", "configure_logging"]

LOG_FORMATS: Final = ("text", "json")
ACCESS_LOG_ENV: Final = "IRONROOT_ACCESS_LOG"


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the access fields."""

    _FIELDS: Final = ("service", "client", "method", "path", "route", "status", "bytes",
                      "duration_ms")  # fmt: skip

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self._FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


class _TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, the message shown (module docs); a traceback after it
    keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return shown(super().formatMessage(record))


def _access_log_wanted() -> bool:
    return os.environ.get(ACCESS_LOG_ENV, "").strip().lower() in ("1", "true", "on", "yes")


def configure_logging(
    level: str = "info", fmt: str = "text", *, access_log: bool | None = None
) -> None:
    """Log Ironroot's records to stderr at ``level``, as ``text`` lines (timestamped) or
    ``json`` lines. Raises :class:`ConfigError` for an unknown level or format.

    The access log (logger ``ironroot.access``: a line per request) costs a service more
    CPU than some of its requests (30-40 µs each, measured), so it is written only when
    ``access_log`` is true; by default, when ``level`` is ``debug`` or the environment sets
    ``IRONROOT_ACCESS_LOG=1`` (then at any ``level``). Request counts and times are always
    in ``/metrics``."""
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"log format {fmt!r}: one of {', '.join(LOG_FORMATS)}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"log level {level!r}: one of debug, info, warning, error")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("ironroot")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    if access_log is None:
        access_log = numeric <= logging.DEBUG or _access_log_wanted()
    logging.getLogger("ironroot.access").setLevel(logging.INFO if access_log else logging.WARNING)
    # Records still propagate: a host program (or pytest) may also listen at the root logger.
