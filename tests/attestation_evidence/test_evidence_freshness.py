"""Freshness through the one format table: every format checks the nonce by its binding rule,
and every verification says which checks ran, so nothing passes by omission."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    CheckLog,
    NonceBinding,
    VerifyOptions,
    check_binding,
    parse_evidence,
    verify_evidence,
)
from ironroot.cli import evidence
from ironroot.errors import IronrootError, KeyBindingMismatch, MalformedInput, StaleNonce

SNP_NOW = datetime(2025, 6, 1, tzinfo=UTC)
TDX_NOW = datetime(2026, 11, 28, tzinfo=UTC)
SNP_REPORT = "deps_verifier_test_data_snp_test-report.bin"
SNP_VCEK = "deps_verifier_test_data_snp_test-vcek.der"
HCL_REPORT = "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin"
HCL_VCEK = "deps_verifier_test_data_az-snp-vtpm_vcek.pem"
CCEL = "testing_testdata_ccel_cos-113-tdx-quote.dat"
QUOTE4 = "deps_verifier_test_data_tdx_quote_4.dat"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ironroot")
    evidence.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(list(argv))
    try:
        return int(args.func(args))
    except IronrootError as exc:
        return exc.exit_code


# --- the binding rules, pure --------------------------------------------------------------


def test_zero_padded_rule() -> None:
    rule = NonceBinding("zero-padded", keyed=True, description="")
    nonce = bytes(range(1, 33))
    padded = nonce + bytes(32)
    assert rule.check(padded, nonce, None) == "zero-padded: report data = nonce"
    assert rule.check(padded, padded, None)  # a 64-byte nonce is exact
    with pytest.raises(StaleNonce) as exc:
        rule.check(padded, bytes(range(2, 34)), None)
    assert exc.value.code == "nonce-mismatch"
    with pytest.raises(StaleNonce):  # non-zero bytes after the nonce
        rule.check(nonce + b"\x01" + bytes(31), nonce, None)
    with pytest.raises(StaleNonce):  # a nonce longer than the report data
        rule.check(padded, padded + b"\x00", None)
    with pytest.raises(MalformedInput, match="empty nonce"):
        rule.check(bytes(64), b"", None)  # an empty nonce would "match" all-zero report data


def test_exact_rule() -> None:
    rule = NonceBinding("exact", keyed=False, description="")
    nonce = bytes(range(32))
    assert rule.check(nonce, nonce, None) == "exact: report data = nonce"
    with pytest.raises(StaleNonce):
        rule.check(nonce + bytes(32), nonce, None)  # exact means exact: no padding
    with pytest.raises(MalformedInput):
        rule.check(nonce, nonce, b"key")  # no key can be bound


@pytest.mark.parametrize("alg", ["nonce ‖ SHA-256(key)", "sha256", "sha384", "sha512"])
def test_keyed_binding_forms(alg: str) -> None:
    rule = NonceBinding("zero-padded", keyed=True, description="")
    nonce, key = bytes(range(32)), b"the TEE's public key"
    if alg.startswith("nonce"):
        bound = nonce + hashlib.sha256(key).digest()
    else:
        bound = hashlib.new(alg, nonce + key).digest()
    report_data = bound + bytes(64 - len(bound))
    assert alg.upper().split("(")[0] in rule.check(report_data, nonce, key).upper()
    with pytest.raises((StaleNonce, KeyBindingMismatch)):
        rule.check(report_data, nonce, b"another key")
    with pytest.raises(StaleNonce):
        rule.check(report_data, bytes(32), key)


def test_answering_the_nonce_with_another_key_is_a_key_binding_mismatch() -> None:
    rule = NonceBinding("zero-padded", keyed=True, description="")
    nonce = bytes(range(32))
    report_data = nonce + hashlib.sha256(b"key A").digest()
    with pytest.raises(KeyBindingMismatch):
        rule.check(report_data, nonce, b"key B")


def test_a_format_that_cannot_bind_a_nonce_refuses_one() -> None:
    row = dataclasses.replace(EVIDENCE_FORMATS["snp"], binding=None)
    with pytest.raises(MalformedInput, match="cannot bind a nonce"):
        check_binding(row, VerifyOptions(now=SNP_NOW, nonce=b"n" * 32))
    check_binding(row, VerifyOptions(now=SNP_NOW))  # without a nonce: fine


def test_a_key_without_a_nonce_or_for_an_unkeyed_format_is_refused() -> None:
    with pytest.raises(MalformedInput, match="give both"):
        check_binding(EVIDENCE_FORMATS["snp"], VerifyOptions(now=SNP_NOW, bound_key=b"k"))
    with pytest.raises(MalformedInput, match="no key can be bound"):
        check_binding(
            EVIDENCE_FORMATS["spdm"], VerifyOptions(now=SNP_NOW, nonce=bytes(32), bound_key=b"k")
        )


# --- one test per hardware format: the right nonce passes, a wrong one is refused -------------


def _snp(vectors: Path) -> tuple[bytes, VerifyOptions]:
    folder = vectors / "tee" / "snp"
    vcek = (folder / SNP_VCEK).read_bytes()
    return (folder / SNP_REPORT).read_bytes(), VerifyOptions(now=SNP_NOW, certificates=(vcek,))


def _hcl(vectors: Path) -> tuple[bytes, VerifyOptions]:
    folder = vectors / "tee" / "snp"
    vcek = (folder / HCL_VCEK).read_bytes()
    return (folder / HCL_REPORT).read_bytes(), VerifyOptions(now=SNP_NOW, certificates=(vcek,))


def _tdx(vectors: Path) -> tuple[bytes, VerifyOptions]:
    return (vectors / "tee" / "tdx" / QUOTE4).read_bytes(), VerifyOptions(now=TDX_NOW)


_CASES = {"snp": _snp, "azure-hcl": _hcl, "tdx": _tdx}


@pytest.mark.vectors
@pytest.mark.parametrize("fmt", list(_CASES))
def test_the_right_nonce_passes_and_is_recorded(vectors: Path, fmt: str) -> None:
    data, options = _CASES[fmt](vectors)
    claims = verify_evidence(data, options)
    assert claims.format == fmt
    assert [c.name for c in claims.not_checked if c.name == "nonce"] == ["nonce"]
    nonce = claims.report_data.rstrip(b"\x00") or bytes(32)
    fresh = verify_evidence(data, dataclasses.replace(options, nonce=nonce))
    assert fresh.checks[-1].name == "nonce"
    assert fresh.checks[-1].ok
    assert fresh.checks[-1].detail.startswith("zero-padded")
    assert "nonce" not in [c.name for c in fresh.not_checked]


@pytest.mark.vectors
@pytest.mark.parametrize("fmt", list(_CASES))
def test_a_wrong_nonce_is_refused(vectors: Path, fmt: str) -> None:
    data, options = _CASES[fmt](vectors)
    log = CheckLog()
    with pytest.raises(StaleNonce) as exc:
        verify_evidence(data, dataclasses.replace(options, nonce=b"\x5a" * 32), checks=log)
    assert exc.value.check == "nonce"
    assert exc.value.code == "nonce-mismatch"
    *before, last = log.checks
    assert before
    assert all(c.ok for c in before)  # everything else passed ...
    assert (last.name, last.ok) == ("nonce", False)  # ... and the nonce check failed


@pytest.mark.vectors
def test_hcl_nonce_is_the_runtime_claims_user_data(vectors: Path) -> None:
    data, options = _hcl(vectors)
    claims = verify_evidence(data, dataclasses.replace(options, nonce=bytes(64)))
    runtime = claims.raw["azure_hcl"]["runtime_claims"]
    assert claims.report_data == bytes.fromhex(runtime["user-data"])
    # the hardware REPORT_DATA (the hash of the runtime claims) is not the nonce
    with pytest.raises(StaleNonce):
        verify_evidence(
            data, dataclasses.replace(options, nonce=bytes.fromhex(claims.raw["report_data"]))
        )


# --- the command line ---------------------------------------------------------------------


@pytest.mark.vectors
def test_cli_wrong_nonce_names_the_check(vectors: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = vectors / "tee" / "snp"
    base = ["evidence", "verify", str(folder / SNP_REPORT), "--cert", str(folder / SNP_VCEK)]
    base += ["--at", "2025-06-01", "--json"]
    assert run(*base, "--nonce", "00" * 32) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert out["error"] == {
        "code": "nonce-mismatch",
        "message": out["error"]["message"],
        "check": "nonce",
    }
    assert [c["name"] for c in out["checks"]][-1] == "nonce"
    right = "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2"
    assert run(*base, "--nonce", right) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checks"][-1] == {
        "name": "nonce",
        "ok": True,
        "detail": "zero-padded: report data = nonce",
    }


@pytest.mark.vectors
def test_cli_text_shows_what_was_not_checked(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = str(vectors / "tee" / "tdx" / CCEL)
    assert run("evidence", "verify", quote, "--at", "2026-11-28") == 0
    out = capsys.readouterr().out
    assert "--   nonce: not checked (no nonce given: freshness not checked)" in out
    assert "--   revocation: not checked (no CRL given)" in out
    assert "ok   quote-signature" in out


def test_cli_bind_key_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    junk = tmp_path / "evidence.bin"
    junk.write_bytes(b"\xa5" + b"\x00" * 40)
    # SPDM binds its 32-byte nonce exactly: no key can be bound beside it
    code = run(
        "evidence", "verify", str(junk), "--format", "spdm", "--nonce", "00" * 32,
        "--bind-key", str(pem), "--json",
    )  # fmt: skip
    assert code == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "malformed"
    assert "no key can be bound" in out["error"]["message"]
    # a key is bound beside a nonce: without one it is a usage error
    code = run("evidence", "verify", str(junk), "--format", "snp", "--bind-key", str(pem))
    assert code == 2
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_bytes(b"hello")
    code = run(
        "evidence", "verify", str(junk), "--format", "snp", "--nonce", "00",
        "--bind-key", str(not_a_key),
    )  # fmt: skip
    assert code == 2


def test_formats_lists_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("evidence", "formats", "--json") == 0
    rows = json.loads(capsys.readouterr().out)["formats"]
    assert [r["name"] for r in rows] == list(EVIDENCE_FORMATS)
    assert run("evidence", "formats") == 0
    text = capsys.readouterr().out
    assert "tdx: Intel TDX DCAP quote" in text
    assert "pinned root: Intel SGX Root CA sha256:44a0196b" in text


@pytest.mark.vectors
def test_inspect_parses_without_verifying(
    vectors: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray((vectors / "tee" / "snp" / SNP_REPORT).read_bytes())
    data[0x90] ^= 0x80  # the signature no longer verifies: inspect does not care
    name, parsed = parse_evidence(bytes(data))
    assert name == "snp"
    assert parsed["version"] >= 2
    path = vectors / "tee" / "tdx" / CCEL
    assert run("evidence", "inspect", str(path), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False
    assert out["format"] == "tdx"
    assert out["parsed"]["trailing_bytes"] > 0
