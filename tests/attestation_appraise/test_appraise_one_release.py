"""One release per attester: the measurements a policy names for a format (a RoT quote's FMC
and runtime) must all be listed by one logged release — one CoMID (tag-id) of one issuer, in
force. Matched one by one, a device booting release A's FMC with release B's runtime, both
logged at one SVN, was affirmed although nobody released that combination.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from _ar_helpers import NOW, PRODUCT, VENDOR_ISS, World

from ironroot.attestation import (
    AttestationResult,
    Endorsements,
    EvidenceClaims,
    ReferenceValue,
    ReferenceValues,
    appraise,
    appraise_evidence,
    common_releases,
)
from ironroot.corim import HASH_ALG_SHA384, Comid
from ironroot.ear import AR4SI, TrustTier
from ironroot.errors import EndorsementMismatch
from ironroot.firmware import reference_corim

_FMC_B = hashlib.sha384(b"fmc b").digest() * 60
_RUNTIME_B = hashlib.sha384(b"runtime b").digest() * 90


def _releases(world: World) -> None:
    """Release ``b`` (another FMC and runtime, SVN 3, logged and reviewed) and the unlogged
    mix of ``good``'s FMC with ``b``'s runtime (signed by the vendor's keys and reviewed:
    only the release rule can refuse it)."""
    if "one-release-b" not in world.bundles:
        world.release("one-release-b", svn=3, fmc=_FMC_B, runtime=_RUNTIME_B)
        world.release("one-release-mix", svn=3, runtime=_RUNTIME_B, publish=False)


def _tag(world: World, release: str) -> str:
    (comid,) = reference_corim(world.bundles[release], vendor=VENDOR_ISS, model=PRODUCT).tags
    assert isinstance(comid, Comid)
    tag = comid.tag_identity.tag_id
    assert isinstance(tag, bytes)
    return tag.hex()


def _appraised(world: World, tmp_path: Path, release: str) -> AttestationResult:
    endorsements = world.endorsements(
        ["good", "one-release-b"], ["good", "one-release-b", "one-release-mix"]
    )
    assert not endorsements.rejected
    device = world.device(tmp_path / release, release)
    nonce = os.urandom(32)
    return appraise_evidence(device.quote(nonce), endorsements, nonce=nonce, now=NOW)


def test_a_quote_mixing_two_logged_releases_is_unrecognized_runtime(
    world: World, tmp_path: Path
) -> None:
    _releases(world)
    result = _appraised(world, tmp_path, "one-release-mix")
    appraisal = result.submods["ironroot"]
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    assert appraisal.trust_vector["hardware"] == AR4SI.GENUINE_HARDWARE
    a, b = _tag(world, "good"), _tag(world, "one-release-b")
    assert appraisal.reasons == (
        "reference-values: no logged reference value for fmc and runtime as one release"
        " (mixed-releases: each measurement of the evidence matches a logged reference value"
        f" of vendor {VENDOR_ISS!r} model {PRODUCT!r}, but no one logged release (one CoMID"
        f" of one issuer) lists them all: measurement fmc in tag {a!r} of {VENDOR_ISS!r};"
        f" runtime in tag {b!r} of {VENDOR_ISS!r})",
    )


@pytest.mark.parametrize("release", ["good", "one-release-b"])
def test_a_quote_wholly_of_one_logged_release_is_affirmed(
    world: World, tmp_path: Path, release: str
) -> None:
    _releases(world)
    result = _appraised(world, tmp_path, release)
    appraisal = result.submods["ironroot"]
    assert result.status is TrustTier.AFFIRMING, appraisal.reasons
    assert appraisal.trust_vector["executables"] == AR4SI.APPROVED_RUNTIME


def _value(mkey: str, tag: bytes | None, issuer: str = VENDOR_ISS) -> ReferenceValue:
    return ReferenceValue(mkey=mkey, digests=((7, bytes(48)),), issuer=issuer, tag_id=tag)


def test_common_releases_names_the_release_listing_every_measurement() -> None:
    a_fmc, a_rt, b_rt = _value("fmc", b"a"), _value("runtime", b"a"), _value("runtime", b"b")
    found = common_releases({"fmc": [a_fmc], "runtime": [b_rt, a_rt]}, product="p")
    assert found == (((a_fmc,), (a_rt,)),)
    # one tag-id of two issuers is two releases; a value of no CoMID is a release of itself
    for runtime in (_value("runtime", b"a", "https://other.example"), _value("runtime", None)):
        with pytest.raises(EndorsementMismatch) as caught:
            common_releases({"fmc": [a_fmc], "runtime": [runtime]}, product="p")
        assert caught.value.code == "mixed-releases"
    with pytest.raises(EndorsementMismatch) as caught:
        common_releases({}, product="p")
    assert caught.value.code == "mixed-releases"


def _claims() -> EvidenceClaims:
    return EvidenceClaims(
        format="ironroot",
        measurements={"fmc": b"\x01" * 48, "runtime": b"\x02" * 48},
        report_data=b"\x03" * 64,
        debug=False,
        svns={"firmware": 3},
        identity={},
        signer="CN=RT Alias",
    )


def _logged(mkey: str, digest: bytes, model: str, tag: bytes) -> ReferenceValue:
    return ReferenceValue(
        mkey=mkey,
        digests=((HASH_ALG_SHA384, digest),),
        vendor=VENDOR_ISS,
        model=model,
        issuer=VENDOR_ISS,
        tag_id=tag,
    )


@pytest.mark.parametrize(("runtime_model", "mixed"), [(PRODUCT, True), ("another model", False)])
def test_only_the_components_of_one_product_are_held_to_one_release(
    runtime_model: str, mixed: bool
) -> None:
    """FMC and runtime matched by values of one product (one firmware target) in two CoMIDs
    are mixed releases; matched by values of two products (a CoRIM stating each component as
    its own product), they name no one target and are not held to one release."""
    values = ReferenceValues(
        [
            _logged("fmc", b"\x01" * 48, PRODUCT, b"a"),
            _logged("runtime", b"\x02" * 48, runtime_model, b"b"),
        ]
    )
    result = appraise(_claims(), Endorsements(reference_values=values), nonce=None, now=NOW)
    reasons = result.submods["ironroot"].reasons
    mixing = [r for r in reasons if r.startswith("reference-values: ")]
    if mixed:
        (reason,) = mixing
        assert reason.startswith(
            "reference-values: no logged reference value for fmc and runtime as one release"
            " (mixed-releases: each measurement of the evidence matches a logged reference value"
            f" of vendor {VENDOR_ISS!r} model {PRODUCT!r}, but no one logged release"
        )
    else:
        assert mixing == []
