"""What the admission authority keeps of a node's latest attestation: the signed EAR and the
evidence it appraised, side by side, so that an auditor can check that one was issued for the
other (``docs/fleet.md``, "External audit").

The admission keeps them in the fleet's ``fleet.db`` (table ``ears``: ``token`` and
``evidence``, written in the admission's one transaction with the registry row that names the
EAR). Fleets admitted before that kept the latest pair in the admission directory, which
:func:`latest_attestation` still reads for a node with no EAR in ``fleet.db``, and
:func:`store_attestation` still writes::

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

from ironroot._fileio import make_dirs, read_limited, write_atomic
from ironroot.errors import IronrootError
from ironroot.fleet._credentials import ear_id_of
from ironroot.fleet._sqlite import SqliteFile

__all__ = ["StoredAttestation", "latest_attestation", "store_attestation", "stored_attestation"]

EARS_DIR: Final = "ears"
FLEET_DB: Final = "fleet.db"
_MAX_EAR: Final = 1024 * 1024
_MAX_EVIDENCE: Final = 1024 * 1024


def _paths(admission_dir: Path, node: str) -> tuple[Path, Path]:
    folder = admission_dir / EARS_DIR
    return folder / f"{node}.jwt", folder / f"{node}.evidence.cbor"


def store_attestation(admission_dir: Path, node: str, ear: bytes, evidence: bytes) -> None:
    """Keep ``ear`` and the ``evidence`` it appraised as ``node``'s latest (module docs)."""
    ear_path, evidence_path = _paths(admission_dir, node)
    make_dirs(ear_path.parent)
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


def _ear_row(
    admission_dir: Path, where: str, args: tuple[str, ...], *, need_evidence: bool
) -> StoredAttestation | None:
    """The EAR (and its evidence) of the first row of ``ears`` in ``fleet.db`` that ``where``
    selects (newest first), when there is one; ``None`` also when the file, the table or,
    with ``need_evidence``, its evidence column is missing, or the row is over the limits
    (the evidence alone over them: ``None`` evidence)."""
    path = admission_dir.parent / FLEET_DB
    if not path.is_file():
        return None
    try:
        with SqliteFile(path, "the admission state").read() as db:
            columns = {str(row[1]) for row in db.execute("PRAGMA table_info(ears)")}
            if not columns or (need_evidence and "evidence" not in columns):
                return None  # admission never stored an EAR here (or none with its evidence)
            evidence = "evidence" if "evidence" in columns else "NULL"
            row = db.execute(
                f"SELECT token, {evidence} FROM ears WHERE {where} "  # noqa: S608
                "ORDER BY rowid DESC LIMIT 1",
                args,
            ).fetchone()
    except IronrootError:
        return None
    if row is None or len(row[0]) > _MAX_EAR:
        return None
    stored = None if row[1] is None or len(row[1]) > _MAX_EVIDENCE else bytes(row[1])
    return StoredAttestation(bytes(row[0]), stored)


def _from_database(admission_dir: Path, node: str) -> StoredAttestation | None:
    """``node``'s latest EAR in ``fleet.db`` with its evidence, when there is one."""
    return _ear_row(admission_dir, "node = ?", (node,), need_evidence=False)


def latest_attestation(admission_dir: Path, node: str) -> StoredAttestation | None:
    """``node``'s latest stored attestation, or ``None`` when it has none: from ``fleet.db``
    (module docs); for a node with no EAR there, the files of the admission directory. An
    EAR in ``fleet.db`` stored without its evidence takes the evidence of the files when
    they hold that same EAR."""
    found = _from_database(admission_dir, node)
    if found is not None and found.evidence is not None:
        return found
    ear_path, evidence_path = _paths(admission_dir, node)
    if found is not None:
        with contextlib.suppress(OSError, IronrootError):
            if read_limited(ear_path, _MAX_EAR) == found.ear:
                return StoredAttestation(found.ear, read_limited(evidence_path, _MAX_EVIDENCE))
        return found
    try:
        ear = read_limited(ear_path, _MAX_EAR)
    except OSError:
        return None
    evidence = None
    with contextlib.suppress(OSError, IronrootError):
        evidence = read_limited(evidence_path, _MAX_EVIDENCE)
    return StoredAttestation(ear, evidence)


def stored_attestation(admission_dir: Path, node: str, ear_id: str) -> StoredAttestation | None:
    """``node``'s EAR ``ear_id`` in ``fleet.db`` with its evidence, while the admission keeps
    it (the node's latest, its registry row's, or one its newest credential of a plane was
    issued on); ``None`` otherwise, or when the stored token is not that EAR."""
    found = _ear_row(admission_dir, "node = ? AND ear_id = ?", (node, ear_id), need_evidence=True)
    if found is None:
        return None
    return found if found.ear_id == ear_id else None
