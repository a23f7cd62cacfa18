"""In-memory keys: sign/verify, COSE_Key, PEM and JWK round trips, and every rejection."""

from __future__ import annotations

import contextlib
import json

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import decode_key_set
from ironroot.crypto import (
    Algorithm,
    LmsPublicKey,
    PrivateKey,
    PublicKey,
    cose_key_thumbprint,
    verifier_from_cose_key,
)
from ironroot.errors import BadSignature, LimitExceeded, MalformedInput, UnsupportedAlgorithm

IN_MEMORY = [a for a in Algorithm if a is not Algorithm.HSS_LMS]
SIGNATURE_SIZES = {
    Algorithm.ES256: 64,
    Algorithm.ES384: 96,
    Algorithm.ES512: 132,
    Algorithm.EDDSA: 64,
    Algorithm.ED25519: 64,
    Algorithm.ML_DSA_44: 2420,
    Algorithm.ML_DSA_65: 3309,
    Algorithm.ML_DSA_87: 4627,
}


@pytest.fixture(scope="module")
def keys() -> dict[Algorithm, PrivateKey]:
    return {alg: PrivateKey.generate(alg) for alg in IN_MEMORY}


@pytest.mark.parametrize("alg", IN_MEMORY, ids=lambda a: a.label)
def test_sign_verify_round_trip(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    key = keys[alg]
    signature = key.sign(b"payload")
    assert len(signature) == SIGNATURE_SIZES[alg]
    key.verifier().verify(signature, b"payload")
    with pytest.raises(BadSignature):
        key.verifier().verify(signature, b"payloaD")


@pytest.mark.parametrize("alg", IN_MEMORY, ids=lambda a: a.label)
def test_flipped_and_wrong_length_signatures(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm
) -> None:
    key = keys[alg]
    signature = key.sign(b"payload")
    for bad in (
        signature[:-1],
        signature + b"\x00",
        b"",
        bytes([signature[0] ^ 1]) + signature[1:],
        signature[:-1] + bytes([signature[-1] ^ 0x40]),
    ):
        with pytest.raises(BadSignature):
            key.verifier().verify(bad, b"payload")


@pytest.mark.parametrize("alg", IN_MEMORY, ids=lambda a: a.label)
def test_encodings_round_trip(keys: dict[Algorithm, PrivateKey], alg: Algorithm) -> None:
    key = keys[alg]
    public = key.public_key
    from_cose = PublicKey.from_cose_key(cbor2.loads(cbor2.dumps(public.to_cose_key())))
    assert from_cose == public
    assert from_cose.algorithm is alg
    assert PublicKey.from_pem(public.to_pem(), alg) == public
    assert PublicKey.from_der(public.to_der(), alg) == public
    assert PublicKey.from_jwk(json.dumps(public.to_jwk())).algorithm is alg
    assert PublicKey.from_jwk(public.to_jwk()) == public
    private = PrivateKey.from_jwk(json.dumps(key.to_jwk()))
    assert private.kid == key.kid
    assert private.algorithm is alg
    public.verify(private.sign(b"x"), b"x")
    assert PrivateKey.from_pem(key.to_pem(), alg).kid == key.kid
    assert PrivateKey.from_pem(key.to_pem(b"pw"), alg, password=b"pw").kid == key.kid


def test_jwk_members() -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_65)
    jwk = key.to_jwk(include_kid=True)
    assert set(jwk) == {"kty", "alg", "pub", "priv", "kid"}
    assert (jwk["kty"], jwk["alg"]) == ("AKP", "ML-DSA-65")
    assert "=" not in jwk["pub"]
    assert "+" not in jwk["pub"]
    assert "/" not in jwk["pub"]
    assert set(key.public_key.to_jwk()) == {"kty", "alg", "pub"}
    ec_jwk = PrivateKey.generate(Algorithm.ES512).to_jwk()
    assert ec_jwk["crv"] == "P-521"
    assert len(ec_jwk["x"]) == len(ec_jwk["y"]) == len(ec_jwk["d"]) == 88  # 66 bytes


def test_mldsa_private_jwk_holds_the_seed() -> None:
    seed = bytes(range(32))
    key = PrivateKey.from_mldsa_seed(Algorithm.ML_DSA_87, seed)
    jwk = key.to_jwk()
    assert jwk["priv"] == "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    again = PrivateKey.from_jwk(jwk)
    assert again.kid == key.kid == PrivateKey.from_mldsa_seed(Algorithm.ML_DSA_87, seed).kid


