"""Publication against the product's revocation fuses: a vendor never logs a release signed
with a key its devices have revoked (``publish_bundle(..., ecc_revocation=, pqc_revocation=)``,
``firmware publish --revoked-ecc MASK --revoked-pqc MASK``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _fw_helpers import NOW, Recording, Vendor, mldsa_vendor

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, KeyRevoked
from ironroot.firmware import FirmwareBundle, publish_bundle

ISS = "https://vendor.example"
SUB = "pkg:firmware/acme/roadrunner-bmc"


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    """Keys ECC 1 and PQC 2 active, of 2 ECC and 3 PQC keys."""
    return mldsa_vendor(ecc_index=1, pqc_index=2)


@pytest.fixture(scope="module")
def bundle(vendor: Vendor) -> bytes:
    return vendor.sign(vendor.build(svn=7))


@pytest.fixture(scope="module")
def statement_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES384)


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({"ecc_revocation": 0b0010}, "vendor ECC key 1 is revoked"),
        ({"ecc_revocation": 0b1111}, "vendor ECC key 1 is revoked"),
        ({"pqc_revocation": 1 << 2}, "vendor PQC key 2 is revoked"),
        ({"ecc_revocation": 0b0001, "pqc_revocation": 0b0111}, "vendor PQC key 2 is revoked"),
    ],
)
def test_publish_refuses_a_bundle_signed_with_a_revoked_key(
    vendor: Vendor,
    bundle: bytes,
    statement_key: PrivateKey,
    masks: dict[str, int],
    message: str,
) -> None:
    """Publication checked the fused key descriptor hash but no revocation fuse: a release
    signed with a key the devices had revoked was logged (and vouched for) though no device
    with current fuses boots it."""
    registrar = Recording()
    with pytest.raises(KeyRevoked) as exc:
        publish_bundle(
            bundle,
            registrar,
            statement_key,
            iss=ISS,
            sub=SUB,
            now=NOW,
            vendor_key_descriptor_hash=vendor.descriptor_hash,
            **masks,  # type: ignore[arg-type]
        )
    assert (exc.value.code, exc.value.detail) == ("key-revoked", message)
    assert registrar.registered == []


def test_publish_with_other_keys_revoked_registers(
    vendor: Vendor, bundle: bytes, statement_key: PrivateKey
) -> None:
    registrar = Recording()
    published = publish_bundle(
        bundle,
        registrar,
        statement_key,
        iss=ISS,
        sub=SUB,
        now=NOW,
        vendor_key_descriptor_hash=vendor.descriptor_hash,
        ecc_revocation=0b1101,
        pqc_revocation=~(1 << 2) & 0xFFFF_FFFF,
    )
    assert published.manifest_digest == FirmwareBundle.parse(bundle).manifest_digest()
    assert len(registrar.registered) == 2


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        ({"ecc_revocation": 1 << 4}, "ECC revocation mask must be a 4-bit mask"),
        ({"ecc_revocation": -1}, "ECC revocation mask must be a 4-bit mask"),
        ({"pqc_revocation": 1 << 32}, "PQC revocation mask must be a 32-bit mask"),
        ({"pqc_revocation": True}, "PQC revocation mask must be a 32-bit mask"),
    ],
)
def test_publish_refuses_a_mask_no_fuse_holds(
    bundle: bytes, statement_key: PrivateKey, masks: dict[str, int], message: str
) -> None:
    registrar = Recording()
    with pytest.raises(ConfigError) as exc:
        publish_bundle(
            bundle,
            registrar,
            statement_key,
            iss=ISS,
            sub=SUB,
            now=NOW,
            **masks,  # type: ignore[arg-type]
        )
    assert exc.value.detail == message
    assert registrar.registered == []


def _argv(tmp_path: Path, vendor: Vendor, bundle: bytes, *extra: str) -> list[str]:
    key_file = tmp_path / "statement.key"
    key_file.write_bytes(PrivateKey.generate(Algorithm.ES384).to_pem())
    bundle_file = tmp_path / "fw.bin"
    bundle_file.write_bytes(bundle)
    argv = ["firmware", "publish", str(bundle_file), "--url", "http://127.0.0.1:9"]
    argv += ["--key", str(key_file), "--iss", ISS, "--sub", SUB]
    argv += ["--out-dir", str(tmp_path / "release"), "--at", NOW.isoformat()]
    argv += ["--vendor-key-hash", vendor.descriptor_hash.hex(), *extra]
    return argv


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (("--revoked-ecc", "0x2"), "ironroot: key-revoked: vendor ECC key 1 is revoked\n"),
        (("--revoked-pqc", "4"), "ironroot: key-revoked: vendor PQC key 2 is revoked\n"),
    ],
)
def test_cli_publish_refuses_a_revoked_key(
    tmp_path: Path,
    vendor: Vendor,
    bundle: bytes,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    line: str,
) -> None:
    """Exit 1 and the reason; nothing registered (no service listens: the refusal comes
    first) and nothing written."""
    assert main(_argv(tmp_path, vendor, bundle, *extra)) == 1
    assert capsys.readouterr().err == line
    out = tmp_path / "release"
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            ("--revoked-ecc", "q"),
            "ironroot: config: --revoked-ecc 'q' is not a number (decimal or 0x…)\n",
        ),
        (
            ("--revoked-pqc", "0x100000000"),
            "ironroot: config: PQC revocation mask must be a 32-bit mask\n",
        ),
    ],
)
def test_cli_publish_refuses_a_bad_mask(
    tmp_path: Path,
    vendor: Vendor,
    bundle: bytes,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    line: str,
) -> None:
    assert main(_argv(tmp_path, vendor, bundle, *extra)) == 2
    assert capsys.readouterr().err == line
