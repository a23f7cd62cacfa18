"""The platform state the RoT journals: a typed view of the CBOR map in each journal record.

The state is small and complete (see ``docs/platform.md``, "Journal"): for each component the
active slot, what each slot and the recovery region hold, the anti-rollback floor and the
healthy-boot count; the PFM slots likewise; the update in progress and its step; the SHA-256 of
the node's configuration. :meth:`NodeState.to_cbor` and :meth:`NodeState.from_cbor` are exact
inverses; ``from_cbor`` refuses anything else with ``StorageError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot.errors import StorageError

__all__ = ["STEPS", "ComponentState", "Image", "NodeState", "Pending"]

STEPS: Final = (
    "receive",
    "stage",
    "verify",
    "write",
    "verify-write",
    "activate",
    "reboot",
    "health",
    "commit",
)
"""The update's steps, in order; each is a fault-injection point (``--inject STEP``)."""


def _bad(what: str) -> StorageError:
    return StorageError(f"the platform journal's state is malformed: {what}")


def _bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise _bad(what)
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(what)
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _bad(what)
    return value


@dataclass(frozen=True, slots=True)
class Image:
    """A firmware image the RoT wrote and accepted: its digest, version, SVN and the
    content-addressed evidence (statements) it was accepted with."""

    sha384: bytes
    version: str
    svn: int
    evidence: str

    def to_cbor(self) -> dict[str, Any]:
        return {
            "sha384": self.sha384,
            "version": self.version,
            "svn": self.svn,
            "evidence": self.evidence,
        }

    @classmethod
    def from_cbor(cls, doc: object) -> Image | None:
        if doc is None:
            return None
        if not isinstance(doc, dict):
            raise _bad("image")
        return cls(
            _bytes(doc.get("sha384"), 48, "image digest"),
            _str(doc.get("version"), "image version"),
            _int(doc.get("svn"), "image svn"),
            _str(doc.get("evidence"), "image evidence"),
        )


@dataclass(frozen=True, slots=True)
class ComponentState:
    """One component (or the PFM): its slots, which is active, the recovery image, whether
    the other slot is a known-good fallback, its SVN floor and healthy boots since the last
    update."""

    active: int
    slots: tuple[Image | None, Image | None]
    recovery: Image | None
    fallback: bool = False
    min_svn: int = 0
    healthy: int = 0

    @property
    def image(self) -> Image | None:
        return self.slots[self.active]

    @property
    def inactive(self) -> int:
        return 1 - self.active

    def with_slot(self, index: int, image: Image | None) -> ComponentState:
        slots = list(self.slots)
        slots[index] = image
        return dataclasses.replace(self, slots=(slots[0], slots[1]))

    def to_cbor(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "slots": [s.to_cbor() if s is not None else None for s in self.slots],
            "recovery": self.recovery.to_cbor() if self.recovery is not None else None,
            "fallback": self.fallback,
            "min_svn": self.min_svn,
            "healthy": self.healthy,
        }

    @classmethod
    def from_cbor(cls, doc: object) -> ComponentState:
        if not isinstance(doc, dict):
            raise _bad("component")
        slots = doc.get("slots")
        if not isinstance(slots, list) or len(slots) != 2:
            raise _bad("slots")
        active = _int(doc.get("active"), "active slot")
        if active not in (0, 1) or not isinstance(doc.get("fallback"), bool):
            raise _bad("active slot")
        return cls(
            active,
            (Image.from_cbor(slots[0]), Image.from_cbor(slots[1])),
            Image.from_cbor(doc.get("recovery")),
            bool(doc["fallback"]),
            _int(doc.get("min_svn"), "min svn"),
            _int(doc.get("healthy"), "healthy boots"),
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """The update in progress: its component, the step it reached, the image and target slot,
    and whether it carries a new PFM (written to the PFM's inactive slot)."""

    component: str
    step: str
    image: Image
    slot: int
    pfm: Image | None = None

    def to_cbor(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "step": self.step,
            "image": self.image.to_cbor(),
            "slot": self.slot,
            "pfm": self.pfm.to_cbor() if self.pfm is not None else None,
        }

    @classmethod
    def from_cbor(cls, doc: object) -> Pending | None:
        if doc is None:
            return None
        if not isinstance(doc, dict):
            raise _bad("pending update")
        image = Image.from_cbor(doc.get("image"))
        step = _str(doc.get("step"), "step")
        if image is None or step not in STEPS:
            raise _bad("pending update")
        slot = _int(doc.get("slot"), "slot")
        if slot not in (0, 1):
            raise _bad("slot")
        return cls(
            _str(doc.get("component"), "component"),
            step,
            image,
            slot,
            Image.from_cbor(doc.get("pfm")),
        )


@dataclass(frozen=True, slots=True)
class NodeState:
    config: bytes
    pfm: ComponentState
    components: Mapping[str, ComponentState]
    pending: Pending | None = None
    boots: int = 0
    last_boot: Mapping[str, str] = field(default_factory=dict)

    def component(self, name: str) -> ComponentState:
        return self.components[name]

    def with_component(self, name: str, value: ComponentState) -> NodeState:
        components = dict(self.components)
        components[name] = value
        return dataclasses.replace(self, components=components)

    def evidence(self) -> frozenset[str]:
        """The evidence ids of every image the state names: each slot, recovery image and
        PFM, and the update in progress."""
        images: list[Image | None] = []
        for cs in (self.pfm, *self.components.values()):
            images += [*cs.slots, cs.recovery]
        if self.pending is not None:
            images += [self.pending.image, self.pending.pfm]
        return frozenset(i.evidence for i in images if i is not None)

    def to_cbor(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "pfm": self.pfm.to_cbor(),
            "components": {k: v.to_cbor() for k, v in self.components.items()},
            "pending": self.pending.to_cbor() if self.pending is not None else None,
            "boots": self.boots,
            "last_boot": dict(self.last_boot),
        }

    @classmethod
    def from_cbor(cls, doc: object) -> NodeState:
        if not isinstance(doc, dict):
            raise _bad("state")
        components = doc.get("components")
        last_boot = doc.get("last_boot")
        if not isinstance(components, dict) or not isinstance(last_boot, dict):
            raise _bad("components")
        return cls(
            _bytes(doc.get("config"), 32, "config digest"),
            ComponentState.from_cbor(doc.get("pfm")),
            {_str(k, "name"): ComponentState.from_cbor(v) for k, v in components.items()},
            Pending.from_cbor(doc.get("pending")),
            _int(doc.get("boots"), "boots"),
            {_str(k, "name"): _str(v, "boot outcome") for k, v in last_boot.items()},
        )