def test_generated_mldsa_keys_are_distinct() -> None:
    a, b = (PrivateKey.generate(Algorithm.ML_DSA_44) for _ in range(2))
    assert a.kid != b.kid
    assert PrivateKey.from_jwk(a.to_jwk()).kid == a.kid


@settings(max_examples=examples(25), deadline=None)
@given(data=st.binary(max_size=512))
def test_property_ed25519_and_es256(data: bytes) -> None:
    for alg in (Algorithm.ED25519, Algorithm.ES256):
        key = _PROPERTY_KEYS[alg]
        key.verifier().verify(key.sign(data), data)
        with pytest.raises(BadSignature):
            key.verifier().verify(key.sign(data), data + b"\x00")


_PROPERTY_KEYS = {alg: PrivateKey.generate(alg) for alg in (Algorithm.ED25519, Algorithm.ES256)}


# --- key / algorithm mismatch ----------------------------------------------------------------


def test_key_algorithm_mismatch() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey(p384, Algorithm.ES256)
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey(p384.public_key(), Algorithm.ML_DSA_65)
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey(ed25519.Ed25519PrivateKey.generate().public_key(), Algorithm.ES256)
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey.generate(Algorithm.HSS_LMS)
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey.from_mldsa_seed(Algorithm.ES256, bytes(32))
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey(rsa.generate_private_key(65537, 2048))  # type: ignore[arg-type]


def test_cose_key_alg_mismatch(keys: dict[Algorithm, PrivateKey]) -> None:
    cose = keys[Algorithm.ES256].public_key.to_cose_key()
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({**cose, 3: Algorithm.ES384.cose_id})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({**cose, 3: -999})
    akp = keys[Algorithm.ML_DSA_44].public_key.to_cose_key()
    with pytest.raises(MalformedInput):  # a 44 key's bytes are not a 65 key
        PublicKey.from_cose_key({**akp, 3: Algorithm.ML_DSA_65.cose_id})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({**akp, 3: Algorithm.ES256.cose_id})


@pytest.mark.parametrize("jwk", [5, None, 1.5, ["kty"], [], True], ids=repr)
def test_a_jwk_that_is_no_object_is_malformed(jwk: object) -> None:
    # a JWK Set's "keys" list may hold any JSON value: each one reaches from_jwk as it is
    with pytest.raises(MalformedInput):
        PublicKey.from_jwk(jwk)  # type: ignore[arg-type]
    with pytest.raises(MalformedInput):
        PrivateKey.from_jwk(jwk)  # type: ignore[arg-type]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_JWK_MEMBERS = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["EC", "OKP", "AKP", "RSA", ""]) | _JSON,
        "crv": st.sampled_from(["P-256", "P-384", "P-521", "Ed25519"]) | _JSON,
        "alg": st.sampled_from(["ES256", "ES384", "EdDSA", "ML-DSA-87"]) | _JSON,
        "x": st.sampled_from(["", "AA", "A" * 43]) | _JSON,
        "y": st.sampled_from(["", "A" * 43, "A" * 64]) | _JSON,
        "pub": _JSON,
        "d": _JSON,
    },
)


@settings(max_examples=examples(150), deadline=None)
@given(jwk=_JSON | _JWK_MEMBERS | _JWK_MEMBERS.map(json.dumps))
def test_any_json_value_as_a_jwk_raises_only_typed_errors(jwk: object) -> None:
    """What a JWK Set's "keys" list may hold reaches from_jwk as it is."""
    for load in (PublicKey.from_jwk, PrivateKey.from_jwk):
        with contextlib.suppress(MalformedInput, UnsupportedAlgorithm, LimitExceeded):
            load(jwk)  # type: ignore[arg-type]


def test_jwk_alg_mismatch(keys: dict[Algorithm, PrivateKey]) -> None:
    jwk = keys[Algorithm.ES256].public_key.to_jwk()
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_jwk({**jwk, "alg": "ES384"})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_jwk({**jwk, "alg": "RS256"})
    okp = keys[Algorithm.EDDSA].public_key.to_jwk()
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_jwk({**okp, "alg": "ES256"})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_jwk({**okp, "crv": "Ed448"})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_jwk({"kty": "RSA", "n": "AQAB", "e": "AQAB"})


