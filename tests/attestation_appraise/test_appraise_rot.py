"""Appraising this project's RoT quotes end to end: the good device, and every must-reject,
each asserting the exact ``ear.status`` and trust-vector code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import random
from pathlib import Path

import cbor2
import pytest
from _ar_helpers import (
    NOW,
    PRODUCT,
    PROVIDER,
    RUNTIME,
    SAFE_ISS,
    VENDOR_ISS,
    World,
    flip,
    sfr_json,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.attestation import (
    AR4SI,
    DEFAULT_POLICY,
    Appraisal,
    AppraisalPolicy,
    Endorsements,
    EvidenceCaches,
    ReferenceValue,
    RotChainCache,
    TrustTier,
    appraise,
    appraise_evidence,
    reference_values_from_statement,
    verify_rot_quote,
)
from ironroot.attestation.evidence import _rot
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    Comid,
    Corim,
    CorimMeta,
    Measurement,
    Svn,
    Validity,
    sign_corim,
)
from ironroot.cose import RECEIPTS, Limits, Sign1, create_statement, decode_cbor, encode_cbor
from ironroot.crypto import Algorithm
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ConfigError,
    IronrootError,
    MalformedCorim,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import FirmwareBundle, reference_corim
from ironroot.rot import Device, VendorCA, _quote, create_quote, derive_layers, verify_quote
from ironroot.safe import sfr_statement, sign_report

_ALGS = (Algorithm.ES384, Algorithm.ML_DSA_87)


def _nonce() -> bytes:
    return os.urandom(32)


def _appraise(
    world: World,
    quote: bytes,
    nonce: bytes,
    endorsements: Endorsements | None = None,
    now: dt.datetime = NOW,
):  # type: ignore[no-untyped-def]
    result = appraise_evidence(
        quote, endorsements or world.endorsements(), nonce=nonce, now=now, lifetime=600
    )
    ((name, appraisal),) = result.submods.items()
    assert name == "ironroot"
    return result, appraisal


def test_good_device_is_affirming(world: World, good_device: Device) -> None:
    nonce = _nonce()
    result, appraisal = _appraise(world, good_device.quote(nonce), nonce)
    assert result.status is TrustTier.AFFIRMING
    assert dict(appraisal.trust_vector) == {
        "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
        "configuration": AR4SI.APPROVED_CONFIG,
        "executables": AR4SI.APPROVED_RUNTIME,
        "hardware": AR4SI.GENUINE_HARDWARE,
    }
    assert appraisal.reasons == ()
    assert appraisal.policy_id == DEFAULT_POLICY.policy_id
    assert result.nonce == nonce
    assert result.exp == result.iat + 600
    assert appraisal.evidence is not None
    assert appraisal.evidence["report_data"] == nonce.hex()


def test_unknown_root_is_unrecognized_instance(world: World, good_device: Device) -> None:
    other = VendorCA.generate(now=NOW - dt.timedelta(days=365))
    nonce = _nonce()
    endorsements = world.endorsements(roots=other.trust_anchors)
    result, appraisal = _appraise(world, good_device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNRECOGNIZED_INSTANCE}
    assert appraisal.reasons[0].startswith("evidence: chain-not-trusted:")


def test_untrusted_root_in_claims_fails_the_chain_rule(world: World, good_device: Device) -> None:
    nonce = _nonce()
    claims = verify_rot_quote(
        good_device.quote(nonce), nonce=nonce, trust_anchors=world.ca.trust_anchors, now=NOW
    )
    other = VendorCA.generate(now=NOW - dt.timedelta(days=365))
    endorsements = world.endorsements(roots=other.trust_anchors)
    result = appraise(claims, endorsements, nonce=nonce, now=NOW)
    appraisal = result.submods["ironroot"]
    assert result.status is TrustTier.CONTRAINDICATED
    # a failed gate: nothing is affirmed
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNRECOGNIZED_INSTANCE}
    assert appraisal.reasons[0].startswith("chain: the evidence does not chain")


def test_certificate_not_yet_valid(world: World, good_device: Device) -> None:
    # DICE certificates never expire (notAfter 9999); an expired VLEK is tested with SNP
    nonce = _nonce()
    when = NOW - dt.timedelta(days=400)
    result, appraisal = _appraise(world, good_device.quote(nonce), nonce, now=when)
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
    assert "certificate-expired" in appraisal.reasons[0]


def _message(quote: bytes, name: str) -> Sign1:
    container = decode_cbor(quote)
    assert isinstance(container, dict)
    return Sign1.decode(container[name])


@pytest.mark.parametrize("name", ["es384", "ml-dsa-87"])
def test_flipped_bit_in_quote_signature(world: World, good_device: Device, name: str) -> None:
    nonce = _nonce()
    quote = good_device.quote(nonce)
    signature = _message(quote, name).signature
    bad = flip(quote, quote.index(signature) + len(signature) // 2)
    result, appraisal = _appraise(world, bad, nonce)
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED}
    assert "bad-signature" in appraisal.reasons[0]


def test_flipped_bit_in_a_certificate(world: World, good_device: Device) -> None:
    nonce = _nonce()
    quote = good_device.quote(nonce)
    rt_alias = _message(quote, "es384").unprotected[33][0]
    assert isinstance(rt_alias, bytes)
    # the last bit of the RT alias certificate (its issuer's signature value)
    bad = flip(quote, quote.index(rt_alias) + len(rt_alias) - 1)
    result, appraisal = _appraise(world, bad, nonce)
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED}


def test_any_flipped_bit_is_never_affirming(world: World, good_device: Device) -> None:
    nonce = _nonce()
    quote = good_device.quote(nonce)
    endorsements = world.endorsements()
    rng = random.Random(4)
    for _ in range(40):
        bad = flip(quote, rng.randrange(len(quote)), rng.randrange(8))
        result = appraise_evidence(bad, endorsements, format="ironroot", nonce=nonce, now=NOW)
        appraisal = result.submods["ironroot"]
        assert result.status in (TrustTier.CONTRAINDICATED, TrustTier.NONE)
        assert set(appraisal.trust_vector) == {"instance-identity"}
        assert appraisal.trust_vector["instance-identity"] in (
            AR4SI.CRYPTO_VALIDATION_FAILED,
            AR4SI.UNRECOGNIZED_INSTANCE,
            AR4SI.UNTRUSTWORTHY_INSTANCE,
            AR4SI.UNEXPECTED_EVIDENCE,
        )


def test_a_debug_claim_the_certificates_deny_is_untrustworthy(
    world: World, good_device: Device
) -> None:
    # The device's own RT alias key (held by its runtime) signs a quote that says debug is
    # unlocked on a device whose ROM locked it.
    state = good_device.boot_state
    assert state is not None
    layers = derive_layers(good_device.fuses, state.pcrs)
    nonce = _nonce()
    quote = create_quote(
        nonce=nonce,
        rt_alias=layers.rt_alias,
        ueid=layers.ueid,
        state=state,
        idevid_certificates={a: good_device.idevid_certificate(a) for a in _ALGS},
        lifecycle=good_device.fuses.lifecycle,
        debug_locked=False,
    )
    result, appraisal = _appraise(world, quote, nonce)
    # The ROM certified "debug locked" in the FMC alias DEVICE_INFO flags: the runtime's claim
    # to the contrary is refused at verification, before any policy (the debug rule itself
    # is covered by the TEE appraisal tests).
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED}
    assert appraisal.reasons == (
        "evidence: verification-failed: the lifecycle or debug claim differs from the FMC alias"
        " DEVICE_INFO flags",
    )


def test_anti_rollback_disabled_is_never_affirming(world: World, tmp_path: Path) -> None:
    device = Device.create(tmp_path / "d")
    device.provision(
        world.ca, vendor_key_hash=world.descriptor_hash, now=NOW - dt.timedelta(days=1)
    )
    device.program(lambda f: f.disable_anti_rollback())
    device.boot(world.bundles["good"], now=NOW)
    nonce = _nonce()
    result, appraisal = _appraise(world, device.quote(nonce), nonce)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["configuration"] == AR4SI.UNSAFE_CONFIG
    assert appraisal.reasons == (
        "anti-rollback: anti-rollback is disabled: the device boots firmware below its fused SVN",
    )


def test_anti_rollback_claim_of_a_good_device(world: World, good_device: Device) -> None:
    nonce = _nonce()
    claims = verify_rot_quote(
        good_device.quote(nonce), trust_anchors=world.ca.trust_anchors, nonce=nonce, now=NOW
    )
    assert claims.identity["anti_rollback"] == "enabled"


def test_owner_key_claim_says_whether_an_owner_key_hash_is_fused(
    world: World, good_device: Device
) -> None:
    """Without a fused owner key hash the RoT boots a bundle whatever owner keys it carries
    (as Caliptra does): the owner signatures prove only that whoever added those keys signed.
    The ROM measures whether an owner hash is fused, but the claims did not say it, so an
    appraiser could not tell an owner-bound device from one taking any owner key."""
    nonce = _nonce()
    claims = verify_rot_quote(
        good_device.quote(nonce), trust_anchors=world.ca.trust_anchors, nonce=nonce, now=NOW
    )
    assert claims.identity["owner_key"] == "unfused"
    assert claims.raw["owner_key_fused"] is False


def test_svn_below_the_logged_minimum(world: World, tmp_path: Path) -> None:
    world.release("old", svn=2, runtime=RUNTIME + b"old")
    world.release("new", svn=7, runtime=RUNTIME + b"new")
    device = world.device(tmp_path / "d", "old")
    nonce = _nonce()
    endorsements = world.endorsements(["old", "new"], ["old", "new"])
    result, appraisal = _appraise(world, device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert appraisal.reasons == ("svn: SVN 2 is below the logged minimum 7",)
    # without the newer release on the log, the old one is fine
    alone = world.endorsements(["old"], ["old"])
    assert _appraise(world, device.quote(nonce), nonce, alone)[0].status is TrustTier.AFFIRMING


def test_a_policy_without_the_svn_rule_still_refuses_a_rollback(
    world: World, tmp_path: Path
) -> None:
    """A logged minimum SVN was enforced only by the ``svn`` rule: a custom policy without
    it affirmed a device booted on firmware below the floor. Rollback protection is not a
    policy option: evidence below the logged minimum is executables 96 under any policy."""
    world.release("old", svn=2, runtime=RUNTIME + b"old")
    world.release("new", svn=7, runtime=RUNTIME + b"new")
    device = world.device(tmp_path / "d", "old")
    mapping = DEFAULT_POLICY.to_mapping()
    mapping["rules"] = [r for r in mapping["rules"] if r["name"] != "svn"]
    policy = AppraisalPolicy.from_mapping({**mapping, "name": "no-svn-rule"})
    endorsements = world.endorsements(["old", "new"], ["old", "new"])
    nonce = _nonce()
    result = appraise_evidence(
        device.quote(nonce), endorsements, policy=policy, nonce=nonce, now=NOW
    )
    appraisal = result.submods["ironroot"]
    assert result.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert appraisal.reasons == (
        "svn: SVN 2 is below the logged minimum 7 (refused under any policy)",
    )
    # the same policy affirms the device when no newer release is logged
    alone = world.endorsements(["old"], ["old"])
    nonce = _nonce()
    result = appraise_evidence(device.quote(nonce), alone, policy=policy, nonce=nonce, now=NOW)
    assert result.status is TrustTier.AFFIRMING


def test_a_release_s_digests_claiming_a_higher_svn_are_not_that_release(
    world: World, tmp_path: Path
) -> None:
    # The good release (SVN 3) is logged; a bundle with its very FMC and runtime but a header
    # stating SVN 7 was never logged (component digests do not cover the header). Its quote
    # matched the good release's values, logged as a minimum SVN 3, and was affirmed.
    world.release("good-as-svn-7", svn=7, publish=False)
    device = world.device(tmp_path / "d", "good-as-svn-7")
    nonce = _nonce()
    endorsements = world.endorsements(["good"], ["good", "good-as-svn-7"])
    result, appraisal = _appraise(world, device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.startswith("reference-values: no logged reference value for ")
    assert reason.count("(its logged values are for SVN 3 exactly, the evidence claims 7)") == 2
    # the release itself, claiming the SVN its header states, is still affirmed
    good = world.device(tmp_path / "good", "good")
    assert _appraise(world, good.quote(nonce), nonce, endorsements)[0].status is (
        TrustTier.AFFIRMING
    )


def _as_published_before_exact_svns(corim: Corim) -> Corim:
    """``corim`` (a release's, from :func:`reference_corim`) as Ironroot published it before
    release CoRIMs stated exact SVNs: each SVN a minimum (553), tag-version absent."""
    (comid,) = corim.tags
    assert isinstance(comid, Comid)

    def floor(m: Measurement) -> Measurement:
        assert m.mval.svn is not None
        svn = Svn(m.mval.svn.value, minimum=True)
        return dataclasses.replace(m, mval=dataclasses.replace(m.mval, svn=svn))

    triples = tuple(
        dataclasses.replace(t, measurements=tuple(floor(m) for m in t.measurements))
        for t in comid.triples.reference
    )
    old = dataclasses.replace(
        comid,
        tag_identity=dataclasses.replace(comid.tag_identity, version=None),
        triples=dataclasses.replace(comid.triples, reference=triples),
    )
    return dataclasses.replace(corim, tags=(old,))


def test_publishing_a_release_again_replaces_its_corim_of_minimum_svns(
    world: World, tmp_path: Path
) -> None:
    # A release logged before release CoRIMs stated exact SVNs states a minimum: its
    # digests claiming a higher SVN still match it. Publishing the same bundle again (the
    # same tag-id) must replace that CoMID, so the higher claim stops matching.
    if "good-as-svn-7" not in world.bundles:
        world.release("good-as-svn-7", svn=7, publish=False)
    device = world.device(tmp_path / "d", "good-as-svn-7")
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        _as_published_before_exact_svns(corim).encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    old = world.client.register(statement).transparent_statement
    nonce = _nonce()
    alone = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[old],
        review_statements=[world.reviews["good"], world.reviews["good-as-svn-7"]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert _appraise(world, device.quote(nonce), nonce, alone)[0].status is TrustTier.AFFIRMING
    both = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[old, world.references["good"]],
        review_statements=[world.reviews["good"], world.reviews["good-as-svn-7"]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    result, appraisal = _appraise(world, device.quote(nonce), nonce, both)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.count("(its logged values are for SVN 3 exactly, the evidence claims 7)") == 2


def test_measurement_without_logged_reference_value(world: World, tmp_path: Path) -> None:
    world.release("unlogged", svn=3, runtime=RUNTIME + b"unlogged", publish=False)
    device = world.device(tmp_path / "d", "unlogged")
    nonce = _nonce()
    endorsements = world.endorsements(["good"], ["good", "unlogged"])
    result, appraisal = _appraise(world, device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert len(appraisal.reasons) == 1
    assert appraisal.reasons[0].startswith(
        "reference-values: no logged reference value for runtime "
    )


def test_firmware_without_safe_review(world: World, tmp_path: Path) -> None:
    world.release("unreviewed", svn=3, runtime=RUNTIME + b"unreviewed", review=None)
    device = world.device(tmp_path / "d", "unreviewed")
    nonce = _nonce()
    endorsements = world.endorsements(["good", "unreviewed"], ["good"])
    result, appraisal = _appraise(world, device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert len(appraisal.reasons) == 1
    assert appraisal.reasons[0].startswith(
        "safe-review: no logged OCP SAFE review of firmware sha384:"
    )


def test_open_issue_at_or_over_the_threshold(world: World, tmp_path: Path) -> None:
    world.release("vulnerable", svn=3, runtime=RUNTIME + b"vulnerable", review=(7.0, 3.1))
    device = world.device(tmp_path / "d", "vulnerable")
    nonce = _nonce()
    endorsements = world.endorsements(["good", "vulnerable"], ["good", "vulnerable"])
    result, appraisal = _appraise(world, device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNSAFE_RUNTIME
    assert len(appraisal.reasons) == 1
    assert "CVSS 7 (threshold 7)" in appraisal.reasons[0]


def _tamper_receipt(statement: bytes) -> bytes:
    message = Sign1.decode(statement)
    receipts = list(message.unprotected[RECEIPTS])  # type: ignore[call-overload]
    receipt = receipts[0]
    receipts[0] = flip(receipt, len(receipt) - 5)  # inside the receipt's signature
    unprotected = dict(message.unprotected)
    unprotected[RECEIPTS] = receipts
    body = [message.protected_bytes, unprotected, message.payload, message.signature]
    return b"\xd2" + encode_cbor(body)


def test_reference_value_whose_receipt_does_not_verify(world: World, good_device: Device) -> None:
    tampered = _tamper_receipt(world.references["good"])
    with pytest.raises(BadSignature):
        reference_values_from_statement(tampered, service_keys=world.service_keys)
    with pytest.raises(UnknownIssuer):
        reference_values_from_statement(world.references["good"], service_keys={})
    # built into endorsements, the statement is refused and its values do not count
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[tampered],
        review_statements=[world.reviews["good"]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert len(endorsements.reference_values) == 0
    assert endorsements.rejected[0].startswith("reference statement 0: bad-signature")
    nonce = _nonce()
    result, appraisal = _appraise(world, good_device.quote(nonce), nonce, endorsements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME


def test_quote_for_another_nonce_is_stale(world: World, good_device: Device) -> None:
    result, appraisal = _appraise(world, good_device.quote(_nonce()), _nonce())
    assert result.status is TrustTier.CONTRAINDICATED
    assert dict(appraisal.trust_vector) == {"instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE}
    assert "nonce-mismatch" in appraisal.reasons[0]


def test_cached_chain_verification_gives_the_same_claims(world: World, good_device: Device) -> None:
    cache = RotChainCache()
    anchors = world.ca.trust_anchors
    for _ in range(3):
        nonce = _nonce()
        quote = good_device.quote(nonce)
        cached = verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW, cache=cache)
        plain = verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW)
        assert cached == plain
    assert len(cache) == 1
    # a stale nonce, a bad signature and an expired chain are refused through the cache too
    quote = good_device.quote(_nonce())
    caches = EvidenceCaches(ironroot=cache)
    result = appraise_evidence(quote, world.endorsements(), nonce=_nonce(), now=NOW, caches=caches)
    assert result.submods["ironroot"].trust_vector == {
        "instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE
    }
    nonce = _nonce()
    quote = good_device.quote(nonce)
    signature = _message(quote, "ml-dsa-87").signature
    bad = flip(quote, quote.index(signature) + 7)
    result = appraise_evidence(bad, world.endorsements(), nonce=nonce, now=NOW, caches=caches)
    assert result.submods["ironroot"].trust_vector == {
        "instance-identity": AR4SI.CRYPTO_VALIDATION_FAILED
    }
    early = NOW - dt.timedelta(days=400)
    result = appraise_evidence(quote, world.endorsements(), nonce=nonce, now=early, caches=caches)
    assert result.submods["ironroot"].trust_vector == {
        "instance-identity": AR4SI.UNTRUSTWORTHY_INSTANCE
    }


def test_the_full_check_reuses_this_threads_decoding_of_the_same_quote_only(
    world: World, good_device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read for its nonce, a quote is not decoded again by the full check (issue 12); a
    quote with other bytes is decoded afresh, and refused as ``verify_quote`` refuses it."""
    anchors = world.ca.trust_anchors
    nonce = _nonce()
    quote = good_device.quote(nonce)
    assert _rot.signed_nonce(quote) == nonce  # decoded, and kept by identity for this thread
    decoded: list[bytes] = []
    real = _quote.decode_cbor

    def counting(data: bytes, limits: Limits) -> object:
        decoded.append(data)
        return real(data, limits)

    monkeypatch.setattr(_quote, "decode_cbor", counting)
    claims = verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW)
    assert not any(d is quote for d in decoded)  # the container: not decoded again
    copy = bytes(bytearray(quote))  # the same content, another object: decoded here
    assert verify_rot_quote(copy, nonce=nonce, trust_anchors=anchors, now=NOW) == claims
    assert any(d is copy for d in decoded)
    signature = _message(quote, "ml-dsa-87").signature
    bad = flip(quote, quote.index(signature) + 7)
    with pytest.raises(BadSignature):
        verify_quote(bad, nonce=nonce, trust_anchors=anchors, now=NOW)
    assert _rot.signed_nonce(quote) == nonce  # the last decoded is the good quote again
    with pytest.raises(BadSignature):
        verify_rot_quote(bad, nonce=nonce, trust_anchors=anchors, now=NOW)


