"""RFC 5280 §6.1.4 (k), (n) in the hardware evidence chains (SEV-SNP, TDX PCK, NVIDIA GPU): a
certificate that issues another must be a CA — basic constraints CA:TRUE and, when it has a
key usage, keyCertSign — or the chain is ``ChainNotTrusted`` naming both. A signature alone
does not make an issuer: before, an end-entity certificate the CA issued (CA:FALSE) could sign
a PCK or a VCEK that verified."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from evidence_fakes import NOW, make_cert, make_fake_amd

from ironroot.attestation.evidence import (
    SnpProduct,
    verify_gpu_chain,
    verify_snp_chain,
    verify_tdx_quote,
)
from ironroot.errors import ChainNotTrusted
from tee_fakes import TDX_NOW, FakeIntel

TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}
ONLY_SIGNS = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _resigned(
    cert: x509.Certificate,
    issuer_key: Any,
    *,
    basic: x509.BasicConstraints | None,
    usage: x509.KeyUsage | None = None,
) -> x509.Certificate:
    """``cert`` with its basic constraints and key usage replaced (left out when ``None``),
    signed again by ``issuer_key`` the way it was signed."""
    kept = [
        e
        for e in cert.extensions
        if not isinstance(e.value, (x509.BasicConstraints, x509.KeyUsage))
    ]
    builder = x509.CertificateBuilder(
        issuer_name=cert.issuer,
        subject_name=cert.subject,
        public_key=cert.public_key(),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
        extensions=kept,
    )
    if basic is not None:
        builder = builder.add_extension(basic, critical=True)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if isinstance(issuer_key, rsa.RSAPrivateKey):
        return builder.sign(
            issuer_key,
            cert.signature_hash_algorithm,  # type: ignore[arg-type]
            rsa_padding=cert.signature_algorithm_parameters,  # type: ignore[arg-type]
        )
    return builder.sign(issuer_key, cert.signature_hash_algorithm)  # type: ignore[arg-type]


def _not_a_ca(issuer: str, cert: str) -> str:
    return "^" + re.escape(
        f"certificate {issuer!r} is not a CA (basic constraints), so it cannot issue {cert!r}"
    )


def _no_cert_sign(issuer: str, cert: str) -> str:
    return "^" + re.escape(
        f"certificate {issuer!r} may not sign certificates (key usage without keyCertSign), "
        f"so it cannot issue {cert!r}"
    )


END_ENTITY = x509.BasicConstraints(ca=False, path_length=None)
CA = x509.BasicConstraints(ca=True, path_length=None)
PLATFORM_CA, PCK = "Intel SGX PCK Platform CA", "Intel SGX PCK Certificate"


# --- Intel TDX: the PCK's platform CA --------------------------------------------------------


@pytest.mark.parametrize(
    ("basic", "usage", "error"),
    [
        (END_ENTITY, None, _not_a_ca(PLATFORM_CA, PCK)),
        (None, None, _not_a_ca(PLATFORM_CA, PCK)),
        (CA, ONLY_SIGNS, _no_cert_sign(PLATFORM_CA, PCK)),
    ],
    ids=["ca-false", "no-basic-constraints", "no-key-cert-sign"],
)
def test_tdx_pck_issuer_that_is_not_a_ca(
    basic: x509.BasicConstraints | None, usage: x509.KeyUsage | None, error: str
) -> None:
    intel = FakeIntel()
    intel.ca = _resigned(intel.ca, intel.root_key, basic=basic, usage=usage)
    with pytest.raises(ChainNotTrusted, match=error):
        verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root)


def test_tdx_pck_issuer_that_is_a_ca_with_key_cert_sign_is_accepted() -> None:
    intel = FakeIntel()
    cert_sign = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    intel.ca = _resigned(intel.ca, intel.root_key, basic=CA, usage=cert_sign)
    assert verify_tdx_quote(intel.quote(), now=TDX_NOW, root=intel.root).format == "tdx"


# --- AMD SEV-SNP: a supplied ASK -------------------------------------------------------------


def test_snp_supplied_ask_that_is_not_a_ca() -> None:
    amd = make_fake_amd(SnpProduct.MILAN)
    key = ec.generate_private_key(ec.SECP384R1())
    ask = make_cert("SEV-Milan", "ARK-Milan", key, amd.ark_key, ca=False, days=9000)
    leaf = dataclasses.replace(amd, ask=ask, ask_key=key).leaf(tcb=TCB)[0]
    with pytest.raises(ChainNotTrusted, match=_not_a_ca("SEV-Milan", "SEV-VCEK")):
        verify_snp_chain(leaf, [ask], now=NOW, anchors=[amd.anchor])


# --- NVIDIA GPU: an intermediate -------------------------------------------------------------


def _gpu_cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA384())
    )


@pytest.mark.parametrize("ica_is_ca", [True, False])
def test_gpu_intermediate_that_is_not_a_ca(ica_is_ca: bool) -> None:
    root_key, ica_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root = _gpu_cert("Root", root_key, "Root", root_key, ca=True)
    ica = _gpu_cert("ICA", ica_key, "Root", root_key, ca=ica_is_ca)
    leaf = _gpu_cert("Leaf", leaf_key, "ICA", ica_key, ca=False)
    if ica_is_ca:
        assert verify_gpu_chain([leaf, ica], now=NOW, root=root).subject == "CN=Leaf"
        return
    with pytest.raises(ChainNotTrusted, match=_not_a_ca("ICA", "Leaf")):
        verify_gpu_chain([leaf, ica], now=NOW, root=root)
