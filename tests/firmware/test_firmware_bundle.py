"""Firmware bundles: layout, build/sign/verify round trips, measurements, owner keys, LMS."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import shutil
from pathlib import Path

import pytest
from _fw_helpers import (
    EXTRA,
    FMC,
    LMS_TEST_LIMITS,
    NOT_AFTER,
    NOT_BEFORE,
    NOW,
    RUNTIME,
    lms_vendor,
    mldsa_vendor,
)

import ironroot.firmware as fw
from ironroot.crypto import Algorithm, LmsPrivateKey, PrivateKey, save_signer
from ironroot.errors import (
    AlgorithmNotAccepted,
    ConfigError,
    KeyNotInDescriptor,
    MalformedFirmware,
    NotFound,
    StateReuse,
    UnsupportedAlgorithm,
)
from ironroot.firmware import (
    BundlePolicy,
    Component,
    FirmwareBundle,
    PqcKeyType,
    UnsignedBundle,
    check_bundle,
    field_offsets,
    verify_bundle,
)


def test_public_surface_is_exactly_what_is_meant() -> None:
    assert set(fw.__all__) == {
        "DEFAULT_LIMITS",
        "FMC_ID",
        "LAYOUT",
        "LMS_LEAVES_HEADER",
        "MANIFEST_CONTENT_TYPE",
        "MANIFEST_MARKER",
        "MANIFEST_VERSION",
        "MAX_ECC_KEYS",
        "MAX_PQC_KEYS",
        "MAX_SVN",
        "RUNTIME_ID",
        "BundlePolicy",
        "CheckResult",
        "Component",
        "FirmwareBundle",
        "FirmwareLimits",
        "KeyDescriptor",
        "LmsLeaf",
        "LmsLeafReuse",
        "LoggedLmsLeaf",
        "Manifest",
        "ManifestHeader",
        "Measurement",
        "PqcKeyType",
        "Preamble",
        "PublishedFirmware",
        "TocEntry",
        "UnsignedBundle",
        "VerificationReport",
        "VerifiedComponent",
        "VerifiedManifest",
        "build_bundle",
        "check_bundle",
        "check_lms_leaf_reuse",
        "entry_lms_leaves",
        "field_offsets",
        "find_lms_leaf_reuse",
        "key_descriptor_hash",
        "lms_leaves",
        "logged_lms_leaves",
        "manifest_statement",
        "publish_bundle",
        "reference_corim",
        "reference_statement",
        "sign_bundle",
        "verify_bundle",
        "verify_logged_statement",
        "write_published",
    }
    for name in fw.__all__:
        assert getattr(fw, name) is not None


def test_layout_matches_caliptra_sizes_and_is_contiguous() -> None:
    offsets = field_offsets(3)
    # Caliptra 2.0 sizes: 4 ECC and 32 PQC SHA-384 hashes, 2592-byte ML-DSA-87 key slot,
    # 4628-byte PQC signature slot, a 104-byte TOC entry.
    assert offsets["preamble.ecc_descriptor.key_hashes"][1] == 4 * 48
    assert offsets["preamble.pqc_descriptor.key_hashes"][1] == 32 * 48
    assert offsets["preamble.vendor_pqc_key"][1] == 2592
    assert offsets["preamble.vendor_pqc_signature"][1] == 4628
    assert offsets["toc[1].id"][0] - offsets["toc[0].id"][0] == 104
    assert offsets["header.toc_digest"][1] == 48
    # the fields tile the manifest with no gap
    position = 0
    for offset, size in sorted(offsets.values()):
        assert offset == position
        position += size
    vendor = mldsa_vendor()
    unsigned = vendor.build()
    assert unsigned.manifest.size == position
    assert unsigned.encode()[:4] == b"IRMN"


def test_build_sign_verify_mldsa_and_measurements() -> None:
    vendor = mldsa_vendor(ecc_index=1, pqc_index=2)
    unsigned = vendor.build(svn=7, revision=0x1122334455667788, flags=1, pl0_pauser=0xABCD)
    assert not unsigned.is_signed
    bundle = vendor.sign(unsigned)
    verified = verify_bundle(
        bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, min_svn=7)
    )
    assert verified.svn == 7
    assert verified.vendor_ecc_key_index == 1
    assert verified.vendor_pqc_key_index == 2
    assert verified.pqc_key_type is PqcKeyType.MLDSA
    assert verified.fmc.data == FMC
    assert verified.runtime.data == RUNTIME
    assert verified.component(3).data == EXTRA
    assert verified.fmc.digest == hashlib.sha384(FMC).digest()
    assert verified.fmc.version == 1
    assert verified.runtime.version == 2
    assert verified.manifest.header.revision == 0x1122334455667788
    assert verified.manifest.header.pl0_pauser == 0xABCD
    assert verified.owner_key_hash is None
    size = verified.manifest.size
    assert verified.manifest_digest == hashlib.sha384(bundle[:size]).digest()
    header = bundle[field_offsets()["header.revision"][0] :][:160]
    assert verified.header_digest == hashlib.sha384(header).digest()
    ecc_stored = vendor.ecc[1].public_key.raw_bytes()[1:]  # uncompressed point without 0x04
    assert verified.vendor_ecc_key_hash == hashlib.sha384(ecc_stored).digest()
    assert (
        verified.vendor_pqc_key_hash
        == hashlib.sha384(vendor.pqc[2].public_key.raw_bytes()).digest()
    )
    measurements = {m.name: m.value for m in verified.measurements()}
    assert list(measurements) == [
        "vendor-ecc-key-hash",
        "vendor-pqc-key-hash",
        "owner-key-hash",
        "fmc-digest",
        "runtime-digest",
        "svn",
    ]
    assert measurements["svn"] == (7).to_bytes(4, "little")
    assert measurements["owner-key-hash"] == b"\0" * 48
    assert measurements["runtime-digest"] == hashlib.sha384(RUNTIME).digest()
    with pytest.raises(NotFound):
        verified.component(99)


def test_parse_encode_round_trip_and_unsigned_parse() -> None:
    vendor = mldsa_vendor()
    unsigned = vendor.build()
    raw = unsigned.encode()
    assert UnsignedBundle.parse(raw) == unsigned
    bundle = vendor.sign(unsigned)
    parsed = FirmwareBundle.parse(bundle)
    assert parsed.encode() == bundle
    assert parsed.is_signed
    with pytest.raises(MalformedFirmware):
        UnsignedBundle.parse(bundle)
    # signing the raw bytes gives the same structure as signing the parsed value
    resigned = FirmwareBundle.parse(vendor.sign(UnsignedBundle.parse(raw)))
    assert resigned.manifest.header == parsed.manifest.header


def test_allowed_vendor_key_hashes_list() -> None:
    vendor = mldsa_vendor()
    bundle = vendor.sign(vendor.build())
    other = mldsa_vendor().descriptor_hash
    verified = verify_bundle(
        bundle, BundlePolicy(now=NOW, allowed_vendor_key_hashes=[other, vendor.descriptor_hash])
    )
    assert verified.vendor_key_descriptor_hash == vendor.descriptor_hash


def test_lms_bundle_verifies_and_each_signature_uses_a_new_leaf(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path, pqc_index=1)
    first = vendor.sign(vendor.build())
    second = vendor.sign(vendor.build(svn=6))
    for bundle in (first, second):
        verified = verify_bundle(
            bundle,
            BundlePolicy(
                now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, limits=LMS_TEST_LIMITS
            ),
        )
        assert verified.pqc_key_type is PqcKeyType.LMS
    offset = field_offsets()["preamble.vendor_pqc_signature"][0]
    # the LMS signature starts with q, the leaf index (RFC 8554 §4.5)
    leaves = [int.from_bytes(b[offset : offset + 4], "big") for b in (first, second)]
    assert leaves == [0, 1]
    signer = vendor.pqc[1]
    assert isinstance(signer, LmsPrivateKey)
    assert signer.remaining() == 32 - 2


def test_lms_one_time_key_reuse_is_refused_by_the_crypto_layer(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    signer = vendor.pqc[0]
    assert isinstance(signer, LmsPrivateKey)
    backup = tmp_path / "backup.state"
    shutil.copyfile(signer.path, backup)  # a stale copy: q = 0
    vendor.sign(vendor.build())  # spends leaf 0
    shutil.copyfile(backup, signer.path)  # the state goes back to q = 0
    with pytest.raises(StateReuse):
        vendor.sign(vendor.build(svn=6))
    with pytest.raises(StateReuse):  # and a state file is never cloned
        save_signer(signer, tmp_path / "clone.state")


def test_default_limits_accept_only_caliptras_lms_parameter_set(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path)
    bundle = vendor.sign(vendor.build())
    with pytest.raises(AlgorithmNotAccepted):
        verify_bundle(
            bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
        )
    vendor.limits = fw.DEFAULT_LIMITS
    with pytest.raises(UnsupportedAlgorithm):
        vendor.build()


def test_owner_signed_bundle(tmp_path: Path) -> None:
    vendor = mldsa_vendor()
    owner = (PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ML_DSA_87))
    unsigned = vendor.build(
        owner_not_before=NOT_BEFORE + dt.timedelta(days=1),
        owner_not_after=NOT_AFTER - dt.timedelta(days=1),
    )
    bundle = vendor.sign(unsigned, owner_signers=owner)
    parsed = FirmwareBundle.parse(bundle)
    assert parsed.manifest.preamble.has_owner
    pre = parsed.manifest.preamble
    owner_hash = hashlib.sha384(pre.owner_keys_bytes()).digest()
    verified = verify_bundle(
        bundle,
        BundlePolicy(
            now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, owner_key_hash=owner_hash
        ),
    )
    assert verified.owner_key_hash == owner_hash
    assert dict((m.name, m.value) for m in verified.measurements())["owner-key-hash"] == owner_hash
    assert verified.owner_key_bound
    # without a fused owner hash the owner signatures are still required and checked, but
    # the keys are the bundle's own: bound to nothing, which the result and report say
    policy = BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    unbound = verify_bundle(bundle, policy)
    assert unbound.owner_key_hash == owner_hash
    assert not unbound.owner_key_bound
    (check,) = [c for c in check_bundle(bundle, policy).checks if c.name == "owner-key"]
    assert check.passed
    assert "bound to nothing" in check.detail


def test_lms_owner_signed_bundle(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path)
    owner_lms = LmsPrivateKey.generate(tmp_path / "owner.state", "SHA256-N24-H5-W4")
    owner = (PrivateKey.generate(Algorithm.ES384), owner_lms)
    bundle = vendor.sign(vendor.build(), owner_signers=owner)
    verified = verify_bundle(
        bundle,
        BundlePolicy(
            now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, limits=LMS_TEST_LIMITS
        ),
    )
    assert verified.owner_key_hash is not None


def test_explicit_load_addresses_and_entry_points() -> None:
    vendor = mldsa_vendor()
    unsigned = vendor.build(
        components=[
            Component(2, RUNTIME, load_address=0x5000_0000, entry_point=0x5000_0100),
            Component(1, FMC, load_address=0x4000_0000, revision=b"\xab" * 20),
        ]
    )
    fmc, runtime = unsigned.manifest.toc
    assert (fmc.component_id, runtime.component_id) == (1, 2)  # FMC first whatever the order
    assert runtime.entry_point == 0x5000_0100
    assert fmc.revision == b"\xab" * 20


def test_default_load_addresses_do_not_overlap() -> None:
    vendor = mldsa_vendor()
    toc = vendor.build().manifest.toc
    spans = sorted((e.load_address, e.load_address + e.size) for e in toc)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert all(e.load_address % 0x1000 == 0 for e in toc)


@pytest.mark.parametrize(
    ("components", "error"),
    [
        ([Component(1, FMC)], ConfigError),
        ([Component(2, RUNTIME), Component(3, EXTRA)], ConfigError),
        ([Component(1, FMC), Component(2, RUNTIME), Component(2, EXTRA)], ConfigError),
        ([Component(1, FMC), Component(2, b"")], ConfigError),
        ([Component(1, FMC), Component(2, RUNTIME, revision=b"x" * 21)], ConfigError),
        ([Component(0, FMC), Component(1, FMC), Component(2, RUNTIME)], ConfigError),
        (
            [
                Component(1, FMC, load_address=0x1000),
                Component(2, RUNTIME, load_address=0x1800),
            ],
            MalformedFirmware,
        ),
        ([Component(1, FMC, entry_point=0), Component(2, RUNTIME)], MalformedFirmware),
    ],
)
def test_builder_rejects_bad_components(
    components: list[Component], error: type[Exception]
) -> None:
    with pytest.raises(error):
        mldsa_vendor(1, 1).build(components=components)


_MINUS_ONE_HOUR = dt.timezone(-dt.timedelta(hours=1))
_PLUS_ONE_HOUR = dt.timezone(dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"svn": 129}, ConfigError),
        ({"svn": -1}, ConfigError),
        ({"not_after": NOT_BEFORE - dt.timedelta(seconds=1)}, ConfigError),
        ({"not_before": dt.datetime(2026, 1, 1)}, ConfigError),  # naive
        ({"ecc_index": 4}, ConfigError),
        ({"pqc_index": 3}, ConfigError),
        ({"flags": 2}, ConfigError),
        ({"pqc_type": "rsa"}, ConfigError),
        ({"pqc_type": "lms"}, UnsupportedAlgorithm),  # ML-DSA keys listed as LMS
        ({"owner_not_before": NOW}, ConfigError),
        ({"vendor_ecc_keys": []}, MalformedFirmware),
        ({"svn": 2**32}, ConfigError),
        ({"revision": 2**64}, ConfigError),
        # in year 10000 and year 0 once in UTC: an OverflowError out of build_bundle before
        ({"not_after": dt.datetime(9999, 12, 31, 23, 30, tzinfo=_MINUS_ONE_HOUR)}, ConfigError),
        ({"not_before": dt.datetime(1, 1, 1, 0, 30, tzinfo=_PLUS_ONE_HOUR)}, ConfigError),
    ],
)
def test_builder_rejects_bad_arguments(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        mldsa_vendor().build(**overrides)
    assert info.type is error


@pytest.mark.parametrize("year", [1, 999])
def test_a_validity_date_before_year_1000_is_written_as_four_digits(year: int) -> None:
    """GeneralizedTime's year has four digits. ``strftime("%Y")`` gives ``999`` for year 999,
    so a not-before in years 1-999 (a "since ever" date, ``datetime.min``) was written one to
    three bytes short, NUL-padded, and the builder's own output was refused as
    ``MalformedFirmware`` ("not a GeneralizedTime") though the range check admitted it."""
    early = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    vendor = mldsa_vendor(1, 1)
    signed = vendor.sign(vendor.build(not_before=early))
    offset, size = field_offsets(3)["header.vendor_not_before"]
    assert signed[offset : offset + size] == f"{year:04d}0101000000Z".encode()
    verified = verify_bundle(
        signed, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )
    assert verified.manifest.header.not_before == early


def test_builder_rejects_wrong_key_types_and_duplicates() -> None:
    vendor = mldsa_vendor()
    p256 = PrivateKey.generate(Algorithm.ES256).public_key
    with pytest.raises(UnsupportedAlgorithm):
        vendor.build(vendor_ecc_keys=[p256])
    with pytest.raises(UnsupportedAlgorithm):
        vendor.build(vendor_pqc_keys=[vendor.ecc[0].public_key])
    with pytest.raises(MalformedFirmware):
        vendor.build(vendor_ecc_keys=[vendor.ecc[0].public_key] * 2)
    with pytest.raises(MalformedFirmware):
        vendor.build(vendor_ecc_keys=[PrivateKey.generate(Algorithm.ES384).public_key] * 5)


def test_sign_rejects_signers_that_are_not_the_active_keys() -> None:
    vendor = mldsa_vendor()
    unsigned = vendor.build()
    with pytest.raises(KeyNotInDescriptor):
        fw.sign_bundle(unsigned, vendor.ecc[1], vendor.pqc[0])
    with pytest.raises(KeyNotInDescriptor):
        fw.sign_bundle(unsigned, vendor.ecc[0], vendor.pqc[1])
    with pytest.raises(UnsupportedAlgorithm):
        fw.sign_bundle(unsigned, vendor.pqc[0], vendor.pqc[0])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedAlgorithm):
        fw.sign_bundle(unsigned, vendor.ecc[0], vendor.ecc[0])
    owner = (PrivateKey.generate(Algorithm.ES256), PrivateKey.generate(Algorithm.ML_DSA_87))
    with pytest.raises(UnsupportedAlgorithm):
        fw.sign_bundle(unsigned, vendor.ecc[0], vendor.pqc[0], owner)


def test_sign_accepts_raw_unsigned_bytes() -> None:
    vendor = mldsa_vendor()
    raw = vendor.build().encode()
    bundle = fw.sign_bundle(raw, vendor.ecc[0], vendor.pqc[0])
    assert verify_bundle(
        bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )


def test_key_descriptor_hash_is_sha384_of_the_descriptor_region() -> None:
    vendor = mldsa_vendor()
    bundle = vendor.build().encode()
    offsets = field_offsets()
    start = offsets["preamble.ecc_descriptor.version"][0]
    end = sum(offsets["preamble.pqc_descriptor.key_hashes"])
    assert hashlib.sha384(bundle[start:end]).digest() == vendor.descriptor_hash
    # the order of keys matters: it fixes their indices
    reordered = fw.key_descriptor_hash(
        [k.public_key for k in reversed(vendor.ecc)], [k.verifier() for k in vendor.pqc], "mldsa"
    )
    assert reordered != vendor.descriptor_hash


def test_verified_manifest_is_frozen() -> None:
    vendor = mldsa_vendor()
    verified = verify_bundle(
        vendor.sign(vendor.build()),
        BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash),
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        verified.svn = 99  # type: ignore[misc]
