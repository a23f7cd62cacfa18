"""Must-reject: every way a bundle can be wrong, each with the exact error it raises."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import struct
from pathlib import Path

import pytest
from _fw_helpers import NOT_AFTER, NOT_BEFORE, NOW, Vendor, flip, lms_vendor, mldsa_vendor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.crypto import (
    LMS_PARAMETER_SETS,
    Algorithm,
    LmsPrivateKey,
    PrivateKey,
    PublicKey,
    ecdsa_to_der,
)
from ironroot.errors import (
    BadSignature,
    ConfigError,
    DigestMismatch,
    IronrootError,
    KeyDescriptorMismatch,
    KeyNotInDescriptor,
    KeyRevoked,
    LimitExceeded,
    MalformedFirmware,
    MalformedInput,
    ManifestExpired,
    MissingSignature,
    OwnerKeyMismatch,
    SvnRollback,
    UnsupportedAlgorithm,
)
from ironroot.firmware import (
    MAX_SVN,
    BundlePolicy,
    FirmwareBundle,
    FirmwareLimits,
    UnsignedBundle,
    check_bundle,
    field_offsets,
    sign_bundle,
    verify_bundle,
)

_MALFORMED = (MalformedFirmware, LimitExceeded)


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return mldsa_vendor()


@pytest.fixture(scope="module")
def bundle(vendor: Vendor) -> bytes:
    return vendor.sign(vendor.build())


def _verify(vendor: Vendor, data: bytes, **kw: object) -> object:
    args: dict[str, object] = {
        "now": NOW,
        "vendor_key_descriptor_hash": vendor.descriptor_hash,
        "limits": vendor.limits,
    }
    args.update(kw)
    return verify_bundle(data, BundlePolicy(**args))  # type: ignore[arg-type]


def _parses(data: bytes) -> bool:
    try:
        FirmwareBundle.parse(data)
    except MalformedInput:
        return False
    return True


def _span(name: str, toc_len: int = 3) -> range:
    offset, size = field_offsets(toc_len)[name]
    return range(offset, offset + size)


# --- a flipped bit anywhere in a signed region ----------------------------------------------


def test_every_header_bit_flip_is_rejected(vendor: Vendor, bundle: bytes) -> None:
    start = field_offsets()["header.revision"][0]
    indices = [*_span("header.vendor_ecc_key_index"), *_span("header.vendor_pqc_key_index")]
    for offset in range(start, start + 160):
        bad = flip(bundle, offset, offset % 8)
        expected: type[IronrootError] | None = None
        if _parses(bad):  # a signed key index no longer matches the preamble's
            expected = KeyNotInDescriptor if offset in indices else BadSignature
        with pytest.raises(IronrootError) as info:
            _verify(vendor, bad)
        if expected is None:
            assert isinstance(info.value, _MALFORMED), offset
        else:
            assert type(info.value) is expected, offset


@pytest.mark.parametrize(
    "field", ["header.revision", "header.svn", "header.toc_digest", "header.vendor_not_after"]
)
def test_header_field_flip_breaks_the_signature(vendor: Vendor, bundle: bytes, field: str) -> None:
    offset = _span(field).start  # for the date: bit 0 turns '2' into '3', still a valid year
    with pytest.raises(BadSignature) as info:
        _verify(vendor, flip(bundle, offset, 0))
    assert type(info.value) is BadSignature


@pytest.mark.slow  # exhaustive: every byte or bit of real evidence (make test)
def test_every_toc_bit_flip_is_rejected(vendor: Vendor, bundle: bytes) -> None:
    start = field_offsets(3)["toc[0].id"][0]
    for offset in range(start, start + 3 * 104):
        bad = flip(bundle, offset, (offset * 5) % 8)
        with pytest.raises(IronrootError) as info:
            _verify(vendor, bad)
        if _parses(bad):
            assert type(info.value) is DigestMismatch, offset
        else:
            assert isinstance(info.value, _MALFORMED), offset


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_component_bit_flip_is_a_digest_mismatch(
    vendor: Vendor, bundle: bytes, index: int, where: str
) -> None:
    entry = FirmwareBundle.parse(bundle).manifest.toc[index]
    offset = {
        "first": entry.offset,
        "middle": entry.offset + entry.size // 2,
        "last": entry.end - 1,
    }
    with pytest.raises(DigestMismatch) as info:
        _verify(vendor, flip(bundle, offset[where], 3))
    assert f"component {entry.component_id}" in info.value.detail


@pytest.mark.parametrize(
    ("field", "size"),
    [("preamble.vendor_ecc_signature", 96), ("preamble.vendor_pqc_signature", 4627)],
)
@pytest.mark.parametrize("position", [0, 1, 47, -1])
def test_vendor_signature_bit_flip_is_a_bad_signature(
    vendor: Vendor, bundle: bytes, field: str, size: int, position: int
) -> None:
    offset = _span(field).start + (position % size)
    with pytest.raises(BadSignature) as info:
        _verify(vendor, flip(bundle, offset, 6))
    assert type(info.value) is BadSignature


def test_non_zero_signature_padding_is_malformed(vendor: Vendor, bundle: bytes) -> None:
    padding = _span("preamble.vendor_pqc_signature").stop - 1  # byte 4628 of the slot
    with pytest.raises(MalformedFirmware):
        _verify(vendor, flip(bundle, padding))


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_flipped_bit_is_rejected(vendor: Vendor, bundle: bytes, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(bundle) - 1))
    bit = data.draw(st.integers(0, 7))
    with pytest.raises(IronrootError):
        _verify(vendor, flip(bundle, offset, bit))


# --- keys --------------------------------------------------------------------------------


def test_bundle_of_another_vendor_is_a_descriptor_mismatch(vendor: Vendor, bundle: bytes) -> None:
    with pytest.raises(KeyDescriptorMismatch):
        _verify(vendor, bundle, vendor_key_descriptor_hash=mldsa_vendor().descriptor_hash)
    with pytest.raises(KeyDescriptorMismatch):
        _verify(
            vendor,
            bundle,
            vendor_key_descriptor_hash=None,
            allowed_vendor_key_hashes=[mldsa_vendor().descriptor_hash],
        )


def test_descriptor_bit_flip_is_a_descriptor_mismatch(vendor: Vendor, bundle: bytes) -> None:
    offset = _span("preamble.pqc_descriptor.key_hashes").start + 5
    with pytest.raises(KeyDescriptorMismatch):
        _verify(vendor, flip(bundle, offset))


@pytest.mark.parametrize("field", ["preamble.vendor_ecc_key", "preamble.vendor_pqc_key"])
def test_active_key_bit_flip_is_not_in_the_descriptor(
    vendor: Vendor, bundle: bytes, field: str
) -> None:
    with pytest.raises(KeyNotInDescriptor):
        _verify(vendor, flip(bundle, _span(field).start + 10))


@pytest.mark.parametrize("kind", ["ecc", "pqc"])
def test_vendor_key_not_in_the_fused_descriptor(vendor: Vendor, kind: str) -> None:
    """A bundle signed by a key the descriptor does not list, with a valid signature."""
    rogue_ecc = PrivateKey.generate(Algorithm.ES384)
    rogue_pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
    unsigned = vendor.build()
    pre = unsigned.manifest.preamble
    if kind == "ecc":
        pre = dataclasses.replace(pre, vendor_ecc_key=rogue_ecc.public_key.raw_bytes()[1:])
        signers = (rogue_ecc, vendor.pqc[0])
    else:
        pre = dataclasses.replace(pre, vendor_pqc_key=rogue_pqc.public_key.raw_bytes())
        signers = (vendor.ecc[0], rogue_pqc)
    forged = UnsignedBundle(
        dataclasses.replace(unsigned.manifest, preamble=pre), unsigned.components
    )
    bundle = sign_bundle(forged, *signers)
    with pytest.raises(KeyNotInDescriptor):
        _verify(vendor, bundle)


def test_preamble_index_differing_from_the_signed_index(vendor: Vendor, bundle: bytes) -> None:
    offset = _span("preamble.vendor_ecc_key_index").start
    with pytest.raises(KeyNotInDescriptor):
        _verify(vendor, flip(bundle, offset))


def test_index_beyond_the_descriptor() -> None:
    vendor = mldsa_vendor(ecc_count=1)
    unsigned = vendor.build()
    manifest = unsigned.manifest
    header = dataclasses.replace(manifest.header, vendor_ecc_key_index=2)
    pre = dataclasses.replace(manifest.preamble, vendor_ecc_key_index=2)
    forged = UnsignedBundle(
        dataclasses.replace(manifest, header=header, preamble=pre), unsigned.components
    )
    with pytest.raises(KeyNotInDescriptor):
        _verify(vendor, sign_bundle(forged, vendor.ecc[0], vendor.pqc[0]))


@pytest.mark.parametrize(
    ("ecc_mask", "pqc_mask", "revoked"),
    [(0b0010, 0, True), (0, 0b100, True), (0b1101, 0b11111011, False)],
)
def test_revoked_keys(ecc_mask: int, pqc_mask: int, revoked: bool) -> None:
    vendor = mldsa_vendor(ecc_count=2, pqc_count=3, ecc_index=1, pqc_index=2)
    bundle = vendor.sign(vendor.build())
    if revoked:
        with pytest.raises(KeyRevoked):
            _verify(vendor, bundle, ecc_revocation=ecc_mask, pqc_revocation=pqc_mask)
    else:  # other keys' bits do not matter
        _verify(vendor, bundle, ecc_revocation=ecc_mask, pqc_revocation=pqc_mask)


# --- signatures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["preamble.vendor_ecc_signature", "preamble.vendor_pqc_signature"]
)
def test_bundle_signed_with_only_one_algorithm(vendor: Vendor, bundle: bytes, field: str) -> None:
    span = _span(field)
    stripped = bundle[: span.start] + b"\0" * len(span) + bundle[span.stop :]
    with pytest.raises(MissingSignature):
        _verify(vendor, stripped)


def test_unsigned_bundle_is_rejected(vendor: Vendor) -> None:
    with pytest.raises(MissingSignature):
        _verify(vendor, vendor.build().encode())


def test_pqc_signature_from_another_bundle(vendor: Vendor, bundle: bytes) -> None:
    other = vendor.sign(vendor.build(svn=6))
    span = _span("preamble.vendor_pqc_signature")
    spliced = bundle[: span.start] + other[span.start : span.stop] + bundle[span.stop :]
    with pytest.raises(BadSignature) as info:
        _verify(vendor, spliced)
    assert type(info.value) is BadSignature
    report = check_bundle(
        spliced, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )
    assert report.first_failure is not None
    assert report.first_failure.name == "vendor-pqc-signature"


_P384_N = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    16,
)


def _high_s(data: bytes, field: str) -> bytes:
    """``data`` with the ECDSA signature in ``field`` replaced by its other valid form
    ``(r, n - s)``: anyone can compute it, without the key."""
    span = _span(field)
    s = int.from_bytes(data[span.start + 48 : span.stop], "big")
    assert 0 < s <= _P384_N // 2  # the signer gave the canonical low-S form
    return data[: span.start + 48] + (_P384_N - s).to_bytes(48, "big") + data[span.stop :]


def test_high_s_vendor_ecdsa_signature_is_malformed(vendor: Vendor, bundle: bytes) -> None:
    """(r, n - s) verifies as (r, s) does, so anyone on the update channel could give a signed
    release a second manifest digest (what publication, SAFE reviews and fleet scans name)
    without the vendor's key: both forms booted. Only the low-S form is a bundle now."""
    malleated = _high_s(bundle, "preamble.vendor_ecc_signature")
    with pytest.raises(MalformedFirmware, match="vendor ECDSA P-384 signature is not low-S"):
        FirmwareBundle.parse(malleated)
    with pytest.raises(MalformedFirmware, match="not low-S"):
        _verify(vendor, malleated)
    report = check_bundle(
        malleated, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )
    assert report.first_failure is not None
    assert (report.first_failure.name, report.first_failure.code) == ("parse", "malformed-firmware")


