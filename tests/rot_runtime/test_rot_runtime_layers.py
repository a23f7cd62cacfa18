"""DICE layers: the SP 800-108 KDF, deterministic keys, and Caliptra-shaped certificates."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from _rot_helpers import FMC, NOW, RUNTIME, Product, new_device
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import ConfigError, MalformedCertificate
from ironroot.rot import (
    Device,
    DiceCertificate,
    VendorCA,
    derive_ecc_p384,
    derive_mldsa87,
    kdf,
    parse_certificate,
    parse_csr,
    verify_chain,
)
from ironroot.rot._kdf import derive_ecc_p384_as
from ironroot.rot._layers import IDEVID, build_csr, device_ueid

P384_N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _sp800_108(key: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """SP 800-108r1 §4.1 counter mode, HMAC-SHA-384, written out independently."""
    out = b""
    counter = 1
    while len(out) < length:
        data = (
            counter.to_bytes(4, "big") + label + b"\x00" + context + (8 * length).to_bytes(4, "big")
        )
        out += hmac.new(key, data, hashlib.sha384).digest()
        counter += 1
    return out[:length]


@pytest.mark.parametrize("length", [32, 48, 56, 100])
def test_kdf_is_sp800_108_counter_mode_hmac_sha384(length: int) -> None:
    key, label, context = b"k" * 48, b"fmc_alias_cdi", bytes(range(48))
    assert kdf(key, label, context, length) == _sp800_108(key, label, context, length)


def test_kdf_separates_labels_and_contexts() -> None:
    key = b"\x01" * 48
    outputs = {kdf(key, b"a"), kdf(key, b"b"), kdf(key, b"a", b"x"), kdf(b"\x02" * 48, b"a")}
    assert len(outputs) == 4
    with pytest.raises(ConfigError):
        kdf(b"", b"a")
    with pytest.raises(ConfigError):
        kdf(key, b"")


def test_keys_from_a_cdi_are_deterministic_and_in_range() -> None:
    cdi = bytes(range(48))
    a, b = derive_ecc_p384(cdi, b"x_ecc_key"), derive_ecc_p384(cdi, b"x_ecc_key")
    assert a.public_key == b.public_key
    raw = a.raw
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    c = int.from_bytes(_sp800_108(cdi, b"x_ecc_key", b"", 56), "big")
    assert raw.private_numbers().private_value == c % (P384_N - 1) + 1  # FIPS 186-5 A.2.1
    assert derive_ecc_p384(cdi, b"y_ecc_key").public_key != a.public_key
    m1, m2 = derive_mldsa87(cdi, b"x_mldsa_key"), derive_mldsa87(cdi, b"x_mldsa_key")
    assert m1.public_key == m2.public_key
    assert m1.algorithm is Algorithm.ML_DSA_87
    assert m1.to_jwk()["priv"]  # the seed is the KDF output, so the key is exportable


def test_a_key_derived_as_a_certified_key_is_that_key_or_none() -> None:
    """derive_ecc_p384_as: the derived key when the given public key is its public key (the
    same scalar as derive_ecc_p384), None for any other key (OpenSSL checks d*G)."""
    cdi = bytes(range(48))
    derived = derive_ecc_p384(cdi, b"x_ecc_key")
    same = derive_ecc_p384_as(cdi, b"x_ecc_key", derived.public_key)
    assert same is not None
    assert same.public_key == derived.public_key
    assert isinstance(same.raw, ec.EllipticCurvePrivateKey)
    assert isinstance(derived.raw, ec.EllipticCurvePrivateKey)
    assert same.raw.private_numbers() == derived.raw.private_numbers()
    other = derive_ecc_p384(cdi, b"y_ecc_key").public_key
    assert derive_ecc_p384_as(cdi, b"x_ecc_key", other) is None
    mldsa = derive_mldsa87(cdi, b"x_mldsa_key").public_key
    assert derive_ecc_p384_as(cdi, b"x_ecc_key", mldsa) is None


def _chain(device: Device, vendor_ca: VendorCA, alg: Algorithm) -> list[DiceCertificate]:
    root = parse_certificate(vendor_ca.certificate(alg))
    return [root, *(parse_certificate(der) for der in device.chain(alg))]


def _kid(cert: DiceCertificate) -> bytes:
    assert cert.public_key is not None
    return hashlib.sha256(cert.public_key.raw_bytes()).digest()


@pytest.mark.parametrize(
    ("alg", "name"), [(Algorithm.ES384, "Ecc384"), (Algorithm.ML_DSA_87, "MlDsa87")]
)
def test_the_chain_verifies_and_follows_the_caliptra_profile(
    booted: Device, vendor_ca: VendorCA, alg: Algorithm, name: str
) -> None:
    chain = _chain(booted, vendor_ca, alg)
    verify_chain(chain)
    _root, idevid, ldevid, fmc, rt = chain
    for cert in chain:
        cert.check_validity(NOW)
    layers = [
        ("IDevID", idevid, 7),
        ("LDevID", ldevid, 6),
        ("FMC Alias", fmc, 5),
        ("Rt Alias", rt, 4),
    ]
    for layer, cert, path_length in layers:
        kid = _kid(cert)
        assert cert.subject == f"2.5.4.5={kid.hex().upper()},CN=Ironroot {name} {layer}"
        assert cert.subject_key_id == kid[:20]
        serial = bytearray(kid[:20])
        serial[0] = serial[0] & 0x7F | 0x04
        assert cert.serial == int.from_bytes(serial, "big")
        assert cert.is_ca is True
        assert cert.path_length == path_length
        assert "keyCertSign" in cert.key_usage
        assert cert.not_after is not None
        assert cert.not_after.year == 9999
    ecc_idevid = parse_certificate(booted.chain(Algorithm.ES384)[0])
    ueid = b"\x01" + _kid(ecc_idevid)[:16]  # EAT type RAND + the ECC IDevID key id
    assert [c.dice.ueid for c in chain[1:]] == [ueid] * 4
    for child, parent in [(ldevid, idevid), (fmc, ldevid), (rt, fmc)]:
        assert child.authority_key_id == _kid(parent)[:20]
    assert idevid.dice.key_purposes == ("identityInit", "eca")
    assert ldevid.dice.key_purposes == ("identityLoc", "eca")
    assert fmc.dice.key_purposes == ("eca",)
    assert rt.dice.key_purposes == ("attestLoc", "eca")
    assert rt.key_usage == ("digitalSignature", "keyCertSign")
    expected_sig = "ecdsa-with-SHA384" if alg is Algorithm.ES384 else "ML-DSA-87"
    assert {c.signature_algorithm for c in chain} == {expected_sig}


def test_the_alias_certificates_carry_the_measurements(booted: Device) -> None:
    _idevid, _ldevid, fmc_der, rt_der = booted.chain(Algorithm.ES384)
    fmc, rt = parse_certificate(fmc_der), parse_certificate(rt_der)
    assert fmc.dice.multi
    device_info, fmc_info = fmc.dice.tcb_infos
    assert device_info.type == b"DEVICE_INFO"
    assert fmc_info.type == b"FMC_INFO"
    assert device_info.svn_raw == 0x100 | 3
    assert device_info.svn == 3
    assert fmc_info.svn_raw == 0x100 | 3
    assert device_info.flags is not None
    assert device_info.flags.names == ("fixedWidth",)
    assert device_info.flags.width == 32
    assert device_info.flags_mask is not None
    assert device_info.flags_mask.names == ("notConfigured", "notSecure", "debug", "fixedWidth")
    assert fmc_info.fwids[0].hash_alg_name == "sha384"
    assert fmc_info.fwids[0].digest == hashlib.sha384(FMC).digest()
    (rt_tcb,) = rt.dice.tcb_infos
    assert not rt.dice.multi
    assert rt_tcb.fwids[0].digest == hashlib.sha384(RUNTIME).digest()
    assert rt_tcb.svn == 3
    assert rt_tcb.layer == 2


def test_the_idevid_csr_is_shaped_like_caliptras(booted: Device, vectors: Path) -> None:
    ours = parse_csr((booted.directory / "idevid-ecc.csr.der").read_bytes())
    theirs = parse_csr((vectors / "caliptra" / "idevid_csr_ecc.der").read_bytes())
    assert ours.dice.key_purposes == theirs.dice.key_purposes == ("identityInit", "eca")
    assert (ours.is_ca, ours.path_length) == (theirs.is_ca, theirs.path_length) == (True, 7)
    assert ours.key_usage == theirs.key_usage == ("keyCertSign",)
    assert ours.dice.ueid is not None
    assert theirs.dice.ueid is not None
    assert len(ours.dice.ueid) == len(theirs.dice.ueid) == 17
    mine = x509.load_der_x509_csr(ours.der)
    real = x509.load_der_x509_csr(theirs.der)
    assert [e.oid for e in mine.extensions] == [e.oid for e in real.extensions]
    assert [e.critical for e in mine.extensions] == [e.critical for e in real.extensions]


@pytest.mark.parametrize(("index", "vector"), [(1, "ldevid_cert_ecc"), (2, "fmc_alias_cert_ecc")])
def test_extension_order_matches_caliptras_certificates(
    booted: Device, vectors: Path, index: int, vector: str
) -> None:
    mine = x509.load_der_x509_certificate(booted.chain(Algorithm.ES384)[index])
    real = x509.load_der_x509_certificate((vectors / "caliptra" / f"{vector}.der").read_bytes())
    mine_oids = [e.oid for e in mine.extensions]
    real_oids = [e.oid for e in real.extensions]
    ekus = x509.oid.ExtensionOID.EXTENDED_KEY_USAGE
    if ekus not in real_oids:  # Caliptra 2.0's FMC alias has no EKU; ours says eca
        mine_oids.remove(ekus)
    assert mine_oids == real_oids
    assert [e.critical for e in mine.extensions][:2] == [True, True]


def _public_keys(device: Device) -> list[PublicKey | None]:
    return [
        parse_certificate(der).public_key
        for alg in (Algorithm.ES384, Algorithm.ML_DSA_87)
        for der in device.chain(alg)
    ]


def test_same_firmware_same_alias_keys(booted: Device, product: Product) -> None:
    before = _public_keys(booted)
    booted.boot(product.bundle(), now=NOW)  # a fresh signature, same firmware and SVN
    assert _public_keys(booted) == before


def test_changed_firmware_changes_alias_keys(booted: Device, product: Product) -> None:
    e_idev, e_ldev, e_fmc, e_rt, m_idev, m_ldev, m_fmc, m_rt = _public_keys(booted)
    booted.boot(product.bundle(runtime=RUNTIME + b"patched"), now=NOW)
    after = _public_keys(booted)
    assert after[:3] == [e_idev, e_ldev, e_fmc]
    assert after[4:7] == [m_idev, m_ldev, m_fmc]
    assert after[3] != e_rt
    assert after[7] != m_rt
    booted.boot(product.bundle(fmc=FMC + b"patched"), now=NOW)
    again = _public_keys(booted)
    assert again[:2] == [e_idev, e_ldev]
    assert again[2] != e_fmc
    assert again[3] not in (e_rt, after[3])
    assert again[6] != m_fmc
    assert again[7] not in (m_rt, after[7])


def test_another_svn_or_device_gives_other_keys(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    before = _public_keys(booted)
    booted.boot(product.bundle(svn=4), now=NOW)
    assert _public_keys(booted)[2] != before[2]
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    assert set(_public_keys(other)).isdisjoint(before)


def test_the_vendor_ca_refuses_an_ecc_idevid_csr_naming_another_devices_ueid(
    vendor_ca: VendorCA,
) -> None:
    """The Ueid is 0x01 ‖ 16 bytes of the ECC IDevID key id, so the vendor CA can check the one
    an ECC CSR asks for. It copied it unchecked: a host at manufacturing could have a genuine
    key certified as another device (its Ueid), which a verifier reading the IDevID
    certificate alone (a fleet's registration) takes at its word."""
    key = PrivateKey.generate(Algorithm.ES384)
    own = device_ueid(key.public_key)
    issued = parse_certificate(
        vendor_ca.issue_idevid(build_csr(key, profile=IDEVID, ueid=own), now=NOW)
    )
    assert issued.dice.ueid == own
    other = device_ueid(PrivateKey.generate(Algorithm.ES384).public_key)
    with pytest.raises(MalformedCertificate) as caught:
        vendor_ca.issue_idevid(build_csr(key, profile=IDEVID, ueid=other), now=NOW)
    assert caught.value.detail == (
        f"the IDevID CSR asks for Ueid {other.hex()}; its ECC key names {own.hex()}"
    )
