"""NVIDIA's real RIMs verify (signxml, chain to the pinned RIM root, dates at a pinned time);
a changed byte, another root, a broken chain, a weak algorithm or an expired chain do not."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
from _rim_helpers import (
    AFTER,
    DRIVER_FILE,
    NOW,
    VBIOS_FILE,
    RimPki,
    nvidia_dir,
    strip_signature,
    swid,
    vector_rim,
    vector_rims,
)
from _rim_helpers import _cert as rim_cert
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
)
from ironroot.rim import NVIDIA_RIM_ROOT_FINGERPRINT, builtin_rim_roots, verify_rim
from x509_extensions import refusal, with_extension


def test_the_builtin_root_is_the_vector_root_and_pinned() -> None:
    (root,) = builtin_rim_roots()
    vector = x509.load_pem_x509_certificate((nvidia_dir() / "verifier_RIM_root.pem").read_bytes())
    assert root == vector
    assert root.fingerprint(hashes.SHA256()).hex() == NVIDIA_RIM_ROOT_FINGERPRINT
    assert root.subject.rfc4514_string() == "CN=NVIDIA CoRIM signing Root CA,O=NVIDIA,C=US"


def test_the_vectors_hold_nvidia_rims() -> None:
    assert len(list((nvidia_dir() / "rims").glob("*.swidtag"))) == 26


@pytest.mark.parametrize("path", vector_rims(), ids=lambda p: p.name)
def test_every_vector_rim_verifies(path) -> None:  # type: ignore[no-untyped-def]
    rim = verify_rim(path.read_bytes(), now=NOW)
    assert rim.product == "GH100"
    assert rim.manufacturer == "NVIDIA Corporation"
    assert rim.model == "GH100"
    assert rim.signer == "HCC RIM L4 Signer"
    assert len(rim.chain) == 4
    assert rim.chain[-1] == builtin_rim_roots()[0].public_bytes(Encoding.DER)
    assert len(rim.measurements) == 64
    assert rim.digest == hashlib.sha384(path.read_bytes()).digest()
    if path.name.startswith("Driver"):
        assert rim.colloquial_version == "545.00"
    else:  # the file name ends in the VBIOS version without dots
        assert rim.colloquial_version.replace(".", "") == path.name.split("_")[3]


def test_a_vbios_rim_reads_as_nvidia_wrote_it() -> None:
    rim = verify_rim(vector_rim(VBIOS_FILE), now=NOW)
    assert rim.tag_id.startswith("560b6686b372407d")
    assert (rim.name, rim.version, rim.tag_version) == ("GH100", "1.0", "0")
    assert (rim.edition, rim.revision) == ("GPU", "r1")
    assert rim.entities == (("NVIDIA Corporation", "softwareCreator tagCreator"),)
    assert rim.info("BindingSpec") == "RIMIM"
    assert rim.info("FirmwareManufacturerId") == "5703"
    assert [m.index for m in rim.active] == [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    fsp = rim.measurement(1)
    assert fsp is not None
    assert (fsp.name, fsp.block, fsp.size, fsp.hash_alg) == (
        "HashedMeasurement_1_FSP",
        2,
        48,
        "sha384",
    )
    assert fsp.alternatives[0].hex().startswith("c3f65ef79a19c029")
    twelve = rim.measurement(12)
    assert twelve is not None
    assert len(twelve.alternatives) == 4
    assert twelve.allows(twelve.alternatives[3])
    assert not twelve.allows(b"\x01" * 48)
    assert rim.not_after == dt.datetime(2025, 6, 22, 9, 30, 33, tzinfo=dt.UTC)


def test_a_driver_rim_measures_other_indexes() -> None:
    rim = verify_rim(vector_rim(DRIVER_FILE), now=NOW)
    assert [m.index for m in rim.active] == [7, *range(21, 41)]


# --- must reject --------------------------------------------------------------------------


def test_a_changed_golden_value_fails_the_signature() -> None:
    data = vector_rim(VBIOS_FILE)
    value = (
        b"c3f65ef79a19c029868cd7ce54b10e44f192444edb3506dd"
        b"e29cef2aac4e916c90a4f438e55aa7581a9e384c74d82db6"
    )
    assert data.count(value) == 1
    changed = data.replace(value, value[:-1] + b"7")
    with pytest.raises(BadSignature) as caught:
        verify_rim(changed, now=NOW)
    assert caught.value.code == "bad-signature"


def test_a_changed_active_flag_fails_the_signature() -> None:
    data = vector_rim(VBIOS_FILE)
    changed = data.replace(b'index="9" active="True"', b'index="9" active="False"')
    assert changed != data
    with pytest.raises(BadSignature):
        verify_rim(changed, now=NOW)


def test_a_changed_signature_value_fails() -> None:
    data = vector_rim(VBIOS_FILE)
    start = data.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    flipped = bytes([data[start] ^ 0x01]) if data[start : start + 1] != b"A" else b"B"
    changed = data[:start] + flipped + data[start + 1 :]
    with pytest.raises(BadSignature):
        verify_rim(changed, now=NOW)


def test_a_rim_chaining_to_another_root_is_refused(pki: RimPki) -> None:
    resigned = pki.sign(strip_signature(vector_rim(VBIOS_FILE)))
    verify_rim(resigned, now=NOW, roots=[pki.root])  # well signed, under its own root
    with pytest.raises(ChainNotTrusted) as caught:
        verify_rim(resigned, now=NOW)
    assert caught.value.code == "chain-not-trusted"
    assert "NVIDIA CoRIM signing Root CA" in caught.value.detail


def test_an_nvidia_rim_under_another_trusted_root_is_refused(pki: RimPki) -> None:
    with pytest.raises(ChainNotTrusted):
        verify_rim(vector_rim(VBIOS_FILE), now=NOW, roots=[pki.root])
    with pytest.raises(ChainNotTrusted):
        verify_rim(vector_rim(VBIOS_FILE), now=NOW, roots=[])


def test_an_embedded_lookalike_root_is_not_trusted(pki: RimPki) -> None:
    """A chain that ends in a self-signed certificate named like NVIDIA's root is refused:
    only the pinned certificate closes a chain."""
    lookalike = RimPki.generate(root_name="NVIDIA CoRIM signing Root CA")
    resigned = lookalike.sign(strip_signature(vector_rim(VBIOS_FILE)))
    with pytest.raises(ChainNotTrusted):
        verify_rim(resigned, now=NOW)


def test_a_chain_without_its_intermediate_is_refused(pki: RimPki) -> None:
    resigned = pki.sign(strip_signature(vector_rim(VBIOS_FILE)), certs=[pki.leaf, pki.root])
    with pytest.raises(ChainNotTrusted):
        verify_rim(resigned, now=NOW, roots=[pki.root])


def test_a_ca_certificate_may_not_sign_a_rim(pki: RimPki) -> None:
    other = RimPki.generate()
    signer = dataclasses.replace(other, leaf=other.ca, leaf_key=other.leaf_key)
    # the CA's own key is not at hand: sign with a leaf whose certificate is the CA's, so the
    # chain check (which comes first) is what refuses it
    data = signer.sign(swid(), certs=[other.ca, other.root])
    with pytest.raises(ChainNotTrusted):
        verify_rim(data, now=NOW, roots=[other.root])


def test_an_expired_rim_is_refused() -> None:
    with pytest.raises(CertificateExpired) as caught:
        verify_rim(vector_rim(VBIOS_FILE), now=AFTER)
    assert caught.value.code == "certificate-expired"
    assert "HCC RIM L4 Signer" in caught.value.detail
    assert "expired" in caught.value.detail


def test_a_rim_before_its_chain_is_valid_is_refused() -> None:
    with pytest.raises(CertificateExpired):
        verify_rim(vector_rim(VBIOS_FILE), now=dt.datetime(2023, 1, 1, tzinfo=dt.UTC))


def test_an_expired_test_chain_is_refused() -> None:
    old = RimPki.generate(
        not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
    )
    with pytest.raises(CertificateExpired):
        verify_rim(old.sign(swid()), now=NOW, roots=[old.root])


def test_a_weaker_signature_algorithm_is_not_accepted(pki: RimPki) -> None:
    data = pki.sign(swid(), signature_algorithm=SignatureMethod.ECDSA_SHA256)
    with pytest.raises(AlgorithmNotAccepted):
        verify_rim(data, now=NOW, roots=[pki.root])
    data = pki.sign(swid(), digest_algorithm=DigestAlgorithm.SHA256)
    with pytest.raises(AlgorithmNotAccepted):
        verify_rim(data, now=NOW, roots=[pki.root])


def test_a_test_signed_rim_verifies_under_its_root(pki: RimPki) -> None:
    rim = verify_rim(pki.sign(swid()), now=NOW, roots=[pki.root])
    assert rim.colloquial_version == "96.00.5E.00.01"
    assert rim.signer == "Test RIM Signer"
    assert [m.index for m in rim.active] == [0, 1]


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
@pytest.mark.parametrize("critical", [True, False])
def test_a_chain_certificate_with_an_unknown_critical_extension_is_refused(
    where: str, critical: bool
) -> None:
    # RFC 5280 §4.2: the chain walk processes only the standard extensions; below the pinned
    # root, a certificate carrying another one critical is refused, non-critical ignored.
    root_key, ca_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    window = {"not_before": NOW - dt.timedelta(days=365), "not_after": NOW + dt.timedelta(days=365)}
    root = rim_cert("Test RIM Root CA", root_key, "Test RIM Root CA", root_key, ca=True, **window)
    ca = rim_cert("Test RIM CA", ca_key, "Test RIM Root CA", root_key, ca=True, **window)
    leaf = rim_cert("Test RIM Signer", leaf_key, "Test RIM CA", ca_key, ca=False, **window)
    if where == "leaf":
        leaf = marked = with_extension(leaf, ca_key, critical=critical)
    else:
        ca = marked = with_extension(ca, root_key, critical=critical)
    data = RimPki(root, ca, leaf, leaf_key).sign(swid())
    if not critical:
        verify_rim(data, now=NOW, roots=[root])
        return
    with pytest.raises(ChainNotTrusted, match=refusal(marked)):
        verify_rim(data, now=NOW, roots=[root])