def test_high_s_owner_ecdsa_signature_is_malformed(
    vendor: Vendor, owned: tuple[bytes, bytes]
) -> None:
    data, owner_hash = owned
    malleated = _high_s(data, "preamble.owner_ecc_signature")
    with pytest.raises(MalformedFirmware, match="owner ECDSA P-384 signature is not low-S"):
        _verify(vendor, malleated, owner_key_hash=owner_hash)


class _HighSSigner:
    """An ES384 signer that gives the high-S form of each signature (as an HSM may)."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.algorithm = key.algorithm
        self.kid = key.kid

    def sign(self, data: bytes) -> bytes:
        signature = self._key.sign(data)
        s = int.from_bytes(signature[48:], "big")
        return signature[:48] + (_P384_N - s).to_bytes(48, "big")

    def verifier(self) -> PublicKey:
        return self._key.public_key


def test_sign_bundle_stores_the_low_s_form_of_a_high_s_signer(vendor: Vendor) -> None:
    signed = sign_bundle(
        vendor.build(), _HighSSigner(vendor.ecc[vendor.ecc_index]), vendor.pqc[vendor.pqc_index]
    )
    span = _span("preamble.vendor_ecc_signature")
    assert int.from_bytes(signed[span.start + 48 : span.stop], "big") <= _P384_N // 2
    _verify(vendor, signed)


def test_lms_signature_bit_flip(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path)
    bundle = vendor.sign(vendor.build())
    offset = _span("preamble.vendor_pqc_signature").start + 100
    with pytest.raises(BadSignature):
        _verify(vendor, flip(bundle, offset))


@pytest.mark.parametrize("name", ["SHA256-N24-H5-W1", "SHA256-N24-H15-W1"])
def test_an_lms_set_whose_signatures_overflow_the_slot_is_refused(
    tmp_path: Path, name: str
) -> None:
    """W1 LMS signatures (4,956+ bytes) do not fit the 4,628-byte PQC signature slot. Before,
    the limits admitted them, ``sign_bundle`` cut the signature to the slot (struct packing
    truncates) and wrote a bundle that could never verify, and the parser took the cut
    signature as a whole one. Now the limits refuse the set and the parser refuses a manifest
    whose LMS key has such signatures."""
    with pytest.raises(ConfigError) as info:
        FirmwareLimits(lms_parameter_sets=frozenset({name}))
    assert info.type is ConfigError
    assert "signature slot" in info.value.detail
    vendor = lms_vendor(tmp_path)
    bundle = vendor.sign(vendor.build())
    assert FirmwareBundle.parse(bundle, vendor.limits).is_signed
    w1 = LMS_PARAMETER_SETS[name]
    key = _span("preamble.vendor_pqc_key").start
    forged = bytearray(bundle)
    forged[key : key + 8] = struct.pack(">II", w1.lms_type, w1.lmots_type)
    with pytest.raises(MalformedFirmware) as malformed:
        FirmwareBundle.parse(bytes(forged), vendor.limits)
    assert malformed.type is MalformedFirmware
    assert "do not fit the PQC signature slot" in malformed.value.detail


# --- owner -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def owned(vendor: Vendor) -> tuple[bytes, bytes]:
    owner = (PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ML_DSA_87))
    bundle = vendor.sign(vendor.build(), owner_signers=owner)
    pre = FirmwareBundle.parse(bundle).manifest.preamble
    return bundle, hashlib.sha384(pre.owner_keys_bytes()).digest()


def test_owner_key_hash_mismatch(vendor: Vendor, owned: tuple[bytes, bytes], bundle: bytes) -> None:
    data, owner_hash = owned
    with pytest.raises(OwnerKeyMismatch):
        _verify(vendor, data, owner_key_hash=b"\x01" * 48)
    with pytest.raises(OwnerKeyMismatch):  # an owner is fused but the bundle has none
        _verify(vendor, bundle, owner_key_hash=owner_hash)


@pytest.mark.parametrize("field", ["preamble.owner_ecc_signature", "preamble.owner_pqc_signature"])
def test_owner_signatures_are_required_and_checked(
    vendor: Vendor, owned: tuple[bytes, bytes], field: str
) -> None:
    data, owner_hash = owned
    span = _span(field)
    with pytest.raises(BadSignature) as info:
        _verify(vendor, flip(data, span.start + 3), owner_key_hash=owner_hash)
    assert type(info.value) is BadSignature
    stripped = data[: span.start] + b"\0" * len(span) + data[span.stop :]
    with pytest.raises(MissingSignature):
        _verify(vendor, stripped, owner_key_hash=owner_hash)


def test_owner_key_bit_flip(vendor: Vendor, owned: tuple[bytes, bytes]) -> None:
    data, owner_hash = owned
    with pytest.raises(OwnerKeyMismatch):
        _verify(
            vendor, flip(data, _span("preamble.owner_pqc_key").start + 7), owner_key_hash=owner_hash
        )


def test_owner_signatures_without_owner_keys_are_malformed(vendor: Vendor, bundle: bytes) -> None:
    with pytest.raises(MalformedFirmware):
        _verify(vendor, flip(bundle, _span("preamble.owner_ecc_signature").start))
    with pytest.raises(MalformedFirmware):
        _verify(vendor, flip(bundle, _span("preamble.owner_pqc_key").start))


# --- TOC, SVN, dates -----------------------------------------------------------------------


def _signed_raw(vendor: Vendor, bundle: FirmwareBundle) -> bytes:
    """``bundle`` with vendor signatures over its header made directly with the keys, as one
    who holds them without ``sign_bundle``'s checks would."""
    header = bundle.manifest.header_bytes()
    preamble = dataclasses.replace(
        bundle.manifest.preamble,
        vendor_ecc_signature=vendor.ecc[0].sign(header),
        vendor_pqc_signature=vendor.pqc[0].sign(hashlib.sha384(header).digest()),
    )
    manifest = dataclasses.replace(bundle.manifest, preamble=preamble)
    return FirmwareBundle(manifest, bundle.components).encode()


