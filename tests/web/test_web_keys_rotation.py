"""The keys page of an HSM whose audit log was rotated: the live log is checked from where it
starts, after the archived segment it continues; a missing predecessor shows as broken."""

from __future__ import annotations

from pathlib import Path

from tests.hsm_devices import self_signed_device

from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyType, Role
from ironroot.rot import MemoryCounter
from ironroot.web._keys import HsmSource


def _rotated(directory: Path, signs: int = 27, *, prune: bool = False) -> None:
    storage = DirectoryStorage(directory, counter=MemoryCounter())
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=10)
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(),
        config=config,
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "service", Role.USER, b"service-credential")
    handle = hsm.generate(officer, KeyType.EC_P256)
    user = hsm.login("service", b"service-credential")
    for _ in range(signs):
        hsm.sign(user, handle, b"m")
    if prune:  # every archived segment, by an officer
        hsm.prune_audit(officer, hsm_base(directory))
    hsm.close()
    storage.close()


def test_a_rotated_live_log_is_intact_from_where_it_starts(tmp_path: Path) -> None:
    _rotated(tmp_path)
    view = HsmSource(tmp_path).view([])
    assert view.intact, view.error
    assert (view.first, view.records) == (33, 2)


def test_an_empty_live_log_starts_after_the_last_segment(tmp_path: Path) -> None:
    _rotated(tmp_path, signs=25)  # the last of them rotated the log
    assert (tmp_path / "audit.jsonl").read_bytes() == b""
    view = HsmSource(tmp_path).view([])
    assert view.intact, view.error
    assert (view.first, view.records) == (33, 0)


def test_a_live_log_without_its_archived_predecessor_is_broken(tmp_path: Path) -> None:
    _rotated(tmp_path)
    (tmp_path / "audit-22-32.jsonl").unlink()
    view = HsmSource(tmp_path).view([])
    assert not view.intact
    assert view.error is not None
    assert "no archived segment ends at record 32" in view.error


def test_a_live_log_after_an_officers_prune_is_intact(tmp_path: Path) -> None:
    _rotated(tmp_path, prune=True)
    assert not list(tmp_path.glob("audit-*.jsonl"))
    view = HsmSource(tmp_path).view([])
    assert view.intact, view.error
    assert view.first > 0


def hsm_base(directory: Path) -> int:
    """The first record of the live log (the live log is not empty here)."""
    import json

    return int(json.loads((directory / "audit.jsonl").read_text().splitlines()[0])["seq"])
