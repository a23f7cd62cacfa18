"""The algorithm suite: signers, verifiers, keys, key ids, hybrid signatures and key files;
``check_wrapping_key`` refuses a degenerate ML-KEM or RSA key before anything is wrapped to it.

Every signature in Ironroot is made and checked through this package, and every X.509
certificate, CSR and CRL from outside bytes is read through its loaders (``load_certificate``,
``load_certificates``, ``load_csr``, ``load_crl``, ``load_crls``), which raise only
``MalformedCertificate``.
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.crypto._algorithms import Algorithm
    from ironroot.crypto._files import (
        holds_private_key,
        load_signer,
        load_verifier,
        save_signer,
        verifier_from_cose_key,
    )
    from ironroot.crypto._hybrid import HybridSigner, HybridVerifier, hybrid_kid
    from ironroot.crypto._interface import Signer, Verifier
    from ironroot.crypto._jose import b64url_decode, b64url_encode
    from ironroot.crypto._keys import (
        PrivateKey,
        PublicKey,
        check_cbor_labels,
        cose_key_thumbprint,
        ecdsa_from_der,
        ecdsa_low_s,
        ecdsa_to_der,
    )
    from ironroot.crypto._lms import (
        DEFAULT_LMS_PARAMETER_SET,
        LMS_PARAMETER_SETS,
        LmsParameterSet,
        LmsPrivateKey,
        LmsPublicKey,
    )
    from ironroot.crypto._messages import library_error_text
    from ironroot.crypto._wrapping import check_wrapping_key
    from ironroot.crypto._x509 import (
        CRL_ENTRY_EXTENSIONS,
        CRL_EXTENSIONS,
        DICE_EXTENSIONS,
        STANDARD_EXTENSIONS,
        ExtensionProfile,
        check_crl,
        crl_covers,
        load_certificate,
        load_certificates,
        load_crl,
        load_crls,
        load_csr,
    )

__all__ = [
    "CRL_ENTRY_EXTENSIONS",
    "CRL_EXTENSIONS",
    "DEFAULT_LMS_PARAMETER_SET",
    "DICE_EXTENSIONS",
    "LMS_PARAMETER_SETS",
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

__getattr__, __dir__ = lazy_package(__name__, __file__)