def _with_toc_digest(unsigned: UnsignedBundle, toc_digest: bytes) -> UnsignedBundle:
    header = dataclasses.replace(unsigned.manifest.header, toc_digest=toc_digest)
    return UnsignedBundle(
        dataclasses.replace(unsigned.manifest, header=header), unsigned.components
    )


def _naming_another_fmc(unsigned: UnsignedBundle, fmc: bytes) -> UnsignedBundle:
    """``unsigned`` with the FMC's TOC digest (and the header's TOC digest) naming ``fmc``
    while the bundle still carries the genuine FMC: a build artifact altered before signing."""
    toc = list(unsigned.manifest.toc)
    toc[0] = dataclasses.replace(toc[0], digest=hashlib.sha384(fmc).digest())
    toc_bytes = b"".join(entry.encode() for entry in toc)
    header = dataclasses.replace(
        unsigned.manifest.header, toc_digest=hashlib.sha384(toc_bytes).digest()
    )
    manifest = dataclasses.replace(unsigned.manifest, toc=tuple(toc), header=header)
    return UnsignedBundle(manifest, unsigned.components)


def test_toc_digest_mismatch_in_a_validly_signed_header(vendor: Vendor) -> None:
    forged = _with_toc_digest(vendor.build(), b"\x42" * 48)
    bundle = _signed_raw(vendor, forged)
    with pytest.raises(DigestMismatch) as info:
        _verify(vendor, bundle)
    assert "TOC" in info.value.detail


