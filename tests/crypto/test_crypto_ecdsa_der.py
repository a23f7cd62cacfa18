"""ECDSA signatures between COSE's fixed r ‖ s and the DER Ecdsa-Sig-Value other tools use."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ironroot.crypto import Algorithm, PrivateKey, ecdsa_from_der, ecdsa_to_der
from ironroot.errors import MalformedInput

_HASHES = {Algorithm.ES256: hashes.SHA256(), Algorithm.ES384: hashes.SHA384(),
           Algorithm.ES512: hashes.SHA512()}  # fmt: skip


@pytest.mark.parametrize("alg", list(_HASHES))
def test_der_round_trip_verifies_with_a_der_verifier(alg: Algorithm) -> None:
    key = PrivateKey.generate(alg)
    raw = key.sign(b"message")
    der = ecdsa_to_der(alg, raw)
    public = load_pem_public_key(key.public_key.to_pem())
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, b"message", ec.ECDSA(_HASHES[alg]))  # what openssl does
    assert ecdsa_from_der(alg, der) == raw


def test_what_is_not_a_canonical_der_signature_is_refused() -> None:
    key = PrivateKey.generate(Algorithm.ES256)
    der = ecdsa_to_der(Algorithm.ES256, key.sign(b"m"))
    with pytest.raises(MalformedInput, match="not a DER ECDSA signature"):
        ecdsa_from_der(Algorithm.ES256, key.sign(b"m"))  # raw r ‖ s is not DER
    with pytest.raises(MalformedInput, match="not a DER ECDSA signature"):  # BER, not DER
        ecdsa_from_der(Algorithm.ES256, der[:1] + b"\x81" + der[1:2] + der[2:])  # long length
    big = (1 << 300).to_bytes(38, "big")
    too_big = b"\x30" + bytes([2 * (2 + len(big))]) + (b"\x02" + bytes([len(big)]) + big) * 2
    with pytest.raises(MalformedInput, match="out of range"):
        ecdsa_from_der(Algorithm.ES256, too_big)
    with pytest.raises(MalformedInput, match="64 bytes"):
        ecdsa_to_der(Algorithm.ES256, b"\x01" * 63)
    with pytest.raises(MalformedInput, match="ECDSA only"):
        ecdsa_to_der(Algorithm.ED25519, b"\x01" * 64)
