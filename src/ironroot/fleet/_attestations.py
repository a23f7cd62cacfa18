"""What the admission authority keeps of a node's latest attestation: the signed EAR and the
evidence it appraised, side by side, so that an auditor can check that one was issued for the
other (``docs/fleet.md``, "External audit"). In the admission directory::

    ears/<node>.jwt             the EAR (ES384 JWT); its id is the SHA-256 of these bytes
    ears/<node>.evidence.cbor   the ironroot-node-evidence/1 it was issued for, as received

The evidence is written first, then the EAR, each atomically and durably. A crash between the
two leaves the new evidence beside the old EAR: a pair an audit refuses
(``ear-evidence-mismatch``), never one that passes for the other.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from ironroot._fileio import read_limited, write_atomic
from ironroot.errors import IronrootError
from ironroot.fleet._credentials import ear_id_of

__all__ = ["StoredAttestation", "latest_attestation", "store_attestation"]

EARS_DIR: Final = "ears"
_MAX_EAR: Final = 1024 * 1024
_MAX_EVIDENCE: Final = 1024 * 1024


def _paths(admission_dir: Path, node: str) -> tuple[Path, Path]:
    folder = admission_dir / EARS_DIR
    return folder / f"{node}.jwt", folder / f"{node}.evidence.cbor"


def store_attestation(admission_dir: Path, node: str, ear: bytes, evidence: bytes) -> None:
    """Keep ``ear`` and the ``evidence`` it appraised as ``node``'s latest (module docs)."""
    ear_path, evidence_path = _paths(admission_dir, node)
    ear_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(evidence_path, evidence, mode=0o644)
    write_atomic(ear_path, ear, mode=0o644)


@dataclass(frozen=True, slots=True)
class StoredAttestation:
    """A node's latest EAR (``ear_id`` names it) and the evidence stored beside it (``None``
    when the authority stored none: an EAR written before evidence was kept)."""

    ear: bytes = field(repr=False)
    evidence: bytes | None = field(repr=False)

    @property
    def ear_id(self) -> str:
        return ear_id_of(self.ear)


def latest_attestation(admission_dir: Path, node: str) -> StoredAttestation | None:
    """``node``'s latest stored attestation, or ``None`` when it has none."""
    ear_path, evidence_path = _paths(admission_dir, node)
    try:
        ear = read_limited(ear_path, _MAX_EAR)
    except OSError:
        return None
    evidence = None
    with contextlib.suppress(OSError, IronrootError):
        evidence = read_limited(evidence_path, _MAX_EVIDENCE)
    return StoredAttestation(ear, evidence)