@pytest.mark.parametrize("debug_locked", [True, False])
def test_a_warm_cache_refuses_claims_the_certificates_deny(
    world: World, good_device: Device, debug_locked: bool
) -> None:
    # The cached path must not accept a re-signed quote (same chains, the device's own RT
    # alias key) whose SVN or debug state differs from what the certificates certify.
    cache = RotChainCache()
    anchors = world.ca.trust_anchors
    nonce = _nonce()
    verify_rot_quote(
        good_device.quote(nonce), nonce=nonce, trust_anchors=anchors, now=NOW, cache=cache
    )
    assert len(cache) == 1
    state = good_device.boot_state
    assert state is not None
    layers = derive_layers(good_device.fuses, state.pcrs)
    forged_state = state if not debug_locked else dataclasses.replace(state, svn=state.svn + 50)
    quote = create_quote(
        nonce=nonce,
        rt_alias=layers.rt_alias,
        ueid=layers.ueid,
        state=forged_state,
        idevid_certificates={a: good_device.idevid_certificate(a) for a in _ALGS},
        lifecycle=good_device.fuses.lifecycle,
        debug_locked=debug_locked,
    )
    with pytest.raises(VerificationFailed):
        verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW, cache=cache)


def _short_lived(ca: VendorCA, not_after: dt.datetime) -> list[bytes]:
    """The vendor roots re-issued (same names and keys) to expire at ``not_after``."""
    out = []
    for alg in _ALGS:
        key = ca.key(alg)
        der = ca.ecc_certificate if alg is Algorithm.ES384 else ca.mldsa_certificate
        old = x509.load_der_x509_certificate(der)
        builder = (
            x509.CertificateBuilder()
            .subject_name(old.subject)
            .issuer_name(old.subject)
            .public_key(key.public_key.raw)
            .serial_number(x509.random_serial_number())
            .not_valid_before(old.not_valid_before_utc)
            .not_valid_after(not_after)
        )
        for ext in old.extensions:
            builder = builder.add_extension(ext.value, critical=ext.critical)
        digest = hashes.SHA384() if alg is Algorithm.ES384 else None
        out.append(builder.sign(key.raw, digest).public_bytes(Encoding.DER))
    return out


