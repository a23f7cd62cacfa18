"""The EAR judged at the instant the audit judges at: an EAR valid only later (``nbf``), or
issued after the instant judged at (``--at`` before it), is not the node's state then
(``VerificationFailed`` ``ear-not-yet-valid``); one expired then says so, at that instant."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import AuditExport, check_bundle
from ironroot.ear import decode_ear, sign_ear_jwt
from ironroot.errors import VerificationFailed
from ironroot.fleet import ear_id_of

JWT = "application/jwt"


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-ear-time"))


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _with_ear(aw: AuditWorld, collected: AuditExport, **changes: object) -> bytes:
    """The bundle with the node's EAR re-signed by the trusted verifier with ``changes``
    (and the registry naming it)."""
    token = collected.members["attestation/ear.jwt"][0]
    result = decode_ear(token, aw.trust().verifier_keys)
    changed = sign_ear_jwt(dataclasses.replace(result, **changes), aw.verifier)
    record = json.loads(collected.members["node/record.json"][0])
    record["ear_id"] = ear_id_of(changed)
    members = {
        "attestation/ear.jwt": (changed, JWT),
        "node/record.json": (json.dumps(record).encode(), "application/json"),
    }
    return collected.replace(members=members).seal(aw.fleet.rot(NODE))


def test_an_ear_valid_only_after_the_export_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: an EAR whose ``nbf`` is a day after the export verified, and the step said
    "current at export"."""
    later = int((EXPORTED + dt.timedelta(days=1)).timestamp())
    data = _with_ear(aw, collected, nbf=later, exp=later + 3600)
    error = check_bundle(data, aw.trust()).step("attestation").error
    assert isinstance(error, VerificationFailed)
    assert (error.code, error.check) == ("ear-not-yet-valid", "attestation")
    assert "not valid before 2026-06-02T12:10:00Z" in error.detail


def test_an_ear_issued_after_the_instant_judged_at_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: judged (``--at``) five minutes before the EAR was issued (at the export),
    the step held."""
    issued = int(EXPORTED.timestamp())
    data = _with_ear(aw, collected, iat=issued, exp=issued + 3600)
    at = EXPORTED - dt.timedelta(minutes=5)
    error = check_bundle(data, aw.trust(), at=at).step("attestation").error
    assert isinstance(error, VerificationFailed)
    assert (error.code, error.check) == ("ear-not-yet-valid", "attestation")
    assert "issued 2026-06-01T12:10:00Z, after the instant judged at" in error.detail


def test_an_ear_expired_at_the_instant_judged_at_says_so(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: judged after the EAR's ``exp``, the step said "current at export"."""
    token = collected.members["attestation/ear.jwt"][0]
    result = decode_ear(token, aw.trust().verifier_keys)
    expires = int(EXPORTED.timestamp()) + 60
    data = _with_ear(aw, collected, exp=expires)
    at = EXPORTED + dt.timedelta(minutes=5)
    step = check_bundle(data, aw.trust(), at=at).step("attestation")
    assert result.iat < expires
    assert any(
        line.endswith(
            "EXPIRED at 2026-06-01T12:11:00Z, before the instant judged at (2026-06-01T12:15:00Z)"
        )
        for line in step.lines
    ), step.lines
    current = check_bundle(data, aw.trust()).step("attestation")
    assert any(line.endswith("current at 2026-06-01T12:10:00Z") for line in current.lines)


def test_a_naive_instant_to_judge_at_is_the_caller_s_error(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Before: ``at`` without a timezone failed the bundle's seal (``seal-invalid``): the
    caller's mistake reported as the bundle's break."""
    from ironroot.errors import MalformedInput

    data = collected.seal(aw.fleet.rot(NODE))
    with pytest.raises(MalformedInput, match="timezone-aware"):
        check_bundle(data, aw.trust(), at=EXPORTED.replace(tzinfo=None))
