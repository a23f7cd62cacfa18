"""The update checks, end to end with real pieces: vendor ECDSA P-384 and ML-DSA-87 keys, signed
bundles, signed PFMs, manifest statements and SAFE reviews registered on a transparency service
running in this process (and on a second one the platform does not trust).

One update passes; then each "must reject" of issue 11 that the checks decide is fed in, and the
exact error class, code and failing check asserted; then the report of ``check_update``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterator

import pytest
from tests.platform.update_world import (
    FIRMWARE_CHECKS,
    NOW,
    OTHER_ISS,
    PLATFORM,
    PROVIDER,
    VENDOR_ISS,
    World,
    _active_pfm,
    _args,
    _refused,
    _register,
    update_world,
)

from ironroot.cose import HASH_SHA384, TransparentStatement, create_statement, make_transparent
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    DigestMismatch,
    FirmwareRejected,
    InvalidProof,
    IronrootError,
    KeyRevoked,
    MissingSignature,
    PolicyRejected,
    SvnRollback,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import (
    MANIFEST_CONTENT_TYPE,
    FirmwareBundle,
    manifest_statement,
)
from ironroot.platform import (
    PFM_CONTENT_TYPE,
    UPDATE_CHECKS,
    PfmVersion,
    UpdateReport,
    VerifiedUpdate,
    check_update,
    pfm_statement,
    sign_pfm,
    verify_update,
)
from logged_elsewhere import logged_elsewhere


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from update_world(tmp_path_factory)


# --- the update that passes -----------------------------------------------------------------


def test_a_logged_signed_update_in_the_pfm_passes_every_check(world: World) -> None:
    bundle = world.bundles["bmc-2"]
    statements = [world.logged["bmc-2"], world.review("bmc-2", (4.2,))]
    verified = verify_update("bmc", bundle, statements, **_args(world, trust=world.safe_trust()))
    assert isinstance(verified, VerifiedUpdate)
    assert verified.component == "bmc"
    assert verified.sha384 == hashlib.sha384(bundle).digest()
    assert verified.manifest_digest == FirmwareBundle.parse(bundle).manifest_digest()
    assert verified.svn == 2
    assert verified.version == PfmVersion("2.0", 2, verified.sha384)
    assert verified.pfm == _active_pfm(world)
    assert verified.new_pfm is None
    assert verified.statement.claims.iss == VENDOR_ISS
    assert verified.statement.payload == verified.manifest_digest
    assert [r.provider_kid for r in verified.reviews] == [PROVIDER]
    assert verified.firmware.svn == 2

    report = check_update("bmc", bundle, statements, **_args(world, trust=world.safe_trust()))
    assert report.ok
    assert report.first_failure is None
    assert tuple(c.name for c in report.checks) == FIRMWARE_CHECKS + UPDATE_CHECKS
    assert all(c.passed for c in report.checks)
    assert report.verified == verified


def test_an_update_carrying_a_new_logged_pfm_is_checked_against_it(world: World) -> None:
    new = world.pfm(
        2,
        {
            "bmc": [("2.0", 2, "bmc-2"), ("3.0", 3, "bmc-3")],
            "host": [("1.0", 1, "host-1")],
        },
    )
    signed, logged = world.logged_pfm(new)
    verified = verify_update(
        "bmc",
        world.bundles["bmc-3"],
        [world.logged["bmc-3"]],
        **_args(world, pfm=signed, pfm_statement=logged),
    )
    assert verified.pfm == new
    assert verified.new_pfm == signed
    assert verified.version.version == "3.0"
    # the statement alone carries the PFM (its payload)
    again = verify_update(
        "bmc",
        world.bundles["bmc-3"],
        [world.logged["bmc-3"]],
        **_args(world, pfm_statement=logged),
    )
    assert again.new_pfm == signed


# --- must reject: the firmware checks --------------------------------------------------------


def test_an_unsigned_bundle_is_refused(world: World) -> None:
    unsigned = world.release("bmc-unsigned", svn=2, runtime=b"bmc runtime 2.0" * 64, signed=False)
    _refused(
        world,
        unsigned,
        [world.logged["bmc-unsigned"]],
        MissingSignature,
        "missing-signature",
        "vendor-ecc-signature",
    )


def test_a_signature_by_a_revoked_key_is_refused(world: World) -> None:
    revoked = world.fuses(ecc_revocation=0b0001)  # ECC key 0 signed every release
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        KeyRevoked,
        "key-revoked",
        "ecc-revocation",
        fuses=revoked,
    )


def test_an_svn_rollback_is_refused(world: World) -> None:
    _refused(
        world,
        world.bundles["bmc-1"],
        [world.logged["bmc-1"]],
        SvnRollback,
        "svn-rollback",
        "svn",
        min_svn=2,
    )


# --- must reject: the PFM --------------------------------------------------------------------


def test_a_version_not_in_the_pfm_is_refused(world: World) -> None:
    _refused(
        world,
        world.bundles["bmc-3"],
        [world.logged["bmc-3"]],
        FirmwareRejected,
        "not-in-pfm",
        "pfm",
    )


def test_a_pfm_signed_by_another_key_is_refused(world: World) -> None:
    stranger = (PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ML_DSA_87))
    signed, logged = world.logged_pfm(_active_pfm(world, svn=2), signers=stranger)
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        BadSignature,
        "bad-signature",
        "pfm",
        pfm=signed,
        pfm_statement=logged,
    )


def test_a_pfm_with_a_lower_svn_is_refused(world: World) -> None:
    signed, logged = world.logged_pfm(_active_pfm(world, svn=1))
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        SvnRollback,
        "svn-rollback",
        "pfm",
        active_pfm=_active_pfm(world, svn=2),
        pfm=signed,
        pfm_statement=logged,
    )


def test_a_changed_pfm_at_the_active_svn_is_refused(world: World) -> None:
    """One SVN, one PFM (``ironroot.platform._pfm``): the vendor withdrew bmc 1.0 by signing
    PFM B at the active svn 2; the older PFM A (svn 2, still listing 1.0, validly signed and
    logged) must not come back. Before, an equal SVN passed the rollback check."""
    active = world.pfm(2, {"bmc": [("2.0", 2, "bmc-2")], "host": [("1.0", 1, "host-1")]})
    older = _active_pfm(world, svn=2)  # also lists bmc 1.0
    signed, logged = world.logged_pfm(older)
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        SvnRollback,
        "pfm-svn-reused",
        "pfm",
        active_pfm=active,
        pfm=signed,
        pfm_statement=logged,
    )
    # the active PFM itself, carried again (re-signed: other signature bytes), still passes
    again, again_logged = world.logged_pfm(active)
    verified = verify_update(
        "bmc",
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        **_args(world, active_pfm=active, pfm=again, pfm_statement=again_logged),
    )
    assert verified.pfm == active


def test_a_new_pfm_that_drops_another_components_active_image_is_refused(world: World) -> None:
    new = world.pfm(2, {"bmc": [("2.0", 2, "bmc-2")], "host": [("9.9", 9, "bmc-3")]})
    signed, logged = world.logged_pfm(new)
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        PolicyRejected,
        "pfm-drops-active-image",
        "pfm",
        pfm=signed,
        pfm_statement=logged,
    )


def test_a_new_pfm_that_drops_a_recovery_image_is_refused(world: World) -> None:
    """The BMC recovers to bmc-1 until bmc-2 has booted healthy; a PFM without bmc-1 would
    leave it nothing to recover to (the old checks accepted it)."""
    new = world.pfm(2, {"bmc": [("2.0", 2, "bmc-2")], "host": [("1.0", 1, "host-1")]})
    signed, logged = world.logged_pfm(new)
    recovery = {
        "bmc": hashlib.sha384(world.bundles["bmc-1"]).digest(),
        "host": hashlib.sha384(world.bundles["host-1"]).digest(),
    }
    carried = {"pfm": signed, "pfm_statement": logged, "recovery_images": recovery}
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        PolicyRejected,
        "pfm-drops-recovery-image",
        "pfm",
        **carried,
    )
    with pytest.raises(PolicyRejected) as info:  # naming another component accepts nothing
        verify_update(
            "bmc",
            world.bundles["bmc-2"],
            [world.logged["bmc-2"]],
            **_args(world, **carried, allow_recovery_removal=["host"]),
        )
    assert info.value.detail == (
        "the new PFM no longer allows the bmc recovery image: bmc could not be recovered "
        "(allow_recovery_removal must name it to accept that)"
    )
    verified = verify_update(
        "bmc",
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        **_args(world, **carried, allow_recovery_removal=["bmc"]),
    )
    assert verified.pfm == new


def test_an_unlogged_pfm_is_refused(world: World) -> None:
    signed = sign_pfm(_active_pfm(world, svn=2), world.ecc[0], world.pqc[0])
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        PolicyRejected,
        "no-receipt",
        "pfm",
        pfm=signed,
    )


def test_a_logged_pfm_that_is_not_the_one_carried_is_refused(world: World) -> None:
    _signed, logged = world.logged_pfm(_active_pfm(world, svn=2))
    other = sign_pfm(_active_pfm(world, svn=3), world.ecc[0], world.pqc[0])
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        DigestMismatch,
        "logged-pfm-mismatch",
        "pfm",
        pfm=other,
        pfm_statement=logged,
    )


def test_a_pfm_for_another_platform_is_refused(world: World) -> None:
    foreign = dataclasses.replace(_active_pfm(world, svn=2), platform="pkg:platform/acme/other")
    signed, logged = world.logged_pfm(foreign)
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        PolicyRejected,
        "pfm-platform-mismatch",
        "pfm",
        pfm=signed,
        pfm_statement=logged,
    )


# --- must reject: the log --------------------------------------------------------------------


def test_an_update_without_a_receipt_is_refused(world: World) -> None:
    bundle = world.bundles["bmc-2"]
    _refused(world, bundle, [], PolicyRejected, "no-receipt", "receipt")
    # signed perfectly, its manifest statement too, but never logged
    unlogged = manifest_statement(bundle, world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc")
    _refused(world, bundle, [unlogged], PolicyRejected, "no-receipt", "receipt")


def test_a_receipt_from_an_untrusted_service_is_refused(world: World) -> None:
    bundle = world.bundles["bmc-2"]
    statement = manifest_statement(bundle, world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc")
    elsewhere = _register(world.untrusted, statement)
    _refused(world, bundle, [elsewhere], UnknownIssuer, "untrusted-service", "receipt")


def test_a_receipt_for_another_statement_is_refused(world: World) -> None:
    bundle = world.bundles["bmc-2"]
    statement = manifest_statement(bundle, world.vendor, iss=VENDOR_ISS, sub="pkg:fw/bmc")
    borrowed = TransparentStatement.parse(world.logged["bmc-1"]).receipts
    spliced = make_transparent(statement, borrowed)
    _refused(world, bundle, [spliced], InvalidProof, "receipt-not-for-statement", "receipt")


def test_a_statement_from_an_issuer_not_allowed_for_the_component_is_refused(
    world: World,
) -> None:
    bundle = world.bundles["bmc-2"]
    statement = manifest_statement(bundle, world.other, iss=OTHER_ISS, sub="pkg:fw/bmc")
    logged = _register(world.service, statement)
    _refused(world, bundle, [logged], UnknownIssuer, "issuer-not-allowed", "issuer")


def test_a_logged_digest_that_is_not_the_bundles_is_refused(world: World) -> None:
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-1"]],
        DigestMismatch,
        "logged-digest-mismatch",
        "logged-digest",
    )


# --- must reject: SAFE -----------------------------------------------------------------------


def test_a_missing_safe_review_is_refused_when_required(world: World) -> None:
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"], world.review("bmc-1", ())],  # a review of another release
        PolicyRejected,
        "safe-review-missing",
        "safe-review",
        trust=world.safe_trust(),
    )


def test_an_open_finding_above_the_configured_severity_is_refused(world: World) -> None:
    statements = [world.logged["bmc-2"], world.review("bmc-2", (7.9, 4.2))]
    _refused(
        world,
        world.bundles["bmc-2"],
        statements,
        PolicyRejected,
        "safe-finding-open",
        "safe-review",
        trust=world.safe_trust("medium"),
    )
    verified = verify_update(
        "bmc", world.bundles["bmc-2"], statements, **_args(world, trust=world.safe_trust("high"))
    )
    assert verified.reviews[0].max_open_cvss == 7.9


# --- the report ------------------------------------------------------------------------------


def _names(report: UpdateReport) -> tuple[str, ...]:
    return tuple(c.name for c in report.checks)


def test_check_update_reports_every_check_in_order_and_never_raises(world: World) -> None:
    # signed by no one and logged nowhere: the first failure is the first signature check
    unsigned = world.bundle(svn=2, runtime=b"bmc runtime 2.0" * 64, signed=False)
    report = check_update("bmc", unsigned, [], **_args(world, trust=world.safe_trust()))
    assert _names(report) == FIRMWARE_CHECKS + UPDATE_CHECKS
    assert not report.ok
    failure = report.first_failure
    assert failure is not None
    assert (failure.name, failure.code) == ("vendor-ecc-signature", "missing-signature")
    by_name = {c.name: c for c in report.checks}
    assert by_name["key-descriptor"].passed is True
    assert by_name["pfm"].code == "not-in-pfm"
    assert by_name["receipt"].code == "no-receipt"
    assert by_name["issuer"].passed is None  # needs a logged statement
    assert by_name["safe-review"].code == "safe-review-missing"
    doc = report.to_json()
    assert doc["failed_check"] == "vendor-ecc-signature"
    assert [c["name"] for c in doc["checks"]] == list(_names(report))
    json.dumps(doc)


def test_check_update_reports_a_bundle_that_does_not_parse(world: World) -> None:
    report = check_update("bmc", b"not a bundle", [world.logged["bmc-2"]], **_args(world))
    assert _names(report) == ("parse", *UPDATE_CHECKS)
    assert report.checks[0].passed is False
    assert report.checks[0].code == "malformed-firmware"
    assert [c.passed for c in report.checks[2:]] == [None, None, None, True]
    with pytest.raises(IronrootError) as info:
        verify_update("bmc", b"not a bundle", [world.logged["bmc-2"]], **_args(world))
    assert (info.value.code, info.value.check) == ("malformed-firmware", "parse")


def test_a_pfm_entry_whose_svn_is_not_the_bundles_is_refused(world: World) -> None:
    wrong = world.pfm(1, {"bmc": [("2.0", 5, "bmc-2")], "host": [("1.0", 1, "host-1")]})
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        FirmwareRejected,
        "pfm-svn-mismatch",
        "pfm",
        active_pfm=wrong,
    )


def test_a_pfm_logged_by_an_issuer_not_allowed_for_pfms_is_refused(world: World) -> None:
    signed = sign_pfm(_active_pfm(world, svn=2), world.ecc[0], world.pqc[0])
    logged = _register(
        world.service, pfm_statement(signed, world.other, iss=OTHER_ISS, sub=PLATFORM)
    )
    _refused(
        world,
        world.bundles["bmc-2"],
        [world.logged["bmc-2"]],
        UnknownIssuer,
        "issuer-not-allowed",
        "pfm",
        pfm=signed,
        pfm_statement=logged,
    )


def test_before_any_pfm_an_update_must_carry_one(world: World) -> None:
    bundle, statements = world.bundles["bmc-2"], [world.logged["bmc-2"]]
    _refused(world, bundle, statements, PolicyRejected, "no-pfm", "pfm", active_pfm=None)
    signed, logged = world.logged_pfm(_active_pfm(world, svn=1))
    verified = verify_update(
        "bmc", bundle, statements, **_args(world, active_pfm=None, pfm_statement=logged)
    )
    assert verified.pfm == _active_pfm(world, svn=1)
    assert verified.new_pfm == signed


def test_a_clean_review_does_not_hide_another_trusted_review_with_an_open_finding(
    world: World,
) -> None:
    # Two trusted reviews of the same firmware: one clean, one (another provider's, or a
    # later one) listing an open CVSS 9.8 finding. The firmware cannot have changed between
    # them, so the finding is open: any open finding above the severity refuses.
    statements = [
        world.logged["bmc-2"],
        world.review("bmc-2", ()),
        world.review("bmc-2", (9.8,)),
    ]
    _refused(
        world,
        world.bundles["bmc-2"],
        statements,
        PolicyRejected,
        "safe-finding-open",
        "safe-review",
        trust=world.safe_trust("medium"),
    )


def _dated(world: World, name: str, **dates: int) -> bytes:
    """The manifest statement of release ``name`` with its own CWT dates (RFC 8392)."""
    manifest = FirmwareBundle.parse(world.bundles[name]).manifest.encode()
    return create_statement(
        world.vendor,
        manifest,
        iss=VENDOR_ISS,
        sub="pkg:fw/bmc",
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
        **dates,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("dates", "code"),
    [
        ({"exp": int(NOW.timestamp())}, "statement-expired"),  # exp is now: not before it
        ({"nbf": int(NOW.timestamp()) + 1}, "statement-not-yet-valid"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_a_logged_statement_outside_its_own_dates_is_refused(
    world: World, dates: dict[str, int], code: str
) -> None:
    # The manifest statement's (and a PFM statement's) own CWT exp/nbf were never read: an
    # update its vendor had logged "until T" was installed after T.
    t = int(NOW.timestamp())
    bundle = world.bundles["bmc-2"]
    logged, keys = logged_elsewhere(_dated(world, "bmc-2", **dates), t)
    trust = world.trust(service_keys={**world.trust().service_keys, **keys})
    _refused(world, bundle, [logged], VerificationFailed, code, "receipt", trust=trust)
    in_force, keys = logged_elsewhere(_dated(world, "bmc-2", exp=t + 1, nbf=t), t)
    trust = world.trust(service_keys={**world.trust().service_keys, **keys})
    assert verify_update("bmc", bundle, [in_force], **_args(world, trust=trust))
    # A new PFM logged with dates outside now is refused at the pfm check alike.
    signed = sign_pfm(_active_pfm(world, svn=2), world.ecc[0], world.pqc[0])
    statement = create_statement(
        world.vendor, signed, iss=VENDOR_ISS, sub=PLATFORM, content_type=PFM_CONTENT_TYPE, **dates
    )  # type: ignore[arg-type]
    pfm_logged, keys = logged_elsewhere(statement, t)
    trust = world.trust(service_keys={**world.trust().service_keys, **keys})
    _refused(
        world,
        bundle,
        [world.logged["bmc-2"]],
        VerificationFailed,
        code,
        "pfm",
        trust=trust,
        pfm=signed,
        pfm_statement=pfm_logged,
    )


def test_a_receipt_issued_after_the_decisions_now_is_refused(world: World) -> None:
    # the service signed bmc-2's receipt at NOW: an RoT whose clock reads a day earlier is
    # shown a receipt from its future (a log's clock far ahead, or a forged iat), not one to trust
    bundle = world.bundles["bmc-2"]
    earlier = NOW - dt.timedelta(days=1)
    with pytest.raises(VerificationFailed) as info:
        verify_update("bmc", bundle, [world.logged["bmc-2"]], **_args(world, now=earlier))
    assert type(info.value) is VerificationFailed
    assert (info.value.code, info.value.check) == ("receipt-from-the-future", "receipt")
    # within the leeway (300 s) of clock skew it still passes
    soon = NOW - dt.timedelta(seconds=300)
    verify_update("bmc", bundle, [world.logged["bmc-2"]], **_args(world, now=soon))


def test_a_receipt_from_another_service_than_the_configured_issuer_is_refused(
    world: World,
) -> None:
    bundle = world.bundles["bmc-2"]
    logged = [world.logged["bmc-2"]]
    issuer = world.service.config.service_issuer
    assert issuer
    verify_update("bmc", bundle, logged, **_args(world, trust=world.trust(service_issuer=issuer)))
    # the trusted key signed it, but the trust names the service by another issuer
    other = world.trust(service_issuer="https://another-ts.example")
    _refused(world, bundle, logged, UnknownIssuer, "untrusted-service", "receipt", trust=other)
