"""A node's credential keys are sealed to its root of trust, never kept in the clear.

Nodes of the admission tests' world are admitted through ``attest_node``; what they keep in
``nodes/<id>/credentials/`` is checked byte for byte, then copied, moved, altered and put
back, each time with the exact error.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import load_certificate
from ironroot.errors import (
    DeviceStateTampered,
    InputUnavailable,
    MalformedCertificate,
    NotFound,
    SealedStoreError,
)
from ironroot.fleet import (
    AdmissionAuthority,
    Fleet,
    attest_node,
    node_credential_key,
    node_tls_context,
)
from stale_files import plant_look_alikes, stale_temporary


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("credential-world")) as w:
        yield w


@pytest.fixture(scope="module")
def aw(world: World) -> AdmissionWorld:
    return admission_world(world)


@pytest.fixture
def fleet(aw: AdmissionWorld, tmp_path: Path) -> tuple[Fleet, AdmissionAuthority]:
    fleet, authority = aw.fleet(tmp_path / "fleet", 2)
    for node in fleet.node_ids():
        attest_node(fleet, node, now=NOW, authority=authority)
    return fleet, authority


def _folder(fleet: Fleet, node: str) -> Path:
    return fleet.directory / "nodes" / node / "credentials"


def _secrets_of(fleet: Fleet, node: str) -> list[bytes]:
    """Every form the node's two credential keys could be found in on disk."""
    found = []
    for plane in ("control", "data"):
        key = node_credential_key(fleet, node, plane).raw
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        scalar = key.private_numbers().private_value.to_bytes(48, "big")
        found += [der, scalar, base64.b64encode(der)[:64], scalar.hex().encode()]
    return found


