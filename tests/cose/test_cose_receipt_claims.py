"""What a receipt's protected CWT claims (15) must say for it to verify: the service's issuer
(``iss``) when the verifier names one, a receipt time (``iat``) no later than the verifier's
clock allows, and, when the service puts them there, a validity (``nbf``, ``exp``) that holds
now. The claims are judged only on a receipt whose signature verifies."""

from __future__ import annotations

import cbor2
import pytest

import ironroot.platform
from ironroot.cose import (
    InclusionProof,
    Receipt,
    SignedStatement,
    build_receipt,
    create_statement,
    encode_cbor,
    make_transparent,
    on_trusted_log,
    receipt_to_be_signed,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey, Verifier
from ironroot.errors import BadSignature, MalformedReceipt, UnknownIssuer, VerificationFailed
from ironroot.merkle import leaf_hash

VENDOR = PrivateKey.generate(Algorithm.ES256)
SERVICE = PrivateKey.generate(Algorithm.ES256)
KEYS: dict[bytes, Verifier] = {SERVICE.kid: SERVICE.verifier()}
TS = "https://ts.example"
NOW = 1_800_000_000
STATEMENT = create_statement(VENDOR, b"release", iss="https://vendor", sub="pkg:fw")
ENTRY = SignedStatement.parse(STATEMENT).log_entry()


def receipt_with(claims: dict[int, object] | None, signer: PrivateKey = SERVICE) -> bytes:
    """A receipt for ENTRY (a tree of one) whose protected header carries ``claims``."""
    header: dict[object, object] = {1: signer.algorithm.cose_id, 4: signer.kid, 395: 1}
    if claims is not None:
        header[15] = claims
    protected = encode_cbor(header)
    signature = signer.sign(receipt_to_be_signed(protected, leaf_hash(ENTRY)))
    return build_receipt(protected, signature, InclusionProof(1, 0, ()))


def test_the_service_s_own_receipt_verifies_with_its_issuer_and_the_clock() -> None:
    parsed = verify_receipt(receipt_with({1: TS, 6: NOW}), ENTRY, KEYS, issuer=TS, now=NOW)
    assert (parsed.issuer, parsed.iat) == (TS, NOW)


def test_a_receipt_naming_another_issuer_is_refused() -> None:
    # signed by a trusted key, but saying it is another service's: not this service's receipt
    receipt = receipt_with({1: "https://other.example", 6: NOW})
    with pytest.raises(UnknownIssuer) as caught:
        verify_receipt(receipt, ENTRY, KEYS, issuer=TS, now=NOW)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        "the receipt is issued by 'https://other.example', not by the transparency service "
        "'https://ts.example'"
    )


@pytest.mark.parametrize("claims", [None, {6: NOW}])
def test_a_receipt_naming_no_issuer_is_refused_when_one_is_expected(
    claims: dict[int, object] | None,
) -> None:
    with pytest.raises(UnknownIssuer) as caught:
        verify_receipt(receipt_with(claims), ENTRY, KEYS, issuer=TS)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        "the receipt names no issuer (CWT claim iss), and the transparency service "
        "'https://ts.example' is expected"
    )
    # without an expected issuer the key alone decides, as before
    verify_receipt(receipt_with(claims), ENTRY, KEYS)


def test_a_receipt_issued_in_the_future_is_refused() -> None:
    # within the leeway (another clock's skew) it verifies; beyond it, it does not
    verify_receipt(receipt_with({1: TS, 6: NOW + 300}), ENTRY, KEYS, issuer=TS, now=NOW)
    with pytest.raises(VerificationFailed) as caught:
        verify_receipt(receipt_with({1: TS, 6: NOW + 301}), ENTRY, KEYS, issuer=TS, now=NOW)
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "receipt-from-the-future"
    assert caught.value.detail == (
        f"the receipt is issued at {NOW + 301} (CWT iat), 301 s after now ({NOW}): more than "
        "the 300 s a clock may be ahead"
    )
    with pytest.raises(VerificationFailed, match="more than the 10 s"):
        verify_receipt(receipt_with({6: NOW + 11}), ENTRY, KEYS, now=NOW, leeway=10)


@pytest.mark.parametrize(
    ("claims", "code", "detail"),
    [
        (
            {1: TS, 6: NOW - 10, 4: NOW},
            "receipt-expired",
            f"the receipt expired at {NOW} (CWT exp; now {NOW})",
        ),
        (
            {1: TS, 6: NOW, 5: NOW + 301},
            "receipt-not-yet-valid",
            f"the receipt is not valid before {NOW + 301} (CWT nbf; now {NOW})",
        ),
    ],
)
def test_a_receipt_outside_its_own_validity_is_refused(
    claims: dict[int, object], code: str, detail: str
) -> None:
    with pytest.raises(VerificationFailed) as caught:
        verify_receipt(receipt_with(claims), ENTRY, KEYS, issuer=TS, now=NOW)
    assert type(caught.value) is VerificationFailed
    assert (caught.value.code, caught.value.detail) == (code, detail)


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        ({1: ""}, "CWT claim iss (1) must be non-empty text"),
        ({4: "tomorrow"}, "CWT claim exp (4) must be an integer"),
        ({5: 1.5}, "CWT claim nbf (5) must be an integer"),
        ({4: True}, "CWT claim exp (4) must be an integer"),
    ],
)
def test_claims_of_the_wrong_type_make_the_receipt_malformed(
    claims: dict[int, object], detail: str
) -> None:
    with pytest.raises(MalformedReceipt) as caught:
        Receipt.parse(receipt_with(claims))
    assert type(caught.value) is MalformedReceipt
    assert caught.value.detail == detail


