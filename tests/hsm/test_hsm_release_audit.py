"""A release's audit record binds what was released to whom (ADR 0015): the digest of the
statement the HSM returned, of the TEE's wrapping key and of the EAR; a refusal binds the
digests it knew. The binding is under the chain and the MAC, durable before ``release``
returns, and chains written before it still verify."""

from __future__ import annotations

import dataclasses
import hashlib

import cbor2
import pytest
from _hsm_helpers import DeviceChain, new_hsm, sessions
from test_hsm_release import World, ear

from ironroot.errors import AuditChainBroken, MalformedInput, NotFound, StaleNonce
from ironroot.hsm import (
    AuditRecord,
    MemoryStorage,
    ReleaseBinding,
    format_audit_log,
    parse_audit_log,
    release_records,
    verify_audit,
)
from ironroot.hsm._audit import ZERO_HASH


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


@pytest.fixture
def stored(device: DeviceChain) -> tuple[World, MemoryStorage]:
    storage = MemoryStorage()
    hsm = new_hsm(device.identity, storage)
    return World(hsm, sessions(hsm)), storage


def test_a_granted_release_record_binds_statement_recipient_and_ear_before_it_returns(
    stored: tuple[World, MemoryStorage],
) -> None:
    world, storage = stored
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    released = world.released(token, nonce)
    # Read from the storage, not through the HSM: on disk when release returned.
    records = parse_audit_log(storage.read_audit())
    verify_audit(records)
    record = records[-1]
    assert (record.operation, record.key, record.result) == ("release", world.key, "ok")
    assert record.release == ReleaseBinding(
        _sha(released.statement), world.tee.key.digest, _sha(token)
    )
    assert release_records(records) == {_sha(released.statement): record}
    assert record.to_json()["release"] == {
        "statement": _sha(released.statement).hex(),
        "recipient": world.tee.key.digest.hex(),
        "ear": _sha(token).hex(),
    }


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_an_ear_given_as_a_buffer_is_bound_like_bytes(
    stored: tuple[World, MemoryStorage], kind: type[bytearray] | type[memoryview]
) -> None:
    """The HSM takes the EAR as any bytes-like value (``_check_data``); the record binds its
    digest whatever the type, as the statement does: else the audit bundle finds a record
    that does not name the EAR its statement names (``release-record-mismatch``)."""
    world, storage = stored
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    released = world.hsm.release(
        world.user, world.key, ear=kind(token), nonce=nonce, recipient=world.tee.spki
    )
    record = parse_audit_log(storage.read_audit())[-1]
    assert record.release == ReleaseBinding(
        _sha(released.statement), world.tee.key.digest, _sha(token)
    )


def test_a_refused_release_binds_the_recipient_and_ear_but_no_statement(
    stored: tuple[World, MemoryStorage],
) -> None:
    world, storage = stored
    made_up = bytes(32)
    token = ear(world.verifier, made_up, world.tee)
    with pytest.raises(StaleNonce):
        world.release(token, made_up)
    record = parse_audit_log(storage.read_audit())[-1]
    assert (record.operation, record.result) == ("release", "nonce-unknown")
    assert record.release == ReleaseBinding(None, world.tee.key.digest, _sha(token))
    assert release_records([record]) == {}


def test_a_refusal_of_a_recipient_that_does_not_parse_binds_the_ear_only(
    stored: tuple[World, MemoryStorage],
) -> None:
    world, storage = stored
    nonce, _ = world.hsm.release_challenge(world.user)
    with pytest.raises(MalformedInput):
        world.hsm.release(world.user, world.key, ear=b"e", nonce=nonce, recipient=b"junk")
    record = parse_audit_log(storage.read_audit())[-1]
    assert record.result == "malformed"
    assert record.release == ReleaseBinding(None, None, _sha(b"e"))


def _chain(*records: tuple[str, str, ReleaseBinding | None]) -> list[AuditRecord]:
    out: list[AuditRecord] = []
    head = ZERO_HASH
    for seq, (operation, result, binding) in enumerate(records):
        record = AuditRecord(seq, 1, "svc", operation, "k", result, head, release=binding)
        head = record.digest()
        out.append(record)
    return out


BOUND = ReleaseBinding(_sha(b"statement"), _sha(b"recipient"), _sha(b"ear"))


