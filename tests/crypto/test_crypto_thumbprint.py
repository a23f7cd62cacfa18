"""RFC 9679 COSE Key Thumbprints: the RFC's own example, and which members each kty covers."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from ironroot.crypto import Algorithm, PrivateKey, PublicKey, cose_key_thumbprint
from ironroot.errors import MalformedInput, UnsupportedAlgorithm

# RFC 9679 §6: the EC2 P-256 example key (also RFC 9052 C.7.1 "meriadoc.brandybuck").
_X = bytes.fromhex("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d")
_Y = bytes.fromhex("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c")
_RFC9679_CBOR = bytes.fromhex(
    "a40102200121582065eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de"
    "108de439c08551d2258201e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0"
    "ca7ca7e9eecd0084d19c"
)
_RFC9679_THUMBPRINT = bytes.fromhex(
    "496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec"
)


def test_rfc9679_example_thumbprint() -> None:
    full_key = {1: 2, -1: 1, -2: _X, -3: _Y, 2: _RFC9679_THUMBPRINT, 3: -7}
    assert cbor2.dumps({1: 2, -1: 1, -2: _X, -3: _Y}, canonical=True) == _RFC9679_CBOR
    assert hashlib.sha256(_RFC9679_CBOR).digest() == _RFC9679_THUMBPRINT
    assert cose_key_thumbprint(full_key) == _RFC9679_THUMBPRINT


def test_rfc9679_example_is_the_public_key_kid() -> None:
    key = PublicKey.from_cose_key({1: 2, -1: 1, -2: _X, -3: _Y, 2: b"meriadoc"})
    assert key.algorithm is Algorithm.ES256
    assert key.kid == _RFC9679_THUMBPRINT
    assert key.to_cose_key(include_alg=False) == {1: 2, -1: 1, -2: _X, -3: _Y}


def test_ec2_and_okp_thumbprints_ignore_alg_and_kid() -> None:
    key = PrivateKey.generate(Algorithm.ED25519).public_key
    cose = key.to_cose_key(include_kid=True)
    assert cose_key_thumbprint(cose) == key.kid
    assert cose_key_thumbprint({**cose, 3: Algorithm.EDDSA.cose_id, 2: b"other"}) == key.kid
    assert PublicKey(key.raw, Algorithm.EDDSA).kid == key.kid


def test_akp_thumbprint_covers_kty_alg_and_pub() -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_65).public_key
    cose = key.to_cose_key()
    expected = hashlib.sha256(
        cbor2.dumps({1: 7, 3: -49, -1: key.raw_bytes()}, canonical=True)
    ).digest()
    assert key.kid == expected
    # The same pub under another alg is another key id.
    assert cose_key_thumbprint({**cose, 3: Algorithm.ML_DSA_87.cose_id}) != key.kid
    # kid and other members are not covered.
    assert cose_key_thumbprint({**cose, 2: b"label", 4: [1]}) == key.kid
    changed = bytes([key.raw_bytes()[0] ^ 1]) + key.raw_bytes()[1:]
    assert cose_key_thumbprint({**cose, -1: changed}) != key.kid


def test_akp_cose_key_shape() -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_44).public_key
    encoded = cbor2.dumps(key.to_cose_key(), canonical=True)
    assert encoded[:6] == bytes.fromhex("a3010703382f")  # {1: 7, 3: -48, ...
    assert cbor2.loads(encoded) == {1: 7, 3: -48, -1: key.raw_bytes()}


def test_thumbprint_rejections() -> None:
    with pytest.raises(MalformedInput):
        cose_key_thumbprint({1: 2, -1: 1, -2: _X})
    with pytest.raises(MalformedInput):
        cose_key_thumbprint({1: 7, -1: b"pub"})
    with pytest.raises(UnsupportedAlgorithm):
        cose_key_thumbprint({1: 4, -1: b"k"})
    with pytest.raises(UnsupportedAlgorithm):
        cose_key_thumbprint({-1: b"k"})
