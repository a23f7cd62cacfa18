"""The labels of every CBOR map a COSE reader looks members up in — header maps (RFC 9052
§3: ``int / tstr``), ``crit``, CWT claims (RFC 8392) and a receipt's ``vdp`` — are an integer
or text, checked by the one ``ironroot.crypto.check_cbor_labels`` with each layer's error. A
decoded map is a Python dict, where ``1.0``, ``true`` and the simple value 1 are found under
``1`` (the alg): a message written with them would be read here while every other verifier
sees no such header. Any other label — a float, a boolean, null, bytes, an array, a bignum
(CBOR's only spelling of an integer past 64 bits) — is refused with the layer's own typed
error and a message naming it; a 64-bit integer at either end of CBOR's range is a label."""

from __future__ import annotations

import cbor2
import pytest

from ironroot.cose import (
    CoseSign,
    InclusionProof,
    Receipt,
    Sign1,
    SignedStatement,
    build_receipt,
    encode_cbor,
    sign1,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedInput, MalformedReceipt, MalformedStatement

KEY = PrivateKey.generate(Algorithm.ES256)
CLAIMS = {1: "https://vendor.example", 2: "pkg:fw"}

# (label, its repr in the message); each is another CBOR value than any integer or text
LABELS = [
    1.0,
    -1.0,
    True,
    False,
    None,
    b"\x01",
    cbor2.CBORSimpleValue(1),
    cbor2.CBORTag(2, b"\x01" + bytes(8)),  # 2**64: a bignum, not a CBOR integer
    (1,),
]
IDS = ["1.0", "-1.0", "true", "false", "null", "bytes", "simple-1", "bignum", "array"]


def _sign1(protected: bytes, unprotected: object) -> bytes:
    return encode_cbor(cbor2.CBORTag(18, [protected, unprotected, b"x", b"s"]))


def _protected(label: object, value: object = 0) -> bytes:
    """A protected header with ``label``; alg (-7) under 1 unless the label takes its place."""
    # a dict keeps the key it was first given: {1: -7} updated under 1.0 stays keyed by 1
    header: dict[object, object] = {label: -7} if label == 1 else {1: -7, label: value}
    return encode_cbor({**header, 15: CLAIMS})


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_a_protected_header_label_of_another_type_is_refused_in_every_layer(
    label: object,
) -> None:
    data = _sign1(_protected(label), {})
    message = f"protected header label {label!r} is not an integer or text"
    for parse, error in (
        (Sign1.decode, MalformedInput),
        (SignedStatement.parse, MalformedStatement),
        (Receipt.parse, MalformedReceipt),
    ):
        with pytest.raises(MalformedInput) as caught:
            parse(data)
        assert type(caught.value) is error
        assert caught.value.code == error.code
        assert caught.value.detail == message


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_an_unprotected_header_label_of_another_type_is_refused(label: object) -> None:
    data = _sign1(encode_cbor({1: -7, 15: CLAIMS}), {label: 0})
    for parse, error in (
        (Sign1.decode, MalformedInput),
        (SignedStatement.parse, MalformedStatement),
    ):
        with pytest.raises(MalformedInput) as caught:
            parse(data)
        assert type(caught.value) is error
        assert (
            caught.value.detail == f"unprotected header label {label!r} is not an integer or text"
        )


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_a_crit_label_of_another_type_is_refused(label: object) -> None:
    data = _sign1(encode_cbor({1: -7, 2: [label], 15: CLAIMS}), {})
    with pytest.raises(MalformedStatement) as caught:
        SignedStatement.parse(data)
    assert type(caught.value) is MalformedStatement
    item = list(label) if isinstance(label, tuple) else label  # an array item: a list
    assert caught.value.detail == f"crit (2) label {item!r} is not an integer or text"


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_a_cose_sign_header_label_of_another_type_is_refused(label: object) -> None:
    """Both header pairs of a COSE_Sign: the body's and each signer's."""
    good = encode_cbor({1: -7})
    body = encode_cbor(cbor2.CBORTag(98, [_protected(label), {}, b"x", [[good, {}, b"s"]]]))
    signer = encode_cbor(cbor2.CBORTag(98, [b"", {}, b"x", [[good, {label: 0}, b"s"]]]))
    for data, where in ((body, "protected"), (signer, "unprotected")):
        with pytest.raises(MalformedInput) as caught:
            CoseSign.decode(data)
        assert type(caught.value) is MalformedInput
        assert caught.value.detail == f"{where} header label {label!r} is not an integer or text"


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_a_statement_claim_label_of_another_type_is_refused(label: object) -> None:
    claims: dict[object, object] = {label: CLAIMS[1]} if label == 1 else {**CLAIMS, label: 0}
    claims[2] = CLAIMS[2]
    data = sign1(KEY, b"x", {15: claims}).encode()
    with pytest.raises(MalformedStatement) as caught:
        SignedStatement.parse(data)
    assert type(caught.value) is MalformedStatement
    assert caught.value.detail == f"CWT claim label {label!r} is not an integer or text"


@pytest.mark.parametrize("label", LABELS, ids=IDS)
def test_a_receipt_claim_or_vdp_label_of_another_type_is_refused(label: object) -> None:
    proof = InclusionProof(1, 0, ()).encode()
    header = {1: -7, 4: b"kid", 395: 1, 15: {label: "https://ts.example"}}
    claims = build_receipt(encode_cbor(header), b"s", InclusionProof(1, 0, ()))
    vdp = encode_cbor(
        cbor2.CBORTag(
            18, [encode_cbor({1: -7, 4: b"kid", 395: 1}), {396: {label: [proof]}}, None, b"s"]
        )
    )
    for data, what in ((claims, "CWT claim label"), (vdp, "vdp (396) label")):
        with pytest.raises(MalformedReceipt) as caught:
            Receipt.parse(data)
        assert type(caught.value) is MalformedReceipt
        assert caught.value.detail == f"{what} {label!r} is not an integer or text"


def test_a_label_is_shown_in_at_most_a_few_dozen_characters() -> None:
    """A label is named in the message (which an HTTP problem detail carries), cut short: a
    statement of 64 KB holding one byte-string label is not echoed whole."""
    data = _sign1(encode_cbor({1: -7, 15: CLAIMS}), {b"k" * 60_000: 0})
    with pytest.raises(MalformedStatement) as caught:
        SignedStatement.parse(data)
    assert caught.value.detail.startswith("unprotected header label b'kkkk")
    assert caught.value.detail.endswith("… is not an integer or text")
    assert len(caught.value.detail) < 130


@pytest.mark.parametrize("label", [(1 << 64) - 1, -(1 << 64), "text"], ids=["max", "min", "text"])
def test_integers_at_either_end_of_cbor_and_text_are_labels(label: object) -> None:
    parsed = SignedStatement.parse(sign1(KEY, b"x", {15: CLAIMS, label: 0}, {7: 1}).encode())
    assert parsed.sign1.protected[label] == 0
    assert Sign1.decode(_sign1(encode_cbor({1: -7}), {label: 1})).unprotected[label] == 1
