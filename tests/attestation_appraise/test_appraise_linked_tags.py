"""CoMID tags that supersede others (draft-ietf-rats-corim §5.1.1.2, §5.1.3): a tag whose
``linked-tags`` say it ``replaces`` (1) another, or a revision of the same tag-id with a
greater ``tag-version``, makes the older tag's values disregarded; a replaced tag stays on
the log forever, so without this its values (say, the digest of a withdrawn release) keep
matching evidence.

Supersession holds within one issuer only: tag ids name the tags of whoever published them,
and another issuer's tag never withdraws them.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from _ar_helpers import NOW, PRODUCT, SAFE_ISS, VENDOR_ISS, World

from ironroot.attestation import (
    Endorsements,
    ReferencePublisher,
    ReferenceValue,
    ReferenceValues,
    appraise_evidence,
    reference_values_from_statement,
)
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    Comid,
    Corim,
    LinkedTag,
    TagIdentity,
)
from ironroot.cose import create_statement
from ironroot.crypto import PrivateKey
from ironroot.ear import AR4SI, TrustTier
from ironroot.errors import MalformedCorim
from ironroot.firmware import reference_corim
from ironroot.rot import Device

_REPLACES = 1
_SUPPLEMENTS = 0


def _good_comid(world: World) -> tuple[Corim, Comid]:
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    (comid,) = corim.tags
    assert isinstance(comid, Comid)
    return corim, comid


def _logged(
    world: World, corim: Corim, *, iss: str = VENDOR_ISS, key: PrivateKey | None = None
) -> bytes:
    statement = create_statement(
        key or world.vendor_key,
        corim.encode(),
        iss=iss,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
    )
    return world.client.register(statement).transparent_statement


def _other_release(world: World, name: str) -> tuple[Corim, Comid]:
    """A release whose runtime differs from ``good``'s, unpublished (its CoRIM is built here)."""
    if name not in world.bundles:
        world.release(name, svn=3, runtime=os.urandom(48) * 50, publish=False, review=None)
    corim = reference_corim(world.bundles[name], vendor=VENDOR_ISS, model=PRODUCT)
    (comid,) = corim.tags
    assert isinstance(comid, Comid)
    return corim, comid


def _linking(corim: Corim, comid: Comid, *links: LinkedTag, version: int | None = None) -> Corim:
    identity = comid.tag_identity
    if version is not None:
        identity = dataclasses.replace(identity, version=version)
    linked = dataclasses.replace(comid, linked_tags=links, tag_identity=identity)
    return dataclasses.replace(corim, tags=(linked,))


def _appraise(
    world: World,
    device: Device,
    statements: list[bytes],
    publishers: tuple[ReferencePublisher, ...] | None = None,
):  # type: ignore[no-untyped-def]
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=statements,
        review_statements=[world.reviews["good"]],
        providers=world.providers,
        publishers=world.publishers if publishers is None else publishers,
        vendor_roots=world.ca.trust_anchors,
        now=NOW,
    )
    assert not endorsements.rejected
    nonce = os.urandom(32)
    result = appraise_evidence(device.quote(nonce), endorsements, nonce=nonce, now=NOW)
    return result, result.submods["ironroot"]


def test_a_replaced_tag_no_longer_matches(world: World, good_device: Device) -> None:
    # The vendor withdraws the good release's tag: a new tag (for another release) says it
    # replaces it. The good release's values were still matched, the device affirmed.
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "successor")
    successor = _linking(corim, comid, LinkedTag(good.tag_identity.tag_id, _REPLACES))
    statements = [world.references["good"], _logged(world, successor)]
    result, appraisal = _appraise(world, good_device, statements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    assert reason.startswith("reference-values: no logged reference value for ")


def test_the_replaced_tag_is_disregarded_whatever_the_order(world: World) -> None:
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "successor")
    successor = _linking(corim, comid, LinkedTag(good.tag_identity.tag_id, _REPLACES))
    found = [
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
        )
        for data in (world.references["good"], _logged(world, successor))
    ]
    for ordered in (found, found[::-1]):
        store = ReferenceValues(v for group in ordered for v in group)
        assert {v.tag_id for v in store} == {comid.tag_identity.tag_id}
        assert len(store) == len(found[1])


