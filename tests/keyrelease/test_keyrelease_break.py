"""Release refusals found by attacking the key release service, each asserted as the typed error
the service raises, the problem the API answers and the HSM's audit record of the refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _kr_helpers import (
    NOW,
    VECTORS,
    VERIFIER,
    Harness,
    assert_problem,
    azure_policy,
    build_harness,
    evidence,
)

from ironroot.ear import Appraisal, AttestationResult, TrustTier, VerifierId, sign_ear_jwt
from ironroot.errors import IronrootError, ReleaseDenied
from ironroot.hsm import KeyAttributes, KeyType, Role
from ironroot.keyrelease import (
    KeyReleaseServerThread,
    ReleasableKey,
    ReleaseContext,
    create_keyrelease_app,
    parse_release_policy,
)


@pytest.fixture(scope="module")
def world() -> Iterator[Harness]:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    with harness.http, KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server:
        harness.url = server.url
        yield harness


def _offer(harness: Harness, name: str, policy: str) -> None:
    """Offer a new AES-256 key ``name`` with release policy ``policy``."""
    attributes = KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=policy)
    handle = harness.hsm.generate(harness.officer, KeyType.AES_256, attributes)
    harness.service.add_key(ReleasableKey(name, handle))
    harness.handles[name] = handle


def _last_release_result(harness: Harness) -> str:
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    records = harness.hsm.audit_records(auditor)
    return [r for r in records if r.operation == "release"][-1].result


def _refused_everywhere(
    harness: Harness, name: str, cls: type[IronrootError], code: str, **ear: object
) -> None:
    """Refused by the service (exact class and code, audited with that code by the HSM) and
    over HTTP (status, title, code)."""
    nonce = harness.nonce()
    with pytest.raises(cls) as info:
        harness.service.release(name, harness.request(harness.ear(nonce, **ear), nonce))
    assert info.type is cls
    assert info.value.code == code
    assert _last_release_result(harness) == code
    nonce = harness.nonce()
    assert_problem(harness.post(name, harness.ear(nonce, **ear), nonce), cls, code)
    assert _last_release_result(harness) == code


# --- an Azure claim path indexes a list with ASCII digits only ---------------------------------


@pytest.mark.parametrize("segment", ["\u00b2", "\u0661", "\uff11"])
def test_an_azure_path_segment_of_other_digits_is_no_list_index(segment: str) -> None:
    """``str.isdigit`` holds for ``²`` (which ``int`` refuses: a ValueError escaped the
    policy) and for ``١`` or ``１`` (which ``int`` reads as 1: a list was indexed by a segment
    no other reader of the path takes for an index). Neither indexes a list: the claim is
    absent."""
    claims = {"evidence": {"list": [1, 2]}}
    context = ReleaseContext(claims=claims, authorities=frozenset({VERIFIER}))
    for condition in ({"equals": 2}, {"exists": True}):
        policy = parse_release_policy(
            azure_policy([{"claim": f"evidence.list.{segment}", **condition}])
        )
        with pytest.raises(ReleaseDenied) as info:
            policy.evaluate(context)
        assert info.value.code == "policy-claims"
    absent = parse_release_policy(
        azure_policy([{"claim": f"evidence.list.{segment}", "exists": False}])
    )
    absent.evaluate(context)  # absent, so `exists: false` holds
    ascii_index = parse_release_policy(azure_policy([{"claim": "evidence.list.1", "equals": 2}]))
    ascii_index.evaluate(context)


def test_a_release_under_an_azure_path_with_a_superscript_digit_is_denied_not_a_500(
    world: Harness,
) -> None:
    """The key's policy reads ``gpus.².status``: ``int("²")`` raised ValueError inside the
    HSM, so the release answered 500 internal-error (audited as such) instead of a denial."""
    _offer(world, "superscript-key", azure_policy([{"claim": "gpus.\u00b2.status", "equals": "x"}]))
    _refused_everywhere(world, "superscript-key", ReleaseDenied, "policy-claims")


# --- one submodule's status is the whole result's ------------------------------------------


def _two_submodules(harness: Harness, nonce: bytes, other: TrustTier) -> bytes:
    """An EAR whose submodule ``ironroot`` binds the release and is affirming, beside a
    submodule ``other`` (evidence that binds nothing) appraised as ``other``."""
    report_data = harness.tee.report_data(nonce)
    iat = int(NOW.timestamp()) - 60
    result = AttestationResult(
        iat=iat,
        exp=iat + 600,
        verifier_id=VerifierId("Ironroot", "test"),
        submods={
            "ironroot": Appraisal(
                TrustTier.AFFIRMING, VECTORS[TrustTier.AFFIRMING], evidence=evidence(report_data)
            ),
            "other": Appraisal(other, VECTORS[other], evidence={"format": "ironroot"}),
        },
        nonce=report_data,
    )
    return sign_ear_jwt(result, harness.verifier_key)


@pytest.mark.parametrize("other", [TrustTier.CONTRAINDICATED, TrustTier.NONE, TrustTier.WARNING])
def test_an_affirming_binding_submodule_beside_a_worse_one_releases_nothing(
    world: Harness, other: TrustTier
) -> None:
    """Held: the binding submodule's own status does not decide; the worst one does (a
    ``warning`` beside it is refused by a key that needs ``affirming``)."""
    nonce = world.nonce()
    ear = _two_submodules(world, nonce, other)
    with pytest.raises(ReleaseDenied) as info:
        world.service.release("cel-key", world.request(ear, nonce))
    assert info.value.code == "not-affirming"
    assert _last_release_result(world) == "not-affirming"