def test_a_warm_cache_refuses_a_quote_once_the_vendor_root_expired(
    world: World, good_device: Device
) -> None:
    anchors = _short_lived(world.ca, NOW + dt.timedelta(days=1))
    later = NOW + dt.timedelta(days=2)
    cache = RotChainCache()
    nonce = _nonce()
    verify_rot_quote(
        good_device.quote(nonce), nonce=nonce, trust_anchors=anchors, now=NOW, cache=cache
    )
    assert len(cache) == 1
    nonce = _nonce()
    quote = good_device.quote(nonce)
    with pytest.raises(CertificateExpired):
        verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=later)
    with pytest.raises(CertificateExpired):
        verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=later, cache=cache)


@pytest.mark.parametrize("code", [-1, 0, 1])
def test_a_rule_failing_with_a_none_tier_code_is_refused(
    world: World, good_device: Device, code: int
) -> None:
    # A failed rule whose code is in the none tier (-1..1) would leave its category with a
    # claim that lowers no status: the rule would fail and the EAR still be affirming.
    text = f"""
        [policy]
        name = "lab"
        [[policy.rules]]
        name = "genoa-only"
        expression = 'format == "snp"'
        category = "hardware"
        code = {code}
        reason = "only Genoa here"
    """
    with pytest.raises(ConfigError, match="none tier"):
        AppraisalPolicy.from_toml(text)
    # the same rule with a warning code does what it says
    policy = AppraisalPolicy.from_toml(text.replace(f"code = {code}", "code = 32"))
    nonce = _nonce()
    result = appraise_evidence(
        good_device.quote(nonce), world.endorsements(), policy=policy, nonce=nonce, now=NOW
    )
    assert result.submods["ironroot"].trust_vector["hardware"] == 32
    assert result.status is TrustTier.WARNING