def test_sign_bundle_refuses_a_header_whose_toc_digest_is_not_its_toc(vendor: Vendor) -> None:
    forged = _with_toc_digest(vendor.build(), b"\x42" * 48)
    for unsigned in (forged, forged.encode()):
        with pytest.raises(DigestMismatch) as info:
            sign_bundle(unsigned, vendor.ecc[0], vendor.pqc[0])
        assert type(info.value) is DigestMismatch
        assert info.value.code == "digest-mismatch"
        assert "TOC" in info.value.detail


def test_sign_bundle_refuses_a_toc_that_names_other_component_bytes(vendor: Vendor) -> None:
    """Signed, such a header would fail with the genuine FMC but verify with the one its TOC
    names: the signature would authorize bytes the signer never had."""
    evil = bytes(len(vendor.build().components[0]))
    forged = _naming_another_fmc(vendor.build(), evil)
    with pytest.raises(DigestMismatch) as info:
        sign_bundle(forged.encode(), vendor.ecc[0], vendor.pqc[0])
    assert type(info.value) is DigestMismatch
    assert info.value.code == "digest-mismatch"
    assert "component 1" in info.value.detail
    # what the refusal prevents: the header, signed, admits the other FMC
    signed = FirmwareBundle.parse(_signed_raw(vendor, forged))
    swapped = FirmwareBundle(signed.manifest, (evil, *signed.components[1:])).encode()
    assert _verify(vendor, swapped).fmc.data == evil  # type: ignore[attr-defined]