def test_the_claims_of_a_receipt_whose_signature_fails_are_not_judged() -> None:
    # a forgery naming another issuer, from the future: what is wrong with it is its signature
    forged = receipt_with(
        {1: "https://other.example", 6: NOW + 10_000}, PrivateKey.generate(Algorithm.ES256)
    )
    other = Receipt.parse(forged)
    with pytest.raises(BadSignature):
        verify_receipt(other, ENTRY, {other.kid: SERVICE.verifier()}, issuer=TS, now=NOW)


def test_a_transparent_statement_passes_the_issuer_and_clock_to_each_receipt() -> None:
    good = receipt_with({1: TS, 6: NOW})
    foreign = receipt_with({1: "https://other.example", 6: NOW + 1})
    both = make_transparent(STATEMENT, [good, foreign])
    verify_transparent_statement(both, KEYS, now=NOW)  # no issuer named: the key decides
    with pytest.raises(UnknownIssuer):
        verify_transparent_statement(both, KEYS, issuer=TS, now=NOW)
    # one receipt of the service suffices when not all are required
    verify_transparent_statement(both, KEYS, issuer=TS, now=NOW, require_all=False)
    future = make_transparent(STATEMENT, [receipt_with({1: TS, 6: NOW + 3600})])
    with pytest.raises(VerificationFailed) as caught:
        verify_transparent_statement(future, KEYS, issuer=TS, now=NOW, require_all=False)
    assert caught.value.code == "receipt-from-the-future"


def test_on_trusted_log_names_a_receipt_of_another_service_untrusted_service() -> None:
    # the relying parties' shared check (the platform's, the RIM, SAFE, attestation, fleet
    # and audit trusts): the cose refusal, named for what was checked, with one code
    good = receipt_with({1: TS, 6: NOW})
    foreign = receipt_with({1: "https://other.example", 6: NOW + 1})
    both = make_transparent(STATEMENT, [good, foreign])
    on_trusted_log(both, KEYS, "the thing", issuer=TS, now=NOW)  # one receipt suffices
    on_trusted_log(both, KEYS, "the thing", now=NOW, require_all=True)  # no issuer: keys decide
    with pytest.raises(UnknownIssuer) as caught:
        on_trusted_log(both, KEYS, "the thing", issuer=TS, now=NOW, require_all=True)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        "no receipt of the thing is by a trusted transparency service (the receipt is issued "
        "by 'https://other.example', not by the transparency service 'https://ts.example')"
    )
    assert ironroot.platform.on_trusted_log is on_trusted_log  # the platform's, not a copy


def _with_unprotected(unprotected: dict[object, object]) -> bytes:
    protected = encode_cbor({1: SERVICE.algorithm.cose_id, 4: SERVICE.kid, 395: 1})
    signature = SERVICE.sign(receipt_to_be_signed(protected, leaf_hash(ENTRY)))
    return encode_cbor(cbor2.CBORTag(18, [protected, unprotected, None, signature]))


@pytest.mark.parametrize("label", [1.0, True])
def test_a_claim_label_that_only_python_equates_with_iss_is_not_iss(label: object) -> None:
    # 1.0 and true are other CBOR values than 1: another verifier reads no iss there, so this
    # one must not read the service's issuer from it either
    with pytest.raises(MalformedReceipt) as caught:
        Receipt.parse(receipt_with({label: TS}))  # type: ignore[dict-item]
    assert type(caught.value) is MalformedReceipt
    assert caught.value.detail == f"CWT claim label {label!r} is not an integer or text"


@pytest.mark.parametrize("label", [-1.0, cbor2.CBORSimpleValue(0)])
def test_a_vdp_label_that_only_python_equates_with_a_proof_label_is_refused(label: object) -> None:
    proof = InclusionProof(1, 0, ()).encode()
    receipt = _with_unprotected({396: {label: [proof]}})
    with pytest.raises(MalformedReceipt) as caught:
        verify_receipt(receipt, ENTRY, KEYS)
    assert type(caught.value) is MalformedReceipt
    assert caught.value.detail == f"vdp (396) label {label!r} is not an integer or text"
    verify_receipt(_with_unprotected({396: {-1: [proof]}}), ENTRY, KEYS)


def test_a_tree_of_size_zero_proves_nothing() -> None:
    receipt = _with_unprotected({396: {-1: [encode_cbor([0, 0, []])]}})
    with pytest.raises(MalformedReceipt, match="leaf index 0 is not below tree size 0"):
        verify_receipt(receipt, ENTRY, KEYS)