def test_rules_with_comments_and_long_rules_combine(world: World, good_device: Device) -> None:
    # The rules were joined on one line: a rule ending in a // comment swallowed the rest
    # (ConfigError "do not combine"), and when that line was longer than 65,534 characters
    # the CEL parser panicked (PanicException, a BaseException) instead.
    long = " && ".join(["true"] * 510)  # 4,076 characters
    rules = [
        {
            "name": "commented",
            "expression": 'format == "snp" // Genoa only here',
            "category": "hardware",
            "code": 32,
            "reason": "only Genoa here",
        },
        *(
            {
                "name": f"long-{i}",
                "expression": long,
                "category": "hardware",
                "code": 32,
                "reason": "r",
            }
            for i in range(17)
        ),
    ]
    policy = AppraisalPolicy.from_mapping({"name": "lab", "rules": rules})
    nonce = _nonce()
    result = appraise_evidence(
        good_device.quote(nonce), world.endorsements(), policy=policy, nonce=nonce, now=NOW
    )
    assert result.submods["ironroot"].trust_vector["hardware"] == 32


@pytest.mark.parametrize("keyed", [True, False], ids=["vendor-keys", "no-vendor-keys"])
@pytest.mark.parametrize("days", [-1, 1], ids=["expired", "not-yet-valid"])
def test_signed_corim_outside_its_signature_validity(world: World, days: int, keyed: bool) -> None:
    # A vendor-signed CoRIM states in corim-meta when its signature counts; with the vendor's
    # key configured the signature was verified but that window was never read, so a CoRIM
    # whose signature had expired still gave reference values. Without vendor keys the inner
    # signature is not verified, but the logged statement vouches for these bytes, dates
    # included: they were not read at all, so the same expired CoRIM was taken.
    def logged(window: Validity) -> bytes:
        corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
        signed = sign_corim(corim, world.vendor_key, meta=CorimMeta("vendor", None, window))
        statement = create_statement(
            world.vendor_key, signed, iss=VENDOR_ISS, sub=PRODUCT, content_type=CORIM_CONTENT_TYPE
        )
        return world.client.register(statement).transparent_statement

    def values(data: bytes, mode: str = "refuse") -> tuple[ReferenceValue, ...]:
        return reference_values_from_statement(
            data,
            service_keys=world.service_keys,
            vendor_keys={VENDOR_ISS: [world.vendor_key.public_key]} if keyed else None,
            publishers=world.publishers,
            now=NOW,
            outside_validity=mode,
        )

    at = int(NOW.timestamp())
    day = 86_400
    assert values(logged(Validity(not_after=at + day, not_before=at - day)))
    outside = (
        Validity(not_after=at - day, not_before=at - 2 * day)
        if days < 0
        else Validity(not_after=at + 2 * day, not_before=at + day)
    )
    data = logged(outside)
    with pytest.raises(VerificationFailed) as caught:
        values(data)
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "rim-expired"
    assert "(corim-meta signature-validity)" in caught.value.detail
    # outside_validity="report" takes it, its values carrying the signature's window
    taken = values(data, "report")
    assert taken
    assert not any(v.valid_at(NOW) for v in taken)
    assert all(v.not_after == outside.not_after for v in taken)
    assert all(v.not_before == outside.not_before for v in taken)


