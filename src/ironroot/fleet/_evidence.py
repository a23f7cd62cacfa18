"""A node's evidence for admission: its RoT quote bound to the keys it asks credentials for,
and each SPDM device's signed measurements, all answering the verifier's fresh nonce.

The binding. The verifier issues a 32-byte single-use nonce. The node makes one key per plane
it asks a credential for (ECDSA P-384) and has its RoT quote::

    report data = nonce ‖ SHA-256( "ironroot-fleet-admission/1" ‖ 0x00 ‖ CBOR(keys) )

where ``keys`` is the map plane → SubjectPublicKeyInfo (DER) of each CSR (``{"control":
spki, "data": spki}``, deterministic CBOR, RFC 8949 §4.2.1). This is the keyed binding of the
``ironroot`` evidence format (``nonce ‖ SHA-256(key)``, :data:`EVIDENCE_FORMATS`) with the
label and the planes' keys as the key: a quote answering this nonce for other keys fails with
``KeyBindingMismatch``, one answering another nonce with ``StaleNonce``; the label keeps an
admission quote from ever being one for another protocol. Each device's SPDM
GET_MEASUREMENTS carries the nonce itself (its format binds 32 bytes exactly): the devices
answer *this* challenge, the RoT binds it to the keys.

The format (deterministic CBOR; at most 1 MiB, a quote or device evidence at most 256 KiB,
at most 16 devices)::

    node-evidence = {
      "format": "ironroot-node-evidence/1",
      "node": tstr,                     ; the node id the evidence is for
      "quote": bstr,                    ; ironroot-quote/1 (docs/rot.md), report data above
      "devices": { * tstr => bstr },    ; device name -> ironroot-spdm-evidence/1
    }

:func:`collect_evidence` is the node's side: the quote of its RoT over what it last booted
and a measurement session with every SPDM device (:meth:`ironroot.platform.Platform.measure`
with the nonce). A device whose session could not run (its flash does not hold an image the
RoT wrote) has no entry, and the verifier finds it missing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import IronrootError, MalformedEvidence
from ironroot.fleet._credentials import PLANES

if TYPE_CHECKING:
    from ironroot.fleet._fleet import Fleet
    from ironroot.rot import Device

__all__ = [
    "BINDING_LABEL",
    "NODE_EVIDENCE_FORMAT",
    "NodeEvidence",
    "binding_key",
    "collect_evidence",
    "report_data",
]

NODE_EVIDENCE_FORMAT: Final = "ironroot-node-evidence/1"
BINDING_LABEL: Final = b"ironroot-fleet-admission/1"
NONCE_SIZE: Final = 32
MAX_EVIDENCE: Final = 1024 * 1024
MAX_PART: Final = 256 * 1024
MAX_DEVICES: Final = 16
_LIMITS: Final = Limits(max_bytes=MAX_EVIDENCE, max_depth=4, max_items=64)


def binding_key(keys: Mapping[str, bytes]) -> bytes:
    """What the quote binds beside the nonce: the label, 0x00 and CBOR(plane → SPKI DER)."""
    if not keys or not set(keys) <= set(PLANES):
        raise MalformedEvidence(f"credential keys are given per plane ({', '.join(PLANES)})")
    if not all(isinstance(v, bytes) and v for v in keys.values()):
        raise MalformedEvidence("a credential key is a DER SubjectPublicKeyInfo")
    return BINDING_LABEL + b"\x00" + encode_cbor(dict(keys))


def report_data(nonce: bytes, keys: Mapping[str, bytes]) -> bytes:
    """The quote's report data for ``nonce`` and the planes' ``keys`` (module docs)."""
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        raise MalformedEvidence(f"an admission nonce is {NONCE_SIZE} bytes")
    return nonce + hashlib.sha256(binding_key(keys)).digest()


@dataclass(frozen=True, slots=True)
class NodeEvidence:
    """A node's evidence (module docs)."""

    node: str
    quote: bytes = field(repr=False)
    devices: Mapping[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.node, str) or not 1 <= len(self.node) <= 64:
            raise MalformedEvidence("node evidence names its node (1-64 characters)")
        if not isinstance(self.quote, bytes) or not 0 < len(self.quote) <= MAX_PART:
            raise MalformedEvidence(f"node evidence carries a quote of 1 to {MAX_PART} bytes")
        devices = dict(self.devices)
        if len(devices) > MAX_DEVICES:
            raise MalformedEvidence(f"node evidence carries at most {MAX_DEVICES} devices")
        for name, data in devices.items():
            if not isinstance(name, str) or not 1 <= len(name) <= 32:
                raise MalformedEvidence("a device name is 1-32 characters")
            if not isinstance(data, bytes) or not 0 < len(data) <= MAX_PART:
                raise MalformedEvidence(f"device {name}'s evidence is 1 to {MAX_PART} bytes")
        object.__setattr__(self, "devices", MappingProxyType(devices))

    def encode(self) -> bytes:
        return encode_cbor(
            {
                "format": NODE_EVIDENCE_FORMAT,
                "node": self.node,
                "quote": self.quote,
                "devices": dict(self.devices),
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> NodeEvidence:
        """Parse node evidence (``MalformedEvidence`` for anything else)."""
        if not isinstance(data, bytes) or len(data) > MAX_EVIDENCE:
            raise MalformedEvidence(f"node evidence is at most {MAX_EVIDENCE} bytes")
        try:
            doc = decode_cbor(data, _LIMITS)
        except IronrootError as exc:
            raise MalformedEvidence(f"node evidence is not CBOR: {exc.detail}") from exc
        if not isinstance(doc, dict) or doc.get("format") != NODE_EVIDENCE_FORMAT:
            raise MalformedEvidence(f"not {NODE_EVIDENCE_FORMAT} evidence")
        if set(doc) != {"format", "node", "quote", "devices"}:
            raise MalformedEvidence("node evidence has missing or unknown members")
        devices = doc["devices"]
        if not isinstance(devices, dict):
            raise MalformedEvidence("node evidence devices are a map")
        evidence = cls(doc["node"], doc["quote"], devices)
        if evidence.encode() != data:
            raise MalformedEvidence("node evidence is not deterministically encoded")
        return evidence


def collect_evidence(
    fleet: Fleet,
    node_id: str,
    *,
    nonce: bytes,
    keys: Mapping[str, bytes],
    now: dt.datetime,
    rot: Device | None = None,
) -> NodeEvidence:
    """The node's answer to ``nonce`` for the credential ``keys`` (plane → SPKI DER): its
    RoT's quote and every SPDM device's measurements (module docs). ``rot`` is the node's
    RoT device (:meth:`Fleet.rot`) when the caller holds it open for the whole attestation."""
    device = rot if rot is not None else fleet.rot(node_id)
    quote = device.quote(report_data(nonce, keys))
    measured = fleet.node(node_id).measure(now=now, nonce=nonce, device=device)
    devices = {m.name: m.evidence for m in measured if m.evidence is not None}
    return NodeEvidence(node_id, quote, devices)
