"""``ironroot rot inspect-cert``, called in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironroot.cli import main

pytestmark = pytest.mark.vectors


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["rot", "inspect-cert", *argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True
    out = doc["result"]
    assert isinstance(out, list)
    return out


def test_inspect_caliptra_multi_tcb_info_json(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (doc,) = _json(capsys, str(vectors / "caliptra" / "fmc_alias_cert_mldsa.der"))
    assert doc["kind"] == "certificate"
    assert doc["signature_algorithm"] == "ML-DSA-87"
    assert doc["public_key_algorithm"] == "ML-DSA-87"
    assert doc["not_after"] == "9999-12-31T23:59:59+00:00"
    dice = doc["dice"]
    assert isinstance(dice, dict)
    assert dice["multi_tcb_info"] is True
    assert dice["ueid"] == "00" * 17
    device, fmc = dice["tcb_infos"]
    assert device["svn"] == 7
    assert device["svn_raw"] == 0x107
    assert device["type"] == "DEVICE_INFO"
    assert device["flags"]["names"] == ["fixedWidth"]
    assert device["fwids"][0]["hash_alg"] == "sha384"
    assert device["fwids"][0]["digest"].startswith("89174d323270f9d4")
    assert fmc["svn"] == 9
    assert fmc["type"] == "FMC_INFO"


def test_inspect_plain_svn_has_no_svn_raw(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (doc,) = _json(capsys, str(vectors / "cerberus" / "ca-ueid-sha384.csr"))
    assert doc["kind"] == "csr"
    dice = doc["dice"]
    assert isinstance(dice, dict)
    (tcb,) = dice["tcb_infos"]
    assert tcb["svn"] == 0x12345678
    assert "svn_raw" not in tcb
    assert tcb["version"] == "1.2.3.4"
    assert tcb["layer"] == 0
    assert tcb["fwids"][0]["hash_alg"] == "sha384"
    assert dice["ueid"] == "1122334455667788"


def test_inspect_chain_prints_each_certificate(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _json(capsys, str(vectors / "caliptra" / "test_owner_certchain.der"))
    assert [d["subject"] for d in docs] == [
        "CN=Test CA",
        "CN=Test Intermediate CA",
        "CN=Test Bootloader Requester",
    ]
    dice = docs[2]["dice"]
    assert isinstance(dice, dict)
    assert dice["key_purposes"] == ["eca", "identityLoc", "attestLoc", "assertLoc"]


def test_inspect_redacted_lists_invalid_extension(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (doc,) = _json(capsys, str(vectors / "caliptra" / "rt_alias_cert_redacted.der"))
    dice = doc["dice"]
    assert isinstance(dice, dict)
    assert [i["oid"] for i in dice["invalid"]] == ["2.23.133.5.4.1"]


def test_inspect_open_dice_table(vectors: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = vectors / "dice-open" / "_X509_Ed25519_cert_full_cert_chain_0.cert"
    assert main(["rot", "inspect-cert", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OpenDice.mode_name" in out
    assert "normal" in out
    assert "Ed25519" in out


def test_inspect_table_shows_tcb_fields(vectors: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rot", "inspect-cert", str(vectors / "cerberus" / "riot_core-devid.crt")]) == 0
    out = capsys.readouterr().out
    assert "TcbInfo[0].svn" in out
    assert "305419896" in out
    assert "ecdsa-null-params" in out


def test_inspect_non_certificate_exits_2(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rot", "inspect-cert", str(vectors / "dice-open" / "riot-ext.der")]) == 2
    assert "malformed-certificate" in capsys.readouterr().err
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"hello\n")
    assert main(["rot", "inspect-cert", str(junk)]) == 2


@pytest.mark.parametrize("where", ["file", "--vendor-ca-cert"])
def test_a_certificate_file_over_the_limit_is_refused_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """A certificate file holds at most 16 certificates of 64 KiB: a 200 MiB one (sparse)
    is refused from its size. It was read whole (some 240 MB of memory), then refused."""
    big = tmp_path / "big.pem"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    if where == "file":
        argv = ["rot", "inspect-cert", str(big)]
    else:
        quote = tmp_path / "quote.cbor"
        quote.write_bytes(b"not a quote")
        argv = ["rot", "verify-quote", str(quote), "--nonce", "00" * 32,
                "--vendor-ca-cert", str(big)]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"ironroot: limit-exceeded: {big} is larger than 1048576 bytes\n"
    )
