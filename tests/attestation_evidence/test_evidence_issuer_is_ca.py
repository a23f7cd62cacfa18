"""RFC 5280 §6.1.4 (k), (n) in the hardware evidence chains (SEV-SNP, TDX PCK, NVIDIA GPU): a
certificate that issues another must be a CA — basic constraints CA:TRUE and, when it has a
key usage, keyCertSign — or the chain is ``ChainNotTrusted`` naming both. A signature alone
does not make an issuer: before, an end-entity certificate the CA issued (CA:FALSE) could sign
a PCK or a VCEK that verified."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from evidence_fakes import NOW, gpu_cert, make_cert, make_fake_amd

from ironroot.attestation.evidence import (
    SnpProduct,
    verify_gpu_chain,
    verify_snp_chain,
    verify_tdx_quote,
)
from ironroot.errors import ChainNotTrusted
from tee_fakes import TDX_NOW, FakeIntel
from x509_extensions import resigned

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
    """``cert`` with its basic constraints and key usage replaced (left out when ``None``)."""
    added = [(e, True) for e in (basic, usage) if e is not None]
    return resigned(cert, issuer_key, drop=(x509.BasicConstraints, x509.KeyUsage), add=added)


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


@pytest.mark.parametrize("ica_is_ca", [True, False])
def test_gpu_intermediate_that_is_not_a_ca(ica_is_ca: bool) -> None:
    root_key, ica_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root = gpu_cert("Root", root_key, "Root", root_key, ca=True)
    ica = gpu_cert("ICA", ica_key, "Root", root_key, ca=ica_is_ca)
    leaf = gpu_cert("Leaf", leaf_key, "ICA", ica_key, ca=False)
    if ica_is_ca:
        assert verify_gpu_chain([leaf, ica], now=NOW, root=root).subject == "CN=Leaf"
        return
    with pytest.raises(ChainNotTrusted, match=_not_a_ca("ICA", "Leaf")):
        verify_gpu_chain([leaf, ica], now=NOW, root=root)
