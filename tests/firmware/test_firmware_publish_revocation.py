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


def _desired_toml(tmp_path: Path, fuses: str) -> Path:
    path = tmp_path / "desired.toml"
    path.write_text(f"version = 3\n[fuses]\n{fuses}")
    return path


WARNING = (
    "ironroot: warning: no revocation masks were checked (no --revoked-ecc, --revoked-pqc or "
    "--desired): a bundle signed with a revoked vendor key would be published\n"
)


@pytest.mark.parametrize(
    ("fuses", "line"),
    [
        ("ecc_revoked = 0x2\n", "ironroot: key-revoked: vendor ECC key 1 is revoked\n"),
        (
            "ecc_revoked = 1\npqc_revoked = 0x4\n",
            "ironroot: key-revoked: vendor PQC key 2 is revoked\n",
        ),
    ],
)
def test_cli_publish_takes_the_masks_from_a_desired_state(
    tmp_path: Path,
    vendor: Vendor,
    bundle: bytes,
    capsys: pytest.CaptureFixture[str],
    fuses: str,
    line: str,
) -> None:
    """``--desired DESIRED.toml`` (the file ``fleet desired sign`` reads): its ``[fuses]``
    masks refuse the bundle as the flags would; no warning, nothing registered or written."""
    desired = _desired_toml(tmp_path, fuses)
    assert main(_argv(tmp_path, vendor, bundle, "--desired", str(desired))) == 1
    assert capsys.readouterr().err == line
    out = tmp_path / "release"
    assert not out.exists() or not any(out.iterdir())


def test_cli_publish_with_neither_masks_nor_a_desired_state_warns(
    tmp_path: Path, vendor: Vendor, bundle: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """Today's behaviour (no mask checked) with the warning first on stderr; the publication
    then goes on (here to a service that is not listening)."""
    assert main(_argv(tmp_path, vendor, bundle)) == 1
    assert capsys.readouterr().err.startswith(WARNING)


@pytest.mark.parametrize(
    "extra", [("--revoked-ecc", "0"), ("--revoked-pqc", "0x0")], ids=["ecc", "pqc"]
)
def test_cli_publish_with_a_mask_given_does_not_warn(
    tmp_path: Path,
    vendor: Vendor,
    bundle: bytes,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
) -> None:
    assert main(_argv(tmp_path, vendor, bundle, *extra)) == 1  # no service listens
    assert "warning" not in capsys.readouterr().err


def test_cli_publish_refuses_a_desired_state_and_a_mask_together(
    tmp_path: Path, vendor: Vendor, bundle: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    desired = _desired_toml(tmp_path, "ecc_revoked = 0x4\n")
    argv = _argv(tmp_path, vendor, bundle, "--desired", str(desired), "--revoked-pqc", "0")
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: --desired names the revocation masks: give it or "
        "--revoked-ecc/--revoked-pqc, not both\n"
    )


@pytest.mark.parametrize(
    ("fuses", "detail"),
    [
        (
            "ecc_revoked = 0x10\n",
            "the desired state is malformed: ecc_revoked is a mask of the 4 vendor ECC key slots",
        ),
        (
            'pqc_revoked = "4"\n',
            "the desired state is malformed: pqc_revoked is an unsigned integer",
        ),
        ("revoked = 1\n", "unknown [fuses] revoked"),
    ],
    ids=["wide", "text", "unknown"],
)
def test_cli_publish_refuses_a_desired_state_with_bad_masks(
    tmp_path: Path,
    vendor: Vendor,
    bundle: bytes,
    capsys: pytest.CaptureFixture[str],
    fuses: str,
    detail: str,
) -> None:
    desired = _desired_toml(tmp_path, fuses)
    assert main(_argv(tmp_path, vendor, bundle, "--desired", str(desired))) == 2
    assert capsys.readouterr().err == f"ironroot: config: {desired}: {detail}\n"


def test_cli_publish_refuses_a_desired_state_that_is_not_there(
    tmp_path: Path, vendor: Vendor, bundle: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "desired.toml"
    assert main(_argv(tmp_path, vendor, bundle, "--desired", str(missing))) == 2
    assert capsys.readouterr().err == (
        f"ironroot: input-unavailable: {missing}: no such file or directory\n"
    )
