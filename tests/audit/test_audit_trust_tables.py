"""An audit trust file's optional tables say what they require: a ``[witnesses]`` or ``[fleet]``
table the operator wrote but left empty is a ``ConfigError`` naming the file — never read as
"no witness cosignature required" or "node identity unchecked"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import AuditWorld, audit_world

from ironroot.audit import AuditTrust
from ironroot.errors import ConfigError


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-trust-tables"))


_FLEET = '[fleet]\nca = "fleet-ca.pem"\n'


def _with(aw: AuditWorld, directory: Path, fleet: str) -> Path:
    path = aw.write_trust(directory)
    path.write_text(path.read_text().replace(_FLEET, fleet))
    return path


@pytest.mark.parametrize(
    ("fleet", "message"),
    [
        (_FLEET + "[witnesses]\n", "[witnesses] names no witness: give keys (or leave it out)"),
        ("[fleet]\n", "[fleet] names no fleet CA: give ca (or leave it out)"),
    ],
)
def test_an_empty_optional_table_is_refused(
    aw: AuditWorld, tmp_path: Path, fleet: str, message: str
) -> None:
    path = _with(aw, tmp_path, fleet)
    with pytest.raises(ConfigError) as caught:
        AuditTrust.load_toml(path)
    assert caught.value.detail == f"{path}: {message}"


def test_without_the_tables_nothing_is_required(aw: AuditWorld, tmp_path: Path) -> None:
    trust = AuditTrust.load_toml(_with(aw, tmp_path, ""))
    assert (trust.witnesses, trust.witness_quorum, trust.fleet_ca) == ((), 0, None)


def test_a_fused_hash_that_is_not_text_is_refused(aw: AuditWorld, tmp_path: Path) -> None:
    """A TOML integer of 96 digits is valid hex once printed: it must not be taken for one."""
    path = aw.write_trust(tmp_path)
    text = path.read_text().replace("[vendor]\n", "[vendor]\nfused_hash = " + "1" * 96 + "\n", 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        AuditTrust.load_toml(path)
    assert caught.value.detail == f"{path}: [vendor] fused_hash is not hex"
