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
)
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    HASH_ALG_SHA256,
    HASH_ALG_SHA384,
    Comid,
    Digest,
    MeasurementValues,
)
from ironroot.cose import create_statement
from ironroot.ear import AR4SI, TrustTier
from ironroot.firmware import reference_corim
from ironroot.rot import Device

Change = Callable[[MeasurementValues], MeasurementValues]


def _republished(world: World, change: Change) -> bytes:
    """The ``good`` release's CoRIM with ``change`` applied to each measurement, logged."""
    corim = reference_corim(world.bundles["good"], vendor=VENDOR_ISS, model=PRODUCT)
    tags = []
    for tag in corim.tags:
        assert isinstance(tag, Comid)
        triples = tuple(
            dataclasses.replace(
                t,
                measurements=tuple(
                    dataclasses.replace(m, mval=change(m.mval)) for m in t.measurements
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


def _appraised(world: World, device: Device, change: Change):  # type: ignore[no-untyped-def]
    endorsements = Endorsements.build(
        service_keys=world.service_keys,
        reference_statements=[_republished(world, change)],
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
