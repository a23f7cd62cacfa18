"""How logged reference values are matched with evidence: what a CoRIM measurement states
beyond a digest that matches must hold too, or the value does not match.

Each test republishes the ``good`` release's CoRIM with its measurement values changed and
appraises a device running that release against it alone.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import pytest
from _ar_helpers import NOW, PRODUCT, VENDOR_ISS, World

from ironroot.attestation import (
    Endorsements,
    ReferenceValue,
    ReferenceValues,
    appraise_evidence,
    reference_values_from_statement,
)
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    HASH_ALG_SHA256,
    HASH_ALG_SHA384,
    Comid,
    Digest,
    Flags,
    MeasurementValues,
    RawValue,
    Svn,
    Tagged,
)
from ironroot.cose import create_statement
from ironroot.ear import AR4SI, TrustTier
from ironroot.errors import MalformedCorim
from ironroot.firmware import reference_corim
from ironroot.rot import Device

Change = Callable[[MeasurementValues], MeasurementValues]


def _republished(world: World, change: Change, authorized_by: tuple[Tagged, ...] = ()) -> bytes:
    """The ``good`` release's CoRIM with ``change`` applied to each measurement (authorized
    by ``authorized_by``), logged."""
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    tags = []
    for tag in corim.tags:
        assert isinstance(tag, Comid)
        triples = tuple(
            dataclasses.replace(
                t,
                measurements=tuple(
                    dataclasses.replace(m, mval=change(m.mval), authorized_by=authorized_by)
                    for m in t.measurements
                ),
            )
            for t in tag.triples.reference
        )
        tags.append(
            dataclasses.replace(tag, triples=dataclasses.replace(tag.triples, reference=triples))
        )
    changed = dataclasses.replace(corim, tags=tuple(tags))
    statement = create_statement(
        world.vendor_key,
        changed.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    return world.client.register(statement).transparent_statement


def _appraised(  # type: ignore[no-untyped-def]
    world: World, device: Device, change: Change, authorized_by: tuple[Tagged, ...] = ()
):
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[_republished(world, change, authorized_by)],
        review_statements=[world.reviews["good"]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    nonce = os.urandom(32)
    result = appraise_evidence(device.quote(nonce), endorsements, nonce=nonce, now=NOW)
    return result, result.submods["ironroot"]


def _unchanged(mval: MeasurementValues) -> MeasurementValues:
    return mval


def test_the_republished_release_is_affirming(world: World, good_device: Device) -> None:
    result, _ = _appraised(world, good_device, _unchanged)
    assert result.status is TrustTier.AFFIRMING


def _relabelled(alg: int | str) -> Change:
    def change(mval: MeasurementValues) -> MeasurementValues:
        return dataclasses.replace(mval, digests=tuple(Digest(alg, d.value) for d in mval.digests))

    return change


@pytest.mark.parametrize(
    "alg",
    [
        99,  # an id no registry assigns: its size is not checked, nor is what it hashes
        "crc-384",  # a text name this verifier does not know
        -16,  # a COSE algorithm id (SHA-256) where a Named Information id belongs
    ],
)
def test_a_digest_under_an_unknown_algorithm_matches_nothing(
    world: World, good_device: Device, alg: int | str
) -> None:
    # The measured SHA-384 digests, logged under an algorithm the verifier does not know,
    # were compared byte for byte all the same and matched.
    result, appraisal = _appraised(world, good_device, _relabelled(alg))
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.startswith("reference-values: no logged reference value for ")
    assert "fmc " in reason
    assert "runtime " in reason


def _also(alg: int | str, value: Callable[[bytes], bytes]) -> Change:
    """Each measurement's digests and one more under ``alg``, its value ``value(digest)``."""

    def change(mval: MeasurementValues) -> MeasurementValues:
        first = mval.digests[0].value
        return dataclasses.replace(mval, digests=(*mval.digests, Digest(alg, value(first))))

    return change


@pytest.mark.parametrize("alg", [HASH_ALG_SHA384, "SHA-384"], ids=["id", "name"])
def test_digests_of_one_algorithm_that_differ_match_nothing(
    world: World, good_device: Device, alg: int | str
) -> None:
    # The measured SHA-384 digest beside another SHA-384 digest in one measurement: which one
    # the component is, is unknown, and CoRIM's digests comparison (draft-ietf-rats-corim
    # §8.5.6.1.3, veraison/corim) matches nothing. The first one alone matched.
    other = _also(alg, lambda d: bytes(x ^ 0xFF for x in d))
    result, appraisal = _appraised(world, good_device, other)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    stated = "(its logged values also state differing digests of one algorithm: not compared)"
    assert reason.count(stated) == 2


def test_digests_of_another_algorithm_or_repeated_still_match(
    world: World, good_device: Device
) -> None:
    # A SHA-512 digest beside the SHA-384 one is of an algorithm the evidence does not
    # carry; the same SHA-384 digest twice is one digest.
    sha512 = _also(8, lambda d: bytes(64))
    assert _appraised(world, good_device, sha512)[0].status is TrustTier.AFFIRMING
    twice = _also("sha-384", lambda d: d)
    assert _appraised(world, good_device, twice)[0].status is TrustTier.AFFIRMING


