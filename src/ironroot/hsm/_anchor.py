"""The anchor: which sealed store is the latest, and how long the audit log is, bound to the
root of trust's monotonic counter.

A sealed store opens with the device's sealing secret, so nobody outside can forge one; but an
older copy opens just as well. Restoring one would bring back deleted keys and removed
identities, clear a lockout and undo a zeroization; cutting the audit log back to the head the
older store recorded would hide everything since. The anchor closes both holes. It is a small
CBOR document, sealed like the store (``_storage.seal``)::

    {"type": "ironroot-hsm-anchor", "hsm": bstr, "counter": uint, "store": uint,
     "zeroized": bool, "audit": {"size": uint, "head": bstr}, ? "rot_counter": tstr}

``hsm`` is the id of the HSM whose store it vouches for: every HSM on a device seals with the
device's one secret, so without it another HSM's anchor whose counter and generation happen
to fit would vouch for an older store of this one. ``rot_counter`` (present when the counter
has a name, as the root of trust's ``Device(dir).counter(name)`` has) names the counter the
anchor was committed on: without it a copy of another HSM's *whole* files — store, anchor and
log, each consistent with the others — taken when that HSM's counter read what this one's
reads now, opened in this HSM's place (that HSM as it was, its deleted keys back). An anchor
without the member (written before it existed, or on a counter without a name) is accepted;
the next commit writes it.

``counter`` is the value the root of trust's counter takes when this anchor is committed,
``store`` the generation of the store it vouches for (each store write takes the next counter
value as its generation), ``audit`` the length and head hash of the audit log at that moment,
``zeroized`` whether the HSM was zeroized.

**Commit** (every store write, and every audit flush — each security event is one): append
and fsync the audit records; write the store (when it changed) with generation ``c + 1``;
write the anchor with counter ``c + 1``; increment the counter to ``c + 1``. A crash at any
point leaves one of three states, which :func:`check_anchor` accepts and rolls forward, and
nothing else:

=====================================  ==================================================
state found at power-up (counter v)    meaning
=====================================  ==================================================
anchor v, store = anchor's store       clean
anchor v, store generation v + 1       crashed after the store write: roll forward
anchor v + 1, store = anchor's store   crashed before the increment: roll forward
=====================================  ==================================================

Anything else is a rollback or an edit and raises ``StoreRolledBack``: an anchor behind the
counter (an older copy), an anchor or store generation that does not fit, a missing anchor
beside a store. A zeroized anchor refuses to open with ``HsmZeroized`` (the store was
destroyed; a copy of it restored is still refused). The audit log must then reach the anchor's
head (``AuditChainBroken`` otherwise: records were cut).

A new HSM initialized beside a zeroized anchor continues its log (``Hsm.initialize``). On the
counter the anchor was committed on, the anchor must be at the counter's value; on a new
counter (the files moved to a counter of their own, which reads 0), the counter the anchor
names (``rot_counter``, read through ``DeviceCounter.sibling``) must still read its value, or
one less: an older zeroized anchor put back with its older log is ``StoreRolledBack``.

Cost: a commit adds one anchor write (fsync of file and directory) and one counter increment
to the audit fsync; docs/hsm.md has the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ironroot.cose import Limits, decode_cbor, encode_cbor
from ironroot.errors import HsmZeroized, MalformedInput, SealedStoreError, StoreRolledBack
from ironroot.hsm._storage import seal, unseal

__all__ = [
    "ANCHOR_TYPE",
    "Anchor",
    "check_anchor",
    "counter_name",
    "open_anchor",
    "seal_anchor",
]

ANCHOR_TYPE: Final = "ironroot-hsm-anchor"
_LIMITS: Final = Limits(max_bytes=4096, max_depth=4, max_items=16)
_MEMBERS: Final = frozenset({"type", "hsm", "counter", "store", "zeroized", "audit"})
_MAX_COUNTER_NAME: Final = 64


def counter_name(counter: object) -> str:
    """The name of a root-of-trust counter (``DeviceCounter.name``), or ``""`` for a counter
    without one (``MemoryCounter``)."""
    name = getattr(counter, "name", "")
    return name if isinstance(name, str) and 0 < len(name) <= _MAX_COUNTER_NAME else ""


def _uint(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MalformedInput("an anchor's counters are non-negative integers")
    return value


@dataclass(frozen=True, slots=True)
class Anchor:
    """One committed anchor (module docs)."""

    counter: int
    store: int
    audit_size: int
    audit_head: bytes
    zeroized: bool = False
    hsm: bytes = b""
    rot_counter: str = ""

    def encode(self) -> bytes:
        value: dict[str, object] = {
            "type": ANCHOR_TYPE,
            "hsm": self.hsm,
            "counter": self.counter,
            "store": self.store,
            "zeroized": self.zeroized,
            "audit": {"size": self.audit_size, "head": self.audit_head},
        }
        if self.rot_counter:
            value["rot_counter"] = self.rot_counter
        return encode_cbor(value)

    @classmethod
    def decode(cls, plaintext: bytes) -> Anchor:
        value = decode_cbor(plaintext, _LIMITS)
        if (
            not isinstance(value, dict)
            or value.get("type") != ANCHOR_TYPE
            or set(value) - {"rot_counter"} != _MEMBERS
        ):
            raise MalformedInput("not an HSM anchor")
        audit = value["audit"]
        if not isinstance(audit, dict) or set(audit) != {"size", "head"}:
            raise MalformedInput("an anchor's audit is a map of size and head")
        head = audit["head"]
        if not isinstance(head, bytes) or len(head) != 32:
            raise MalformedInput("an anchor's audit head is a 32-byte hash")
        zeroized = value["zeroized"]
        if not isinstance(zeroized, bool):
            raise MalformedInput("an anchor's zeroized flag is a bool")
        hsm = value["hsm"]
        if not isinstance(hsm, bytes) or not 0 < len(hsm) <= 64:
            raise MalformedInput("an anchor's hsm is the HSM's id (bytes)")
        rot_counter = value.get("rot_counter", "")
        if "rot_counter" in value and (
            not isinstance(rot_counter, str) or not 0 < len(rot_counter) <= _MAX_COUNTER_NAME
        ):
            raise MalformedInput("an anchor's rot_counter is a counter's name (text)")
        return cls(
            _uint(value["counter"]),
            _uint(value["store"]),
            _uint(audit["size"]),
            head,
            zeroized,
            hsm,
            rot_counter,
        )


def seal_anchor(secret: bytes, anchor: Anchor) -> bytes:
    return seal(secret, anchor.encode())


def open_anchor(secret: bytes, sealed: bytes) -> Anchor:
    """Unseal and parse an anchor (``SealedStoreError`` when it does not open or parse)."""
    plaintext = unseal(secret, sealed)
    try:
        return Anchor.decode(plaintext)
    except MalformedInput as exc:
        raise SealedStoreError(
            f"the sealed anchor opened but does not parse: {exc.detail}"
        ) from exc


def check_anchor(
    anchor: Anchor | None,
    *,
    counter: int,
    store: int | None,
    hsm: bytes | None = None,
    rot_counter: str = "",
) -> bool:
    """Whether the store of generation ``store`` (``None``: no store) with ``anchor`` is the
    latest for a root-of-trust counter reading ``counter``; ``True`` when a crash left a commit
    half done and power-up must finish it (module docs). Raises ``StoreRolledBack`` or
    ``HsmZeroized`` otherwise; ``hsm``, the store's HSM id, must be the anchor's, and an
    anchor that names its counter must name ``rot_counter``, the one read."""
    if anchor is None:
        if store is None and counter == 0:
            return False
        cut_short = (
            " (an initialize cut short before its first commit leaves this: initialize the HSM "
            "again)"
            if counter == 0
            else ""
        )
        raise StoreRolledBack(
            "the key store's anchor is missing: this is not the store the root of trust's "
            f"counter ({counter}) vouches for{cut_short}"
        )
    if hsm is not None and anchor.hsm != hsm:
        raise StoreRolledBack(
            "the anchor is another HSM's: it does not vouch for this HSM's key store"
        )
    if anchor.rot_counter and anchor.rot_counter != rot_counter:
        raise StoreRolledBack(
            f"the anchor was committed on the root of trust's counter {anchor.rot_counter!r}, "
            f"not on this HSM's ({rot_counter or 'unnamed'}): these are another HSM's files"
        )
    if anchor.counter < counter:
        raise StoreRolledBack(
            f"the anchor is older than the root of trust's counter ({anchor.counter} < "
            f"{counter}): an earlier copy of the HSM's files was restored"
        )
    if anchor.counter > counter + 1:
        raise StoreRolledBack(
            f"the anchor is ahead of the root of trust's counter ({anchor.counter} > "
            f"{counter} + 1): it belongs to another counter, or the counter was rolled back"
        )
    if anchor.zeroized:
        raise HsmZeroized("the HSM was zeroized: no key material is left")
    if store is None:
        raise StoreRolledBack("the anchor names a key store that is not there")
    pending = anchor.counter == counter + 1
    if store == anchor.store:
        return pending
    if not pending and store == anchor.counter + 1:
        return True
    raise StoreRolledBack(
        f"the key store is generation {store}; the anchor vouches for generation "
        f"{anchor.store}: an older or a foreign copy of the store was restored"
    )