def test_sign_bundle_refuses_an_inconsistent_bundle_before_spending_an_lms_key(
    tmp_path: Path,
) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    unsigned = vendor.build()
    forged = _naming_another_fmc(unsigned, bytes(len(unsigned.components[0])))
    before = vendor.pqc[0].remaining()  # type: ignore[attr-defined]
    with pytest.raises(DigestMismatch):
        vendor.sign(forged)
    assert vendor.pqc[0].remaining() == before  # type: ignore[attr-defined]


def test_sign_bundle_refuses_a_header_other_than_the_one_named_before_spending_an_lms_key(
    tmp_path: Path,
) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    built = vendor.build()
    rebuilt = vendor.build(svn=MAX_SVN)  # consistent: only the header differs
    before = vendor.pqc[0].remaining()  # type: ignore[attr-defined]
    with pytest.raises(DigestMismatch, match="the header to sign is not the expected one"):
        vendor.sign(rebuilt, header_digest=built.header_digest())
    assert vendor.pqc[0].remaining() == before  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="48-byte SHA-384"):
        vendor.sign(built, header_digest=b"short")
    assert vendor.pqc[0].remaining() == before  # type: ignore[attr-defined]
    _verify(vendor, vendor.sign(built, header_digest=built.header_digest()))


class _DerSigner:
    """An ES384 signer that breaks the Signer contract: DER instead of ``r ‖ s``."""

    def __init__(self, key: PrivateKey) -> None:
        self._key = key
        self.algorithm = key.algorithm
        self.kid = key.kid

    def sign(self, data: bytes) -> bytes:
        return ecdsa_to_der(Algorithm.ES384, self._key.sign(data))

    def verifier(self) -> PublicKey:
        return self._key.public_key


