"""COSE_Sign1: round trips for every algorithm, tamper detection, header rules, interop."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import (
    CoseSign,
    Limits,
    Sign1,
    SignedStatement,
    cose_sign,
    create_statement,
    decode_cbor,
    encode_cbor,
    sign1,
)
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    LimitExceeded,
    MalformedInput,
    PayloadTooLarge,
    UnsupportedAlgorithm,
)

ALGORITHMS = [a for a in Algorithm if a is not Algorithm.HSS_LMS]
_KEYS: dict[Algorithm, PrivateKey] = {}


def key(alg: Algorithm) -> PrivateKey:
    if alg not in _KEYS:
        _KEYS[alg] = PrivateKey.generate(alg)
    return _KEYS[alg]


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.label)
def test_round_trip_every_algorithm(alg: Algorithm) -> None:
    signer = key(alg)
    msg = sign1(signer, b"payload", {3: "text/plain"}, {4: b"kid"})
    encoded = msg.encode()
    parsed = Sign1.decode(encoded)
    assert parsed == msg
    assert parsed.algorithm is alg
    assert parsed.protected[1] == alg.cose_id
    assert parsed.encode() == encoded
    parsed.verify(signer.verifier())


@pytest.mark.parametrize("alg", ALGORITHMS, ids=lambda a: a.label)
def test_detached_round_trip(alg: Algorithm) -> None:
    signer = key(alg)
    msg = sign1(signer, b"root", {}, detached=True)
    parsed = Sign1.decode(msg.encode())
    assert parsed.payload is None
    parsed.verify(signer.verifier(), detached_payload=b"root")
    with pytest.raises(BadSignature):
        parsed.verify(signer.verifier(), detached_payload=b"other")
    with pytest.raises(MalformedInput):
        parsed.verify(signer.verifier())


def test_attached_payload_refuses_detached_argument() -> None:
    msg = sign1(key(Algorithm.ES256), b"x", {})
    with pytest.raises(MalformedInput):
        msg.verify(key(Algorithm.ES256).verifier(), detached_payload=b"x")


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("alg", [Algorithm.ES384, Algorithm.ED25519, Algorithm.ML_DSA_44])
def test_every_flipped_protected_bit_breaks_signature(alg: Algorithm) -> None:
    signer = key(alg)
    msg = sign1(signer, b"payload", {3: "a"})
    for bit in range(len(msg.protected_bytes) * 8):
        tampered = dataclasses.replace(msg, protected_bytes=_flip(msg.protected_bytes, bit))
        with pytest.raises(BadSignature):
            tampered.verify(signer.verifier())


@settings(max_examples=examples(60), deadline=None)
@given(
    payload=st.binary(min_size=1, max_size=64),
    where=st.sampled_from(["payload", "signature"]),
    bit=st.integers(min_value=0),
)
def test_flipped_payload_or_signature_bit_breaks_signature(
    payload: bytes, where: str, bit: int
) -> None:
    signer = key(Algorithm.ES256)
    msg = sign1(signer, payload, {})
    field = getattr(msg, where)
    tampered = dataclasses.replace(msg, **{where: _flip(field, bit % (len(field) * 8))})
    # through the wire too: the encoded tampered message still parses and fails to verify
    reparsed = Sign1.decode(tampered.encode())
    with pytest.raises(BadSignature):
        reparsed.verify(signer.verifier())


def test_wrong_key_same_algorithm_is_bad_signature() -> None:
    msg = sign1(key(Algorithm.ES384), b"x", {})
    with pytest.raises(BadSignature):
        msg.verify(PrivateKey.generate(Algorithm.ES384).verifier())


def test_algorithm_mismatch_is_not_accepted() -> None:
    msg = sign1(key(Algorithm.ES384), b"x", {})
    with pytest.raises(AlgorithmNotAccepted):
        msg.verify(key(Algorithm.ML_DSA_87).verifier())
    with pytest.raises(AlgorithmNotAccepted):
        msg.verify(key(Algorithm.ES256).verifier())


def test_eddsa_and_ed25519_are_one_algorithm() -> None:
    raw = ed25519.Ed25519PrivateKey.generate()
    signer = PrivateKey(raw, Algorithm.ED25519)
    msg = sign1(signer, b"x", {})
    msg.verify(PublicKey(raw.public_key(), Algorithm.EDDSA))


def test_sign1_refuses_conflicting_alg() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        sign1(key(Algorithm.ES256), b"x", {1: -35})


def _message(protected: object, unprotected: object, payload: object, sig: object) -> bytes:
    return encode_cbor(cbor2.CBORTag(18, [protected, unprotected, payload, sig]))


P_ES256 = encode_cbor({1: -7})


@pytest.mark.parametrize(
    "data",
    [
        encode_cbor(cbor2.CBORTag(98, [P_ES256, {}, b"x", b"s"])),  # COSE_Sign tag
        encode_cbor(cbor2.CBORTag(18, [P_ES256, {}, b"x"])),  # three items
        encode_cbor(cbor2.CBORTag(18, {1: 2})),  # not an array
        _message({1: -7}, {}, b"x", b"s"),  # protected not wrapped in bstr
        _message(P_ES256, [], b"x", b"s"),  # unprotected not a map
        _message(P_ES256, {}, "x", b"s"),  # payload text
        _message(P_ES256, {}, b"x", None),  # signature nil
        _message(encode_cbor([1]), {}, b"x", b"s"),  # protected encodes an array
        _message(b"\xa1\x01", {}, b"x", b"s"),  # protected truncated
        _message(P_ES256 + b"\x00", {}, b"x", b"s"),  # protected trailing bytes
        _message(P_ES256, {1: -7}, b"x", b"s"),  # alg in both
        _message(encode_cbor({3: 0}), {1: -7}, b"x", b"s"),  # alg unprotected
        _message(P_ES256, {2: [4]}, b"x", b"s"),  # crit unprotected
        _message(encode_cbor({1: -7, 2: []}), {}, b"x", b"s"),  # empty crit
        _message(encode_cbor({1: -7, 2: [4]}), {}, b"x", b"s"),  # crit names absent label
        _message(encode_cbor({1: -7, 2: 4}), {}, b"x", b"s"),  # crit not an array
        _message(encode_cbor({1: -7, 2: None}), {}, b"x", b"s"),  # crit null
        _message(encode_cbor({1: -7, 2: {1: 1}}), {}, b"x", b"s"),  # crit a map
        _message(encode_cbor({1: -7, 2: [[1]]}), {}, b"x", b"s"),  # crit label an array
        _message(encode_cbor({1: -7, 2: [1.5]}), {}, b"x", b"s"),  # crit label a float
        _message(encode_cbor({1.5: 1}), {}, b"x", b"s"),  # float label
        _message(P_ES256, {b"k": 1}, b"x", b"s"),  # bytes label
        _message(P_ES256, {4: b"a"}, b"x", b"s") + b"\x00",  # trailing bytes
        bytes.fromhex("d29f") + encode_cbor(P_ES256) + b"\xa0\x41x\x41s\xff",  # indefinite
        bytes.fromhex("d284") + encode_cbor(P_ES256) + b"\xa2\x04\x41a\x04\x41b\x41x\x41s",
    ],
)
def test_decode_rejects_malformed(data: bytes) -> None:
    with pytest.raises(MalformedInput) as info:
        Sign1.decode(data)
    assert type(info.value) is MalformedInput


def test_untagged_needs_require_tag_false() -> None:
    untagged = encode_cbor([P_ES256, {}, b"x", b"s"])
    with pytest.raises(MalformedInput):
        Sign1.decode(untagged)
    assert Sign1.decode(untagged, require_tag=False).payload == b"x"


def test_limits_propagate_unchanged() -> None:
    msg = sign1(key(Algorithm.ES256), b"x" * 200, {}).encode()
    with pytest.raises(PayloadTooLarge):
        Sign1.decode(msg, Limits(max_bytes=100))
    deep = _message(encode_cbor({1: -7, 99: [[[[[[1]]]]]]}), {}, b"x", b"s")
    with pytest.raises(LimitExceeded):
        Sign1.decode(deep, Limits(max_depth=4))


def test_algorithm_property_errors() -> None:
    with pytest.raises(MalformedInput):
        _ = Sign1.decode(_message(b"", {}, b"x", b"s")).algorithm
    with pytest.raises(UnsupportedAlgorithm):
        _ = Sign1.decode(_message(encode_cbor({1: -999}), {}, b"x", b"s")).algorithm


def test_sig_structure_bytes() -> None:
    # RFC 9052 §4.4: ["Signature1", protected, external_aad, payload]
    msg = Sign1.decode(_message(P_ES256, {}, b"abc", b"s"))
    expected = encode_cbor(["Signature1", P_ES256, b"aad", b"abc"])
    assert msg.to_be_signed(external_aad=b"aad") == expected


def test_empty_protected_header_forms() -> None:
    for empty in (b"", b"\xa0"):
        msg = Sign1.decode(_message(empty, {}, b"x", b"s"))
        assert dict(msg.protected) == {}
        assert msg.protected_bytes == empty


# --- interop: veraison/corim signed CoRIMs -----------------------------------------------


def _jwk_p256(path: Path) -> PublicKey:
    jwk = json.loads(path.read_text())

    def b64(value: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")

    numbers = ec.EllipticCurvePublicNumbers(b64(jwk["x"]), b64(jwk["y"]), ec.SECP256R1())
    return PublicKey(numbers.public_key(), Algorithm.ES256)


@pytest.mark.vectors
def test_corim_signed_vectors_verify(vectors: Path) -> None:
    base = vectors / "corim" / "corim" / "testcases"
    files = sorted(base.glob("signed-*.cbor"))
    assert files, "no signed CoRIM vectors"
    public = _jwk_p256(base / "src" / "ec-p256.jwk")
    for path in files:
        data = path.read_bytes()
        msg = Sign1.decode(data)
        assert msg.algorithm is Algorithm.ES256
        assert msg.protected[3] == "application/rim+cbor"
        assert msg.payload is not None
        msg.verify(public)
        assert msg.encode() == data  # re-encoding keeps every byte
        tampered = dataclasses.replace(msg, payload=_flip(msg.payload, 0))
        with pytest.raises(BadSignature):
            tampered.verify(public)
        # the payload is a tagged CoRIM that our strict decoder reads
        assert decode_cbor(msg.payload) is not None


# --- crit (RFC 9052 §3.1) ----------------------------------------------------------------


def test_a_critical_header_nobody_processes_is_refused_at_verify() -> None:
    # Sign1.decode checked crit's shape only: every caller verifying a generically parsed
    # message (a signed CoRIM, a quote, a SAFE report) accepted one whose signer required a
    # header to be enforced that nothing here enforces.
    signer = key(Algorithm.ES256)
    message = Sign1.decode(sign1(signer, b"x", {2: [-70000], -70000: "enforce me"}).encode())
    with pytest.raises(MalformedInput, match="critical header -70000 is not understood"):
        message.verify(signer.public_key)
    Sign1.decode(sign1(signer, b"x", {2: [1]}).encode()).verify(signer.public_key)  # alg: fine


def test_a_statement_s_own_critical_headers_still_verify() -> None:
    signer = key(Algorithm.ES256)
    data = create_statement(signer, b"x", iss="https://vendor", sub="pkg:a")
    message = Sign1.decode(data)
    protected = {**message.protected, 2: [15, 4]}
    resigned = sign1(signer, b"x", {k: v for k, v in protected.items() if k != 1}).encode()
    SignedStatement.parse(resigned).sign1.verify(signer.public_key)
    with pytest.raises(MalformedInput, match="critical header 15 is not understood"):
        Sign1.decode(resigned).verify(signer.public_key)


@pytest.mark.parametrize("where", ["body", "signer"])
def test_cose_sign_refuses_a_critical_header_at_verify(where: str) -> None:
    signer = key(Algorithm.ES256)
    crit = {2: [99], 99: 1}
    made = cose_sign(
        [signer],
        b"x",
        crit if where == "body" else None,
        signer_headers=[(crit, {})] if where == "signer" else None,
    )
    message = CoseSign.decode(made.encode())
    with pytest.raises(MalformedInput, match="critical header 99 is not understood"):
        message.verify_signature(message.signatures[0], signer.public_key)


# RFC 9052 Appendix C.2.1 (single ES256 signer) with its key "11" from Appendix C.7.1.
_RFC9052_C21 = bytes.fromhex(
    "d28443a10126a10442313154546869732069732074686520636f6e74656e742e5840"
    "8eb33e4ca31d1c465ab05aac34cc6b23d58fef5c083106c4d25a91aef0b0117e"
    "2af9a291aa32e14ab834dc56ed2a223444547e01f11d3b0916e5a4c345cacb36"
)
_RFC9052_KEY_11 = {
    1: 2,
    -1: 1,
    -2: bytes.fromhex("bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff"),
    -3: bytes.fromhex("20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e"),
}


def test_rfc9052_c21_example_verifies_and_round_trips() -> None:
    key = PublicKey.from_cose_key(_RFC9052_KEY_11)
    message = Sign1.decode(_RFC9052_C21)
    assert (dict(message.protected), dict(message.unprotected)) == ({1: -7}, {4: b"11"})
    assert message.payload == b"This is the content."
    message.verify(key)
    assert message.encode() == _RFC9052_C21
    tampered = bytearray(_RFC9052_C21)
    tampered[-1] ^= 1
    with pytest.raises(BadSignature):
        Sign1.decode(bytes(tampered)).verify(key)
    with pytest.raises(AlgorithmNotAccepted):  # an ES384 key for an ES256 message
        message.verify(PrivateKey.generate(Algorithm.ES384).verifier())
