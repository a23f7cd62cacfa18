"""``ironroot rot`` device verbs, called in-process: the whole manufacture-boot-attest path."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from _rot_helpers import NOW, Product, snapshot

from ironroot.cli import main
from ironroot.rot import Device

AT = NOW.isoformat()
NONCE = "00112233445566778899aabbccddeeff"


@pytest.fixture
def setup(tmp_path: Path, product: Product) -> tuple[Path, Path, Path]:
    ca, dev = tmp_path / "ca", tmp_path / "dev"
    assert main(["rot", "ca-init", "--out", str(ca), "--at", "2026-01-01T00:00:00+00:00"]) == 0
    keys = [f"{ca}/vendor-ca-{a}.key.pem" for a in ("ecc", "mldsa")]
    certs = [f"{ca}/vendor-ca-{a}.cert.pem" for a in ("ecc", "mldsa")]
    argv = ["rot", "provision", "--device", str(dev), "--at", AT]
    argv += ["--vendor-key-hash", product.descriptor_hash.hex(), "--json"]
    for key, cert in zip(keys, certs, strict=True):
        argv += ["--vendor-ca-key", key, "--vendor-ca-cert", cert]
    assert main(argv) == 0
    bundle = tmp_path / "bundle.bin"
    bundle.write_bytes(product.bundle())
    return ca, dev, bundle


def _ca_certs(ca: Path) -> list[str]:
    return [
        "--vendor-ca-cert",
        str(ca / "vendor-ca-ecc.cert.pem"),
        "--vendor-ca-cert",
        str(ca / "vendor-ca-mldsa.cert.pem"),
    ]


def test_provision_boot_quote_verify(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, dev, bundle = setup
    assert (ca / "vendor-ca-ecc.key.pem").stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert main(["rot", "boot", "--device", str(dev), "--bundle", str(bundle), "--at", AT]) == 0
    quote = tmp_path / "quote.cbor"
    argv = ["rot", "quote", "--device", str(dev), "--nonce", NONCE, "--out", str(quote)]
    assert main(argv) == 0
    capsys.readouterr()
    verify = ["rot", "verify-quote", str(quote), "--at", AT, *_ca_certs(ca)]
    assert main([*verify, "--nonce", NONCE, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    assert doc["svn"] == 3
    assert doc["lifecycle"] == "production"
    assert len(doc["ecc_chain"]) == 4
    assert main([*verify, "--nonce", "ff" * 16]) == 1
    assert "stale-nonce" in capsys.readouterr().err
    other_ca = tmp_path / "other-ca"
    assert main(["rot", "ca-init", "--out", str(other_ca), "--at", AT]) == 0
    untrusted = ["rot", "verify-quote", str(quote), "--nonce", NONCE, "--at", AT]
    assert main([*untrusted, *_ca_certs(other_ca)]) == 1
    assert "chain-not-trusted" in capsys.readouterr().err


def test_show_never_prints_the_uds(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _ca, dev, bundle = setup
    assert main(["rot", "boot", "--device", str(dev), "--bundle", str(bundle), "--at", AT]) == 0
    capsys.readouterr()
    assert main(["rot", "show", "--device", str(dev), "--json"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    fuses = Device(dev).fuses
    assert fuses.uds_seed.hex() not in out
    assert fuses.field_entropy.hex() not in out
    assert doc["lifecycle"] == "production"
    assert doc["fuses"]["debug"] == "locked"
    assert doc["fuses"]["svn"] == 3
    assert set(doc["boot"]["pcrs"]) == {"0", "1", "2"}
    assert len(doc["chains"]["ecc"]) == len(doc["chains"]["mldsa"]) == 4
    assert main(["rot", "show", "--device", str(dev)]) == 0
    table = capsys.readouterr().out
    assert "PCR0" in table
    assert fuses.uds_seed.hex()[:16] not in table


def test_fuse_verbs_and_their_refusals(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _ca, dev, _bundle = setup
    fuse = ["rot", "fuse", "--device", str(dev)]
    assert main([*fuse, "svn", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["svn"] == 5
    before = snapshot(dev)
    assert main([*fuse, "svn", "4"]) == 1
    assert "fuse" in capsys.readouterr().err
    assert main([*fuse, "revoke-ecc", "0", "--key-count", "1"]) == 1
    assert main([*fuse, "lifecycle", "manufacturing"]) == 1
    assert main([*fuse, "vendor-key-hash", "ab" * 48]) == 1  # already fused, other value
    assert snapshot(dev) == before
    assert main([*fuse, "revoke-pqc", "1", "--key-count", "2"]) == 0
    assert main([*fuse, "owner-key-hash", "cd" * 48]) == 0
    assert main([*fuse, "anti-rollback-disable"]) == 0
    assert main([*fuse, "lock-debug"]) == 0
    assert main([*fuse, "field-entropy"]) == 1  # fused at manufacturing
    fuses = Device(dev).fuses
    assert fuses.pqc_revocation == 0b10
    assert fuses.owner_key_hash == b"\xcd" * 48
    assert fuses.anti_rollback_disabled


def test_revoke_without_key_count_is_a_usage_error(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``rot fuse revoke-*`` used to assume every slot (4 ECC, 32 PQC) holds a key: on a
    product of 2 ECC keys, revoking key 1 after key 0 left no usable key (the device could
    boot nothing) and was accepted. The count is now required: exit 2, no fuse written."""
    _ca, dev, _bundle = setup
    fuse = ["rot", "fuse", "--device", str(dev)]
    before = snapshot(dev)
    for which in ("revoke-ecc", "revoke-pqc"):
        with pytest.raises(SystemExit) as exc:
            main([*fuse, which, "1"])
        assert exc.value.code == 2
        assert "--key-count" in capsys.readouterr().err
    assert snapshot(dev) == before
    assert main([*fuse, "revoke-ecc", "0", "--key-count", "2"]) == 0
    assert main([*fuse, "revoke-ecc", "1", "--key-count", "2"]) == 1  # the last usable key
    assert Device(dev).fuses.ecc_revocation == 0b01


