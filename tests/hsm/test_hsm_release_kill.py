"""A real ``kill -9`` of a process releasing a key from the HSM, at the state-changing file
operations (``kill_points``) of the release — its audit record appended, synced and anchored —
and of handing the key out (``hsm_release_kill_step.py``). After every kill the HSM powers up
(no ``StoreRolledBack``, no ``AuditChainBroken``, no error state); a key handed out has its
granted release record, bound to the statement the TEE got; and the release is not repeated
on the restarted HSM: the request replayed is refused (``StaleNonce`` ``nonce-unknown``: the
release nonces live in the HSM's memory only, and the new power-up issued none), and so is
a request for a nonce issued before the kill and never answered."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hsm_helpers import make_device
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem
from hsm_kill_step import CONFIG, OFFICER, OFFICER_PASS, SECRET, USER, USER_PASS
from hsm_release_kill_step import LABEL, POLICY

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StaleNonce
from ironroot.hsm import (
    AuditRecord,
    DirectoryStorage,
    Hsm,
    KeyAttributes,
    KeyType,
    Role,
    parse_audit_log,
)
from kill_points import KillServer, some_points
from rot_counters import provisioned_device
from scratch import in_memory

SCRIPT = Path(__file__).with_name("hsm_release_kill_step.py")
_POINTS = 6


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("hsm-release-kill-") as directory:
        yield directory


# What the release script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.hsm`` and ``ironroot.rot`` are lazy packages: their modules are named; cel, which
# a release policy imports when it first runs, is a large one).
_PRELOAD = (
    "ironroot.hsm._boundary",
    "ironroot.hsm._storage",
    "ironroot.rot._device",
    "cel",
)


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with (
        in_memory("hsm-release-kill-server-") as directory,
        KillServer(directory, _PRELOAD) as server,
    ):
        yield server


def _template(root: Path) -> None:
    """An HSM with a crypto user, an installed verifier and a key released on an affirming
    EAR; the verifier's private key and a TEE's ML-KEM wrapping key beside it."""
    provisioned_device(root / "rot")
    verifier = PrivateKey.generate(Algorithm.ES384)
    (root / "verifier.pem").write_bytes(verifier.to_pem())
    tee = mlkem.MLKEM768PrivateKey.generate().public_key()
    spki = tee.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (root / "tee.spki").write_bytes(spki)
    with DirectoryStorage.on_device(root / "hsm", root / "rot") as storage:
        hsm = Hsm.initialize(
            storage,
            SECRET,
            officer=OFFICER,
            credential=OFFICER_PASS,
            device=make_device().identity,
            config=CONFIG,
        )
        try:
            co = hsm.login(OFFICER, OFFICER_PASS)
            hsm.add_identity(co, USER, Role.USER, USER_PASS)
            hsm.add_release_verifier(co, "https://verifier.example", verifier.public_key.to_pem())
            attributes = KeyAttributes.of(
                ["encrypt", "decrypt"], exportable=True, release_policy=POLICY, label=LABEL
            )
            hsm.generate(co, KeyType.AES_256, attributes)
        finally:
            hsm.close()


def _records(storage: DirectoryStorage) -> tuple[AuditRecord, ...]:
    data = b"".join(storage.read_audit_segment(n) for n in storage.audit_segments())
    return parse_audit_log(data + storage.read_audit())


def _after_the_kill(root: Path) -> None:
    """Power the HSM up again; a key handed out has its record; the release is not repeated."""
    with DirectoryStorage.on_device(root / "hsm", root / "rot") as storage:
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        try:
            assert hsm.state == "operational", hsm.error
            granted = [r for r in _records(storage) if r.operation == "release"]
            released = root / "released"
            if released.exists():  # the key was handed out: its record is on disk
                digest = hashlib.sha256(released.read_bytes()).digest()
                bound = [r for r in granted if r.result == "ok" and r.release is not None]
                assert [r.release.statement for r in bound if r.release] == [digest]
            if not (root / "request.json").exists():
                return
            request = json.loads((root / "request.json").read_text())
            user = hsm.login(USER, USER_PASS)
            (handle,) = [k.handle for k in hsm.keys(user) if k.attributes.label == LABEL]
            with pytest.raises(StaleNonce) as replayed:
                hsm.release(
                    user,
                    handle,
                    ear=request["ear"].encode(),
                    nonce=bytes.fromhex(request["nonce"]),
                    recipient=(root / "tee.spki").read_bytes(),
                )
            assert replayed.value.code == "nonce-unknown"
        finally:
            hsm.close()


def _release(root: Path, killer: KillServer, step: str, **env: str) -> int:
    argv = [str(root / "hsm"), str(root / "rot"), step]
    return killer.run(argv, script=SCRIPT, **env).returncode


def test_a_release_killed_at_any_file_operation_keeps_its_record_and_is_not_repeated(
    tmp_path: Path, killer: KillServer
) -> None:
    template = tmp_path / "template"
    _template(template)
    tallies = []
    for step in ("ready", "release"):
        counted = tmp_path / step
        shutil.copytree(template, counted)
        tally = tmp_path / f"{step}.tally"
        assert _release(counted, killer, step, IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
        tallies.append(int(tally.read_text()))
    _after_the_kill(counted)  # the whole release: recorded, and not repeated after it
    first, points = tallies
    assert points - first >= 4  # the request, the record's append, the anchor…, the key out
    for kill_at in some_points(first, points - 1, _POINTS):
        run = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, run)
        assert _release(run, killer, "release", IRONROOT_TEST_KILL_AT=str(kill_at)) == -9
        _after_the_kill(run)
        shutil.rmtree(run)
