"""An attacker's view of SAFE reviews: another firmware's digest, a hash of the wrong kind,
scores that are not scores, a review by a provider nobody trusts."""

from __future__ import annotations

import json

import cbor2
import pytest
from _safe_helpers import KID, SHA384, SHA512, STATEMENT_ISS, provider, report, report_bytes

from ironroot.cose import create_statement, encode_cbor
from ironroot.crypto import PrivateKey
from ironroot.errors import (
    BadSignature,
    MalformedInput,
    MalformedReport,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.safe import (
    SFR_JWS_CONTENT_TYPE,
    ProviderKeys,
    build_sfr_corim,
    firmware_subject,
    parse_firmware_hash,
    parse_report_json,
    parse_sfr_corim,
    review_from_statement,
    reviews_for,
    sfr_statement,
    sign_report,
    verify_report,
)


@pytest.fixture(scope="module")
def publisher() -> PrivateKey:
    return PrivateKey.generate(provider()[0].algorithm)


@pytest.fixture(scope="module")
def review_key() -> tuple[PrivateKey, ProviderKeys]:
    return provider()


def test_a_sha384_value_in_the_sha512_field_never_reviews_that_sha384(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    # Same bytes, wrong algorithm: the report reviews no SHA-384 image and no SHA-512 one.
    key, keys = review_key
    data = report_bytes(device__fw_hash_sha2_384="", device__fw_hash_sha2_512=SHA384)
    assert parse_report_json(data).firmware_hashes() == {}
    sfr = sign_report(data, key, KID)
    with pytest.raises(MalformedReport, match="full-length"):
        firmware_subject(verify_report(sfr, keys).report)
    # A publisher forcing the SHA-384 subject anyway does not make it a review of that image.
    forced = create_statement(
        publisher, sfr, iss=STATEMENT_ISS, sub=f"sha384:{SHA384}", content_type=SFR_JWS_CONTENT_TYPE
    )
    with pytest.raises(VerificationFailed) as info:
        review_from_statement(forced, keys)
    assert info.value.code == "subject-mismatch"
    assert reviews_for(f"sha384:{SHA384}", [forced], providers=keys) == []


def test_a_subject_naming_the_sha384_bytes_as_sha512_is_refused(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    sfr = sign_report(report_bytes(), key, KID)
    for sub in (f"sha512:{SHA384}", f"sha384:{SHA512[:96]}", f"sha384:{SHA384[:64]}"):
        forged = create_statement(
            publisher, sfr, iss=STATEMENT_ISS, sub=sub, content_type=SFR_JWS_CONTENT_TYPE
        )
        with pytest.raises(VerificationFailed) as info:
            review_from_statement(forged, keys)
        assert info.value.code == "subject-mismatch"


@pytest.mark.parametrize(
    "query",
    [
        f"sha384:{SHA384[:64]}",
        f"sha512:{SHA384}",
        f"sha384:{SHA512}",
        SHA384[:-2],
        "sha3-384:" + SHA384,
    ],
)
def test_a_truncated_or_mislabelled_firmware_hash_is_not_a_query(query: str) -> None:
    with pytest.raises(MalformedInput):
        parse_firmware_hash(query)


def test_another_firmware_is_not_covered_by_a_review(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    key, keys = review_key
    statement = sfr_statement(sign_report(report_bytes(), key, KID), publisher, iss=STATEMENT_ISS)
    assert len(reviews_for(f"sha384:{SHA384}", [statement], providers=keys)) == 1
    other = SHA384[:-2] + "a2"  # one bit from the reviewed image
    assert reviews_for(f"sha384:{other}", [statement], providers=keys) == []


@pytest.mark.parametrize(
    "score", ["NaN", "nan", "Infinity", "-inf", "1e1", "+9.8", "0x9", "9,8", "9.8.1", "99", "10.01"]
)
def test_scores_that_are_not_cvss_scores_are_refused(score: str) -> None:
    doc = report()
    doc["audit"]["issues"][0]["cvss_score"] = score
    with pytest.raises(MalformedReport):
        parse_report_json(json.dumps(doc).encode())


def test_a_review_signed_by_an_untrusted_provider_counts_for_nothing(
    publisher: PrivateKey, review_key: tuple[PrivateKey, ProviderKeys]
) -> None:
    _key, keys = review_key
    impostor, _ = provider()
    # a clean review under the trusted provider's kid, signed with another key
    clean = report_bytes(audit__issues=[])
    posing = sign_report(clean, impostor, KID)
    with pytest.raises(BadSignature):
        verify_report(posing, keys)
    # a clean review under a kid no trusted provider answers to
    stranger = sign_report(clean, impostor, "Unheard Of Labs")
    with pytest.raises(UnknownIssuer):
        verify_report(stranger, keys)
    statements = [sfr_statement(s, publisher, iss=STATEMENT_ISS) for s in (posing, stranger)]
    assert reviews_for(f"sha384:{SHA384}", statements, providers=keys) == []
    assert reviews_for(f"sha384:{SHA384}", statements, providers=ProviderKeys([])) == []


def _with_condition_digests(corim: bytes, digests: list[list[object]]) -> bytes:
    """The SFR CoRIM with the firmware its endorsement is conditioned on replaced."""
    top = cbor2.loads(corim)
    comid = cbor2.loads(top.value[1][0].value)
    record = comid[4][10][0]
    record[0][0][1][0][1][2] = digests
    comid_bytes = cbor2.dumps(comid, datetime_as_timestamp=True)
    corim_map = dict(top.value)
    corim_map[1] = [cbor2.CBORTag(506, comid_bytes)]
    return encode_cbor(cbor2.CBORTag(top.tag, corim_map))


def test_a_corim_sfr_conditioned_on_other_firmware_than_it_reviews_is_refused() -> None:
    # The CoRIM says "this endorsement holds for firmware A" (its condition) while the SFR
    # inside names firmware B: a CoRIM verifier and Ironroot would apply the review to
    # different images, so the report is ambiguous and refused.
    corim = build_sfr_corim(parse_report_json(report_bytes()))
    same = [[-43, bytes.fromhex(SHA384)], [-44, bytes.fromhex(SHA512)]]
    assert parse_sfr_corim(_with_condition_digests(corim, same))
    other = bytes.fromhex(SHA384[:-2] + "a2")
    with pytest.raises(MalformedReport, match="condition"):
        parse_sfr_corim(_with_condition_digests(corim, [[-43, other]]))
    # a condition digest of an algorithm the SFR gives no firmware digest for
    only384 = build_sfr_corim(parse_report_json(report_bytes(device__fw_hash_sha2_512="")))
    with pytest.raises(MalformedReport, match="condition"):
        parse_sfr_corim(_with_condition_digests(only384, [[-44, bytes.fromhex(SHA512)]]))
    with pytest.raises(MalformedReport, match="condition"):
        parse_sfr_corim(_with_condition_digests(corim, [[-44, bytes.fromhex(SHA512[:-2] + "b3")]]))