def test_the_keys_are_sealed_and_open_only_as_their_credentials_keys(
    fleet: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet_, _authority = fleet
    folder = _folder(fleet_, "node-0001")
    assert sorted(p.name for p in folder.iterdir()) == [
        "ca.cert.pem",
        "control.cert.pem",
        "control.key.sealed",
        "data.cert.pem",
        "data.key.sealed",
    ]
    for plane in ("control", "data"):
        assert oct(os.stat(folder / f"{plane}.key.sealed").st_mode & 0o777) == "0o600"
        key = node_credential_key(fleet_, "node-0001", plane)
        cert = load_certificate((folder / f"{plane}.cert.pem").read_bytes())
        assert key.public_key.to_der() == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    secrets = _secrets_of(fleet_, "node-0001")
    for path in fleet_.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path
    for path in folder.iterdir():
        assert b"PRIVATE KEY" not in path.read_bytes(), path
    context = node_tls_context(fleet_, "node-0001", "data")
    assert isinstance(context, ssl.SSLContext)
    assert context.get_ca_certs()  # the fleet CA, and nothing else
    assert len(context.get_ca_certs()) == 1


def test_a_copied_fleet_directory_yields_no_credential_key(
    fleet: tuple[Fleet, AdmissionAuthority], tmp_path: Path
) -> None:
    """The copy holds every file of the fleet but the RoTs' obfuscation keys, which model
    the silicon (a deployment keeps them out of the directory)."""
    fleet_, _authority = fleet
    secrets = _secrets_of(fleet_, "node-0001")
    copy = tmp_path / "copied"
    shutil.copytree(
        fleet_.directory, copy, ignore=shutil.ignore_patterns("*.obfuscation-key", "lock")
    )
    for path in copy.rglob("*"):
        if path.is_file():
            assert not any(s in path.read_bytes() for s in secrets), path
    copied = Fleet.open(copy)
    with pytest.raises(InputUnavailable, match="obfuscation key"):
        node_credential_key(copied, "node-0001", "control")
    # with silicon of the copier's own: the RoT refuses its state
    stranger = copy / "nodes" / "node-0001" / "rot.obfuscation-key"
    stranger.write_text(os.urandom(32).hex() + "\n")
    stranger.chmod(0o600)
    with pytest.raises(DeviceStateTampered):
        node_credential_key(copied, "node-0001", "control")


def test_an_altered_sealed_key_is_detected(fleet: tuple[Fleet, AdmissionAuthority]) -> None:
    fleet_, _authority = fleet
    path = _folder(fleet_, "node-0001") / "control.key.sealed"
    original = path.read_bytes()
    for position in (0, 9, 45, len(original) // 2, len(original) - 1):
        changed = bytearray(original)
        changed[position] ^= 0x01
        path.write_bytes(bytes(changed))
        with pytest.raises(SealedStoreError) as caught:
            node_credential_key(fleet_, "node-0001", "control")
        assert caught.value.code == "sealed-store"
    path.write_bytes(original[:-20])
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0001", "control")
    assert caught.value.code == "sealed-store"
    path.write_bytes(original)
    node_credential_key(fleet_, "node-0001", "control")


def test_another_nodes_or_planes_sealed_key_does_not_open(
    fleet: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet_, _authority = fleet
    one, two = _folder(fleet_, "node-0001"), _folder(fleet_, "node-0002")
    shutil.copy(one / "control.key.sealed", two / "control.key.sealed")
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0002", "control")
    assert caught.value.code == "sealed-store"
    shutil.copy(one / "data.key.sealed", one / "control.key.sealed")
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0001", "control")
    assert caught.value.code == "sealed-store"


def test_an_older_sealed_key_put_back_is_refused(
    fleet: tuple[Fleet, AdmissionAuthority],
) -> None:
    fleet_, authority = fleet
    path = _folder(fleet_, "node-0001") / "control.key.sealed"
    older = path.read_bytes()
    attest_node(fleet_, "node-0001", now=NOW + dt.timedelta(minutes=5), authority=authority)
    assert path.read_bytes() != older
    path.write_bytes(older)  # opens (same RoT, same firmware), but is not the credential's key
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0001", "control")
    assert caught.value.code == "credential-key-mismatch"


def test_keys_sealed_before_a_firmware_change_do_not_open(
    fleet: tuple[Fleet, AdmissionAuthority], aw: AdmissionWorld
) -> None:
    fleet_, _authority = fleet
    fleet_.rot("node-0002").boot(aw.world.release("bmc", "2.0").bundle, now=NOW)
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0002", "control")
    assert caught.value.code == "sealed-store"
    assert "firmware changed" in caught.value.detail


def test_a_node_without_credentials_has_no_key(aw: AdmissionWorld, tmp_path: Path) -> None:
    fleet_, _authority = aw.fleet(tmp_path / "pending", 1)
    with pytest.raises(NotFound):
        node_credential_key(fleet_, "node-0001", "control")


def test_a_manufactured_node_has_its_credentials_folder_empty_and_its_own(
    aw: AdmissionWorld, tmp_path: Path
) -> None:
    """Manufacture makes the node's ``credentials/`` folder (mode 0700), empty until the
    node is admitted: no admission of the node makes it."""
    fleet_, _authority = aw.fleet(tmp_path / "pending", 1)
    folder = _folder(fleet_, "node-0001")
    assert folder.is_dir()
    assert not folder.is_symlink()
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    assert list(folder.iterdir()) == []


def _made_folders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The folders ``os.mkdir`` is asked for from now on (it still makes them)."""
    asked: list[str] = []
    mkdir = os.mkdir

    def recorded(path: object, *args: object, **kwargs: object) -> None:
        asked.append(os.fspath(path))  # type: ignore[arg-type]
        mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", recorded)
    return asked


def test_an_admission_makes_no_credentials_folder_that_exists(
    fleet: tuple[Fleet, AdmissionAuthority], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node attesting again writes its credentials into the folder it has: no ``mkdir``
    (a failed one is a system call per admission); the files are replaced as before."""
    fleet_, authority = fleet
    before = (_folder(fleet_, "node-0001") / "control.cert.pem").read_bytes()
    asked = _made_folders(monkeypatch)
    attest_node(fleet_, "node-0001", now=NOW + dt.timedelta(minutes=5), authority=authority)
    assert [p for p in asked if Path(p).name == "credentials"] == []
    assert (_folder(fleet_, "node-0001") / "control.cert.pem").read_bytes() != before
    for plane in ("control", "data"):
        node_credential_key(fleet_, "node-0001", plane)


def test_a_node_made_without_a_credentials_folder_gets_one_at_its_admission(
    aw: AdmissionWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node manufactured before its folder was made with it (an older fleet), or whose
    folder was removed: its admission makes it (0700), once."""
    fleet_, authority = aw.fleet(tmp_path / "older", 1)
    folder = _folder(fleet_, "node-0001")
    folder.rmdir()
    asked = _made_folders(monkeypatch)
    attest_node(fleet_, "node-0001", now=NOW, authority=authority)
    assert asked == [str(folder)]
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"
    for plane in ("control", "data"):
        node_credential_key(fleet_, "node-0001", plane)


def test_files_a_power_cut_left_empty_are_refused_until_the_node_attests_again(
    fleet: tuple[Fleet, AdmissionAuthority],
) -> None:
    """An admission does not sync the node's credential files: after a power cut one may be
    empty. Each such file is refused with its typed error, and the next attestation writes
    them afresh."""
    fleet_, authority = fleet
    folder = _folder(fleet_, "node-0001")
    (folder / "control.key.sealed").write_bytes(b"")
    with pytest.raises(SealedStoreError) as caught:
        node_credential_key(fleet_, "node-0001", "control")
    assert caught.value.code == "sealed-store"
    (folder / "data.cert.pem").write_bytes(b"")
    with pytest.raises(MalformedCertificate):
        node_credential_key(fleet_, "node-0001", "data")
    attest_node(fleet_, "node-0001", now=NOW + dt.timedelta(minutes=5), authority=authority)
    for plane in ("control", "data"):
        node_credential_key(fleet_, "node-0001", plane)


def test_temp_files_a_killed_store_left_are_removed_by_the_next_admission(
    fleet: tuple[Fleet, AdmissionAuthority], tmp_path: Path
) -> None:
    """A store killed before its renames leaves its temp files (``.<name>.XXXXXXXX.tmp``,
    sealed keys among them); the next admission of the node, holding the folder's lock,
    removes those of the names it owns — the CA certificate's though it is not written
    again, an earlier version's clear key's — and nothing else: another name, a link (the
    file it names is untouched) and a folder named like one stay, and the store succeeds."""
    fleet_, authority = fleet
    folder = _folder(fleet_, "node-0001")
    stale = [
        stale_temporary(folder, name)
        for name in ("control.key.sealed", "data.cert.pem", "ca.cert.pem", "data.key.pem")
    ]
    planted = plant_look_alikes(folder)
    outside = tmp_path / "outside.pem"
    outside.write_bytes(b"not the fleet's")
    kept = [
        folder / ".control.key.sealed.abcd123.tmp",  # seven random characters
        folder / ".control.key.sealed.abcd1234.tmp.bak",
        folder / "control.key.sealed.abcd1234.tmp",  # no leading dot
        folder / ".control.key.sealed.ABCD1234.tmp",  # mkstemp draws no capitals
        folder / ".other.cert.pem.abcd1234.tmp",  # a name the store does not write
    ]
    for path in kept:
        path.write_bytes(b"keep me")
    link = folder / ".data.key.sealed.abcd1234.tmp"
    link.symlink_to(outside)
    dangling = folder / ".control.cert.pem.abcd1234.tmp"
    dangling.symlink_to(tmp_path / "nowhere")
    directory = folder / ".data.cert.pem.abcd1234.tmp"
    directory.mkdir()
    (directory / "inside").write_bytes(b"keep me")
    attest_node(fleet_, "node-0001", now=NOW + dt.timedelta(minutes=5), authority=authority)
    for path in stale:
        assert not os.path.lexists(path), path
    for path in [*planted, *kept, link, dangling, directory]:
        assert os.path.lexists(path), path
    for path in kept:
        assert path.read_bytes() == b"keep me"
    assert link.is_symlink()
    assert outside.read_bytes() == b"not the fleet's"
    assert dangling.is_symlink()
    assert (directory / "inside").read_bytes() == b"keep me"
    for plane in ("control", "data"):
        node_credential_key(fleet_, "node-0001", plane)