def test_a_supplementing_tag_leaves_its_target_in_force(world: World, good_device: Device) -> None:
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "supplement")
    supplement = _linking(corim, comid, LinkedTag(good.tag_identity.tag_id, _SUPPLEMENTS))
    statements = [world.references["good"], _logged(world, supplement)]
    result, _ = _appraise(world, good_device, statements)
    assert result.status is TrustTier.AFFIRMING


def test_a_newer_version_of_the_same_tag_supersedes_the_older(
    world: World, good_device: Device
) -> None:
    # The next version of the good release's tag-id lists another runtime: the version
    # logged first no longer counts.
    good_corim, good = _good_comid(world)
    _, other = _other_release(world, "revision")
    assert good.tag_identity.version == 1  # reference_corim's
    revised = dataclasses.replace(
        good, tag_identity=TagIdentity(good.tag_identity.tag_id, 2), triples=other.triples
    )
    statements = [
        world.references["good"],
        _logged(world, dataclasses.replace(good_corim, tags=(revised,))),
    ]
    result, appraisal = _appraise(world, good_device, statements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME


def test_an_older_version_never_supersedes_the_newer(world: World, good_device: Device) -> None:
    good_corim, good = _good_comid(world)
    _, other = _other_release(world, "revision")
    newer = dataclasses.replace(good, tag_identity=TagIdentity(good.tag_identity.tag_id, 2))
    older = dataclasses.replace(
        good, tag_identity=TagIdentity(good.tag_identity.tag_id, 1), triples=other.triples
    )
    statements = [
        _logged(world, dataclasses.replace(good_corim, tags=(older,))),
        _logged(world, dataclasses.replace(good_corim, tags=(newer,))),
    ]
    result, _ = _appraise(world, good_device, statements)
    assert result.status is TrustTier.AFFIRMING


def test_two_different_tags_of_one_identity_are_neither_in_force(
    world: World, good_device: Device
) -> None:
    # The issuer logged two CoMIDs under one tag-id and tag-version with other values (a
    # re-issue that forgot to raise the version, or a stray copy): which one states the tag
    # is unknown. Their union was in force, so the good release matched beside the other.
    good_corim, good = _good_comid(world)
    _, other = _other_release(world, "same-identity")
    twin = dataclasses.replace(good, triples=other.triples)
    statements = [
        world.references["good"],
        _logged(world, dataclasses.replace(good_corim, tags=(twin,))),
    ]
    result, appraisal = _appraise(world, good_device, statements)
    assert result.status is TrustTier.WARNING
    assert appraisal.trust_vector["executables"] == AR4SI.UNRECOGNIZED_RUNTIME
    (reason,) = appraisal.reasons
    stated = "(its logged values also state another CoMID of its tag-id and tag-version: "
    assert reason.count(stated) == 2
    found = [
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
        )
        for data in statements
    ]
    store = ReferenceValues(v for group in found for v in group)
    assert all(not v.matches(d) for v in store for _, d in v.digests)
    assert store.minimum_svn(next(iter(store))) == 3  # both still set the floor
    # the same tag logged twice is one tag
    again = [world.references["good"], _logged(world, good_corim)]
    assert _appraise(world, good_device, again)[0].status is TrustTier.AFFIRMING
    # and a greater version of the tag-id still supersedes both
    revised = dataclasses.replace(good, tag_identity=TagIdentity(good.tag_identity.tag_id, 2))
    newest = _logged(world, dataclasses.replace(good_corim, tags=(revised,)))
    assert _appraise(world, good_device, [*statements, newest])[0].status is TrustTier.AFFIRMING


