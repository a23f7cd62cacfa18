"""DPE-style child identities: leaf certificates certified by the RT alias key."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from _rot_helpers import NOW, RUNTIME, Product, new_device

from ironroot.crypto import Algorithm
from ironroot.errors import ConfigError, Conflict, LimitExceeded
from ironroot.rot import Device, PcrEvent, VendorCA, parse_certificate, verify_chain

MEASUREMENT = hashlib.sha384(b"bmc firmware 1.2").digest()


@pytest.mark.parametrize("alg", [Algorithm.ES384, Algorithm.ML_DSA_87])
def test_a_child_certificate_chains_to_the_vendor_ca(
    booted: Device, vendor_ca: VendorCA, alg: Algorithm
) -> None:
    child = booted.derive_child(MEASUREMENT, label="bmc")
    der = child.ecc_certificate if alg is Algorithm.ES384 else child.mldsa_certificate
    chain = [
        parse_certificate(vendor_ca.certificate(alg)),
        *(parse_certificate(c) for c in booted.chain(alg)),
        parse_certificate(der),
    ]
    verify_chain(chain)
    leaf = chain[-1]
    assert leaf.is_ca is False
    assert leaf.key_usage == ("digitalSignature",)
    assert leaf.dice.key_purposes == ("attestLoc",)
    (tcb,) = leaf.dice.tcb_infos
    assert tcb.fwids[0].digest == MEASUREMENT
    assert tcb.layer == 3
    assert tcb.type == b"bmc"
    assert leaf.dice.ueid == chain[1].dice.ueid
    key = child.ecc_key if alg is Algorithm.ES384 else child.mldsa_key
    assert leaf.public_key == key.public_key
    key.public_key.verify(key.sign(b"evidence"), b"evidence")  # the child holds its key


def test_children_are_deterministic_per_runtime_and_measurement(
    booted: Device, product: Product
) -> None:
    first = booted.derive_child(MEASUREMENT, label="bmc")
    again = booted.derive_child(MEASUREMENT, label="bmc")
    assert first.ecc_key.public_key == again.ecc_key.public_key
    assert first.mldsa_key.public_key == again.mldsa_key.public_key
    other = booted.derive_child(hashlib.sha384(b"bmc firmware 1.3").digest(), label="bmc")
    assert other.ecc_key.public_key != first.ecc_key.public_key
    assert other.mldsa_key.public_key != first.mldsa_key.public_key
    renamed = booted.derive_child(MEASUREMENT, label="host")
    assert renamed.ecc_key.public_key != first.ecc_key.public_key
    booted.boot(product.bundle(runtime=RUNTIME + b"v2"), now=NOW)  # another runtime
    moved = booted.derive_child(MEASUREMENT, label="bmc")
    assert moved.ecc_key.public_key != first.ecc_key.public_key


def test_each_child_extends_pcr2(booted: Device) -> None:
    booted.derive_child(MEASUREMENT, label="bmc")
    booted.derive_child(MEASUREMENT, label="vm-1")
    state = booted.boot_state
    assert state is not None
    assert [(e.pcr, e.name) for e in state.log[-2:]] == [(2, "dpe:bmc"), (2, "dpe:vm-1")]
    pcr2 = hashlib.sha384(hashlib.sha384(bytes(48) + MEASUREMENT).digest() + MEASUREMENT)
    assert state.pcrs[2] == pcr2.digest()


def test_bad_children_are_refused(
    booted: Device, product: Product, vendor_ca: VendorCA, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError):
        booted.derive_child(b"\x01" * 32, label="bmc")
    for label in ("", "a" * 33, "bad/label", "-x"):
        with pytest.raises(ConfigError):
            booted.derive_child(MEASUREMENT, label=label)
    with pytest.raises(Conflict):
        new_device(tmp_path / "fresh", product, vendor_ca).derive_child(MEASUREMENT, label="x")


def test_keys_are_refused_when_the_fuses_changed_them_since_boot(
    tmp_path: Path, product: Product
) -> None:
    device = Device.create(tmp_path / "d")
    device.program(
        lambda f: f.program_uds(bytes(range(1, 65))).program_vendor_key_hash(
            product.descriptor_hash
        )
    )
    device.boot(product.bundle(), now=NOW)
    device.derive_child(MEASUREMENT, label="bmc")
    device.program(lambda f: f.program_field_entropy(b"\x11" * 32))  # LDevID CDI input
    with pytest.raises(Conflict):
        device.derive_child(MEASUREMENT, label="bmc")
    with pytest.raises(Conflict):
        device.quote(bytes(16))
    device.boot(product.bundle(), now=NOW)
    device.derive_child(MEASUREMENT, label="bmc")


def test_an_svn_fuse_write_after_boot_does_not_move_the_keys(booted: Device) -> None:
    first = booted.derive_child(MEASUREMENT, label="bmc")
    booted.program(lambda f: f.advance_svn(9))  # PCR0 was measured at boot: the CDIs stand
    assert booted.derive_child(MEASUREMENT, label="bmc").ecc_key.public_key == (
        first.ecc_key.public_key
    )


def test_a_full_pcr_log_is_a_limit_not_a_storage_failure(booted: Device) -> None:
    """The PCR log holds at most 256 events. One more child measured into a full log is a
    limit of the device (boot again to start a new log), not a failing store: it was
    ``StorageError`` (HTTP 503, "the store failed"), which tells a caller to retry."""
    state = booted.boot_state
    assert state is not None
    while len(state.log) < 256:
        state = state.extended(PcrEvent(2, "dpe:vm", MEASUREMENT))
    with pytest.raises(LimitExceeded) as full:
        state.extended(PcrEvent(2, "dpe:vm", MEASUREMENT))
    assert full.type is LimitExceeded
    assert full.value.detail == "the PCR log holds 256 events: boot again to measure more"
