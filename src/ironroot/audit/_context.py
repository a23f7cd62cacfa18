"""What the steps of an audit check share (the steps: :mod:`ironroot.audit._verify`).

The :class:`Context` of one check: the sealed bundle, the trust, the instant judged at, and
what earlier steps established for later ones; the two ways a step ends without a verdict
(:class:`NotRun`, :class:`Skipped`); and the small readers and formatters several steps use
(strict JSON members, hex fields, times, certificate common names, statements on a log).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot._json import DECODER as STRICT_JSON
from ironroot.audit._bundle import AuditBundle, AuditIndex
from ironroot.audit._trust import AuditTrust
from ironroot.cose import Limits, TransparentStatement
from ironroot.errors import (
    AuditBundleRejected,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    VerificationFailed,
)
from ironroot.hsm import AuditRecord
from ironroot.platform import Pfm, VerifiedUpdate
from ironroot.rot import Fuses, QuoteClaims

__all__ = [
    "NOT_PRESENT",
    "SEAL_LIMITS",
    "STATEMENT",
    "Context",
    "NotRun",
    "Skipped",
    "cn",
    "hex_bytes",
    "is_transparent",
    "not_present",
    "posix_time",
    "rejected",
    "text_time",
]


SEAL_LIMITS: Final = Limits(max_bytes=256 * 1024, max_depth=8, max_items=512)
STATEMENT: Final = re.compile(
    r"(firmware/[a-z]+/statement-(0|[1-9]\d*)|pfm/statement(-[1-9]\d*)?)\.cose"
)
_MAX_JSON: Final = 64 * 1024 * 1024
"""An event list's or the journal's size (the largest, ``node/events.json``, holds up to
100,000 events)."""
_SHARED_JSON: Final = frozenset(
    {"node/record.json", "platform/config.json", "platform/state.json", "rot/fuses.json"}
)
"""The JSON members several steps read: parsed once and kept for the whole check."""
_MAX_SHARED_JSON: Final = 1024 * 1024
"""Their size: export writes a few KiB of each (it reads ``platform.json`` up to 1 MiB)."""


class NotRun(Exception):
    """A step that needs what an earlier, failed step would have given."""


class Skipped(Exception):
    """A step with nothing to check: the bundle records why (an absent EAR or HSM)."""


NOT_PRESENT: Final = "not present; the exporter's reason (its word, not checked): "
"""How a step with nothing to check starts its line when the bundle states why: the reason
is the sealing node's text, which could claim anything ("verified"), so it is quoted as such."""


def not_present(absent: Mapping[str, str], *names: str, default: str) -> Skipped:
    """The step is skipped: the part is not in the bundle, for the first reason the sealed
    index states under ``names`` (quoted as the exporter's word), else ``default``."""
    reason = next((absent[n] for n in names if absent.get(n)), None)
    return Skipped(f"not present: {default}" if reason is None else NOT_PRESENT + reason)


def rejected(code: str, detail: str) -> AuditBundleRejected:
    return AuditBundleRejected(detail, code=code)


def cn(subject: str) -> str:
    """The common name of an RFC 4514 subject (the whole subject when it has none)."""
    for part in subject.split(","):
        if part.startswith("CN="):
            return part[3:]
    return subject


def text_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def posix_time(seconds: int) -> str:
    try:
        return text_time(dt.datetime.fromtimestamp(seconds, dt.UTC))
    except (OverflowError, OSError, ValueError):
        return f"@{seconds}"


