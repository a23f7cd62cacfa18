"""The demo's report (``--json FILE``): what each act established and how each attack ended.

The same facts the console shows, as one JSON object (schema :data:`REPORT_SCHEMA`, JSON
Schema draft 2020-12, documented in ``docs/demo.md``). ``ok`` is true only when every act ran
and every attack was refused with exactly its expected error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ironroot import __version__
from ironroot.demo._attacks import AttackResult

__all__ = ["REPORT_FORMAT", "REPORT_SCHEMA", "build_report"]

REPORT_FORMAT: Final = "ironroot-demo-report/1"

_ERROR: Final = {
    "type": ["object", "null"],
    "required": ["class", "code", "check", "message"],
    "additionalProperties": False,
    "properties": {
        "class": {"type": "string"},
        "code": {"type": ["string", "null"]},
        "check": {"type": ["string", "null"]},
        "message": {"type": "string"},
    },
}

REPORT_SCHEMA: Final[Mapping[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:ironroot:demo-report:1",
    "title": "Ironroot demo report",
    "type": "object",
    "required": [
        "format",
        "version",
        "ok",
        "started",
        "seconds",
        "settings",
        "acts",
        "attacks",
        "summary",
    ],
    "additionalProperties": False,
    "properties": {
        "format": {"const": REPORT_FORMAT},
        "version": {"type": "string", "description": "ironroot's version"},
        "ok": {"type": "boolean", "description": "every act ran, every attack was refused"},
        "started": {"type": "string", "format": "date-time"},
        "seconds": {"type": "number", "minimum": 0},
        "settings": {
            "type": "object",
            "required": ["nodes", "wave_size"],
            "properties": {
                "nodes": {"type": "integer", "minimum": 1},
                "wave_size": {"type": "integer", "minimum": 1},
            },
        },
        "acts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "title", "ok", "seconds", "facts", "error"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "title": {"type": "string"},
                    "ok": {"type": "boolean"},
                    "seconds": {"type": "number", "minimum": 0},
                    "facts": {"type": "object", "description": "what the act established"},
                    "error": _ERROR,
                },
            },
        },
        "attacks": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "name",
                    "attack",
                    "layer",
                    "expected",
                    "outcome",
                    "error",
                    "evidence",
                    "seconds",
                ],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9-]+$"},
                    "attack": {"type": "string"},
                    "layer": {"type": "string"},
                    "expected": {
                        "type": "object",
                        "required": ["class", "code"],
                        "additionalProperties": False,
                        "properties": {"class": {"type": "string"}, "code": {"type": "string"}},
                    },
                    "outcome": {"enum": ["refused", "not-refused"]},
                    "error": _ERROR,
                    "evidence": {"type": "string"},
                    "seconds": {"type": "number", "minimum": 0},
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["attacks", "refused", "not_refused"],
            "additionalProperties": False,
            "properties": {
                "attacks": {"type": "integer", "minimum": 0},
                "refused": {"type": "integer", "minimum": 0},
                "not_refused": {"type": "array", "items": {"type": "string"}},
            },
        },
        "services": {
            "type": "object",
            "description": "with --serve: the URL of each service left running",
            "additionalProperties": {"type": "string"},
        },
    },
}
"""The JSON Schema of the report (module docs)."""


def build_report(
    *,
    started: dt.datetime,
    seconds: float,
    settings: Mapping[str, int],
    acts: Sequence[Mapping[str, Any]],
    attacks: Sequence[AttackResult],
    services: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report object (module docs)."""
    not_refused = [r.attack.name for r in attacks if not r.refused]
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": __version__,
        "ok": all(a["ok"] for a in acts) and not not_refused,
        "started": started.isoformat().replace("+00:00", "Z"),
        "seconds": round(seconds, 3),
        "settings": dict(settings),
        "acts": [dict(a) for a in acts],
        "attacks": [r.to_json() for r in attacks],
        "summary": {
            "attacks": len(attacks),
            "refused": len(attacks) - len(not_refused),
            "not_refused": not_refused,
        },
    }
    if services:
        report["services"] = dict(services)
    return report