def test_a_chain_written_before_release_binding_verifies_unchanged() -> None:
    legacy = _chain(("login", "ok", None), ("release", "ok", None), ("release", "ok", BOUND))
    # A record without a binding hashes as the seven fields it always had.
    first = legacy[1]
    assert first.to_json().keys() == {
        "seq", "time", "identity", "operation", "key", "result", "prev", "mac"
    }  # fmt: skip
    parsed = parse_audit_log(format_audit_log(legacy))
    verify_audit(parsed)
    assert list(release_records(parsed).values()) == [legacy[2]]
    # The hash formula, computed independently: seven items without a binding, as before
    # the change; the binding map as an eighth item with one.
    seven = [first.seq, first.time, first.identity, first.operation, first.key, first.result]
    assert first.digest() == _sha(cbor2.dumps([*seven, first.prev], canonical=True))
    bound = legacy[2]
    items = [bound.seq, bound.time, bound.identity, bound.operation, bound.key, bound.result]
    binding = {"statement": BOUND.statement, "recipient": BOUND.recipient, "ear": BOUND.ear}
    assert bound.digest() == _sha(cbor2.dumps([*items, bound.prev, binding], canonical=True))


def test_a_binding_stripped_or_altered_breaks_the_chain() -> None:
    records = _chain(("release", "ok", BOUND), ("login", "ok", None))
    stripped = [dataclasses.replace(records[0], release=None), records[1]]
    with pytest.raises(AuditChainBroken):
        verify_audit(stripped)
    other = dataclasses.replace(BOUND, recipient=_sha(b"another TEE"))
    altered = [dataclasses.replace(records[0], release=other), records[1]]
    with pytest.raises(AuditChainBroken):
        verify_audit(altered)


def test_an_unbound_grant_after_a_bound_one_is_refused() -> None:
    """An HSM rolled back to software that does not bind its releases shows."""
    records = _chain(("release", "ok", BOUND), ("release", "ok", None))
    verify_audit(records)
    with pytest.raises(AuditChainBroken, match="without a release binding"):
        release_records(records)


def test_two_records_binding_one_statement_are_refused() -> None:
    records = _chain(("release", "ok", BOUND), ("release", "ok", BOUND))
    with pytest.raises(AuditChainBroken, match="bind the same release statement"):
        release_records(records)


@pytest.mark.parametrize(
    ("operation", "result", "binding"),
    [
        ("sign", "ok", BOUND),  # only a release binds one
        ("release", "ok", ReleaseBinding(None, _sha(b"r"), None)),  # a grant binds its statement
        ("release", "nonce-unknown", BOUND),  # a refusal returned no statement
    ],
)
def test_a_record_with_a_binding_the_hsm_never_writes_breaks_the_chain(
    operation: str, result: str, binding: ReleaseBinding
) -> None:
    """Well formed, chained, but no HSM writes it (a refusal rewritten into a grant)."""
    records = _chain((operation, result, binding))
    parsed = parse_audit_log(format_audit_log(records))
    with pytest.raises(AuditChainBroken, match="the HSM writes no such record"):
        verify_audit(parsed)


def test_a_binding_member_that_is_not_a_digest_is_malformed() -> None:
    line = format_audit_log(_chain(("release", "ok", BOUND)))
    for bad in (b'"release":{}', b'"release":{"statement":"00"}', b'"release":{"nonce":"'):
        start = line.index(b'"release":')
        broken = line[:start] + bad + b"}\n"
        with pytest.raises(MalformedInput):
            parse_audit_log(broken)


@pytest.mark.parametrize(
    ("handle", "recorded"),
    [
        (123, "<int>"),  # not text: the old code wedged every record queued behind it
        ("x" * 5000, "sha256:" + _sha(b"x" * 5000).hex()),  # a line over 4 KiB: unreadable log
        ("k\ud800", "sha256:" + _sha("k\ud800".encode("utf-8", "surrogatepass")).hex()),
    ],
)
def test_a_handle_the_log_cannot_hold_is_recorded_by_its_digest(
    stored: tuple[World, MemoryStorage], handle: object, recorded: str
) -> None:
    world, storage = stored
    nonce, _ = world.hsm.release_challenge(world.user)
    token = ear(world.verifier, nonce, world.tee)
    with pytest.raises(NotFound):
        world.hsm.release(world.user, handle, ear=token, nonce=nonce, recipient=world.tee.spki)  # type: ignore[arg-type]
    records = parse_audit_log(storage.read_audit())  # old code: LimitExceeded, MalformedInput
    verify_audit(records)
    assert (records[-1].key, records[-1].result) == (recorded, "not-found")
    assert records[-1].release == ReleaseBinding(None, world.tee.key.digest, _sha(token))
    # The HSM goes on auditing: the next release is granted and recorded.
    nonce, _ = world.hsm.release_challenge(world.user)
    world.released(ear(world.verifier, nonce, world.tee), nonce)
    assert parse_audit_log(storage.read_audit())[-1].result == "ok"