@dataclass
class Context:
    bundle: AuditBundle
    index: AuditIndex
    trust: AuditTrust
    claims: QuoteClaims
    at: dt.datetime
    fuses: Fuses | None = None
    pfm: Pfm | None = None
    verified: dict[str, VerifiedUpdate] = field(default_factory=dict)
    parsed: dict[str, Any] = field(default_factory=dict)
    hsm_releases: dict[bytes, AuditRecord] | None = None
    hsm_ids: set[bytes] = field(default_factory=set)
    ear_id: str | None = None
    """The id of the EAR the ``attestation`` step verified and bound to the sealing RoT."""
    issued_on: dict[str, str] = field(default_factory=dict)
    """The ids of the EARs the node's credentials were issued on that the ``attestation``
    step verified and bound to the sealing RoT as well (other than the latest), each with
    the status it states."""
    ear_absent: bool = False
    hsm_records: dict[str, Any] | None = None
    """What :attr:`~ironroot.audit.AuditReport.hsm_records` says (the ``hsm`` step)."""
    hsm_unbound: str | None = None
    """Why the ``hsm`` step found nothing signed tying the HSM to the node (a caveat)."""
    signed_times: list[tuple[int, str]] = field(default_factory=list)
    """Times (POSIX seconds) a party the trust names signed, each with what signed it:
    only what a step verified (``_signed_bound`` in :mod:`ironroot.audit._verify`)."""

    def signed(self, seconds: int, what: str) -> None:
        self.signed_times.append((seconds, what))

    def member(self, name: str) -> bytes:
        data = self.bundle.members.get(name)
        if data is None:
            reason = self.index.absent.get(name, "it is not in the bundle")
            raise VerificationFailed(f"{name} is absent: {reason}", code="member-absent")
        return data

    def json(self, name: str) -> Any:
        """A JSON member, read strictly (UTF-8; a member named twice in one object, ``NaN``
        or a number past a double's range is ``MalformedInput``: :mod:`ironroot._json`).
        Parsed, a byte of ``[],`` takes some 20 in memory, so what one check holds stays
        bounded whatever the bundle carries: the members several steps read
        (``_SHARED_JSON``) are at most 1 MiB each and parsed once; an event list or the
        journal is at most ``_MAX_JSON`` bytes, parsed for the one step that reads it and
        not kept (seven members of 64 MiB kept took some 10 GB)."""
        if name in self.parsed:
            return self.parsed[name]
        data = self.member(name)
        shared = name in _SHARED_JSON
        limit = _MAX_SHARED_JSON if shared else _MAX_JSON
        if len(data) > limit:
            raise LimitExceeded(f"{name} is over {limit} bytes")
        try:
            value = STRICT_JSON.decode(data.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"{name} is not JSON: {str(exc)[:200]}") from exc
        if shared:
            self.parsed[name] = value
        return value

    def state(self) -> dict[str, Any]:
        value = self.json("platform/state.json")
        if not isinstance(value, dict):
            raise MalformedInput("platform/state.json is not the platform's state")
        return value

    def statement_members(self, component: str) -> tuple[tuple[str, bytes], ...]:
        """The statements ``component``'s image was accepted with, in their export order,
        each with its member name (``firmware/<component>/statement-<n>.cose``, ``n`` written
        as export writes it: no leading zero, so no two members share a number)."""
        found = []
        pattern = re.compile(rf"firmware/{component}/statement-(0|[1-9]\d{{0,3}})\.cose")
        for name, data in self.bundle.members.items():
            if match := pattern.fullmatch(name):
                found.append((int(match.group(1)), name, data))
        return tuple((name, data) for _n, name, data in sorted(found))

    def statements(self, component: str) -> tuple[bytes, ...]:
        """The statements ``component``'s image was accepted with, in their export order."""
        return tuple(data for _name, data in self.statement_members(component))

    def image(self, component: str) -> bytes:
        return self.member(f"firmware/{component}/bundle.bin")


def hex_bytes(value: object, what: str, size: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        data = None
    if data is None or (size is not None and len(data) != size):
        raise MalformedInput(f"{what} is not {size or 'some'}-byte hex")
    return data


def is_transparent(data: bytes) -> bool:
    try:
        TransparentStatement.parse(data)
    except IronrootError:
        return False
    return True
