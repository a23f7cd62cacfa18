"""A real ``kill -9`` of a process at the state-changing file operations (``kill_points``) of
each kind of HSM step that commits: a key generated, a wrapped key imported, a backup taken and
one restored, the officer quorum changed, an identity added, a record appended to the audit log.
After every kill the HSM powers up (the sealed store, its anchor, the root of trust's counter and
the audit chain agree: no ``StoreRolledBack``, no ``AuditChainBroken``, no error state) and holds
the state before the step or the state after it, never a mix; the step run again (when the kill
came before its commit) or another commit then succeeds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from _hsm_helpers import make_device
from hsm_kill_step import (
    CONFIG,
    OFFICER,
    OFFICER_PASS,
    READY,
    SECOND,
    SECOND_PASS,
    SECRET,
    USER,
    USER_PASS,
)

from ironroot.errors import HsmZeroized, NotFound, StoreRolledBack
from ironroot.hsm import (
    AuditRecord,
    DirectoryStorage,
    Hsm,
    KeyAttributes,
    KeyType,
    Role,
    Usage,
    parse_audit_log,
)
from kill_points import KillServer, some_points
from rot_counters import provisioned_device
from scratch import in_memory

SCRIPT = Path(__file__).with_name("hsm_kill_step.py")
SIGNING = frozenset({Usage.SIGN, Usage.VERIFY})
State = tuple[tuple[str, ...], tuple[str, ...], int, int]


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("hsm-kill-") as directory:
        yield directory


# What the step script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.hsm`` and ``ironroot.rot`` are lazy packages: their modules are named).
_PRELOAD = ("ironroot.hsm._boundary", "ironroot.hsm._storage", "ironroot.rot._device")


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with in_memory("hsm-kill-server-") as directory, KillServer(directory, _PRELOAD) as server:
        yield server


def _template(root: Path) -> None:
    """An HSM with two crypto officers, a crypto user, a signing key, a wrapping key and a key
    wrapped under it (``wrapped``), and a backup taken before those two (``backup``)."""
    provisioned_device(root / "rot")
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
            hsm.add_identity(co, SECOND, Role.OFFICER, SECOND_PASS)
            hsm.add_identity(co, USER, Role.USER, USER_PASS)
            hsm.generate(co, KeyType.ED25519, KeyAttributes(SIGNING, label="signing"))
            (root / "backup").write_bytes(hsm.backup(co))
            kem = frozenset({Usage.WRAP, Usage.UNWRAP})
            wrapping = hsm.generate(co, KeyType.AES_256, KeyAttributes(kem, label="wrapping"))
            exported = KeyAttributes(SIGNING, exportable=True, label="exported")
            target = hsm.generate(co, KeyType.ED25519, exported)
            user = hsm.login(USER, USER_PASS)
            (root / "wrapped").write_bytes(hsm.wrap(user, target, wrapping_key=wrapping))
        finally:
            hsm.close()


def _state(root: Path) -> State:
    """What a step may change, read by powering the HSM up (which must succeed): the keys'
    labels, the identities, the officer quorum and the signatures the audit log records (all
    reads, which one officer may make under any quorum)."""
    with DirectoryStorage.on_device(root / "hsm", root / "rot") as storage:
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        try:
            assert hsm.state == "operational", hsm.error
            co = hsm.login(OFFICER, OFFICER_PASS)
            labels = tuple(sorted(k.attributes.label for k in hsm.keys(co)))
            names = tuple(name for name, _role, _locked in hsm.identities(co))
            signed = sum(r.operation == "sign" for r in _records(hsm, storage))
            return labels, names, hsm.officer_quorum, signed
        finally:
            hsm.close()


def _records(hsm: Hsm, storage: DirectoryStorage) -> tuple[AuditRecord, ...]:
    data = b"".join(storage.read_audit_segment(n) for n in storage.audit_segments())
    return parse_audit_log(data + storage.read_audit())


def _step(root: Path, killer: KillServer, step: str, **env: str) -> int:
    argv = [str(root / "hsm"), str(root / "rot"), step]
    done = killer.run(argv, script=SCRIPT, **env)
    assert b"DeprecationWarning" not in done.stderr, done.stderr  # approvals bound to operations
    return done.returncode


@pytest.mark.parametrize(
    "step", ["generate", "import", "backup", "restore", "quorum", "identity", "audit"]
)
def test_a_kill_at_file_operations_of_a_step_leaves_the_state_before_or_after(
    tmp_path: Path, killer: KillServer, step: str
) -> None:
    template = tmp_path / "template"
    _template(template)
    before = _state(template)
    tallies = []
    for name in (READY + step, step):  # the power-up, login and approval, then the step too
        counted = tmp_path / name
        shutil.copytree(template, counted)
        tally = tmp_path / f"{name}.tally"
        assert _step(counted, killer, name, IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
        tallies.append(int(tally.read_text()))
    after = _state(counted)
    assert after != before or step == "backup"
    first, points = tallies
    assert points - first >= 4  # a commit: the store or anchor's temporary file, its rename…
    for kill_at in some_points(first, points - 1, 3):
        run = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, run)
        assert _step(run, killer, step, IRONROOT_TEST_KILL_AT=str(kill_at)) == -9, kill_at
        found = _state(run)
        assert found in (before, after), (kill_at, found)
        again = step if found == before else "generate"
        assert _step(run, killer, again) == 0, kill_at
        assert _state(run)[1:3] == after[1:3], kill_at
        shutil.rmtree(run)


@pytest.mark.parametrize("before", ["new", "zeroized"])
def test_a_kill_during_initialization_leaves_an_hsm_to_open_or_to_initialize_again(
    tmp_path: Path, killer: KillServer, before: str
) -> None:
    """A new HSM (on a new counter, or after a zeroized one) whose ``initialize`` was killed
    either powers up (its first commit landed, or power-up finishes it) or has no HSM yet, and
    ``initialize`` run again then makes it. Was: killed once its first store had landed and
    before its anchor, it did neither (``StoreRolledBack``: the anchor is missing, and
    ``Conflict``: the storage holds a key store) until someone deleted the store by hand."""
    template = tmp_path / "template"
    provisioned_device(template / "rot")
    if before == "zeroized":
        assert _step(template, killer, "init") == 0
        with DirectoryStorage.on_device(template / "hsm", template / "rot") as storage:
            hsm = Hsm.open(storage, SECRET, config=CONFIG)
            hsm.tamper()
            hsm.close()
    tally = tmp_path / "tally"
    shutil.copytree(template, tmp_path / "counted")
    assert _step(tmp_path / "counted", killer, "init", IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
    points = int(tally.read_text()) - 1  # the tally's own write is the last
    assert points >= 6  # the store's temporary file and rename, the anchor's, the counter's
    for kill_at in some_points(1, points, 3):
        run = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, run)
        assert _step(run, killer, "init", IRONROOT_TEST_KILL_AT=str(kill_at)) == -9, kill_at
        try:
            _state(run)
        except (NotFound, HsmZeroized, StoreRolledBack):  # no HSM yet: initialize again
            assert _step(run, killer, "init") == 0, kill_at
        assert _state(run)[1] == (OFFICER,), kill_at
        shutil.rmtree(run)
