"""Signing and verification under attack: a refused signing spends no one-time key, and every
bad argument of the Python API is a typed error (not a ``TypeError`` from deep inside)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from _fw_helpers import FMC, NOW, RUNTIME, lms_vendor, mldsa_vendor

from ironroot.crypto import Algorithm, LmsPrivateKey, PrivateKey, PublicKey, ecdsa_to_der
from ironroot.errors import BadSignature, ConfigError, LimitExceeded, MalformedFirmware, StateReuse
from ironroot.firmware import (
    BundlePolicy,
    Component,
    FirmwareBundle,
    FirmwareLimits,
    check_bundle,
    sign_bundle,
    verify_bundle,
)
from rot_counters import provisioned_device


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


def _owner(tmp_path: Path) -> tuple[PrivateKey, LmsPrivateKey]:
    return PrivateKey.generate(Algorithm.ES384), LmsPrivateKey.generate(
        tmp_path / "owner.state", "SHA256-N24-H5-W4"
    )


def test_an_exhausted_vendor_lms_key_spends_no_owner_one_time_key(tmp_path: Path) -> None:
    """The owner's LMS signature was made first: a vendor key with no leaf left was found
    only when it signed, after the owner's one-time key was spent on a bundle never made."""
    vendor = lms_vendor(tmp_path, pqc_count=1)
    key = vendor.pqc[0]
    assert isinstance(key, LmsPrivateKey)
    for _ in range(key.remaining()):
        key.sign(b"spent")
    owner = _owner(tmp_path)
    with pytest.raises(StateReuse, match="vendor LMS key: LMS key is exhausted"):
        vendor.sign(vendor.build(), owner_signers=owner)
    assert owner[1].remaining() == 32


