"""``ironroot evidence verify``, called in-process through its own ``register``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ironroot.cli import evidence
from ironroot.errors import IronrootError

pytestmark = pytest.mark.vectors


def run(*argv: str) -> int:
    """Parse and run like ``ironroot`` does (typed errors become their exit codes)."""
    parser = argparse.ArgumentParser(prog="ironroot")
    evidence.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(list(argv))
    try:
        return int(args.func(args))
    except IronrootError as exc:
        return exc.exit_code


def test_verify_hex_snp_report_json(snp_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "evidence", "verify", str(snp_dir / "tests_certs_data_report_milan.hex"),
        "--cert", str(snp_dir / "tests_certs_data_vcek_milan.der"),
        "--at", "2025-06-01T00:00:00Z", "--json",
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True
    assert out["format"] == "snp"
    assert out["claims"]["format"] == "snp"
    assert [c["name"] for c in out["checks"]] == [
        "structure", "signature", "fields", "chain", "endorsement",
    ]  # fmt: skip
    assert all(c["ok"] for c in out["checks"])
    assert {"name": "nonce", "reason": "no nonce given: freshness not checked"} in out[
        "not_checked"
    ]
    assert out["claims"]["identity"]["product"] == "Milan"


def test_verify_vlek_with_chain_pem_text(snp_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "evidence", "verify", str(snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin"),
        "--cert", str(snp_dir / "deps_verifier_test_data_snp_test-vlek.der"),
        "--cert", str(snp_dir / "verify_trust_ask_ark_milan_vlek.pem"),
        "--at", "2025-06-01",
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "verdict: verified" in out
    assert "signing_key: vlek" in out


def test_expired_vlek_fails_with_reason(snp_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "evidence", "verify", str(snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin"),
        "--cert", str(snp_dir / "deps_verifier_test_data_snp_test-vlek.der"),
        "--at", "2026-01-01T00:00:00+00:00", "--json",
    )  # fmt: skip
    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    assert out["error"]["code"] == "certificate-expired"
    assert out["error"]["check"] == "chain"
    assert [(c["name"], c["ok"]) for c in out["checks"]] == [
        ("structure", True), ("signature", True), ("fields", True), ("chain", False),
    ]  # fmt: skip


def test_azure_hcl_auto_detected(snp_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "evidence", "verify", str(snp_dir / "deps_verifier_test_data_az-snp-vtpm_hcl-report.bin"),
        "--cert", str(snp_dir / "deps_verifier_test_data_az-snp-vtpm_vcek.pem"),
        "--at", "2025-06-01", "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["claims"]["format"] == "azure-hcl"


def test_tdx_quote(tdx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quote = str(tdx_dir / "testing_testdata_tdx_prod_quote_SPR_E4.dat")
    code = run(
        "evidence", "verify", quote, "--at", "2023-06-20",
        "--crl", str(tdx_dir / "testing_testdata_pckcrl"),
        "--crl", str(tdx_dir / "testing_testdata_rootcrl.der"),
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "format:      tdx" in out
    assert "fmspc: 50806f000000" in out
    assert "ok   revocation" in out
    assert "--   tcb-status: not checked (no collateral given (TCB Info, QE Identity))" in out


def test_tdx_quote_with_stale_crls(tdx_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quote = str(tdx_dir / "testing_testdata_tdx_prod_quote_SPR_E4.dat")
    crls = (
        "--crl", str(tdx_dir / "testing_testdata_pckcrl"),
        "--crl", str(tdx_dir / "testing_testdata_rootcrl.der"),
    )  # fmt: skip
    assert run("evidence", "verify", quote, "--at", "2026-11-28", *crls, "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert out["error"]["code"] == "collateral-expired"
    assert out["error"]["check"] == "revocation"
    assert run(
        "evidence", "verify", quote, "--at", "2026-11-28", *crls,
        "--allow-stale-collateral", "--json",
    ) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    revocation = next(c for c in out["checks"] if c["name"] == "revocation")
    assert "stale: allowed" in revocation["detail"]
    assert len(out["claims"]["raw"]["stale_collateral"]) == 2


def test_tampered_report_exits_1(
    tmp_path: Path, snp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray((snp_dir / "deps_verifier_test_data_snp_test-report.bin").read_bytes())
    data[0x90] ^= 0x80
    path = tmp_path / "report.bin"
    path.write_bytes(bytes(data))
    cert = str(snp_dir / "deps_verifier_test_data_snp_test-vcek.der")
    assert run("evidence", "verify", str(path), "--cert", cert, "--at", "2025-06-01") == 1
    assert "FAILED [signature] (bad-signature)" in capsys.readouterr().out


def test_malformed_input_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"\x01\x02junk")
    assert run("evidence", "verify", str(path)) == 2
    assert run("evidence", "verify", str(path), "--format", "snp") == 2


def test_bad_time_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(b"x")
    with pytest.raises(SystemExit) as exc:
        run("evidence", "verify", str(path), "--at", "yesterday")
    assert exc.value.code == 2


def test_registered_in_the_ironroot_command(
    snp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import main

    report = str(snp_dir / "deps_verifier_test_data_snp_test-vlek-report.bin")
    vlek = str(snp_dir / "deps_verifier_test_data_snp_test-vlek.der")
    assert main(["evidence", "verify", report, "--cert", vlek, "--at", "2025-06-01"]) == 0
    assert main(["evidence", "verify", report, "--cert", vlek, "--at", "2026-01-01"]) == 1
    assert "certificate-expired" in capsys.readouterr().out
    assert main(["evidence", "verify", report, "--format", "tdx"]) == 2


def test_a_failure_is_also_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As every verb's (docs/cli.md): the verdict on stdout, the code and message on stderr,
    with or without ``--json``."""
    from ironroot.cli import main

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not evidence")
    line = (
        "ironroot: malformed-evidence: evidence format not recognised "
        "(known: ironroot, spdm, nvidia-gpu, azure-hcl, snp, tdx)\n"
    )
    for extra in ([], ["--json"]):
        assert main(["evidence", "verify", str(junk), *extra]) == 2
        captured = capsys.readouterr()
        assert captured.err == line, extra
        assert captured.out.count("\n") == 1, extra  # the verdict, or one JSON object