@pytest.mark.parametrize(
    ("claims", "refused"),
    [
        ({4: 86_400, 5: -86_400}, None),  # in force (offsets in seconds from NOW, below)
        ({5: 0}, None),  # nbf is now: reached
        ({4: 1}, None),  # exp a second after now
        ({4: -86_400}, "rim-expired"),  # exp passed
        ({4: 0}, "rim-expired"),  # exp is now: valid before it, not at it
        ({5: 86_400}, "rim-expired"),  # nbf not reached
        ({5: 1}, "rim-expired"),  # nbf a second after now
        ({4: "tomorrow"}, "malformed-corim"),
        ({4: 1.5}, "malformed-corim"),  # a NumericDate with a fraction: not taken
        ({5: True}, "malformed-corim"),
        ({4: cbor2.CBORTag(1, 0)}, "malformed-corim"),
    ],
    ids=[
        "in-force",
        "nbf-is-now",
        "exp-in-a-second",
        "expired",
        "exp-is-now",
        "not-yet-valid",
        "nbf-in-a-second",
        "text",
        "float",
        "bool",
        "tagged",
    ],
)
@pytest.mark.parametrize("keyed", [True, False], ids=["vendor-keys", "no-vendor-keys"])
def test_signed_corim_outside_its_cwt_exp_and_nbf(
    world: World, claims: dict[int, object], refused: str | None, keyed: bool
) -> None:
    # A vendor-signed CoRIM may state its validity as CWT claims exp (4) and nbf (5) instead
    # of corim-meta: those were never read either (and, without vendor keys, still were not).
    at = int(NOW.timestamp())
    timed = {k: at + v if type(v) is int else v for k, v in claims.items()}
    corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
    signed = sign_corim(corim, world.vendor_key, cwt_claims={1: VENDOR_ISS, **timed})
    statement = create_statement(
        world.vendor_key, signed, iss=VENDOR_ISS, sub=PRODUCT, content_type=CORIM_CONTENT_TYPE
    )
    data = world.client.register(statement).transparent_statement
    vendor_keys = {VENDOR_ISS: [world.vendor_key.public_key]} if keyed else None

    def values() -> object:
        return reference_values_from_statement(
            data,
            service_keys=world.service_keys,
            vendor_keys=vendor_keys,
            publishers=world.publishers,
            now=NOW,
        )

    if refused is None:
        assert values()
        return
    with pytest.raises(IronrootError) as caught:
        values()
    assert type(caught.value) is (
        VerificationFailed if refused == "rim-expired" else MalformedCorim
    )
    assert caught.value.code == refused
    # outside_validity="report" takes a statement refused for its dates alone, its values
    # carrying the span (exp is exclusive), and still refuses anything else
    report = functools.partial(
        reference_values_from_statement,
        data,
        service_keys=world.service_keys,
        vendor_keys=vendor_keys,
        publishers=world.publishers,
        now=NOW,
        outside_validity="report",
    )
    if refused == "rim-expired":
        taken = report()
        assert taken
        assert not any(v.valid_at(NOW) for v in taken)
        if 4 in timed:
            assert all(v.not_after == timed[4] - 1 for v in taken)
        if 5 in timed:
            assert all(v.not_before == timed[5] for v in taken)
    else:
        with pytest.raises(MalformedCorim) as malformed:
            report()
        assert type(malformed.value) is MalformedCorim
        assert f"CWT claim {next(iter(claims))} is not an integer" in malformed.value.detail