def test_a_value_for_a_class_id_matches_nothing(world: World, good_device: Device) -> None:
    # A CoMID environment naming a class id (here a UUID, as a vendor names one of its
    # device classes) is for that class; the evidence names none, so the class was never
    # compared and the value matched a device of any class of the vendor's product.
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    tags = []
    for tag in corim.tags:
        assert isinstance(tag, Comid)
        triples = tuple(
            dataclasses.replace(
                t,
                environment=dataclasses.replace(
                    t.environment,
                    class_map=dataclasses.replace(
                        t.environment.class_map, class_id=Tagged(37, bytes(range(16)))
                    ),
                ),
            )
            for t in tag.triples.reference
        )
        tags.append(
            dataclasses.replace(tag, triples=dataclasses.replace(tag.triples, reference=triples))
        )
    statement = create_statement(
        world.vendor_key,
        dataclasses.replace(corim, tags=tuple(tags)).encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[world.client.register(statement).transparent_statement],
        review_statements=[world.reviews["good"]],
        providers=world.providers,
        publishers=world.publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    nonce = os.urandom(32)
    result = appraise_evidence(good_device.quote(nonce), endorsements, nonce=nonce, now=NOW)
    appraisal = result.submods["ironroot"]
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.count("(its logged values also state class-id: not compared)") == 2


def test_a_digest_under_a_known_algorithm_of_another_size_matches_nothing() -> None:
    # The parser refuses a known algorithm with a value of another size; a store built by
    # hand compares only digests whose algorithm has the measurement's size.
    digest = bytes(48)
    value = ReferenceValue(mkey="fmc", digests=((HASH_ALG_SHA256, digest),))
    assert not value.matches(digest)
    assert ReferenceValues([value]).matching("fmc", digest) == ()
    truncated = bytes(4)  # sha-256-32: a second preimage is a few billion tries away
    for alg in (6, "sha-256-32"):
        assert not ReferenceValue(mkey="fmc", digests=((alg, truncated),)).matches(truncated)
    listed = ReferenceValue(mkey="fmc", digests=((HASH_ALG_SHA384, digest), ("SHA-384", digest)))
    assert listed.matches(digest)
    assert ReferenceValues([listed]).matching("fmc", digest) == (listed,)


def test_a_value_stating_no_svn_matches_any_svn_unless_one_is_required() -> None:
    value = ReferenceValue(mkey="fmc", digests=((HASH_ALG_SHA384, bytes(48)),))
    assert value.refusal(svn=7, debug=False) is None
    required = dataclasses.replace(value, svn_required=True)
    assert required.refusal(svn=7, debug=False) == "for no stated SVN, the evidence claims 7"
    exact = dataclasses.replace(required, svn=7)
    assert exact.refusal(svn=7, debug=False) is None
    assert exact.refusal(svn=8, debug=False) == "for SVN 7 exactly, the evidence claims 8"


def _svn(value: int, *, minimum: bool) -> Change:
    def change(mval: MeasurementValues) -> MeasurementValues:
        return dataclasses.replace(mval, svn=Svn(value, minimum=minimum))

    return change


@pytest.mark.parametrize(("value", "minimum"), [(3, False), (3, True), (2, True)])
def test_an_svn_the_evidence_meets_matches(
    world: World, good_device: Device, value: int, minimum: bool
) -> None:
    result, _ = _appraised(world, good_device, _svn(value, minimum=minimum))
    assert result.status is TrustTier.AFFIRMING


def test_an_exact_svn_below_the_evidence_s_matches_nothing(
    world: World, good_device: Device
) -> None:
    # An exact SVN (tag 552) was read as a minimum: the release logged for SVN 2 exactly
    # matched a device claiming SVN 3.
    result, appraisal = _appraised(world, good_device, _svn(2, minimum=False))
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.startswith("reference-values: no logged reference value for ")
    stated = "(its logged values are for SVN 2 exactly, the evidence claims 3)"
    assert reason.count(stated) == 2


def test_an_exact_svn_above_the_evidence_s_is_still_its_floor(
    world: World, good_device: Device
) -> None:
    # The release the digests name is logged for SVN 4 exactly: the device claiming 3 is not
    # merely unrecognised, it is below that release's floor.
    result, appraisal = _appraised(world, good_device, _svn(4, minimum=False))
    assert result.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    reference, svn = appraisal.reasons
    assert reference.count("(its logged values are for SVN 4 exactly, the evidence claims 3)") == 2
    assert svn == "svn: SVN 3 is below the logged minimum 4"


def _stating(**fields: object) -> Change:
    def change(mval: MeasurementValues) -> MeasurementValues:
        return dataclasses.replace(mval, **fields)  # type: ignore[arg-type]

    return change


def test_an_is_debug_flag_the_evidence_meets_matches(world: World, good_device: Device) -> None:
    result, _ = _appraised(world, good_device, _stating(flags=Flags(is_debug=False)))
    assert result.status is TrustTier.AFFIRMING


def test_an_is_debug_flag_the_evidence_does_not_meet_matches_nothing(
    world: World, good_device: Device
) -> None:
    # A release logged for debug builds (is-debug true) matched a locked device's digests.
    result, appraisal = _appraised(world, good_device, _stating(flags=Flags(is_debug=True)))
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.count("(its logged values are for debug on)") == 2


@pytest.mark.parametrize(
    ("fields", "unchecked"),
    [
        ({"flags": Flags(is_secure=True)}, ("flag is-secure",)),
        ({"flags": Flags(is_debug=False, is_recovery=False)}, ("flag is-recovery",)),
        # a mask of zeros would match any raw value at all
        ({"raw_value": RawValue(b"\x01" * 8, bytes(8))}, ("raw-value",)),
        ({"raw_value": RawValue(b"\x01")}, ("raw-value",)),
        ({"name": "roadrunner"}, ("name",)),
        ({"serial_number": ""}, ("serial-number",)),
        ({"extensions": {-70000: 1}}, ("extensions",)),
    ],
    ids=["is-secure", "is-recovery", "zero-mask", "raw-value", "name", "serial", "extension"],
)
def test_a_measurement_stating_what_appraisal_does_not_compare_matches_nothing(
    world: World, good_device: Device, fields: dict[str, object], unchecked: tuple[str, ...]
) -> None:
    # Only the digests were compared: a logged measurement that also required secure boot, a
    # raw value (under any mask) or a name matched on its digest alone.
    result, appraisal = _appraised(world, good_device, _stating(**fields))
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.startswith("reference-values: no logged reference value for ")
    stated = f"(its logged values also state {', '.join(unchecked)}: not compared)"
    assert reason.count(stated) == 2
    value = ReferenceValue(mkey="fmc", digests=((HASH_ALG_SHA384, bytes(48)),), unchecked=unchecked)
    assert not value.matches(bytes(48))
    assert ReferenceValues([value]).matching("fmc", bytes(48)) == ()
    assert ReferenceValues([value]).naming("fmc", bytes(48)) == (value,)


def test_a_measurement_stating_what_appraisal_does_not_compare_still_sets_the_floor(
    world: World, good_device: Device
) -> None:
    # Left unmatched, a release stating a raw value must not lose its minimum SVN: the device
    # claiming SVN 3 is below it (contraindicated, not only unrecognised).
    change = _stating(raw_value=RawValue(b"\x01"), svn=Svn(4, minimum=True))
    result, appraisal = _appraised(world, good_device, change)
    assert result.status is TrustTier.CONTRAINDICATED
    assert appraisal.trust_vector["executables"] == AR4SI.CONTRAINDICATED_RUNTIME
    assert appraisal.reasons[1] == "svn: SVN 3 is below the logged minimum 4"


def test_the_unchecked_conditions_are_read_from_the_corim(world: World) -> None:
    data = _republished(
        world,
        _stating(flags=Flags(is_debug=True, is_secure=True), raw_value=RawValue(b"\x01")),
    )
    values = reference_values_from_statement(
        data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
    )
    assert {(v.debug, v.unchecked) for v in values} == {(True, ("raw-value", "flag is-secure"))}


def test_a_measurement_authorized_by_a_key_matches_nothing(
    world: World, good_device: Device
) -> None:
    # authorized-by names the keys that may vouch for the measurement; the evidence's signer
    # was never compared with it.
    key = Tagged(557, (HASH_ALG_SHA256, bytes(32)))
    result, appraisal = _appraised(world, good_device, _unchanged, authorized_by=(key,))
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.count("(its logged values also state authorized-by: not compared)") == 2


@pytest.mark.parametrize(
    ("profile", "named"),
    [
        ("tag:arm.com,2025:psa#1.0.0", "'tag:arm.com,2025:psa#1.0.0'"),
        (Tagged(111, bytes.fromhex("2b0601040182ce1f010101")), "OID 2b0601040182ce1f010101"),
    ],
)
def test_a_corim_of_a_profile_ironroot_does_not_implement_is_refused(
    world: World, profile: str | Tagged, named: str
) -> None:
    # draft-ietf-rats-corim §4.1: the profile must be understood; failing to recognise it
    # rejects the entire CoRIM. A profile may constrain or extend what every field means, so
    # its triples were read as base CoRIM, which they need not be.
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        dataclasses.replace(corim, profile=profile).encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    data = world.client.register(statement).transparent_statement
    with pytest.raises(MalformedCorim) as caught:
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
        )
    assert caught.value.code == "corim-profile-unknown"
    assert caught.value.detail == (
        f"the CoRIM names the profile {named}, which Ironroot does not implement: a CoRIM "
        "whose profile is not understood is refused whole"
    )
