"""The public surface of ironroot.crypto is exactly what we meant."""

from __future__ import annotations

from pathlib import Path

import ironroot.crypto
from ironroot.crypto import Algorithm, LmsPrivateKey, PrivateKey, Signer, Verifier


def test_all() -> None:
    assert sorted(ironroot.crypto.__all__) == sorted(
        [
            "CRL_ENTRY_EXTENSIONS",
            "CRL_EXTENSIONS",
            "DEFAULT_LMS_PARAMETER_SET",
            "LMS_PARAMETER_SETS",
            "DICE_EXTENSIONS",
            "STANDARD_EXTENSIONS",
            "Algorithm",
            "ExtensionProfile",
            "HybridSigner",
            "HybridVerifier",
            "LmsParameterSet",
            "LmsPrivateKey",
            "LmsPublicKey",
            "PrivateKey",
            "PublicKey",
            "Signer",
            "Verifier",
            "b64url_decode",
            "b64url_encode",
            "check_cbor_labels",
            "check_crl",
            "check_wrapping_key",
            "cose_key_thumbprint",
            "crl_covers",
            "ecdsa_from_der",
            "ecdsa_low_s",
            "ecdsa_to_der",
            "holds_private_key",
            "hybrid_kid",
            "library_error_text",
            "load_certificate",
            "load_certificates",
            "load_crl",
            "load_crls",
            "load_csr",
            "load_signer",
            "load_verifier",
            "save_signer",
            "verifier_from_cose_key",
        ]
    )
    for name in ironroot.crypto.__all__:
        assert hasattr(ironroot.crypto, name)


def test_protocols_are_implemented(tmp_path: Path) -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    lms = LmsPrivateKey.generate(tmp_path / "k", "SHA256-N24-H5-W1")
    for signer in (key, lms):
        assert isinstance(signer, Signer)
        assert isinstance(signer.verifier(), Verifier)
        assert signer.verifier().kid == signer.kid
    for verifier in (key.public_key, lms.public_key):
        assert isinstance(verifier, Verifier)
        assert not isinstance(verifier, Signer)