def test_sign_bundle_refuses_an_ecc_signature_that_does_not_verify_before_the_lms_one(
    tmp_path: Path,
) -> None:
    """A signer's ECDSA signature was packed into the 96-byte slot unchecked: a longer one
    (DER) was cut short, the LMS key spent a one-time key, and the bundle written was one no
    device accepts."""
    vendor = lms_vendor(tmp_path, pqc_count=1)
    before = vendor.pqc[0].remaining()  # type: ignore[attr-defined]
    with pytest.raises(BadSignature, match="the vendor ECDSA P-384 signer's signature does not"):
        sign_bundle(vendor.build(), _DerSigner(vendor.ecc[0]), vendor.pqc[0], limits=vendor.limits)
    assert vendor.pqc[0].remaining() == before  # type: ignore[attr-defined]


class _WrongKeySigner:
    """A PQC signer that signs with another key than the one it names."""

    def __init__(self, named: PrivateKey, signing: PrivateKey) -> None:
        self._named, self._signing = named, signing
        self.algorithm = named.algorithm
        self.kid = named.kid

    def sign(self, data: bytes) -> bytes:
        return self._signing.sign(data)

    def verifier(self) -> PublicKey:
        return self._named.public_key


def test_sign_bundle_refuses_a_pqc_signature_that_does_not_verify(vendor: Vendor) -> None:
    signer = _WrongKeySigner(
        vendor.pqc[vendor.pqc_index],  # type: ignore[arg-type]
        PrivateKey.generate(Algorithm.ML_DSA_87),
    )
    with pytest.raises(BadSignature, match="the vendor ML-DSA-87 signer's signature does not"):
        sign_bundle(vendor.build(), vendor.ecc[vendor.ecc_index], signer)


@pytest.mark.parametrize(
    ("name", "detail"),
    [
        ("SHA256-N24-H5-W2", "owner LMS parameter set SHA256-N24-H5-W2 is not accepted"),
        ("SHA256-N24-H5-W1", "owner LMS parameter set SHA256-N24-H5-W1 is not accepted"),
        ("SHA256-N32-H5-W4", "LMS firmware keys are single-tree SHA256-N24 keys"),
    ],
)
def test_sign_bundle_refuses_an_owner_lms_key_before_spending_any_lms_key(
    tmp_path: Path, name: str, detail: str
) -> None:
    """An owner LMS key the verifier refuses (a set the limits do not admit, one whose W1
    signatures the struct packing would cut to the slot, an N32 key) is refused before any
    one-time key is spent. Before, the owner's and the vendor's leaves were spent on a bundle
    that could never verify, or the owner's leaf on a refusal raised after it was spent."""
    vendor = lms_vendor(tmp_path, pqc_count=1)
    owner = (PrivateKey.generate(Algorithm.ES384), LmsPrivateKey.generate(tmp_path / "o", name))
    before = (vendor.pqc[0].remaining(), owner[1].remaining())  # type: ignore[attr-defined]
    with pytest.raises(UnsupportedAlgorithm) as refused:
        vendor.sign(vendor.build(), owner_signers=owner)
    assert refused.type is UnsupportedAlgorithm
    assert detail in refused.value.detail
    after = (vendor.pqc[0].remaining(), owner[1].remaining())  # type: ignore[attr-defined]
    assert after == before


