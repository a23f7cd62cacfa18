"""The process ``test_hsm_kill`` kills: one step on the HSM in ``argv[1]`` (its counter on the
RoT device ``argv[2]``), named by ``argv[3]``, then a clean close. The files a step reads
(a wrapped key, a backup) are in ``argv[1]``'s parent folder.

A step is the crypto officer's, and a dual-control one runs with the second officer's approval
of that one operation and its arguments (``Hsm.approve``), as a quorum of two requires.
``ready:<step>`` runs only what comes before the step's own operations — the power-up, the
officer's login and that approval — so the kills land on the step's operations alone."""

from __future__ import annotations

import sys
from pathlib import Path

from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyAttributes, KeyType, Role, Usage

SECRET = bytes(range(48))
CONFIG = HsmConfig(scrypt_n=2**10, audit_group_commit=1)
OFFICER, OFFICER_PASS = "officer", b"officer-credential"
SECOND, SECOND_PASS = "officer2", b"second-credential"
USER, USER_PASS = "service", b"user-credential"
READY = "ready:"
AUDITOR = ("auditor", Role.AUDITOR, b"auditor-credential")


def _approval(name: str, files: Path) -> tuple[object, ...]:
    """The dual-control operation step ``name`` runs and its arguments (none: not one)."""
    if name == "backup":
        return ("backup",)
    if name == "restore":
        return ("restore", (files / "backup").read_bytes())
    if name == "quorum":
        return ("officer-quorum", 2)
    if name == "identity":
        return ("identity-add", *AUDITOR)
    return ()


def step(hsm: Hsm, name: str, files: Path) -> None:
    ready = name.startswith(READY)
    name = name.removeprefix(READY)
    officer = hsm.login(OFFICER, OFFICER_PASS)
    approval = _approval(name, files)
    if approval:
        operation, *arguments = approval
        assert isinstance(operation, str)
        hsm.approve(officer, operation, *arguments, approvers=[(SECOND, SECOND_PASS)])
    if ready:  # where the step's own operations start
        return
    if name == "generate":
        hsm.generate(officer, KeyType.ED25519)
    elif name == "import":
        (wrapping,) = [k.handle for k in hsm.keys(officer) if k.attributes.label == "wrapping"]
        hsm.unwrap(
            hsm.login(USER, USER_PASS),
            (files / "wrapped").read_bytes(),
            unwrapping_key=wrapping,
            attributes=KeyAttributes(frozenset({Usage.SIGN, Usage.VERIFY}), label="imported"),
            key_type=KeyType.ED25519,
        )
    elif name == "restore":
        hsm.restore(officer, (files / "backup").read_bytes())
    elif name == "backup":
        (files / "backup-taken").write_bytes(hsm.backup(officer))
    elif name == "quorum":
        hsm.set_officer_quorum(officer, 2)
    elif name == "identity":
        hsm.add_identity(officer, *AUDITOR)
    elif name == "audit":
        (signing,) = [k.handle for k in hsm.keys(officer) if k.attributes.label == "signing"]
        hsm.sign(hsm.login(USER, USER_PASS), signing, b"a record of the audit log")
    else:
        raise SystemExit(f"no step {name}")


def initialize(storage: DirectoryStorage) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from _hsm_helpers import make_device

    device = make_device().identity
    Hsm.initialize(
        storage, SECRET, officer=OFFICER, credential=OFFICER_PASS, device=device, config=CONFIG
    ).close()


def main() -> None:
    directory = Path(sys.argv[1])
    with DirectoryStorage.on_device(directory, sys.argv[2]) as storage:
        if sys.argv[3] == "init":
            initialize(storage)
            return
        hsm = Hsm.open(storage, SECRET, config=CONFIG)
        try:
            step(hsm, sys.argv[3], directory.parent)
        finally:
            hsm.close()


if __name__ == "__main__":
    main()
