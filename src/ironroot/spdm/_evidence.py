"""SPDM evidence: one measured session, recorded so a verifier can check it offline.

A platform RoT or BMC measures a device with a verifier's nonce (:meth:`Requester.evidence`) and
hands the verifier this record: deterministic CBOR::

    {"format": "ironroot-spdm-evidence/1",
     "vca": [GET_VERSION, VERSION, GET_CAPABILITIES, CAPABILITIES,
             NEGOTIATE_ALGORITHMS, ALGORITHMS],          ; the six messages, bytes as sent
     "chain": bstr,                                      ; the slot's SPDM certificate chain
     "request": bstr,                                    ; the signed GET_MEASUREMENTS
     "response": bstr}                                   ; MEASUREMENTS with its signature

Everything the responder signed is in it: L1/L2 is the VCA messages, the request and the
response up to its signature, so the record needs no trust in whoever carried it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import IronrootError, MalformedSpdm

__all__ = ["SPDM_EVIDENCE_FORMAT", "SpdmEvidence"]

SPDM_EVIDENCE_FORMAT: Final = "ironroot-spdm-evidence/1"
_VCA_MESSAGES: Final = 6
_LIMITS: Final = Limits(max_bytes=1024 * 1024, max_depth=3, max_items=16)
_MEMBERS: Final = frozenset(("format", "vca", "chain", "request", "response"))


@dataclass(frozen=True, slots=True)
class SpdmEvidence:
    """The recorded session (see the module documentation)."""

    vca: tuple[bytes, ...]
    certificate_chain: bytes
    request: bytes
    response: bytes

    def __post_init__(self) -> None:
        if len(self.vca) != _VCA_MESSAGES or not all(isinstance(m, bytes) for m in self.vca):
            raise MalformedSpdm(f"SPDM evidence holds the {_VCA_MESSAGES} VCA messages")
        for name in ("certificate_chain", "request", "response"):
            if not isinstance(getattr(self, name), bytes):
                raise MalformedSpdm(f"SPDM evidence {name} must be bytes")

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "format": SPDM_EVIDENCE_FORMAT,
                "vca": list(self.vca),
                "chain": self.certificate_chain,
                "request": self.request,
                "response": self.response,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> SpdmEvidence:
        try:
            value = decode_cbor(data, _LIMITS)
        except IronrootError as exc:
            raise MalformedSpdm(f"SPDM evidence is not valid CBOR: {exc.detail}") from exc
        if not isinstance(value, dict) or set(value) != _MEMBERS:
            raise MalformedSpdm("SPDM evidence is a map of format, vca, chain, request, response")
        if value["format"] != SPDM_EVIDENCE_FORMAT:
            raise MalformedSpdm(f"unknown SPDM evidence format {value['format']!r}")
        vca = value["vca"]
        if not isinstance(vca, list):
            raise MalformedSpdm("SPDM evidence vca must be a list")
        return cls(tuple(vca), value["chain"], value["request"], value["response"])