@pytest.mark.parametrize(
    ("not_before", "not_after", "in_force"),
    [
        (0, 86_400, True),  # not-before is now: reached
        (-86_400, 0, True),  # not-after is now: both ends count
        (1, 86_400, False),  # not-before a second after now
        (-86_400, -1, False),  # not-after a second before now
        (-(2**63), 2**64 - 1, True),  # the widest span CBOR integers state
    ],
    ids=[
        "not-before-is-now",
        "not-after-is-now",
        "nbf-in-a-second",
        "expired-a-second-ago",
        "wide",
    ],
)
def test_rim_validity_at_its_edges(
    world: World, not_before: int, not_after: int, in_force: bool
) -> None:
    at = int(NOW.timestamp())
    window = Validity(not_after=at + not_after, not_before=at + not_before)
    if not_before < -at:
        window = Validity(not_after=not_after, not_before=not_before)  # absolute, not offsets
    corim = dataclasses.replace(
        reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT),
        rim_validity=window,
    )
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.client.register(statement).transparent_statement
    read = functools.partial(
        reference_values_from_statement,
        data,
        service_keys=world.service_keys,
        publishers=world.publishers,
        now=NOW,
    )
    taken = read(outside_validity="report")
    assert taken
    assert all(v.valid_at(NOW) is in_force for v in taken)
    assert all((v.not_before, v.not_after) == (window.not_before, window.not_after) for v in taken)
    if in_force:
        assert read() == taken
    else:
        with pytest.raises(VerificationFailed) as caught:
            read()
        assert type(caught.value) is VerificationFailed
        assert caught.value.code == "rim-expired"


def test_outside_validity_is_report_or_refuse(world: World) -> None:
    corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.client.register(statement).transparent_statement
    with pytest.raises(ConfigError) as caught:
        reference_values_from_statement(
            data,
            service_keys=world.service_keys,
            publishers=world.publishers,
            now=NOW,
            outside_validity="ignore",
        )
    assert type(caught.value) is ConfigError
    assert caught.value.detail == 'outside_validity is "refuse" or "report"'


def test_a_naive_now_is_refused(world: World) -> None:
    """A ``now`` without a timezone was read as the machine's local time (``timestamp()``):
    where that is ahead of UTC, a CoRIM that had expired hours ago was still in force."""
    corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.client.register(statement).transparent_statement
    naive = NOW.replace(tzinfo=None)
    with pytest.raises(ConfigError) as caught:
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=naive
        )
    assert type(caught.value) is ConfigError
    assert caught.value.detail == "now must be a timezone-aware datetime"
    for statements in ([("rv", data)], []):  # the caller's mistake, not each statement's
        with pytest.raises(ConfigError) as built:
            Endorsements.build(
                service_keys=world.service_keys,
                reference_statements=statements,
                publishers=world.publishers,
                now=naive,
            )
        assert type(built.value) is ConfigError
        assert built.value.detail == "now must be a timezone-aware datetime"


def test_endorsements_build_refuses_a_misspelt_outside_validity(world: World) -> None:
    """A misspelt ``outside_validity`` is the caller's mistake, raised at once: it was passed
    to each statement's read, whose ``ConfigError`` ``load_each`` took for that statement's
    fault, so the verifier started with every statement "rejected" (or, with none, not a word)."""
    corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.client.register(statement).transparent_statement
    for statements in ([("rv", data)], []):
        with pytest.raises(ConfigError) as caught:
            Endorsements.build(
                service_keys=world.service_keys,
                reference_statements=statements,
                publishers=world.publishers,
                now=NOW,
                outside_validity="Report",
            )
        assert type(caught.value) is ConfigError
        assert caught.value.detail == 'outside_validity is "refuse" or "report"'


def _appraised_at(device: Device, endorsements: Endorsements, at: dt.datetime) -> Appraisal:
    """``device``'s quote for a fresh nonce, appraised at ``at``."""
    nonce = _nonce()
    result = appraise_evidence(device.quote(nonce), endorsements, nonce=nonce, now=at)
    return result.submods["ironroot"]


