"""The key service keeps every release statement it hands out (ADR 0015): durably, before
the key leaves, bounded, in ``<data>/releases.db``; a statement it cannot keep is no key."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from _kr_helpers import Harness

from ironroot.errors import ConfigError, StorageError
from ironroot.hsm import Role, release_records
from ironroot.keyrelease import KeyReleaseService, ReleaseStatements, load_keyrelease_config


def _service(harness: Harness, kept: ReleaseStatements) -> KeyReleaseService:
    return KeyReleaseService(
        keys=harness.service.keys.values(), vault=harness.service.vault, statements=kept
    )


def _release(harness: Harness, service: KeyReleaseService) -> bytes:
    nonce = harness.nonce()
    return service.release("cel-key", harness.request(harness.ear(nonce), nonce)).statement


def test_each_statement_is_kept_on_disk_before_the_key_leaves(
    harness: Harness, tmp_path: Path
) -> None:
    kept = ReleaseStatements(tmp_path / "releases.db")
    statements = [_release(harness, _service(harness, kept)) for _ in range(2)]
    kept.close()
    reopened = ReleaseStatements(tmp_path / "releases.db", create=False)
    assert reopened.statements() == tuple(statements)
    reopened.close()
    # Each is the one the HSM's audit chain binds.
    harness.hsm.add_identity(harness.officer, "kept-auditor", Role.AUDITOR, b"auditor-pass")
    auditor = harness.hsm.login("kept-auditor", b"auditor-pass")
    bound = release_records(harness.hsm.audit_records(auditor))
    assert {hashlib.sha256(s).digest() for s in statements} <= set(bound)


def test_only_the_newest_statements_are_kept(harness: Harness) -> None:
    kept = ReleaseStatements(":memory:", limit=2)
    service = _service(harness, kept)
    statements = [_release(harness, service) for _ in range(3)]
    assert kept.statements() == tuple(statements[1:])
    assert kept.statements(limit=1) == (statements[2],)


def test_a_statement_that_cannot_be_kept_is_no_key(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "releases.db"
    ReleaseStatements(path).close()
    with sqlite3.connect(path) as db:  # the disk refuses every write from now on
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON statements "
            "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    db.close()
    kept = ReleaseStatements(path)
    with pytest.raises(StorageError, match="disk full"):
        _release(harness, _service(harness, kept))
    assert kept.statements() == ()
    kept.close()


def test_a_store_of_no_statements_is_refused() -> None:
    for limit in (0, -1, True, 10_000_000):
        with pytest.raises(ConfigError, match="keeps 1 to"):
            ReleaseStatements(":memory:", limit=limit)


def test_keep_statements_is_read_from_the_config(tmp_path: Path) -> None:
    hsm = ['dir = "hsm"', 'rot_device = "rot"', 'sealing_secret_file = "s"']
    hsm += ['identity = "kr"', 'credential_file = "c"']
    for value, expected in (("", 10_000), ("keep_statements = 5", 5)):
        (tmp_path / "keyrelease.toml").write_text(
            "\n".join(["[keyrelease]", value, "[keyrelease.hsm]", *hsm]) + "\n"
        )
        assert load_keyrelease_config(tmp_path).keep_statements == expected
    for bad in ("0", "true", '"many"'):
        (tmp_path / "keyrelease.toml").write_text(
            "\n".join(["[keyrelease]", f"keep_statements = {bad}", "[keyrelease.hsm]", *hsm])
        )
        with pytest.raises(ConfigError, match=r"keyrelease\.keep_statements"):
            load_keyrelease_config(tmp_path)
