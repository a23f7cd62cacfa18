"""Hybrid signatures: encoding, key id, and that both halves must verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import (
    Algorithm,
    HybridSigner,
    HybridVerifier,
    LmsPrivateKey,
    PrivateKey,
    hybrid_kid,
)
from ironroot.errors import BadSignature, UnsupportedAlgorithm

ES384 = PrivateKey.generate(Algorithm.ES384)
MLDSA87 = PrivateKey.generate(Algorithm.ML_DSA_87)
SIGNER = HybridSigner(ES384, MLDSA87)


def test_encoding_is_the_documented_array() -> None:
    signature = SIGNER.sign(b"manifest")
    value = cbor2.loads(signature)
    assert isinstance(value, list)
    assert value[0] == -35
    assert value[2] == -50
    assert len(value[1]) == 96
    assert len(value[3]) == 4627
    assert signature[:3] == bytes.fromhex("843822")  # array(4), -35
    ES384.verifier().verify(value[1], b"manifest")
    MLDSA87.verifier().verify(value[3], b"manifest")
    SIGNER.verifier().verify(signature, b"manifest")


def test_kid_is_sha256_of_both_kids() -> None:
    expected = hashlib.sha256(cbor2.dumps([ES384.kid, MLDSA87.kid])).digest()
    assert SIGNER.kid == expected == hybrid_kid(ES384.kid, MLDSA87.kid)
    assert HybridVerifier(ES384.verifier(), MLDSA87.verifier()).kid == expected
    assert SIGNER.algorithms == (Algorithm.ES384, Algorithm.ML_DSA_87)


def _replace(signature: bytes, index: int, value: object) -> bytes:
    parts = cbor2.loads(signature)
    parts[index] = value
    return cbor2.dumps(parts)


def test_each_half_must_verify() -> None:
    signature = SIGNER.sign(b"data")
    parts = cbor2.loads(signature)
    bad_classical = _replace(signature, 1, bytes([parts[1][0] ^ 1]) + parts[1][1:])
    bad_pq = _replace(signature, 3, parts[3][:-1] + bytes([parts[3][-1] ^ 1]))
    verifier = SIGNER.verifier()
    with pytest.raises(BadSignature, match="classical ES384"):
        verifier.verify(bad_classical, b"data")
    with pytest.raises(BadSignature, match="post-quantum ML-DSA-87"):
        verifier.verify(bad_pq, b"data")
    with pytest.raises(BadSignature, match="classical"):
        verifier.verify(signature, b"other data")


def test_a_half_from_another_key_is_rejected() -> None:
    other = HybridSigner(ES384, PrivateKey.generate(Algorithm.ML_DSA_87)).sign(b"data")
    with pytest.raises(BadSignature, match="post-quantum"):
        SIGNER.verifier().verify(other, b"data")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s[:-1],
        lambda s: s + b"\x00",
        lambda s: b"",
        lambda s: b"\xff",
        lambda s: cbor2.dumps(cbor2.loads(s)[:3]),
        lambda s: cbor2.dumps([*cbor2.loads(s), b""]),
        lambda s: _replace(s, 0, -7),
        lambda s: _replace(s, 2, -49),
        lambda s: _replace(s, 0, "ES384"),
        lambda s: _replace(s, 1, "text"),
        lambda s: _replace(s, 2, True),
        # bignums (tags 2, 3) decode to int too: a 20,000-bit one raised ValueError
        lambda s: _replace(s, 0, 2**20000),
        lambda s: _replace(s, 2, -(2**20000)),
        lambda s: _replace(s, 0, 2**64),
        lambda s: cbor2.dumps({0: 1}),
        # the same array with an indefinite-length header: not deterministic CBOR
        lambda s: b"\x9f" + s[1:] + b"\xff",
        # a classical half with a non-shortest length: not deterministic CBOR
        lambda s: s[:3] + b"\x59\x00\x60" + s[5:],
    ],
)
def test_malformed_hybrid_signatures(mutate: object) -> None:
    signature = SIGNER.sign(b"data")
    with pytest.raises(BadSignature):
        SIGNER.verifier().verify(mutate(signature), b"data")  # type: ignore[operator]


def test_pairing_rules() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        HybridSigner(MLDSA87, ES384)
    with pytest.raises(UnsupportedAlgorithm):
        HybridSigner(ES384, PrivateKey.generate(Algorithm.ES256))
    with pytest.raises(UnsupportedAlgorithm):
        HybridVerifier(MLDSA87.verifier(), MLDSA87.verifier())


def test_ecdsa_with_lms(tmp_path: Path) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "lms.key", "SHA256-N24-H5-W4")
    signer = HybridSigner(PrivateKey.generate(Algorithm.ES256), lms)
    signature = signer.sign(b"quote")
    assert cbor2.loads(signature)[2] == Algorithm.HSS_LMS.cose_id
    signer.verifier().verify(signature, b"quote")
    assert lms.remaining() == 31


@settings(max_examples=examples(10), deadline=None)
@given(data=st.binary(max_size=256))
def test_property_round_trip(data: bytes) -> None:
    signer = HybridSigner(_ED, _ML44)
    signer.verifier().verify(signer.sign(data), data)


_ED = PrivateKey.generate(Algorithm.ED25519)
_ML44 = PrivateKey.generate(Algorithm.ML_DSA_44)