def test_a_broken_vendor_ecdsa_signer_spends_no_owner_one_time_key(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    owner = _owner(tmp_path)
    before = vendor.pqc[0].remaining()  # type: ignore[attr-defined]
    with pytest.raises(BadSignature, match="the vendor ECDSA P-384 signer's signature does not"):
        sign_bundle(
            vendor.build(),
            _DerSigner(vendor.ecc[0]),
            vendor.pqc[0],
            owner,
            limits=vendor.limits,
        )
    assert owner[1].remaining() == 32
    assert vendor.pqc[0].remaining() == before  # type: ignore[attr-defined]


def test_one_lms_key_as_owner_and_vendor_needs_two_leaves(tmp_path: Path) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    key = vendor.pqc[0]
    assert isinstance(key, LmsPrivateKey)
    for _ in range(key.remaining() - 1):
        key.sign(b"spent")
    owner = (PrivateKey.generate(Algorithm.ES384), LmsPrivateKey.load(key.path))
    with pytest.raises(
        StateReuse, match=r"vendor and owner LMS key: .*1 one-time key left, 2 needed"
    ):
        vendor.sign(vendor.build(), owner_signers=owner)
    assert key.remaining() == 1


def test_a_vendor_lms_key_that_cannot_sign_spends_no_owner_one_time_key(tmp_path: Path) -> None:
    """A vendor state bound to a root-of-trust counter but opened without it refuses to sign
    (StateReuse): found only at its signature, after the owner's one-time key was spent."""
    device = provisioned_device(tmp_path / "rot")
    vendor = lms_vendor(tmp_path, pqc_count=0)
    bound = LmsPrivateKey.generate(
        tmp_path / "bound.state", "SHA256-N24-H5-W4", counter=device.counter("fw")
    )
    vendor.pqc = [LmsPrivateKey.load(bound.path)]  # no counter: it may not sign
    owner = _owner(tmp_path)
    with pytest.raises(StateReuse, match=r"vendor LMS key: .*bound to the root-of-trust counter"):
        vendor.sign(vendor.build(), owner_signers=owner)
    assert owner[1].remaining() == 32


def test_a_vendor_lms_state_with_a_second_name_spends_no_owner_one_time_key(
    tmp_path: Path,
) -> None:
    vendor = lms_vendor(tmp_path, pqc_count=1)
    key = vendor.pqc[0]
    assert isinstance(key, LmsPrivateKey)
    (tmp_path / "copy.state").hardlink_to(key.path)
    owner = _owner(tmp_path)
    with pytest.raises(StateReuse, match=r"vendor LMS key: .*has 2 names \(hard links\)"):
        vendor.sign(vendor.build(), owner_signers=owner)
    assert owner[1].remaining() == 32


def test_sign_bundle_refuses_a_bundle_value_that_is_not_a_bundle() -> None:
    """A ``FirmwareBundle`` made in Python (not parsed) with fewer or more components than
    its TOC was a bare ``ValueError`` from ``zip``; one the encoding would not parse back was
    signed and returned as bytes no verifier reads."""
    vendor = mldsa_vendor(ecc_count=1, pqc_count=1)
    built = vendor.build()
    for components in (built.components[:2], (*built.components, b"more")):
        with pytest.raises(MalformedFirmware):
            vendor.sign(FirmwareBundle(built.manifest, components))
    header = dataclasses.replace(built.manifest.header, toc_len=2)
    with pytest.raises(MalformedFirmware):
        vendor.sign(
            FirmwareBundle(dataclasses.replace(built.manifest, header=header), built.components)
        )


def test_sign_bundle_parses_with_the_limits_it_is_given() -> None:
    """``sign_bundle(bytes, limits=)`` parsed with the default limits: a bundle its limits
    admit (19 components) was refused, and one they refuse was signed."""
    vendor = mldsa_vendor(ecc_count=1, pqc_count=1)
    wide = FirmwareLimits(max_components=20)
    many = [Component(1, FMC), Component(2, RUNTIME)]
    many += [Component(i, b"component %d" % i) for i in range(3, 20)]
    signed = sign_bundle(
        vendor.build(components=many, limits=wide).encode(),
        vendor.ecc[0],
        vendor.pqc[0],
        limits=wide,
    )
    policy = BundlePolicy(now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, limits=wide)
    assert len(verify_bundle(signed, policy).components) == 19
    narrow = FirmwareLimits(max_components=2)
    with pytest.raises(LimitExceeded):
        sign_bundle(vendor.build().encode(), vendor.ecc[0], vendor.pqc[0], limits=narrow)


def test_verify_needs_a_bundle_policy() -> None:
    vendor = mldsa_vendor(ecc_count=1, pqc_count=1)
    signed = vendor.sign(vendor.build())
    for call in (verify_bundle, check_bundle):
        with pytest.raises(ConfigError, match="policy must be a BundlePolicy"):
            call(signed, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"revision": "1"},
        {"revision": 1.5},
        {"revision": True},
        {"flags": "1"},
        {"ecc_index": "0"},
        {"pqc_index": 0.0},
        {"ecc_index": False},
        {"not_before": "2026-01-01T00:00:00Z"},
        {"owner_not_before": "2026-01-01", "owner_not_after": "2027-01-01"},
        {"components": None},
        {"components": [Component(1, b"fmc", revision="abc"), Component(2, b"rt")]},  # type: ignore[arg-type]
        {"limits": None},
    ],
    ids=repr,
)
def test_build_arguments_of_the_wrong_type_are_config_errors(overrides: dict[str, object]) -> None:
    vendor = mldsa_vendor(ecc_count=1, pqc_count=1)
    with pytest.raises(ConfigError):
        vendor.build(**overrides)


def test_reversed_owner_dates_are_a_config_error_like_the_vendor_s() -> None:
    vendor = mldsa_vendor(ecc_count=1, pqc_count=1)
    with pytest.raises(ConfigError, match="owner not-after is before not-before"):
        vendor.build(owner_not_before=NOW, owner_not_after=NOW.replace(year=2025))