def test_another_issuer_cannot_replace_the_vendor_s_tag(world: World, good_device: Device) -> None:
    # The review lab may publish for the product too, but its tags never withdraw the
    # vendor's: supersession is judged per issuer.
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "lab-successor")
    lab = _linking(corim, comid, LinkedTag(good.tag_identity.tag_id, _REPLACES))
    both = (ReferencePublisher(VENDOR_ISS, None, frozenset((VENDOR_ISS, SAFE_ISS))),)
    statements = [world.references["good"], _logged(world, lab, iss=SAFE_ISS, key=world.safe_key)]
    result, _ = _appraise(world, good_device, statements, both)
    assert result.status is TrustTier.AFFIRMING


def test_a_tag_naming_itself_as_replaced_stays_in_force(world: World, good_device: Device) -> None:
    good_corim, good = _good_comid(world)
    itself = _linking(good_corim, good, LinkedTag(good.tag_identity.tag_id, _REPLACES))
    result, _ = _appraise(world, good_device, [_logged(world, itself)])
    assert result.status is TrustTier.AFFIRMING


def test_reference_values_carry_their_tag_identity_and_what_it_replaces() -> None:
    value = ReferenceValue(mkey="fmc", digests=((7, bytes(48)),))
    assert value.tag_id is None
    assert value.tag_version == 0
    assert value.replaces == ()
    old = dataclasses.replace(value, issuer="a", tag_id="t-old")
    new = dataclasses.replace(value, issuer="a", tag_id="t-new", replaces=("t-old",))
    other_issuer = dataclasses.replace(value, issuer="b", tag_id="t-old")
    assert set(ReferenceValues([old, new, other_issuer])) == {new, other_issuer}


def test_a_replacing_tag_without_reference_values_is_refused(world: World) -> None:
    # Its values carry what it replaces: a CoMID naming a tag it replaces but stating no
    # reference value Ironroot reads (here, endorsed values only) withdrew nothing, silently,
    # and the replaced tag's values went on matching.
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "endorsing")
    endorsing = dataclasses.replace(
        comid,
        triples=dataclasses.replace(comid.triples, reference=(), endorsed=comid.triples.reference),
        linked_tags=(LinkedTag(good.tag_identity.tag_id, _REPLACES),),
    )
    data = _logged(world, dataclasses.replace(corim, tags=(endorsing,)))
    with pytest.raises(MalformedCorim) as info:
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
        )
    assert info.value.code == "corim-replaces-nothing-read"
    assert info.value.detail == (
        f"the CoMID {comid.tag_identity.tag_id!r} replaces {good.tag_identity.tag_id!r} but "
        "states no reference value Ironroot reads (a measurement with an mkey and a digest): "
        "the replaced tag's values cannot be withdrawn without it"
    )


@pytest.mark.parametrize("rel", [2, 7, -1])
def test_a_tag_relation_ironroot_does_not_know_is_refused(world: World, rel: int) -> None:
    # Base CoRIM defines supplements (0) and replaces (1) only; another relation comes from an
    # extension Ironroot does not implement (it may withdraw its target as replaces does).
    # It was ignored: the linked tag's values counted whatever the relation said.
    _, good = _good_comid(world)
    corim, comid = _other_release(world, "related")
    data = _logged(world, _linking(corim, comid, LinkedTag(good.tag_identity.tag_id, rel)))
    with pytest.raises(MalformedCorim) as info:
        reference_values_from_statement(
            data, service_keys=world.service_keys, publishers=world.publishers, now=NOW
        )
    assert info.value.code == "corim-tag-rel-unknown"
    assert info.value.detail == (
        f"the CoMID {comid.tag_identity.tag_id!r} links {good.tag_identity.tag_id!r} by "
        f"tag-rel {rel}, which base CoRIM does not define (0 supplements, 1 replaces): what "
        "it does to that tag's values is unknown"
    )
