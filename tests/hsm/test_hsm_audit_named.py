"""The audit records of the officer's trust decisions name what they decided on: which EAR
verifier (its name and key id) or wrap recipient (its name and SPKI digest) was added or
removed. Before, ``verifier-add``, ``verifier-remove`` and ``recipient-*`` records had a
``null`` key: the chain said who removed a verifier and when, not which one."""

from __future__ import annotations

import hashlib
import json

import pytest
from _hsm_helpers import FAST, NOW_TS, OFFICER, SECRET, DeviceChain, new_hsm, sessions
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import Conflict, MalformedInput, NotFound, RoleNotPermitted
from ironroot.hsm import Hsm, MemoryStorage, TrustedVerifier, parse_audit_log, verify_audit
from ironroot.hsm._audit_buffer import MAX_AUDITED_KEY

VERIFIER = "https://verifier.example"


def _spki() -> bytes:
    public = mlkem.MLKEM768PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _records(storage: MemoryStorage, *operations: str) -> list[tuple[str, str, str | None, str]]:
    """``(identity, operation, key, result)`` of the records of ``operations``, read from the
    storage (what an auditor reads), the chain verified."""
    records = parse_audit_log(storage.read_audit())
    verify_audit(records)
    return [
        (r.identity, r.operation, r.key, r.result) for r in records if r.operation in operations
    ]


def test_a_verifier_record_names_the_verifier_and_its_key_id(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, _auditor = sessions(hsm)
    first = PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    kid = hsm.add_release_verifier(officer, VERIFIER, first)
    second = PrivateKey.generate(Algorithm.ES256).public_key
    second_kid = TrustedVerifier("second", second).kid
    with pytest.raises(Conflict):  # the name is taken: the key it came with is named
        hsm.add_release_verifier(officer, VERIFIER, second.to_pem())
    with pytest.raises(Conflict):  # the key is installed already, under another name
        hsm.add_release_verifier(officer, "again", first)
    with pytest.raises(MalformedInput):  # refused before any key: no key id
        hsm.add_release_verifier(officer, "bad key", b"not a key")
    with pytest.raises(RoleNotPermitted):
        hsm.remove_release_verifier(user, VERIFIER)
    hsm.remove_release_verifier(officer, VERIFIER)
    with pytest.raises(NotFound):
        hsm.remove_release_verifier(officer, VERIFIER)
    audited = _records(storage, "verifier-add", "verifier-remove")
    assert audited == [
        (OFFICER, "verifier-add", f"{VERIFIER} {kid}", "ok"),
        (OFFICER, "verifier-add", f"{VERIFIER} {second_kid}", "conflict"),
        (OFFICER, "verifier-add", f"again {kid}", "conflict"),
        (OFFICER, "verifier-add", "bad key -", "malformed"),
        ("service", "verifier-remove", f"{VERIFIER} -", "role-not-permitted"),
        (OFFICER, "verifier-remove", f"{VERIFIER} {kid}", "ok"),
        (OFFICER, "verifier-remove", f"{VERIFIER} -", "not-found"),
    ]
    # the exact record on disk: the same eight members as every record, the subject in "key"
    line = [
        json.loads(raw)
        for raw in storage.read_audit().splitlines()
        if b'"verifier-remove"' in raw and b'"ok"' in raw
    ]
    assert [{k: v for k, v in r.items() if k not in ("seq", "prev", "mac")} for r in line] == [
        {
            "time": int(NOW_TS),
            "identity": OFFICER,
            "operation": "verifier-remove",
            "key": f"{VERIFIER} {kid}",
            "result": "ok",
        }
    ]
    assert set(line[0]) == {"seq", "time", "identity", "operation", "key", "result", "prev", "mac"}


def test_a_recipient_record_names_the_recipient_and_its_key_digest(device: DeviceChain) -> None:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, user, _auditor = sessions(hsm)
    spki = _spki()
    digest = hsm.add_wrap_recipient(officer, "escrow", spki)
    assert digest == hashlib.sha256(spki).hexdigest()
    with pytest.raises(Conflict):
        hsm.add_wrap_recipient(officer, "escrow two", spki)
    with pytest.raises(RoleNotPermitted):
        hsm.add_wrap_recipient(user, "mine", spki)
    hsm.remove_wrap_recipient(officer, "escrow")
    with pytest.raises(NotFound):
        hsm.remove_wrap_recipient(officer, "escrow")
    assert _records(storage, "recipient-add", "recipient-remove") == [
        (OFFICER, "recipient-add", f"escrow {digest}", "ok"),
        (OFFICER, "recipient-add", f"escrow two {digest}", "conflict"),
        ("service", "recipient-add", "mine -", "role-not-permitted"),
        (OFFICER, "recipient-remove", f"escrow {digest}", "ok"),
        (OFFICER, "recipient-remove", "escrow -", "not-found"),
    ]


def test_a_name_the_log_cannot_hold_is_named_by_its_digest_beside_the_key_id(
    device: DeviceChain,
) -> None:
    """A name of up to 256 characters is allowed; one over ``MAX_AUDITED_KEY`` is recorded
    as a handle would be (``sha256:<hex>``), and the key id stays readable beside it."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    long_name = "\U0001f511" * 256  # the longest name, each character 12 bytes escaped
    kid = hsm.add_release_verifier(
        officer, long_name, PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    )
    held = "\U0001f511" * MAX_AUDITED_KEY  # the longest name recorded as it is
    spki = _spki()
    digest = hsm.add_wrap_recipient(officer, held, spki)
    with pytest.raises(NotFound):
        hsm.remove_wrap_recipient(officer, 7)  # type: ignore[arg-type]
    named = hashlib.sha256(long_name.encode()).hexdigest()
    assert _records(storage, "verifier-add", "recipient-add", "recipient-remove") == [
        (OFFICER, "verifier-add", f"sha256:{named} {kid}", "ok"),
        (OFFICER, "recipient-add", f"{held} {digest}", "ok"),
        (OFFICER, "recipient-remove", "<int> -", "not-found"),
    ]
    assert max(len(line) for line in storage.read_audit().splitlines()) < 4096


def test_a_log_written_before_the_names_still_verifies(device: DeviceChain) -> None:
    """Records an HSM wrote before (a ``null`` key) and after the upgrade, in one chain:
    the format is the same eight members, so power-up (chain, MACs, sealed head) and
    ``verify_audit`` take it."""
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    officer, _user, _auditor = sessions(hsm)
    for operation in ("verifier-add", "verifier-remove", "recipient-add", "recipient-remove"):
        hsm._record(OFFICER, operation, None, "ok")  # as the HSM wrote them before
    kid = hsm.add_release_verifier(
        officer, VERIFIER, PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    )
    hsm.close()
    reopened = Hsm.open(storage, SECRET, config=FAST, clock=lambda: NOW_TS)  # verifies it all
    reopened.close()
    assert _records(
        storage, "verifier-add", "verifier-remove", "recipient-add", "recipient-remove"
    ) == [
        (OFFICER, "verifier-add", None, "ok"),
        (OFFICER, "verifier-remove", None, "ok"),
        (OFFICER, "recipient-add", None, "ok"),
        (OFFICER, "recipient-remove", None, "ok"),
        (OFFICER, "verifier-add", f"{VERIFIER} {kid}", "ok"),
    ]