def test_a_refused_boot_exits_1_and_keeps_the_state(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ca, dev, bundle = setup
    boot = ["rot", "boot", "--device", str(dev), "--at", AT, "--bundle"]
    assert main([*boot, str(bundle)]) == 0
    before = snapshot(dev)
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(Product.generate().bundle())
    capsys.readouterr()
    assert main([*boot, str(foreign)]) == 1
    assert "key-descriptor-mismatch" in capsys.readouterr().err
    assert snapshot(dev) == before
    assert main([*boot, str(bundle), "--at", "2026-06-01T12:00:00"]) == 2  # no UTC offset


def test_a_bundle_over_the_limit_is_refused_by_its_size_unread(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rot boot --bundle`` of a 200 MiB file (sparse): refused from its size, beyond the
    largest bundle (128 MiB), and the device's state kept. It was read whole first."""
    _ca, dev, _bundle = setup
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    before = snapshot(dev)
    capsys.readouterr()
    assert main(["rot", "boot", "--device", str(dev), "--at", AT, "--bundle", str(big)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: limit-exceeded: {big} is larger than 134217728 bytes\n"
    )
    assert snapshot(dev) == before


def test_boot_takes_expired_manifest_report_or_refuse(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Old behaviour: ``rot boot`` had no way to pass ``expired_manifest`` and refused every
    manifest outside its dates (``--expired-manifest`` was a usage error)."""
    _ca, dev, bundle = setup
    later = (NOW + dt.timedelta(days=400)).isoformat()
    boot = ["rot", "boot", "--device", str(dev), "--bundle", str(bundle), "--at", later]
    capsys.readouterr()
    for refuse in ([], ["--expired-manifest", "refuse"]):
        before = snapshot(dev)
        assert main([*boot, *refuse]) == 1
        assert capsys.readouterr().err == (
            "ironroot: manifest-expired: the manifest expired at 2027-06-01T12:00:00+00:00"
            " (vendor)\n"
        )
        assert snapshot(dev) == before
    assert main([*boot, "--expired-manifest", "report", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["manifest_validity"] == "the manifest expired at 2027-06-01T12:00:00+00:00 (vendor)"
    with pytest.raises(SystemExit) as usage:
        main([*boot, "--expired-manifest", "ignore"])
    assert usage.value.code == 2


def test_derive_child_and_inspect_cert(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ca, dev, bundle = setup
    assert main(["rot", "boot", "--device", str(dev), "--bundle", str(bundle), "--at", AT]) == 0
    out = tmp_path / "child"
    argv = ["rot", "derive-child", "--device", str(dev), "--measurement", "ab" * 48]
    assert main([*argv, "--label", "bmc", "--out", str(out)]) == 0
    assert (out / "bmc-ecc.key.pem").stat().st_mode & 0o777 == 0o600
    capsys.readouterr()
    assert main(["rot", "inspect-cert", str(out / "bmc-ecc.cert.der"), "--json"]) == 0
    (doc,) = json.loads(capsys.readouterr().out)["result"]
    assert doc["dice"]["tcb_infos"][0]["fwids"][0]["digest"] == "ab" * 48
    assert doc["dice"]["tcb_infos"][0]["type"] == "bmc"
    assert main(["rot", "inspect-cert", str(dev / "idevid-mldsa.cert.der"), "--json"]) == 0
    (idevid,) = json.loads(capsys.readouterr().out)["result"]
    assert idevid["dice"]["key_purposes"] == ["identityInit", "eca"]
    assert main([*argv, "--label", "no/slash", "--out", str(out)]) == 2


def test_derive_child_into_an_unusable_folder_measures_nothing(
    setup: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out`` that cannot be a folder (a file stands there) exits 2 ``input-unavailable``;
    before, PCR2 had already been extended with the child's measurement, so a command that
    failed, and gave the child no identity, still left a ``dpe:`` event in every later quote
    (and a second ``dpe:bmc`` once it was run again). The folder is made first now."""
    _ca, dev, bundle = setup
    assert main(["rot", "boot", "--device", str(dev), "--bundle", str(bundle), "--at", AT]) == 0
    before = snapshot(dev)
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    argv = ["rot", "derive-child", "--device", str(dev), "--measurement", "ab" * 48]
    assert main([*argv, "--label", "bmc", "--out", str(taken)]) == 2
    assert "ironroot: input-unavailable:" in capsys.readouterr().err
    assert snapshot(dev) == before
    assert [e.name for e in Device(dev).boot_state.log].count("dpe:bmc") == 0  # type: ignore[union-attr]


def test_provisioning_twice_is_refused(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ca, dev, _bundle = setup
    before = snapshot(dev)
    argv = ["rot", "provision", "--device", str(dev), "--vendor-key-hash", "aa" * 48]
    argv += ["--vendor-ca-key", str(ca / "vendor-ca-ecc.key.pem")]
    argv += ["--vendor-ca-key", str(ca / "vendor-ca-mldsa.key.pem"), *_ca_certs(ca)]
    assert main(argv) == 1
    assert "conflict" in capsys.readouterr().err
    assert snapshot(dev) == before
    assert main(["rot", "ca-init", "--out", str(ca)]) == 1  # never overwrites a CA key


@pytest.mark.parametrize("link", [True, False])
def test_provisioning_a_device_whose_fuses_were_removed_or_linked_is_refused(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str], link: bool
) -> None:
    """``provision`` over a device whose ``fuses.json`` was removed created a blank device
    over its state root; a dangling link there was taken for "no device" too."""
    ca, dev, _bundle = setup
    (dev / "fuses.json").unlink()
    if link:
        (dev / "fuses.json").symlink_to("elsewhere.json")

    def files() -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in dev.iterdir() if p.is_file() and p.name != ".lock"}

    before = files()
    argv = ["rot", "provision", "--device", str(dev), "--vendor-key-hash", "aa" * 48]
    argv += ["--vendor-ca-key", str(ca / "vendor-ca-ecc.key.pem")]
    argv += ["--vendor-ca-key", str(ca / "vendor-ca-mldsa.key.pem"), *_ca_certs(ca)]
    assert main(argv) == 1
    expected = "fuses.json is a link" if link else "fuses.json was removed from the device"
    assert f"ironroot: device-state-tampered: {expected}" in capsys.readouterr().err
    assert files() == before
    assert (dev / "fuses.json").is_symlink() is link


def test_provision_keeps_the_obfuscation_key_beside_the_device(
    setup: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _ca, dev, _bundle = setup
    key = dev.parent / "dev.obfuscation-key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert not any(p.name == key.name for p in dev.iterdir())
    assert bytes.fromhex(key.read_text().strip()) not in b"".join(snapshot(dev).values())
    assert main(["rot", "counter", "increment", "--device", str(dev), "hsm"]) == 0
    capsys.readouterr()
    assert main(["rot", "show", "--device", str(dev)]) == 0
    assert "counter hsm" in capsys.readouterr().out
