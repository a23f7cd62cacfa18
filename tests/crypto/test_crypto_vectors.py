"""Keys and signatures made by other implementations (../shared/vectors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from ironroot.crypto import Algorithm, PrivateKey, PublicKey, load_verifier
from ironroot.errors import BadSignature

pytestmark = pytest.mark.vectors


def test_corim_p256_jwk(vectors: Path) -> None:
    text = (vectors / "corim/corim/testcases/src/ec-p256.jwk").read_bytes()
    public = PublicKey.from_jwk(text)
    assert public.algorithm is Algorithm.ES256
    private = PrivateKey.from_jwk(text)
    assert private.kid == public.kid
    assert load_verifier(text) == public
    public.verify(private.sign(b"corim"), b"corim")


def _csr(vectors: Path, name: str) -> x509.CertificateSigningRequest:
    return x509.load_der_x509_csr((vectors / "caliptra" / name).read_bytes())


def test_caliptra_mldsa87_csr_signature(vectors: Path) -> None:
    csr = _csr(vectors, "idevid_csr_mldsa.der")
    key = PublicKey(csr.public_key())  # type: ignore[arg-type]
    assert key.algorithm is Algorithm.ML_DSA_87
    key.verify(csr.signature, csr.tbs_certrequest_bytes)
    assert PublicKey.from_cose_key(key.to_cose_key()) == key
    assert PublicKey.from_jwk(key.to_jwk()) == key
    tampered = bytearray(csr.signature)
    tampered[100] ^= 1
    with pytest.raises(BadSignature):
        key.verify(bytes(tampered), csr.tbs_certrequest_bytes)


def test_caliptra_p384_csr_signature(vectors: Path) -> None:
    csr = _csr(vectors, "idevid_csr_ecc.der")
    key = PublicKey(csr.public_key())  # type: ignore[arg-type]
    assert key.algorithm is Algorithm.ES384
    r, s = decode_dss_signature(csr.signature)
    key.verify(r.to_bytes(48, "big") + s.to_bytes(48, "big"), csr.tbs_certrequest_bytes)
    with pytest.raises(BadSignature):
        key.verify(csr.signature, csr.tbs_certrequest_bytes)  # DER is not the COSE form