def test_pem_alg_mismatch(keys: dict[Algorithm, PrivateKey]) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_pem(keys[Algorithm.ES384].public_key.to_pem(), Algorithm.ES256)
    with pytest.raises(UnsupportedAlgorithm):
        PrivateKey.from_pem(keys[Algorithm.ML_DSA_87].to_pem(), Algorithm.ML_DSA_44)
    rsa_pem = rsa.generate_private_key(65537, 2048).public_key()
    pem = rsa_pem.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_pem(pem)


# --- malformed inputs ------------------------------------------------------------------------


def _ec2(keys: dict[Algorithm, PrivateKey]) -> dict[int, object]:
    return keys[Algorithm.ES256].public_key.to_cose_key()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: {**c, -2: c[-2][:-1]},
        lambda c: {**c, -3: "text"},
        lambda c: {k: v for k, v in c.items() if k != -2},
        lambda c: {**c, -2: bytes(32), -3: bytes(32)},  # (0, 0) is not on the curve
        lambda c: {**c, -3: bytes([c[-3][0] ^ 1]) + c[-3][1:]},  # off the curve
    ],
)
def test_malformed_ec2_cose_key(keys: dict[Algorithm, PrivateKey], mutate: object) -> None:
    with pytest.raises(MalformedInput):
        PublicKey.from_cose_key(mutate(_ec2(keys)))  # type: ignore[operator]


def test_malformed_cose_keys() -> None:
    with pytest.raises(MalformedInput):
        PublicKey.from_cose_key({1: 1, -1: 6, -2: b"\x00" * 31})
    with pytest.raises(MalformedInput):
        PublicKey.from_cose_key({1: 7, 3: -48, -1: 5})
    with pytest.raises(MalformedInput):
        PublicKey.from_cose_key({1: 7, 3: -48, -1: b"short"})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({1: 4, -1: b"symmetric"})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({1: 2, -1: 8, -2: b"", -3: b""})
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key({1: 2, 3: "ES256", -1: 1})
    with pytest.raises(MalformedInput):
        PublicKey.from_cose_key([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("alg", "label", "value"),
    [
        (Algorithm.EDDSA, 1, 1.0),
        (Algorithm.EDDSA, 1, True),  # true == 1 (OKP) in Python
        (Algorithm.EDDSA, -1, 6.0),
        (Algorithm.ES256, 1, 2.0),
        (Algorithm.ES256, -1, True),  # true == 1 (P-256) in Python
        (Algorithm.ML_DSA_44, 1, 7.0),
    ],
    ids=str,
)
def test_cose_key_kty_and_crv_must_be_integers(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm, label: int, value: object
) -> None:
    # They compared equal to the integer and the key loaded (a key set took its kid as the
    # thumbprint, which for the map as received it is not).
    public = keys[alg].public_key
    cose_key = {**public.to_cose_key(include_kid=True), label: value}
    with pytest.raises(UnsupportedAlgorithm):
        PublicKey.from_cose_key(cose_key)
    with pytest.raises(UnsupportedAlgorithm):
        verifier_from_cose_key(cose_key)
    with pytest.raises(UnsupportedAlgorithm):
        decode_key_set(cbor2.dumps([cose_key]))
    if label == 1:
        with pytest.raises(UnsupportedAlgorithm):
            cose_key_thumbprint(cose_key)


@pytest.mark.parametrize(
    ("alg", "label", "alias"),
    [
        (Algorithm.ES256, 1, 1.0),  # kty
        (Algorithm.ES256, -2, -2.0),  # x
        (Algorithm.ES256, 3, 3.0),  # alg
        (Algorithm.EDDSA, -1, -1.0),  # crv
        (Algorithm.ML_DSA_44, 1, True),  # kty: true == 1 in Python
    ],
    ids=str,
)
def test_cose_key_labels_must_be_integers_or_text(
    keys: dict[Algorithm, PrivateKey], alg: Algorithm, label: int, alias: object
) -> None:
    # A label written as 1.0 or true was read as the integer label it equals in Python, so
    # the key loaded (and a key set took it) where every other COSE reader sees no kty, x...
    cose_key: dict[object, object] = dict(keys[alg].public_key.to_cose_key(include_kid=True))
    cose_key[alias] = cose_key.pop(label)
    for load in (PublicKey.from_cose_key, verifier_from_cose_key):
        with pytest.raises(MalformedInput) as caught:
            load(cose_key)  # type: ignore[arg-type]
        assert type(caught.value) is MalformedInput
        assert caught.value.code == "malformed"
        assert caught.value.detail == f"COSE_Key label {alias!r} is not an integer or text"
    with pytest.raises(MalformedInput, match="is not an integer or text"):
        decode_key_set(cbor2.dumps([cose_key]))
    with pytest.raises(MalformedInput, match="is not an integer or text"):
        verifier_from_cose_key(cbor2.dumps(cose_key))


def test_lms_cose_key_labels_must_be_integers_or_text() -> None:
    pub = bytes.fromhex("000000010000000a00000007") + bytes(16 + 24)
    with pytest.raises(MalformedInput, match=r"^COSE_Key label -1\.0 is not an integer"):
        LmsPublicKey.from_cose_key({1: 5, -1.0: pub})  # type: ignore[dict-item]


def test_lms_cose_key_kty_must_be_an_integer() -> None:
    # L = 1, LMS_SHA256_M24_H5, LMOTS_SHA256_N24_W4, I and T[1] zero
    pub = bytes.fromhex("000000010000000a00000007") + bytes(16 + 24)
    LmsPublicKey.from_cose_key({1: 5, -1: pub})
    with pytest.raises(UnsupportedAlgorithm):
        LmsPublicKey.from_cose_key({1: 5.0, -1: pub})


@pytest.mark.parametrize(
    "jwk",
    [
        "not json",
        "[1, 2]",
        "{}",
        '{"kty": 5}',
        '{"kty": "EC", "crv": "P-256"}',
        '{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}',
        '{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="}',
        '{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"}',
        '{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp"}',
        '{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR"}',
        '{"kty": "AKP", "alg": "ML-DSA-44", "pub": "AAAA"}',
        '{"kty": "OKP", "crv": "Ed25519", "alg": 7, '
        '"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}',
    ],
)
def test_malformed_jwk(jwk: str) -> None:
    with pytest.raises(MalformedInput):
        PublicKey.from_jwk(jwk)


def test_rfc8037_ed25519_public_jwk() -> None:
    # RFC 8037 Appendix A.2 public key.
    key = PublicKey.from_jwk(
        '{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}'
    )
    assert key.raw_bytes().hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )


def test_oversized_jwk() -> None:
    with pytest.raises(LimitExceeded):
        PublicKey.from_jwk("{" + " " * 70000 + "}")


def test_private_jwk_rejections(keys: dict[Algorithm, PrivateKey]) -> None:
    other = PrivateKey.generate(Algorithm.ES256).to_jwk()
    mine = keys[Algorithm.ES256].to_jwk()
    with pytest.raises(MalformedInput, match="do not match"):
        PrivateKey.from_jwk({**mine, "d": other["d"]})
    with pytest.raises(MalformedInput):
        PrivateKey.from_jwk(keys[Algorithm.ES256].public_key.to_jwk())  # no "d"
    with pytest.raises(MalformedInput):
        PrivateKey.from_jwk({**mine, "d": "AAAA"})
    with pytest.raises(MalformedInput):  # d = 0 is not a private key
        PrivateKey.from_jwk({**mine, "d": "A" * 42 + "A"})
    seed_jwk = keys[Algorithm.ML_DSA_44].to_jwk()
    with pytest.raises(MalformedInput, match="do not match"):
        PrivateKey.from_jwk({**seed_jwk, "priv": "A" * 43})
    ed = keys[Algorithm.EDDSA].to_jwk()
    with pytest.raises(MalformedInput):
        PrivateKey.from_jwk({**ed, "d": ed["d"][:-2]})


