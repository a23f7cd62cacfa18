"""The HSM's key store sealed to the RoT: the sealing secret is derived from the RT alias CDI,
so a store opens only on the device that sealed it, running the firmware it ran then."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product, new_device
from cryptography import x509

from ironroot.cli import main
from ironroot.crypto import Algorithm
from ironroot.errors import ChainNotTrusted, Conflict, MalformedInput, SealedStoreError
from ironroot.hsm import (
    DeviceIdentity,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Role,
    Usage,
    verify_key_attestation,
)
from ironroot.rot import Device, VendorCA
from ironroot.rot._boot import derive_layers
from ironroot.rot._device import _rt_alias_certified


def _hsm(storage: MemoryStorage, secret: bytes, device: Device) -> Hsm:
    child = device.derive_child(hashlib.sha384(b"hsm firmware").digest(), label="hsm")
    identity = DeviceIdentity(child.ecc_key, (child.ecc_certificate,))
    return Hsm.initialize(
        storage,
        secret,
        officer="officer",
        credential=b"officer-credential",
        device=identity,
        config=HsmConfig(scrypt_n=2**10),
    )


def test_store_opens_only_on_its_device_and_firmware(
    tmp_path: Path, product: Product, vendor_ca: VendorCA, booted: Device
) -> None:
    secret = booted.sealing_secret("hsm")
    assert len(secret) == 32
    assert booted.sealing_secret("hsm") == secret  # deterministic
    assert booted.sealing_secret("other") != secret  # labels separate users

    storage = MemoryStorage()
    _hsm(storage, secret, booted).close()
    Hsm.open(storage, secret, config=HsmConfig(scrypt_n=2**10)).close()  # same device, firmware

    # Another device running the same firmware: another secret, the store stays shut.
    other = new_device(tmp_path / "other", product, vendor_ca)
    other.boot(product.bundle(), now=NOW)
    with pytest.raises(SealedStoreError):
        Hsm.open(storage, other.sealing_secret("hsm"))

    # The same device after a firmware change: another secret.
    booted.boot(product.bundle(runtime=b"\x01" * 4096), now=NOW)
    changed = booted.sealing_secret("hsm")
    assert changed != secret
    with pytest.raises(SealedStoreError):
        Hsm.open(storage, changed)

    # Back on the original firmware, the store opens again.
    booted.boot(product.bundle(), now=NOW)
    assert booted.sealing_secret("hsm") == secret


def test_sealing_needs_a_booted_device_and_a_label(
    tmp_path: Path, product: Product, vendor_ca: VendorCA, booted: Device
) -> None:
    with pytest.raises(MalformedInput):
        booted.sealing_secret("")
    fresh = new_device(tmp_path / "fresh", product, vendor_ca)
    with pytest.raises(Conflict):
        fresh.sealing_secret("hsm")


@pytest.mark.parametrize("label", [b"hsm", 5, "\udcff", "a" * 65], ids=repr)
def test_a_sealing_label_that_is_no_text_is_malformed(booted: Device, label: object) -> None:
    """A label that is not a string, or that does not encode as UTF-8 (a lone surrogate:
    what a non-UTF-8 ``--label`` byte decodes to on the command line), escaped as
    ``AttributeError``, ``TypeError`` or ``UnicodeEncodeError``: ``MalformedInput`` now."""
    with pytest.raises(MalformedInput) as info:
        booted.sealing_secret(label)  # type: ignore[arg-type]
    assert info.value.detail == "a sealing label is 1-64 characters of UTF-8 text"


def test_cli_reports_a_label_that_is_no_text(
    booted: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sealing.secret"
    argv = ["rot", "sealing-secret", "--device", str(booted.directory), "--out", str(out)]
    assert main([*argv, "--label", "\udcff"]) == 2
    assert "ironroot: malformed: a sealing label is 1-64 characters" in capsys.readouterr().err
    assert not out.exists()


def test_cli_writes_the_secret_owner_only(booted: Device, tmp_path: Path) -> None:
    out = tmp_path / "sealing.secret"
    assert (
        main(["rot", "sealing-secret", "--device", str(booted.directory), "--out", str(out)]) == 0
    )
    assert out.stat().st_mode & 0o777 == 0o600
    assert bytes.fromhex(out.read_text().strip()) == booted.sealing_secret("hsm")


def test_cli_never_writes_the_secret_over_the_obfuscation_key_or_a_private_key(
    booted: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device's obfuscation key replaced is every secret of the device lost; a private
    key replaced is that key lost: both are refused, and nothing changes."""
    assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "k")]) == 0
    key = booted.obfuscation_key_path
    for out, message in (
        (key, f"{key} is the secret file {key} this command read"),
        (tmp_path / "k.key", f"{tmp_path / 'k.key'} holds a private key"),
    ):
        before = out.read_bytes()
        capsys.readouterr()
        argv = ["rot", "sealing-secret", "--device", str(booted.directory), "--out", str(out)]
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(f"ironroot: config: {message}")
        assert out.read_bytes() == before
    assert booted.sealing_secret("hsm")  # the device still opens