@pytest.mark.parametrize(
    "window",
    [
        {"rim_validity": 3600},  # the CoRIM's rim-validity
        {"signature_validity": 3600},  # its corim-meta signature validity
        {"exp": 3600},  # its CWT exp
    ],
    ids=["rim-validity", "signature-validity", "cwt-exp"],
)
def test_reference_values_that_expire_after_start_up_stop_matching(
    world: World, tmp_path: Path, window: dict[str, int]
) -> None:
    # Endorsements are read once, when the verifier starts, and the validity of each CoRIM
    # was checked only then: a verifier that kept running matched its reference values
    # after they had expired.
    name = f"expiring-{next(iter(window))}"
    world.release(name, svn=3, runtime=RUNTIME + name.encode(), publish=False)
    until = int(NOW.timestamp()) + next(iter(window.values()))
    corim = reference_corim(world.bundles[name], vendor=VENDOR_ISS, model=PRODUCT)
    if "rim_validity" in window:
        corim = dataclasses.replace(corim, rim_validity=Validity(not_after=until))
    meta = CorimMeta("vendor", None, Validity(not_after=until))
    signed = sign_corim(
        corim,
        world.vendor_key,
        meta=meta if "signature_validity" in window else None,
        cwt_claims={1: VENDOR_ISS, 4: until} if "exp" in window else {1: VENDOR_ISS},
    )
    statement = create_statement(
        world.vendor_key, signed, iss=VENDOR_ISS, sub=PRODUCT, content_type=CORIM_CONTENT_TYPE
    )
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.client.register(statement).transparent_statement],
        review_statements=[world.reviews[name]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_keys={VENDOR_ISS: [world.vendor_key.public_key]},
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    device = world.device(tmp_path / "device", name)
    assert _appraised_at(device, endorsements, NOW + dt.timedelta(minutes=59)).status is (
        TrustTier.AFFIRMING
    )
    later = _appraised_at(device, endorsements, NOW + dt.timedelta(hours=2))
    assert later.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert any(
        line.startswith("reference-values: no logged reference value for fmc ")
        and line.endswith("(its logged values have expired)")
        for line in later.reasons
    )


def test_a_safe_review_that_expires_after_start_up_stops_counting(
    world: World, tmp_path: Path
) -> None:
    # SAFE reviews are read once too, and a review's exp was checked only then: a verifier
    # that kept running counted a review after it had expired.
    name = "review-expiring"
    world.release(name, svn=3, runtime=RUNTIME + name.encode(), review=None)
    digest = FirmwareBundle.parse(world.bundles[name]).manifest_digest()
    report = json.loads(sfr_json(digest))
    report["exp"] = int(NOW.timestamp()) + 3600
    sfr = sign_report(json.dumps(report).encode(), world.provider_key, PROVIDER)
    review = world.client.register(sfr_statement(sfr, world.safe_key, iss=SAFE_ISS))
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.references[name]],
        review_statements=[review.transparent_statement],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    device = world.device(tmp_path / "device", name)
    assert _appraised_at(device, endorsements, NOW + dt.timedelta(minutes=59)).status is (
        TrustTier.AFFIRMING
    )
    later = _appraised_at(device, endorsements, NOW + dt.timedelta(hours=2))
    assert later.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert [line.split(":")[0] for line in later.reasons] == ["safe-review"]


@pytest.mark.parametrize(
    ("expression", "kind"), [('"yes"', "a string"), ("1", "an int"), ("[true]", "a list")]
)
def test_a_rule_that_is_a_constant_non_boolean_is_refused(expression: str, kind: str) -> None:
    # Accepted before, the rule failed for every piece of evidence ("not true").
    rule = {"name": "shape", "expression": expression, "category": "hardware", "code": 32}
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping({"name": "lab", "rules": [{**rule, "reason": "r"}]})
    assert type(caught.value) is ConfigError
    assert caught.value.detail == f"rule shape always evaluates to {kind}, not a boolean"


def test_a_rule_with_a_macro_reads_only_its_free_variables() -> None:
    rule = {"category": "hardware", "code": 32, "reason": "r"}
    rules = [
        {**rule, "name": "all-positive", "expression": "[1, 2].all(svn, svn > 0) && min_svn >= 0"},
        {**rule, "name": "constant", "expression": "[1].all(x, x > 0)"},
    ]
    policy = AppraisalPolicy.from_mapping({"name": "lab", "rules": rules})
    # svn is the macro's variable, not the context's (which is passed only when read).
    assert policy.variables == frozenset({"min_svn"})
    assert policy.evaluate({"min_svn": 1, "svn": {}}) == ()
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping(
            {"name": "lab", "rules": [{**rule, "name": "m", "expression": "[1].map(x, x)"}]}
        )
    assert type(caught.value) is ConfigError
    assert caught.value.detail == "rule m always evaluates to a list, not a boolean"


def _remembering_policy(expression: str) -> AppraisalPolicy:
    rule = {"name": "r", "expression": expression, "category": "hardware", "code": 32}
    return AppraisalPolicy.from_mapping({"name": "lab", "rules": [{**rule, "reason": "r"}]})


@pytest.mark.parametrize(
    ("expression", "first", "then"),
    [
        # the same values under Python's == and hash, not to CEL: each remembered apart
        ("min_svn == 1", {"min_svn": 1}, {"min_svn": True}),
        ("min_svn + 1 == 2", {"min_svn": 1}, {"min_svn": 1.0}),
        ("string(worst_cvss) == '0'", {"worst_cvss": 0.0}, {"worst_cvss": -0.0}),
        ("unmatched[0] == 'a'", {"unmatched": ["a", "b"]}, {"unmatched": ["b", "a"]}),
        ("reviews.size() == 0", {"reviews": []}, {"reviews": [{}]}),
        ("svn >= min_svn", {"svn": 3, "min_svn": 3}, {"svn": 3, "min_svn": 4}),
    ],
)
def test_a_remembered_outcome_serves_only_the_very_same_inputs(
    expression: str, first: dict[str, object], then: dict[str, object]
) -> None:
    policy = _remembering_policy(expression)
    alone = _remembering_policy(expression)  # a fresh policy: nothing remembered
    assert policy.evaluate(first) == ()
    assert policy.evaluate(first) == ()  # remembered
    expected = [f.reason for f in alone.evaluate(then)]
    assert expected  # the other value fails the rule
    assert [f.reason for f in policy.evaluate(then)] == expected
    assert policy.evaluate(first) == ()


def test_a_policy_reading_what_one_evidence_carries_alone_remembers_nothing() -> None:
    assert _remembering_policy("format == 'x'")._results is not None
    assert _remembering_policy("raw.size() > 0")._results is None
    assert _remembering_policy("identity.size() > 0")._results is None


_APPRAISAL_VARIABLES = (
    "anti_rollback_disabled, checks, components, cvss_threshold, debug, firmware_hash, "
    "format, identity, measurements, migration_agent, min_svn, nonce_ok, not_checked, raw, "
    "report_data, reviews, root, root_trusted, signer, snp_vmpls, svn, svns, tcb_status, "
    "unmatched, vmpl, worst_cvss"
)