@pytest.mark.parametrize(
    "data",
    [b"", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"\x30\x03\x02\x01\x01"],
)
def test_malformed_public_pem(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        PublicKey.from_pem(data)


def test_malformed_private_pem(keys: dict[Algorithm, PrivateKey]) -> None:
    with pytest.raises(MalformedInput):
        PrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    encrypted = keys[Algorithm.ES384].to_pem(b"right")
    with pytest.raises(MalformedInput):
        PrivateKey.from_pem(encrypted, password=b"wrong")
    with pytest.raises(MalformedInput):
        PrivateKey.from_pem(encrypted)


def test_mldsa_seed_length() -> None:
    with pytest.raises(MalformedInput):
        PrivateKey.from_mldsa_seed(Algorithm.ML_DSA_65, bytes(31))


def test_repr_never_shows_secrets(keys: dict[Algorithm, PrivateKey]) -> None:
    key = keys[Algorithm.ED25519]
    assert key.to_jwk()["d"] not in repr(key)
    assert repr(key).startswith("PrivateKey(Ed25519, kid=")


# --- ECDSA malleability ----------------------------------------------------------------------

_EC_ALGS = [Algorithm.ES256, Algorithm.ES384, Algorithm.ES512]


def _twin(algorithm: Algorithm, signature: bytes) -> bytes:
    """The same signature with s → n − s (found without knowing n: the one that verifies)."""
    from ironroot.crypto._keys import _EC

    params = _EC[algorithm]
    s = int.from_bytes(signature[params.size :], "big")
    return signature[: params.size] + (params.order - s).to_bytes(params.size, "big")


@pytest.mark.parametrize("algorithm", _EC_ALGS, ids=lambda a: a.label)
def test_ecdsa_signatures_are_always_low_s(algorithm: Algorithm) -> None:
    from ironroot.crypto import ecdsa_low_s
    from ironroot.crypto._keys import _EC

    key = PrivateKey.generate(algorithm)
    order, size = _EC[algorithm].order, _EC[algorithm].size
    for i in range(40):  # a high s would turn up about half the time without normalising
        signature = key.sign(b"m%d" % i)
        assert int.from_bytes(signature[size:], "big") <= order // 2
        assert ecdsa_low_s(algorithm, signature) == signature


@pytest.mark.parametrize("algorithm", _EC_ALGS, ids=lambda a: a.label)
def test_the_high_s_twin_verifies_and_normalises_back(algorithm: Algorithm) -> None:
    from ironroot.crypto import ecdsa_low_s

    key = PrivateKey.generate(algorithm)
    signature = key.sign(b"message")
    twin = _twin(algorithm, signature)
    assert twin != signature
    key.public_key.verify(twin, b"message")  # the order is right: the twin is valid
    assert ecdsa_low_s(algorithm, twin) == signature


def test_low_s_leaves_other_algorithms_and_lengths_alone() -> None:
    from ironroot.crypto import ecdsa_low_s

    ed = PrivateKey.generate(Algorithm.ED25519).sign(b"m")
    assert ecdsa_low_s(Algorithm.ED25519, ed) == ed
    assert ecdsa_low_s(Algorithm.ES256, b"\xff" * 63) == b"\xff" * 63


def test_public_key_equality_is_thumbprint_equality() -> None:
    """EC keys are compared as curve and point (no encoding), which is what their
    thumbprints cover: equal keys have equal kids and hashes, other keys and curves differ,
    and the encodings a key keeps are those of its point."""
    p384 = PrivateKey.generate(Algorithm.ES384)
    same = PublicKey.from_der(p384.public_key.to_der())
    assert same == p384.public_key
    assert same.kid == p384.public_key.kid
    assert hash(same) == hash(p384.public_key)
    other = PrivateKey.generate(Algorithm.ES384).public_key
    assert other != p384.public_key
    assert other.kid != p384.public_key.kid
    p256 = PrivateKey.generate(Algorithm.ES256).public_key
    assert p256 != p384.public_key
    mldsa = PrivateKey.generate(Algorithm.ML_DSA_87).public_key
    assert mldsa != p384.public_key
    assert p384.public_key != mldsa
    assert PublicKey.from_der(mldsa.to_der(), Algorithm.ML_DSA_87) == mldsa
    numbers = p384.public_key.raw.public_numbers()  # type: ignore[union-attr]
    cose = p384.public_key.to_cose_key()
    assert cose[-2] == numbers.x.to_bytes(48, "big")
    assert cose[-3] == numbers.y.to_bytes(48, "big")
    assert p384.public_key.raw_bytes() == b"\x04" + cose[-2] + cose[-3]  # type: ignore[operator]