def test_svn_below_minimum_is_a_rollback(vendor: Vendor, bundle: bytes) -> None:
    with pytest.raises(SvnRollback):
        _verify(vendor, bundle, min_svn=6)
    assert _verify(vendor, bundle, min_svn=5)
    assert _verify(vendor, bundle, min_svn=6, anti_rollback_disabled=True)


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (NOT_BEFORE - dt.timedelta(seconds=1), False),
        (NOT_BEFORE, True),
        (NOT_AFTER, True),
        (NOT_AFTER + dt.timedelta(seconds=1), False),
        (dt.datetime(2100, 1, 1, tzinfo=dt.UTC), False),
    ],
)
def test_validity_dates(vendor: Vendor, bundle: bytes, now: dt.datetime, ok: bool) -> None:
    if ok:
        assert _verify(vendor, bundle, now=now)
    else:
        with pytest.raises(ManifestExpired):
            _verify(vendor, bundle, now=now)


def test_owner_validity_dates_also_bound_the_manifest(vendor: Vendor) -> None:
    bundle = vendor.sign(
        vendor.build(owner_not_before=NOW + dt.timedelta(days=1), owner_not_after=NOT_AFTER)
    )
    with pytest.raises(ManifestExpired) as info:
        _verify(vendor, bundle)
    assert "owner" in info.value.detail


# --- structure -------------------------------------------------------------------------------


def test_truncated_bundles_are_malformed(vendor: Vendor, bundle: bytes) -> None:
    manifest_size = FirmwareBundle.parse(bundle).manifest.size
    for size in (0, 3, 12, 100, 16588, 16700, manifest_size - 1, manifest_size, len(bundle) - 1):
        with pytest.raises(MalformedFirmware):
            _verify(vendor, bundle[:size])


def test_trailing_bytes_are_malformed(vendor: Vendor, bundle: bytes) -> None:
    with pytest.raises(MalformedFirmware):
        _verify(vendor, bundle + b"\0")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("manifest.marker", b"CMAN"),
        ("manifest.version", struct.pack("<H", 2)),
        ("manifest.pqc_key_type", b"\x02"),
        ("manifest.reserved", b"\x01"),
        ("manifest.size", struct.pack("<I", 1)),
        ("preamble.ecc_descriptor.version", struct.pack("<H", 0)),
        ("preamble.ecc_descriptor.key_hash_count", b"\x05"),
        ("preamble.ecc_descriptor.key_hash_count", b"\x00"),
        ("preamble.pqc_descriptor.key_hash_count", b"\x21"),
        ("preamble.pqc_descriptor.key_type", b"\x03"),
        ("preamble.reserved", b"\x01"),
        ("header.flags", struct.pack("<I", 4)),
        ("header.svn", struct.pack("<I", 129)),
        ("header.vendor_not_before", b"2026130100000Z\0"),
        ("header.vendor_not_after", b"20260101000000X"),
        ("header.vendor_reserved", b"\x01"),
        ("header.owner_not_before", b"20260101000000Z"),
        ("toc[0].id", struct.pack("<I", 2)),
        ("toc[2].id", struct.pack("<I", 1)),
        ("toc[0].type", struct.pack("<I", 2)),
        ("toc[1].reserved", b"\x01"),
        ("toc[1].offset", struct.pack("<I", 0)),
        ("toc[1].size", struct.pack("<I", 0)),
        ("toc[0].size", struct.pack("<I", 1)),
        ("toc[0].load_address", struct.pack("<I", 0xFFFFFFFF)),
    ],
)
def test_malformed_fields(vendor: Vendor, bundle: bytes, field: str, value: bytes) -> None:
    offset = field_offsets(3)[field][0]
    bad = bundle[:offset] + value + bundle[offset + len(value) :]
    with pytest.raises(MalformedFirmware):
        _verify(vendor, bad)


def test_too_many_toc_entries_is_a_limit(vendor: Vendor, bundle: bytes) -> None:
    offset = field_offsets()["header.toc_len"][0]
    bad = bundle[:offset] + struct.pack("<I", 1000) + bundle[offset + 4 :]
    with pytest.raises(LimitExceeded):
        _verify(vendor, bad)
    with pytest.raises(LimitExceeded):
        _verify(vendor, bundle, limits=FirmwareLimits(max_component_bytes=1024))
    with pytest.raises(LimitExceeded):
        _verify(vendor, bundle, limits=FirmwareLimits(max_bundle_bytes=1024))