def test_cli_never_writes_a_quote_over_a_file_of_the_device(
    booted: Device, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device's fuses replaced by a quote is the device's identity lost."""
    fuses = booted.directory / "fuses.json"
    before = fuses.read_bytes()
    capsys.readouterr()
    argv = ["rot", "quote", "--device", str(booted.directory), "--nonce", "11" * 32,
            "--out", str(fuses)]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(
        f"ironroot: config: {fuses} is a file of {booted.directory.resolve()}, which this "
        "command uses: writing the output there would replace it"
    )
    assert fuses.read_bytes() == before


def test_key_attestation_chains_to_the_vendor_ca_through_the_rot(
    vendor_ca: VendorCA, booted: Device
) -> None:
    """An HSM whose identity is a DPE child of the RoT: its key attestations verify against
    the vendor CA (HSM attestation key → DPE child → RT alias → … → IDevID → vendor CA)."""
    child = booted.derive_child(hashlib.sha384(b"hsm firmware").digest(), label="hsm")
    identity = DeviceIdentity(
        child.ecc_key, (child.ecc_certificate, *reversed(booted.chain(Algorithm.ES384)))
    )
    hsm = Hsm.initialize(
        MemoryStorage(),
        booted.sealing_secret("hsm"),
        officer="officer",
        credential=b"officer-credential",
        device=identity,
        config=HsmConfig(scrypt_n=2**10),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "user", Role.USER, b"user-credential")
    user = hsm.login("user", b"user-credential")
    handle = hsm.generate(
        officer, KeyType.EC_P384, KeyAttributes(usages=frozenset({Usage.SIGN, Usage.VERIFY}))
    )
    statement = hsm.attest(user, handle, nonce=b"n" * 16)
    root = x509.load_der_x509_certificate(vendor_ca.trust_anchors[0])
    now = dt.datetime.now(dt.UTC)  # the HSM certifies its attestation key at the real time
    claims = verify_key_attestation(statement, roots=[root], now=now, nonce=b"n" * 16)
    assert claims is not None
    other_root = x509.load_der_x509_certificate(VendorCA.generate(now=NOW).trust_anchors[0])
    with pytest.raises(ChainNotTrusted):
        verify_key_attestation(statement, roots=[other_root], now=now)
    hsm.close()


def test_the_rt_alias_check_is_remembered_only_for_its_certificate(booted: Device) -> None:
    """The check that the boot's RT alias certificate certifies the key the fuses and PCRs
    derive is remembered by the CDI and the certificate: another certificate (the FMC
    alias's, of the same device) is compared afresh and refused."""
    secret = Device(booted.directory).sealing_secret("hsm")
    assert Device(booted.directory).sealing_secret("hsm") == secret
    state = booted._store.load()
    assert state.boot is not None
    layers = derive_layers(state.fuses, state.boot.pcrs)
    assert _rt_alias_certified(layers, state.boot.ecc_chain[-1])
    assert not _rt_alias_certified(layers, state.boot.ecc_chain[-2])
