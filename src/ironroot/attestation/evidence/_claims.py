"""One claims model for every kind of verified evidence.

Whatever produced the evidence (an AMD SEV-SNP report, an Intel TDX quote, and later this
project's RoT quote or an SPDM measurement transcript), a verifier turns it into one
:class:`EvidenceClaims` value, so that appraisal policies are written once against one shape:

``format``
    the evidence format name, as in the format table (``"snp"``, ``"tdx"``, ...).
``measurements``
    name → digest bytes of everything measured (SNP ``measurement``, ``host_data``, ...; TDX
    ``mrtd``, ``rtmr0`` … ``rtmr3``, ``mrseam``, ...). Names are lower-case snake case.
``report_data``
    the caller-chosen bytes bound into the evidence (nonce, key hash), exactly as signed.
``debug``
    ``True`` when the workload can be debugged (SNP policy DEBUG, TDX TDATTRIBUTES.DEBUG),
    or when the evidence does not prove it cannot be (SPDM evidence without a raw DeviceMode
    block that shows debug off): ``False`` is a claim the evidence makes, never a default.
    A verifier reports it; appraisal rejects it.
``svns``
    name → security version number (SNP TCB components and ``guest_svn``; TDX ``tee_tcb_svn``
    bytes, QE and PCK TCB components).
``identity``
    name → text identifying the platform (hex for binary identifiers: SNP ``chip_id``, TDX PCK
    ``fmspc``; plain text for names such as ``product`` or ``signing_key``).
``signer``
    RFC 4514 subject of the certificate whose key signed the evidence (VCEK/VLEK, PCK).
``raw``
    every parsed field, JSON-ready: bytes as lower-case hex, integers as integers, nested
    objects as dicts.
``checks``
    the named checks the verification ran, in order, each passed (a failed check raises);
    and ``not_checked``: the checks that could not run and why (no nonce given, no CRL, no
    collateral), so that nothing can pass by omission.
``valid_until``
    when what the verification relied on stops holding: the first ``notAfter`` of the
    certificates it chained (for a RoT quote its two DICE chains and the vendor roots they
    reached; for SPDM evidence the device's path up to its trusted root) and the first
    ``nextUpdate`` of the fresh collateral it used (CRLs, Intel's TCB Info and QE Identity);
    ``None`` when the verifier does not say. An EAR
    appraising these claims expires then at the latest.

The mappings are read-only views; :meth:`EvidenceClaims.to_dict` gives a JSON-ready copy.

:class:`CheckLog` is how verifiers record their checks: ``with log.step("signature"): ...``
records a passed check when the block completes, or a failed one (and names the check on the
typed error, ``error.check``) when it raises.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ironroot.errors import IronrootError

__all__ = ["Check", "CheckLog", "EvidenceClaims", "JsonReady", "NotChecked", "json_ready"]


@dataclass(frozen=True, slots=True)
class Check:
    """One named verification check that ran: ``ok`` and a short ``detail``."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "ok": self.ok}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class NotChecked:
    """A check that did not run, and why (e.g. ``revocation``: no CRL given)."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason}


class _Step:
    """What a running :meth:`CheckLog.step` block may say about the check."""

    __slots__ = ("detail",)

    def __init__(self, detail: str) -> None:
        self.detail = detail


class CheckLog:
    """The checks one verification ran, in order (see the module documentation)."""

    __slots__ = ("_checks", "_skipped")

    def __init__(self) -> None:
        self._checks: list[Check] = []
        self._skipped: list[NotChecked] = []

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[_Step]:
        """Run a check: passed when the block completes; failed when it raises a typed error,
        which is then named by ``error.check`` (unless an inner step already named it). The
        block may set the yielded object's ``detail`` to say what passed."""
        note = _Step(detail)
        try:
            yield note
        except IronrootError as exc:
            if exc.check is None:
                exc.check = name
            self._checks.append(Check(name, False, f"{exc.code}: {exc.detail}"))
            raise
        self._checks.append(Check(name, True, note.detail))

    def failed(self, name: str, error: IronrootError) -> None:
        """Record a check that failed outside a :meth:`step` block (and name it on ``error``)."""
        if error.check is None:
            error.check = name
        self._checks.append(Check(name, False, f"{error.code}: {error.detail}"))

    def passed(self, name: str, detail: str = "") -> None:
        """Record a check that passed outside a :meth:`step` block."""
        self._checks.append(Check(name, True, detail))

    def skip(self, name: str, reason: str) -> None:
        """Record a check that could not run."""
        self._skipped.append(NotChecked(name, reason))

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(self._checks)

    @property
    def not_checked(self) -> tuple[NotChecked, ...]:
        return tuple(self._skipped)

    def ran(self, name: str) -> bool:
        """True when a check of that name passed."""
        return any(c.name == name and c.ok for c in self._checks)


class JsonReady(dict[str, Any]):
    """A mapping its producer guarantees is already JSON-ready (text keys; bytes as hex):
    :class:`EvidenceClaims` keeps it without converting it again (a hot-path saving)."""


def json_ready(value: object) -> Any:
    """``value`` with bytes as lower-case hex and mappings/sequences copied into dicts/lists."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    raise TypeError(f"not JSON-ready: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class EvidenceClaims:
    """The verified claims of one piece of evidence (see the module documentation)."""

    format: str
    measurements: Mapping[str, bytes]
    report_data: bytes
    debug: bool
    svns: Mapping[str, int]
    identity: Mapping[str, str]
    signer: str
    raw: Mapping[str, Any] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()
    not_checked: tuple[NotChecked, ...] = ()
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "svns", MappingProxyType(dict(self.svns)))
        object.__setattr__(self, "identity", MappingProxyType(dict(self.identity)))
        raw = self.raw if isinstance(self.raw, JsonReady) else json_ready(self.raw)
        object.__setattr__(self, "raw", MappingProxyType(raw))

    def with_checks(self, log: CheckLog) -> EvidenceClaims:
        """These claims with the checks ``log`` recorded."""
        return EvidenceClaims(
            format=self.format,
            measurements=self.measurements,
            report_data=self.report_data,
            debug=self.debug,
            svns=self.svns,
            identity=self.identity,
            signer=self.signer,
            raw=JsonReady(self.raw),
            checks=log.checks,
            not_checked=log.not_checked,
            valid_until=self.valid_until,
        )

    def with_measurements(
        self, measurements: Mapping[str, bytes], svns: Mapping[str, int]
    ) -> EvidenceClaims:
        """These claims with ``measurements`` and ``svns`` in place of theirs (a verifier that
        names the blocks by a layout it knows); the rest as they are, ``raw`` not converted to
        JSON again (it is already)."""
        return EvidenceClaims(
            format=self.format,
            measurements=measurements,
            report_data=self.report_data,
            debug=self.debug,
            svns=svns,
            identity=self.identity,
            signer=self.signer,
            raw=JsonReady(self.raw),
            checks=self.checks,
            not_checked=self.not_checked,
            valid_until=self.valid_until,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every claim (bytes as lower-case hex)."""
        return {
            "format": self.format,
            "measurements": json_ready(self.measurements),
            "report_data": self.report_data.hex(),
            "debug": self.debug,
            "svns": dict(self.svns),
            "identity": dict(self.identity),
            "signer": self.signer,
            "raw": json_ready(self.raw),
            "checks": [c.to_dict() for c in self.checks],
            "not_checked": [c.to_dict() for c in self.not_checked],
        }
