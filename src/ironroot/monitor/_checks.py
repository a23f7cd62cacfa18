"""Per-entry checks the monitor runs on each new entry it verified: one-time key uses.

A one-time signature scheme (LMS: each leaf ``q`` of a key signs once) is broken by its
signer, not by its math: two signatures of one leaf over different messages let anyone forge
that leaf's signatures, and each verifies on its own. A log that names each such signature's
key and leaf (a firmware manifest statement's ``ironroot-lms-leaves`` header) lets a monitor
see a leaf used twice, across every log it follows: the one thing a transparency monitor is
for with such keys.

The monitor layer does not know what an entry holds: an :class:`EntryCheck` reads the
one-time key uses (:class:`OneTimeKeyUse`) of an entry, or raises an
:class:`~ironroot.errors.IronrootError` when the entry names some that cannot be read (the
monitor reports that, :data:`MALFORMED`, rather than skipping the entry). ``ironroot monitor``
wires in the LMS leaf check (a layer above both). The monitor keeps each use's first entry
(origin, index, signature hash) in its state (:class:`~ironroot.monitor.MonitorStore`), and
reports a later entry whose use of one key's leaf has another signature hash (:data:`REUSED`);
the same signature again (one statement registered twice, or on two logs) is one use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from ironroot.errors import MalformedInput

__all__ = ["MALFORMED", "REUSED", "EntryCheck", "KeyReuse", "OneTimeKeyUse"]

REUSED: Final = "-reused"
"""An event of a check of kind ``k`` whose entry uses a one-time key already used for another
signature: ``k-reused`` (``lms-leaf-reused``)."""
MALFORMED: Final = "-malformed"
"""An event of a check of kind ``k`` whose entry names one-time key uses it cannot read:
``k-malformed`` (``lms-leaf-malformed``)."""

_MAX_KEY_HASH: Final = 64
_MAX_LEAF: Final = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class OneTimeKeyUse:
    """One signature by a one-time key: the key's hash, the leaf (one-time key) it used, and
    the hash of the signature (what makes two uses one)."""

    key_hash: bytes
    leaf: int
    signature_hash: bytes

    def __post_init__(self) -> None:
        for name in ("key_hash", "signature_hash"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not 1 <= len(value) <= _MAX_KEY_HASH:
                raise MalformedInput(f"a one-time key use's {name} is 1 to 64 bytes")
        if isinstance(self.leaf, bool) or not isinstance(self.leaf, int):
            raise MalformedInput("a one-time key use's leaf is an integer")
        if not 0 <= self.leaf <= _MAX_LEAF:
            raise MalformedInput(f"a one-time key use's leaf is 0 to {_MAX_LEAF}")


@dataclass(frozen=True, slots=True)
class KeyReuse:
    """A one-time key's leaf used for another signature: where it was used first (the earliest
    use with another signature the monitor keeps) and where again."""

    kind: str
    key_hash: bytes
    leaf: int
    first_origin: str
    first_index: int
    first_signature_hash: bytes
    origin: str
    index: int
    signature_hash: bytes


class EntryCheck(Protocol):
    """What the monitor runs on each new entry of a log (``Monitor(checks=...)``)."""

    @property
    def kind(self) -> str:
        """What the check reads (``"lms-leaf"``): its events are ``<kind>-reused`` and
        ``<kind>-malformed``, and its uses are kept apart from other checks'."""
        ...

    @property
    def label(self) -> str:
        """What the uses are called in a sentence (``"LMS leaves"``)."""
        ...

    def uses(self, entry: bytes) -> tuple[OneTimeKeyUse, ...]:
        """The one-time key uses ``entry`` names (``()`` for none, or an entry of another
        kind); an :class:`~ironroot.errors.IronrootError` for one that names some and cannot
        be read."""
        ...