@pytest.mark.parametrize(
    ("expression", "unknown"),
    [
        ("min_snv <= svn", "min_snv"),  # for min_svn
        ("debug == false && Root_trusted", "Root_trusted"),
        ("[1].all(x, x > 0) && x == 1", "x"),  # x is bound only inside the macro
        ('.format == "rot"', ".format"),
    ],
)
def test_a_rule_naming_an_unknown_variable_is_refused(expression: str, unknown: str) -> None:
    # Accepted before: the name was unbound at every evaluation, so the rule failed for every
    # piece of evidence (its code, whatever the evidence said), from the first appraisal on.
    rule = {"name": "typo", "expression": expression, "category": "hardware", "code": 32}
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping({"name": "lab", "rules": [{**rule, "reason": "r"}]})
    assert type(caught.value) is ConfigError
    assert caught.value.code == "config"
    assert caught.value.detail == (
        f"rule typo names unknown variables: {unknown} (known: {_APPRAISAL_VARIABLES})"
    )


def test_a_rule_may_read_every_variable_the_appraisal_gives(
    world: World, good_device: Device
) -> None:
    expression = " && ".join(f"({n} == {n})" for n in _APPRAISAL_VARIABLES.split(", "))
    rules = [
        *DEFAULT_POLICY.to_mapping()["rules"],
        {
            "name": "every-variable",
            "expression": expression,
            "category": "hardware",
            "code": 32,
            "reason": "unbound",
        },
    ]
    policy = AppraisalPolicy.from_mapping({"name": "lab", "rules": rules})
    nonce = _nonce()
    result = appraise_evidence(
        good_device.quote(nonce), world.endorsements(), policy=policy, nonce=nonce, now=NOW
    )
    assert result.submods["ironroot"].status is TrustTier.AFFIRMING


def test_a_costly_rule_or_rules_together_are_refused() -> None:
    rule = {"category": "hardware", "code": 32, "reason": "r"}
    nested = "reviews.all(r, reviews.all(s, r.max_cvss >= s.max_cvss))"  # a million passes
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping(
            {"name": "lab", "rules": [{**rule, "name": "n", "expression": nested}]}
        )
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith("rule n may take 67,125,248 steps to evaluate")
    # Forty passes per review is within the bound (lists of up to 4,096 items, what evidence
    # and endorsements hold); two rules of it are not, and nor is a hundred passes (within
    # the bound when it took lists of 1,024).
    forty = "[" + ", ".join(str(i) for i in range(40)) + "]"
    one = f"reviews.all(r, {forty}.exists(i, r.max_cvss > i))"
    AppraisalPolicy.from_mapping(
        {"name": "lab", "rules": [{**rule, "name": "a", "expression": one}]}
    )
    rules = [{**rule, "name": name, "expression": one} for name in ("a", "b")]
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping({"name": "lab", "rules": rules})
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith(
        "the policy's rules together may take 1,343,488 steps to evaluate, more than the limit"
    )
    hundred = "[" + ", ".join(str(i) for i in range(100)) + "]"
    with pytest.raises(ConfigError) as caught:
        AppraisalPolicy.from_mapping(
            {
                "name": "lab",
                "rules": [
                    {
                        **rule,
                        "name": "h",
                        "expression": f"reviews.all(r, {hundred}.exists(i, r.max_cvss > i))",
                    }
                ],
            }
        )
    assert caught.value.detail.startswith("rule h may take 1,654,784 steps to evaluate")


def test_a_review_stating_a_low_score_for_a_critical_vector_is_an_open_critical_issue(
    world: World, tmp_path: Path
) -> None:
    # The appraisal read only the stated score: "3.0" beside a vector that computes to 9.8
    # passed the 7.0 threshold, while a reader scoring the vector refused the firmware.
    name = "review-understated"
    world.release(name, svn=3, runtime=RUNTIME + name.encode(), review=None)
    digest = FirmwareBundle.parse(world.bundles[name]).manifest_digest()
    report = json.loads(sfr_json(digest, (3.0,)))
    report["audit"]["issues"][0]["cvss_vector"] = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    sfr = sign_report(json.dumps(report).encode(), world.provider_key, PROVIDER)
    review = world.client.register(sfr_statement(sfr, world.safe_key, iss=SAFE_ISS))
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.references[name]],
        review_statements=[review.transparent_statement],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    appraisal = _appraised_at(world.device(tmp_path / "device", name), endorsements, NOW)
    assert appraisal.trust_vector["executables"] == AR4SI.UNSAFE_RUNTIME
    assert [line.split(":")[0] for line in appraisal.reasons] == ["safe-issues"]
    assert "CVSS 9.8 (threshold 7)" in appraisal.reasons[0]


def test_rot_claims_hold_until_the_first_chain_certificate_ends(
    world: World, good_device: Device
) -> None:
    # The EAR's exp was capped for SNP/TDX/GPU only: a RoT quote whose vendor root expired
    # in 20 days got an EAR affirming it for the whole result lifetime.
    ecc_end = NOW + dt.timedelta(days=30)
    mldsa_end = NOW + dt.timedelta(days=20)
    anchors = [_short_lived(world.ca, ecc_end)[0], _short_lived(world.ca, mldsa_end)[1]]
    nonce = _nonce()
    quote = good_device.quote(nonce)
    plain = verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW)
    assert plain.valid_until == mldsa_end.replace(microsecond=0)
    cache = RotChainCache()
    for _ in range(2):  # filling the cache, then from it
        cached = verify_rot_quote(quote, nonce=nonce, trust_anchors=anchors, now=NOW, cache=cache)
        assert cached.valid_until == plain.valid_until
    result = appraise_evidence(
        quote, world.endorsements(roots=tuple(anchors)), nonce=nonce, now=NOW,
        lifetime=90 * 86400,
    )  # fmt: skip
    assert result.status is TrustTier.AFFIRMING
    assert result.exp == int(mldsa_end.timestamp())
    # the device's own DICE certificates never expire: with the usual roots, the roots' end
    usual = verify_rot_quote(quote, nonce=nonce, trust_anchors=world.ca.trust_anchors, now=NOW)
    assert usual.valid_until == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
