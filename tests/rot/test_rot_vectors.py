"""Interop: real Caliptra, Cerberus and Open DICE certificates and CSRs (../shared/vectors).

Every value asserted here was read from the files themselves; the signature facts were found by
trying every certificate against every key in its folder.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
from pathlib import Path

import pytest
from cryptography import x509

from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    IronrootError,
    MalformedCertificate,
)
from ironroot.rot import (
    DiceCertificate,
    load_dice_objects,
    parse_certificate,
    parse_certificates,
    parse_csr,
    parse_riot_extension,
    verify_chain,
    verify_signature,
)

pytestmark = pytest.mark.vectors

SHA384 = "2.16.840.1.101.3.4.2.2"
DEVICE_INFO_FWID = (
    "89174d323270f9d456b0862335949437959be8a134458df8"
    "9821cb50e2ac11843daa5b5a5a6bacf74ef8bdffd422e20b"
)
FMC_INFO_FWID = (
    "83ffe184760328cf1263026aacbc9d81e5d143d4fdc6253a"
    "fcee3210f7c25bfcad4cae405b8b2811403bb3f1e3e85c19"
)
CALIPTRA_UEID = bytes(17)


def _load(vectors: Path, name: str, *, strict: bool = True) -> DiceCertificate:
    objs = load_dice_objects((vectors / name).read_bytes(), strict=strict)
    assert len(objs) == 1
    return objs[0]


def _all_files(vectors: Path) -> list[Path]:
    files = sorted((vectors / "caliptra").iterdir()) + sorted((vectors / "cerberus").iterdir())
    files += sorted((vectors / "dice-open").glob("_X509_*.cert"))
    return files


# --- everything parses -----------------------------------------------------------------------


def test_every_certificate_and_csr_parses(vectors: Path) -> None:
    counts = {"certificate": 0, "csr": 0}
    redacted_invalid = {}
    for path in _all_files(vectors):
        strict = "redacted" not in path.name
        for obj in load_dice_objects(path.read_bytes(), strict=strict):
            counts[obj.kind] += 1
            assert obj.public_key is not None, path.name
            if not strict:
                redacted_invalid[path.name] = tuple(i.oid for i in obj.dice.invalid)
    # Caliptra 11 certificates (one file is a chain of 3) and 3 CSRs; Cerberus 30 and 12;
    # Open DICE 8 X.509 certificates.
    assert counts == {"certificate": 49, "csr": 15}
    assert redacted_invalid == {
        "fmc_alias_csr_redacted.der": ("2.23.133.5.4.5",),
        "rom-latest_fmc_alias_cert_redacted.der": ("2.23.133.5.4.5",),
        "rt_alias_cert_redacted.der": ("2.23.133.5.4.1",),
    }


def test_redacted_tcb_bytes_fail_strict_parsing(vectors: Path) -> None:
    data = (vectors / "caliptra" / "rt_alias_cert_redacted.der").read_bytes()
    with pytest.raises(MalformedCertificate, match=r"2\.23\.133\.5\.4\.1"):
        parse_certificate(data)
    cert = parse_certificate(data, strict=False)
    assert cert.subject == (
        "2.5.4.5=DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD,"
        "CN=Caliptra 2.1 Ecc384 Rt Alias"
    )
    assert cert.serial == int("44" * 20, 16)
    assert cert.dice.ueid == CALIPTRA_UEID
    assert cert.dice.key_purposes == ("eca",)
    assert cert.dice.tcb_infos == ()


# --- Caliptra --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fmc_alias_cert_ecc.der", "fmc_alias_cert_mldsa.der"])
def test_caliptra_fmc_alias_multi_tcb_info(vectors: Path, name: str) -> None:
    cert = _load(vectors, f"caliptra/{name}")
    dice = cert.dice
    assert dice.multi is True
    assert dice.ueid == CALIPTRA_UEID
    assert dice.critical == frozenset()
    device, fmc = dice.tcb_infos
    assert (device.svn, device.svn_raw, device.svn_encoding) == (7, 0x107, "caliptra")
    assert (fmc.svn, fmc.svn_raw) == (9, 0x109)
    assert device.type == b"DEVICE_INFO"
    assert fmc.type == b"FMC_INFO"
    assert device.fwids[0].hash_alg_oid == SHA384
    assert device.fwids[0].hash_alg_name == "sha384"
    assert device.fwids[0].digest.hex() == DEVICE_INFO_FWID
    assert fmc.fwids[0].digest.hex() == FMC_INFO_FWID
    assert device.flags is not None
    assert device.flags.names == ("fixedWidth",)
    assert device.flags.width == 32
    assert device.flags_mask is not None
    assert device.flags_mask.names == ("notConfigured", "notSecure", "debug", "fixedWidth")
    assert fmc.flags is None
    assert (device.vendor, device.model, device.layer) == (None, None, None)
    assert (cert.is_ca, cert.path_length) == (True, 3)
    assert cert.key_usage == ("keyCertSign",)


def test_caliptra_svn_plain_reading(vectors: Path) -> None:
    data = (vectors / "caliptra" / "fmc_alias_cert_ecc.der").read_bytes()
    cert = parse_certificate(data, svn_encoding="plain")
    assert [t.svn for t in cert.dice.tcb_infos] == [0x107, 0x109]


def test_caliptra_mldsa_certificate_fields(vectors: Path) -> None:
    cert = _load(vectors, "caliptra/ldevid_cert_mldsa.der")
    assert cert.kind == "certificate"
    assert cert.signature_algorithm == "ML-DSA-87"
    assert cert.signature_algorithm_oid == "2.16.840.1.101.3.4.3.19"
    assert cert.public_key_algorithm == "ML-DSA-87"
    assert cert.public_key is not None
    assert cert.public_key.algorithm.label == "ML-DSA-87"
    assert len(cert.signature) == 4627
    assert cert.subject == (
        "2.5.4.5=BC2779B03753B6233FBB63FE252670204C4237884064A3B6C1C4941622BDEE51,"
        "CN=Caliptra 2.1 MlDsa87 LDevID"
    )
    assert cert.issuer == (
        "2.5.4.5=B6D9C0F2DB9C69B08BF3654C4DB8F64AB85231CDF6895A8B8AFA2ADC3622E574,"
        "CN=Caliptra 2.1 MlDsa87 IDevID"
    )
    assert cert.serial == 343419775862009581430208749981873651073404778376
    assert cert.not_before == datetime.datetime(2023, 1, 1, tzinfo=datetime.UTC)
    assert cert.not_after == datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
    assert cert.subject_key_id is not None
    assert cert.subject_key_id.hex() == "bc2779b03753b6233fbb63fe252670204c423788"
    assert cert.authority_key_id is not None
    assert cert.authority_key_id.hex() == "3e817a30f14d4f3d5669486b788c77482134b355"
    assert (cert.is_ca, cert.path_length) == (True, 6)
    assert cert.dice.key_purposes == ("identityLoc", "eca")
    assert cert.dice.ueid == CALIPTRA_UEID
    assert cert.dice.tcb_infos == ()


@pytest.mark.parametrize(
    ("name", "algorithm", "subject_cn"),
    [
        ("idevid_csr_ecc.der", "ecdsa-with-SHA384", "Caliptra 2.1 Ecc384 IDevID"),
        ("idevid_csr_mldsa.der", "ML-DSA-87", "Caliptra 2.1 MlDsa87 IDevID"),
    ],
)
def test_caliptra_idevid_csr(vectors: Path, name: str, algorithm: str, subject_cn: str) -> None:
    csr = parse_csr((vectors / "caliptra" / name).read_bytes())
    assert csr.kind == "csr"
    assert (csr.issuer, csr.serial, csr.not_before) == (None, None, None)
    assert csr.signature_algorithm == algorithm
    assert csr.subject.endswith(f"CN={subject_cn}")
    assert csr.dice.key_purposes == ("identityInit", "eca")
    assert csr.dice.ueid == CALIPTRA_UEID
    assert (csr.is_ca, csr.path_length) == (True, 7)
    assert csr.public_key is not None
    verify_signature(csr, csr.public_key)  # proof of possession


def test_caliptra_ldevid_is_issued_by_the_idevid_key(vectors: Path) -> None:
    for alg in ("ecc", "mldsa"):
        idevid = _load(vectors, f"caliptra/idevid_csr_{alg}.der")
        ldevid = _load(vectors, f"caliptra/ldevid_cert_{alg}.der")
        assert idevid.public_key is not None
        verify_signature(ldevid, idevid.public_key)
        assert ldevid.issuer_der == idevid.subject_der


def test_caliptra_fmc_alias_signed_by_ldevid_key_but_names_do_not_chain(vectors: Path) -> None:
    # The FMC alias certificates come from an older (2.0) run: the LDevID key signed them, but
    # they name a "Caliptra 2.0" issuer while the LDevID certificate is "Caliptra 2.1".
    for alg in ("ecc", "mldsa"):
        ldevid = _load(vectors, f"caliptra/ldevid_cert_{alg}.der")
        alias = _load(vectors, f"caliptra/fmc_alias_cert_{alg}.der")
        assert ldevid.public_key is not None
        verify_signature(alias, ldevid.public_key)
        assert alias.authority_key_id == ldevid.subject_key_id
        assert alias.issuer != ldevid.subject
        assert alias.issuer is not None
        assert "Caliptra 2.0" in alias.issuer
        with pytest.raises(ChainNotTrusted):
            verify_chain([ldevid, alias])


def _signature_pairs(objs: dict[str, DiceCertificate]) -> set[tuple[str, str]]:
    found = set()
    for (subject_name, cert), (key_name, issuer) in itertools.product(objs.items(), repeat=2):
        if issuer.public_key is None:
            continue
        try:
            verify_signature(cert, issuer.public_key)
        except BadSignature:
            continue
        found.add((subject_name, key_name))
    return found


def test_caliptra_every_signature_pair(vectors: Path) -> None:
    objs: dict[str, DiceCertificate] = {}
    for path in sorted((vectors / "caliptra").iterdir()):
        loaded = load_dice_objects(path.read_bytes(), strict=False)
        for i, obj in enumerate(loaded):
            objs[path.stem if len(loaded) == 1 else f"{path.stem}#{i}"] = obj
    assert _signature_pairs(objs) == {
        ("idevid_csr_ecc", "idevid_csr_ecc"),
        ("idevid_csr_mldsa", "idevid_csr_mldsa"),
        ("ldevid_cert_ecc", "idevid_csr_ecc"),
        ("ldevid_cert_mldsa", "idevid_csr_mldsa"),
        ("fmc_alias_cert_ecc", "ldevid_cert_ecc"),
        ("fmc_alias_cert_mldsa", "ldevid_cert_mldsa"),
        # The two test roots are the same self-signed certificate under two names.
        ("slot0_ecc_test_root_ca", "slot0_ecc_test_root_ca"),
        ("slot0_ecc_test_root_ca", "test_vendor_root"),
        ("test_vendor_root", "slot0_ecc_test_root_ca"),
        ("test_vendor_root", "test_vendor_root"),
        ("test_owner_certchain#0", "test_owner_certchain#0"),
        ("test_owner_certchain#1", "test_owner_certchain#0"),
        ("test_owner_certchain#2", "test_owner_certchain#1"),
    }
    # Redacted signatures verify under no key at all.
    assert not any(s.endswith("redacted") for s, _ in _signature_pairs(objs))


def test_caliptra_test_roots_have_serial_zero(vectors: Path) -> None:
    for name in ("slot0_ecc_test_root_ca.der", "test_vendor_root.der"):
        cert = _load(vectors, f"caliptra/{name}")
        assert cert.serial == 0
        assert cert.quirks == ("non-positive-serial",)
        assert cert.subject == "ST=Washington,C=US,O=Microsoft Corporation,CN=www.microsoft.com"


def test_owner_certchain_splits_and_verifies(vectors: Path) -> None:
    chain = parse_certificates((vectors / "caliptra" / "test_owner_certchain.der").read_bytes())
    assert [c.subject for c in chain] == [
        "CN=Test CA",
        "CN=Test Intermediate CA",
        "CN=Test Bootloader Requester",
    ]
    assert [c.serial for c in chain[1:]] == [1, 4]
    verify_chain(chain)
    leaf = chain[2]
    assert leaf.dice.key_purposes == ("eca", "identityLoc", "attestLoc", "assertLoc")
    assert leaf.is_ca is False
    # The validity window is pinned, never "now".
    leaf.check_validity(datetime.datetime(2025, 6, 1, tzinfo=datetime.UTC))
    with pytest.raises(CertificateExpired):
        leaf.check_validity(datetime.datetime(2035, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(ChainNotTrusted):
        verify_chain(list(reversed(chain)))
    with pytest.raises(ChainNotTrusted):
        verify_chain(chain[1:])  # the intermediate is not self-signed


def test_flipped_bit_in_signed_caliptra_certificate(vectors: Path) -> None:
    for alg in ("ecc", "mldsa"):
        idevid = _load(vectors, f"caliptra/idevid_csr_{alg}.der")
        data = bytearray((vectors / "caliptra" / f"ldevid_cert_{alg}.der").read_bytes())
        cert = parse_certificate(bytes(data))
        # Flip one bit of the subject's common name ("LDevID" -> "MDevID"), inside the TBS.
        offset = bytes(data).index(b"LDevID")
        assert bytes(data).index(cert.tbs) < offset
        data[offset] ^= 0x01
        tampered = parse_certificate(bytes(data))
        assert idevid.public_key is not None
        with pytest.raises(BadSignature):
            verify_signature(tampered, idevid.public_key)
        # ... and a flipped bit in the signature itself.
        good = bytearray((vectors / "caliptra" / f"ldevid_cert_{alg}.der").read_bytes())
        good[-5] ^= 0x80
        with pytest.raises(BadSignature):
            verify_signature(parse_certificate(bytes(good)), idevid.public_key)


def test_wrong_key_type_is_a_bad_signature(vectors: Path) -> None:
    ecc = _load(vectors, "caliptra/idevid_csr_ecc.der")
    mldsa = _load(vectors, "caliptra/ldevid_cert_mldsa.der")
    assert ecc.public_key is not None
    with pytest.raises(BadSignature):
        verify_signature(mldsa, ecc.public_key)


# --- Cerberus --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "hash_name", "digest_prefix"),
    [
        ("ca-ueid-sha1.crt", "sha1", "fc3d91e6c113d682"),
        ("ca-ueid.crt", "sha256", "8869de579dd0e905"),
        ("ca-ueid-sha384.crt", "sha384", "d331f153077efbad"),
        ("ca-ueid-sha512.crt", "sha512", "39b8299b4330cb1e"),
    ],
)
def test_cerberus_tcb_info_and_ueid(
    vectors: Path, name: str, hash_name: str, digest_prefix: str
) -> None:
    cert = _load(vectors, f"cerberus/{name}")
    (tcb,) = cert.dice.tcb_infos
    assert cert.dice.multi is False
    assert tcb.version == "1.2.3.4"
    assert (tcb.svn, tcb.svn_raw, tcb.svn_encoding) == (0x12345678, 0x12345678, "plain")
    assert tcb.layer == 0
    assert (tcb.vendor, tcb.model, tcb.flags) == (None, None, None)
    assert tcb.fwids[0].hash_alg_name == hash_name
    assert tcb.fwids[0].digest.hex().startswith(digest_prefix)
    assert cert.dice.ueid == bytes.fromhex("1122334455667788")
    assert cert.subject == "CN=RIoT"
    assert cert.issuer == "CN=Test"


def test_cerberus_sha512_fwid_digest_in_full(vectors: Path) -> None:
    cert = _load(vectors, "cerberus/ca-ueid-sha512.crt")
    assert cert.dice.tcb_infos[0].fwids[0].digest.hex() == (
        "39b8299b4330cb1e8b51facb7679af47ea35bfeab91b34d09e0aacc9de648060"
        "298d86d5479d4eb568dfe0eab62c0e4a47907e2809b84b21dd6bc741ca09003a"
    )


def test_cerberus_svn_zero_and_critical_tcb_info(vectors: Path) -> None:
    assert _load(vectors, "cerberus/ca-ueid-svn.crt").dice.tcb_infos[0].svn == 0
    crit = _load(vectors, "cerberus/ca-tcbinfo-crit.crt")
    assert crit.dice.critical == frozenset({"2.23.133.5.4.1"})
    assert _load(vectors, "cerberus/ca-tcbinfo.crt").dice.critical == frozenset()
    csr = _load(vectors, "cerberus/ca-tcbinfo-crit.csr")
    assert csr.kind == "csr"
    assert csr.dice.critical == frozenset({"2.23.133.5.4.1"})


def test_cerberus_riot_core_alias(vectors: Path) -> None:
    alias = _load(vectors, "cerberus/riot_core-alias-384.crt")
    (tcb,) = alias.dice.tcb_infos
    assert (tcb.version, tcb.svn, tcb.layer) == ("1.2.3", 123, None)
    assert tcb.fwids[0].hash_alg_name == "sha384"
    assert tcb.fwids[0].digest == bytes(range(0x20, 0x50))
    assert alias.key_usage == ("digitalSignature", "keyAgreement")
    devid = _load(vectors, "cerberus/riot_core-devid-384.crt")
    assert devid.public_key is not None
    verify_signature(alias, devid.public_key)


def test_cerberus_ecdsa_null_params_are_repaired_and_signatures_hold(vectors: Path) -> None:
    names = [
        "riot_core-devid.crt",
        "riot_core-devid.csr",
        "riot_core-devid-384.crt",
        "riot_core-devid-384.csr",
        "riot_core-devid-521.crt",
        "riot_core-devid-521.csr",
        "riot_core-devid-intr-signed.crt",
        "riot_core-devid-root-signed.crt",
    ]
    for name in names:
        obj = _load(vectors, f"cerberus/{name}")
        assert obj.quirks == ("ecdsa-null-params",), name
        # The signed bytes are the original ones, NULL included.
        assert any(bytes.fromhex(f"300c06082a8648ce3d04030{d}0500") in obj.der for d in "234")
    # Self-signed DeviceID certificates verify over the original TBS bytes.
    for name in ("riot_core-devid.crt", "riot_core-devid-384.crt", "riot_core-devid-521.crt"):
        cert = _load(vectors, f"cerberus/{name}")
        assert cert.public_key is not None
        verify_signature(cert, cert.public_key)
        verify_chain([cert])
    csr = _load(vectors, "cerberus/riot_core-devid.csr")
    assert csr.public_key is not None
    verify_signature(csr, csr.public_key)
    assert csr.extended_key_usage == ("1.3.6.1.4.1.311.102.1.10.1",)


def test_cerberus_shared_test_key(vectors: Path) -> None:
    # ca-*, cass-* and entity* share one P-256 test key: each verifies under the CSR's key.
    key = _load(vectors, "cerberus/ca-ueid.csr").public_key
    assert key is not None
    for path in sorted((vectors / "cerberus").glob("c*")) + sorted(
        (vectors / "cerberus").glob("entity*")
    ):
        verify_signature(_load(vectors, f"cerberus/{path.name}"), key)


# --- Open DICE -------------------------------------------------------------------------------


def test_open_dice_x509_chain(vectors: Path) -> None:
    folder = vectors / "dice-open"
    uds = _load(vectors, "dice-open/_X509_Ed25519_uds_cert.cert")
    chain = [uds] + [
        _load(vectors, f"dice-open/_X509_Ed25519_cert_full_cert_chain_{i}.cert") for i in range(7)
    ]
    verify_chain(chain)
    assert uds.dice.open_dice is None
    assert uds.subject == "2.5.4.5=7a06eee41b789f4863d86b8778b1a201a6fedd56"
    layer0 = chain[1]
    od = layer0.dice.open_dice
    assert od is not None
    assert (od.mode, od.mode_name) == (1, "normal")
    assert od.code_hash is not None
    assert od.code_hash.hex().startswith("0cb6f7a8009c78bf")
    assert len(od.code_hash) == 64
    assert od.configuration_descriptor is not None
    assert od.configuration_descriptor.hex().startswith("d0a497f29f6c448b")
    assert od.authority_hash is not None
    assert od.authority_hash.hex().startswith("49e4a81e69cd80b8")
    assert (od.code_descriptor, od.configuration_hash) == (None, None)
    assert od.profile_name is None
    assert layer0.dice.critical == frozenset({"1.3.6.1.4.1.11129.2.1.24"})
    assert layer0.signature_algorithm == "Ed25519"
    third = chain[4].dice.open_dice
    assert third is not None
    assert third.code_hash is not None
    assert third.code_hash.hex().startswith("b8cf68ee248c798c")
    assert len(list(folder.glob("_X509_*"))) == 8


def test_open_dice_cbor_certificates_are_not_x509(vectors: Path) -> None:
    data = (vectors / "dice-open" / "_CBOR_Ed25519_uds_cert.cert").read_bytes()
    with pytest.raises(MalformedCertificate):
        load_dice_objects(data)


def test_open_dice_cbor_chain_verifies_link_by_link(vectors: Path) -> None:
    """The Open DICE CBOR chain: the self-issued UDS certificate, then each certificate signed
    by the key the one before names; the mode and hashes read as the profile defines them."""
    from ironroot.errors import BadSignature
    from ironroot.rot import parse_open_dice_cbor

    folder = vectors / "dice-open"
    previous = parse_open_dice_cbor((folder / "_CBOR_Ed25519_uds_cert.cert").read_bytes())
    assert previous.issuer == previous.subject
    previous.verify(previous.public_key())
    for index in range(7):
        data = (folder / f"_CBOR_Ed25519_cert_full_cert_chain_{index}.cert").read_bytes()
        certificate = parse_open_dice_cbor(data)
        assert certificate.issuer == previous.subject
        assert certificate.to_json()["mode"] == "normal"
        assert len(certificate.fields["code_hash"]) == 64
        certificate.verify(previous.public_key())
        with pytest.raises(BadSignature):
            certificate.verify(certificate.public_key())  # not self-signed
        previous = certificate
    with pytest.raises(MalformedCertificate):
        parse_open_dice_cbor((folder / "_X509_Ed25519_cert_full_cert_chain_0.cert").read_bytes())


def test_inspect_cert_reads_open_dice_cbor(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ironroot.cli import main

    folder = vectors / "dice-open"
    cert = str(folder / "_CBOR_Ed25519_cert_full_cert_chain_1.cert")
    issuer = str(folder / "_CBOR_Ed25519_cert_full_cert_chain_0.cert")
    assert main(["rot", "inspect-cert", cert, "--issuer", issuer, "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["result"]
    assert (doc["kind"], doc["mode"]) == ("open-dice-cbor", "normal")
    assert doc["signature"].startswith("verified with the key of")
    wrong = str(folder / "_CBOR_Ed25519_cert_full_cert_chain_2.cert")
    assert main(["rot", "inspect-cert", cert, "--issuer", wrong]) == 1
    assert "bad-signature" in capsys.readouterr().err


def test_riot_extension(vectors: Path) -> None:
    riot = parse_riot_extension((vectors / "dice-open" / "riot-ext.der").read_bytes())
    assert riot.version == 1
    assert riot.fwid.hash_alg_name == "sha256"
    assert riot.fwid.digest.hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert riot.device_id_public_key.startswith(
        bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200049f3466")
    )


# --- bad input -------------------------------------------------------------------------------


def test_truncated_and_trailing_certificates(vectors: Path) -> None:
    data = (vectors / "caliptra" / "ldevid_cert_ecc.der").read_bytes()
    for cut in (1, 4, len(data) // 2, len(data) - 1):
        with pytest.raises(MalformedCertificate):
            parse_certificate(data[:cut])
    with pytest.raises(MalformedCertificate):
        parse_certificate(data + b"\x00\x00")
    with pytest.raises(MalformedCertificate):
        parse_certificate(data + data)  # two certificates where one is expected
    with pytest.raises(MalformedCertificate):
        parse_certificates((vectors / "caliptra" / "idevid_csr_ecc.der").read_bytes())
    with pytest.raises(MalformedCertificate):
        parse_csr(data)
    with pytest.raises(MalformedCertificate):
        parse_certificate(b"")
    with pytest.raises(MalformedCertificate):
        parse_certificate(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")


@pytest.mark.slow  # exhaustive: every byte or bit of real evidence (make test)
@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("cerberus/riot_core-devid.csr", 1),
        ("cerberus/ca-ueid-sha384.crt", 1),
        ("caliptra/fmc_alias_cert_ecc.der", 1),
        ("caliptra/fmc_alias_cert_mldsa.der", 5),
    ],
)
def test_any_single_byte_corruption_raises_only_typed_errors(
    vectors: Path, name: str, step: int
) -> None:
    der = load_dice_objects((vectors / name).read_bytes())[0].der
    for offset in range(0, len(der), step):
        corrupted = bytearray(der)
        corrupted[offset] ^= 0xFF
        with contextlib.suppress(IronrootError):
            load_dice_objects(bytes(corrupted))


def test_cryptography_itself_handles_caliptra_mldsa(vectors: Path) -> None:
    # Fact pinned for later layers: cryptography loads ML-DSA-87 certificates and CSRs and
    # checks their signatures (CSR proof of possession) on its own.
    csr = x509.load_der_x509_csr((vectors / "caliptra" / "idevid_csr_mldsa.der").read_bytes())
    assert csr.is_signature_valid
    assert csr.signature_algorithm_oid.dotted_string == "2.16.840.1.101.3.4.3.19"
