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
    ``True`` when the workload can be debugged (SNP policy DEBUG, TDX TDATTRIBUTES.DEBUG).
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

The mappings are read-only views; :meth:`EvidenceClaims.to_dict` gives a JSON-ready copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["EvidenceClaims", "JsonReady", "json_ready"]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "svns", MappingProxyType(dict(self.svns)))
        object.__setattr__(self, "identity", MappingProxyType(dict(self.identity)))
        raw = self.raw if isinstance(self.raw, JsonReady) else json_ready(self.raw)
        object.__setattr__(self, "raw", MappingProxyType(raw))

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
        }