def test_not_bytes_is_malformed(vendor: Vendor) -> None:
    with pytest.raises(MalformedFirmware):
        _verify(vendor, "IRMN")  # type: ignore[arg-type]


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"vendor_key_descriptor_hash": None},
        {"allowed_vendor_key_hashes": []},
        {"vendor_key_descriptor_hash": None, "allowed_vendor_key_hashes": []},
        {"vendor_key_descriptor_hash": b"short"},
        {"ecc_revocation": 16},
        {"pqc_revocation": -1},
        {"min_svn": 129},
        {"now": dt.datetime(2026, 6, 1)},
        {"owner_key_hash": b"x"},
    ],
)
def test_bad_arguments_are_config_errors(
    vendor: Vendor, bundle: bytes, kw: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        _verify(vendor, bundle, **kw)
    with pytest.raises(ConfigError):
        check_bundle(
            bundle,
            BundlePolicy(
                **{"now": NOW, "vendor_key_descriptor_hash": vendor.descriptor_hash, **kw}
            ),
        )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"anti_rollback_disabled": "false"}, "anti_rollback_disabled must be True or False"),
        ({"anti_rollback_disabled": 1}, "anti_rollback_disabled must be True or False"),
        ({"anti_rollback_disabled": None}, "anti_rollback_disabled must be True or False"),
        ({"limits": None}, "limits must be a FirmwareLimits"),
        (
            {"vendor_key_descriptor_hash": None, "allowed_vendor_key_hashes": 5},
            "allowed_vendor_key_hashes must be a collection of 48-byte SHA-384 hashes",
        ),
    ],
)
def test_policy_values_are_not_coerced(
    vendor: Vendor, bundle: bytes, kw: dict[str, object], message: str
) -> None:
    """``anti_rollback_disabled`` was coerced with ``bool()``: a policy read from text with
    ``"false"`` (or any non-empty value) switched the SVN check off and a rollback verified.
    A policy whose limits or allow-list are of the wrong type failed later, with a
    ``TypeError`` or ``AttributeError`` out of verification."""
    with pytest.raises(ConfigError, match=message):
        _verify(vendor, bundle, min_svn=6, **kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"owner_key_hash": bytes(48)},
            "an all-zero owner key hash is no owner key hash (unfused): leave it out",
        ),
        (
            {"vendor_key_descriptor_hash": bytes(48)},
            "an all-zero vendor key hash is no vendor key hash (unfused)",
        ),
        (
            {"vendor_key_descriptor_hash": None, "allowed_vendor_key_hashes": [bytes(48)]},
            "an all-zero vendor key hash is no vendor key hash (unfused)",
        ),
    ],
)
def test_an_all_zero_fused_hash_is_a_config_error(
    vendor: Vendor, bundle: bytes, kw: dict[str, object], message: str
) -> None:
    """A fuse reads all zeros until it is programmed (Caliptra: an owner key hash of zeros
    means no owner). A policy given 48 zero bytes for the owner key hash, as a fuse dump of an
    unowned device reads, refused every bundle with an ``OwnerKeyMismatch`` (the bundle "does
    not match the fused owner key hash") that blamed the bundle for the policy."""
    with pytest.raises(ConfigError) as refused:
        _verify(vendor, bundle, **kw)
    assert refused.value.detail == message


# --- the report --------------------------------------------------------------------------------


def test_report_lists_every_check_and_continues_after_a_failure(
    vendor: Vendor, bundle: bytes
) -> None:
    entry = FirmwareBundle.parse(bundle).manifest.toc[1]
    bad = flip(bundle, entry.offset + 1)
    report = check_bundle(
        bad, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, min_svn=9)
    )
    assert not report.ok
    assert report.verified is None
    results = {c.name: c for c in report.checks}
    assert results["vendor-ecc-signature"].passed is True
    assert results["vendor-pqc-signature"].passed is True
    assert results["component:1"].passed is True
    assert results["component:2"].passed is False
    assert results["component:2"].code == "digest-mismatch"
    assert results["svn"].code == "svn-rollback"
    assert report.first_failure is results["component:2"]
    good = check_bundle(
        bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )
    assert good.ok
    assert all(c.passed for c in good.checks)
    assert good.to_json()["ok"] is True
    assert [c["name"] for c in good.to_json()["checks"]][:2] == ["parse", "key-descriptor"]


def test_report_of_an_unparsable_bundle(vendor: Vendor) -> None:
    report = check_bundle(
        b"junk", BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash)
    )
    assert not report.ok
    assert report.checks[0].name == "parse"
    assert report.checks[0].code == "malformed-firmware"
