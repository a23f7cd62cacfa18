"""The keys page of an HSM whose audit log was rotated: the live log is checked from where it
starts, after the archived segment it continues; a missing predecessor shows as broken."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.hsm_devices import self_signed_device

from ironroot.hsm import MAX_AUDIT_FILE, DirectoryStorage, Hsm, HsmConfig, KeyType, Role
from ironroot.rot import MemoryCounter
from ironroot.web import _keys
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


def test_a_live_log_over_the_pages_cap_is_named_at_once(tmp_path: Path) -> None:
    """The page reads a quarter of the HSM's 1 GiB cap (``_keys._MAX_AUDIT``: a view parses
    and chains the whole live log, some 17 s at 256 MiB): one byte more, and it answers at
    once, from the file's size, naming the command that checks the log. A sparse file: none
    of its 256 MiB is read."""
    with (tmp_path / "audit.jsonl").open("wb") as sparse:
        sparse.truncate(_keys._MAX_AUDIT + 1)
    view = HsmSource(tmp_path).view([])
    assert not view.intact
    assert view.error == (
        "limit-exceeded: the live audit log is larger than 256 MiB, the most this page reads "
        "and checks per view (the HSM reads up to 1024 MiB): check it with ironroot hsm audit "
        f"verify --dir {tmp_path}"
    )
    assert (view.records, view.keys, view.releases) == (0, (), ())
    assert _keys._MAX_AUDIT < MAX_AUDIT_FILE


def test_a_live_log_at_the_pages_cap_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap's edge on a real log: a log of exactly the cap is checked, one byte over is
    named (the cap lowered to the log's size, so as not to write 256 MiB)."""
    _rotated(tmp_path)
    size = (tmp_path / "audit.jsonl").stat().st_size
    monkeypatch.setattr(_keys, "_MAX_AUDIT", size)
    view = HsmSource(tmp_path).view([])
    assert view.intact, view.error
    assert (view.first, view.records) == (33, 2)
    monkeypatch.setattr(_keys, "_MAX_AUDIT", size - 1)
    view = HsmSource(tmp_path).view([])
    assert not view.intact
    assert view.error is not None
    assert view.error.startswith("limit-exceeded: the live audit log is larger than")
