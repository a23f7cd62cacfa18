"""RFC 5280 §4.2 in the hardware evidence chains (SEV-SNP, TDX PCK and TCB signing, NVIDIA GPU):
a certificate below the trust anchor carrying a critical extension the verifier does not process
is ``ChainNotTrusted`` naming it; the same extension non-critical is accepted."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from evidence_fakes import AMD, NOW, gpu_cert, make_cert, make_fake_amd

from ironroot.attestation.evidence import (
    SnpProduct,
    load_tdx_collateral,
    verify_gpu_chain,
    verify_snp_chain,
    verify_tdx_quote,
)
from ironroot.errors import ChainNotTrusted
from tee_fakes import TDX_NOW, FakeIntel
from x509_extensions import refusal, with_extension

TCB = {"bootloader": 9, "tee": 1, "snp": 22, "microcode": 0xD5}


# --- AMD SEV-SNP: VCEK and a supplied ASK --------------------------------------------------


@pytest.mark.parametrize("critical", [True, False])
def test_snp_vcek_with_an_unknown_extension(critical: bool) -> None:
    amd = make_fake_amd(SnpProduct.MILAN)
    leaf = with_extension(amd.leaf(tcb=TCB)[0], amd.ask_key, critical=critical)
    if not critical:
        assert verify_snp_chain(leaf, now=NOW, anchors=[amd.anchor]) is SnpProduct.MILAN
        return
    with pytest.raises(ChainNotTrusted, match=refusal(leaf)) as caught:
        verify_snp_chain(leaf, now=NOW, anchors=[amd.anchor])
    assert type(caught.value) is ChainNotTrusted


@pytest.mark.parametrize("critical", [True, False])
def test_snp_supplied_ask_with_an_unknown_extension(critical: bool) -> None:
    amd = make_fake_amd(SnpProduct.MILAN)
    # Another ASK of the same name, which the ARK signed and which signed the VCEK.
    key = ec.generate_private_key(ec.SECP384R1())
    ask = make_cert("SEV-Milan", "ARK-Milan", key, amd.ark_key, ca=True, days=9000)
    ask = with_extension(ask, amd.ark_key, critical=critical)
    leaf = dataclasses.replace(amd, ask=ask, ask_key=key).leaf(tcb=TCB)[0]
    if not critical:
        assert verify_snp_chain(leaf, [ask], now=NOW, anchors=[amd.anchor]) is SnpProduct.MILAN
        return
    with pytest.raises(ChainNotTrusted, match=refusal(ask)):
        verify_snp_chain(leaf, [ask], now=NOW, anchors=[amd.anchor])


def test_snp_extensions_the_verifier_reads_may_be_critical() -> None:
    amd = make_fake_amd(SnpProduct.MILAN)
    leaf = amd.leaf(tcb=TCB)[0]
    product = x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD}.3.9"), b"\x02\x01\x00")
    leaf = with_extension(leaf, amd.ask_key, critical=True, extension=product)
    assert verify_snp_chain(leaf, now=NOW, anchors=[amd.anchor]) is SnpProduct.MILAN


# --- Intel TDX: the PCK, its platform CA, the TCB signing certificate --------------------------


@pytest.mark.parametrize("critical", [True, False])
def test_tdx_pck_with_an_unknown_extension(critical: bool) -> None:
    intel = FakeIntel()
    cert, key = intel.pck()
    cert = with_extension(cert, intel.ca_key, critical=critical)
    quote = intel.quote((cert, key))
    if not critical:
        assert verify_tdx_quote(quote, now=TDX_NOW, root=intel.root).format == "tdx"
        return
    with pytest.raises(ChainNotTrusted, match=refusal(cert)):
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root)


@pytest.mark.parametrize("critical", [True, False])
def test_tdx_pck_platform_ca_with_an_unknown_extension(critical: bool) -> None:
    intel = FakeIntel()
    intel.ca = with_extension(intel.ca, intel.root_key, critical=critical)
    quote = intel.quote()
    if not critical:
        assert verify_tdx_quote(quote, now=TDX_NOW, root=intel.root).format == "tdx"
        return
    with pytest.raises(ChainNotTrusted, match=refusal(intel.ca)):
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root)


@pytest.mark.parametrize("critical", [True, False])
def test_tdx_tcb_signing_certificate_with_an_unknown_extension(critical: bool) -> None:
    intel = FakeIntel()
    signing = with_extension(intel.tcb_signing, intel.root_key, critical=critical)
    collateral = load_tdx_collateral(
        tcb_info=intel.tcb_info(),
        qe_identity=intel.qe_identity(),
        signing_chain=intel.signing_chain(signing, intel.root),
        crls=[intel.crl(ca).public_bytes(Encoding.DER) for ca in ("pck", "root")],
    )
    quote = intel.quote()
    if not critical:
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root, collateral=collateral)
        return
    with pytest.raises(ChainNotTrusted, match=refusal(signing)):
        verify_tdx_quote(quote, now=TDX_NOW, root=intel.root, collateral=collateral)


# --- NVIDIA GPU: the leaf and an intermediate ------------------------------------------------


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
@pytest.mark.parametrize("critical", [True, False])
def test_gpu_chain_with_an_unknown_extension(where: str, critical: bool) -> None:
    root_key, ica_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root = gpu_cert("Root", root_key, "Root", root_key, ca=True)
    ica = gpu_cert("ICA", ica_key, "Root", root_key, ca=True)
    leaf = gpu_cert("Leaf", leaf_key, "ICA", ica_key, ca=False)
    if where == "leaf":
        leaf = marked = with_extension(leaf, ica_key, critical=critical)
    else:
        ica = marked = with_extension(ica, root_key, critical=critical)
    if not critical:
        assert verify_gpu_chain([leaf, ica], now=NOW, root=root).subject == "CN=Leaf"
        return
    with pytest.raises(ChainNotTrusted, match=refusal(marked)):
        verify_gpu_chain([leaf, ica], now=NOW, root=root)
