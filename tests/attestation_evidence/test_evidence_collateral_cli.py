"""``ironroot evidence verify`` with Intel collateral, CRLs and ``--allow-stale-collateral``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from test_evidence_cli import run

from ironroot.attestation import read_tdx_collateral
from ironroot.attestation.evidence import _tdx_verify
from ironroot.errors import ConfigError, MalformedCertificate, MalformedCollateral
from tee_fakes import NEXT_UPDATE, TDX_NOW, FakeIntel, platform_level


@pytest.fixture
def intel(monkeypatch: pytest.MonkeyPatch) -> FakeIntel:
    """A self-made Intel PKI whose root stands in for the built-in Intel SGX Root CA."""
    fake = FakeIntel()
    monkeypatch.setattr(_tdx_verify, "builtin_intel_root", lambda: fake.root)
    return fake


def _collateral_dir(tmp_path: Path, intel: FakeIntel, **docs: bytes) -> Path:
    folder = tmp_path / "collateral"
    folder.mkdir()
    files = {
        "tcb_info.json": intel.tcb_info(),
        "qe_identity.json": intel.qe_identity(),
        "tcb_signing_chain.pem": intel.signing_chain(),
        "pck_crl.der": intel.crl("pck").public_bytes(Encoding.DER),
        "root_crl.pem": intel.crl("root").public_bytes(Encoding.PEM),
    }
    files.update({name.replace("__", "."): data for name, data in docs.items()})
    for name, data in files.items():
        if data:
            (folder / name).write_bytes(data)
    return folder


def _quote(tmp_path: Path, intel: FakeIntel) -> str:
    path = tmp_path / "quote.dat"
    path.write_bytes(intel.quote() + bytes(100))  # a fixed-size buffer, as guests hand it over
    return str(path)


def _json(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


AT = ("--at", TDX_NOW.isoformat())


def test_collateral_directory_gives_the_tcb_status(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _collateral_dir(tmp_path, intel)
    code = run("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *AT,
               "--json")  # fmt: skip
    assert code == 0
    out = _json(capsys)
    checks = {c["name"]: c for c in out["checks"]}
    for name in ("revocation", "collateral", "qe-identity", "tcb-status"):
        assert checks[name]["ok"], name
    assert out["not_checked"] == [
        {"name": "nonce", "reason": "no nonce given: freshness not checked"}
    ]
    assert out["claims"]["identity"]["tcb_status"] == "UpToDate"
    assert out["claims"]["raw"]["tcb"]["tcb_evaluation_data_number"] == 17
    assert out["claims"]["raw"]["trailing_bytes"] == 100


def test_text_output_names_the_status(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _collateral_dir(tmp_path, intel)
    assert run("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *AT) == 0
    out = capsys.readouterr().out
    assert "tcb_status: UpToDate" in out
    assert "ok   tcb-status: UpToDate" in out


def test_single_files_instead_of_a_directory(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str]
) -> None:
    tcb_info = tmp_path / "tcb.json"
    tcb_info.write_bytes(intel.tcb_info([platform_level("SWHardeningNeeded")]))
    chain = tmp_path / "chain.pem"
    chain.write_bytes(intel.signing_chain())
    argv = ("evidence", "verify", _quote(tmp_path, intel), "--tcb-info", str(tcb_info),
            "--tcb-signing-chain", str(chain), *AT, "--json")  # fmt: skip
    # Intel collateral without the CRLs of the PCK chain is incomplete (a usage error)
    assert run(*argv) == 2
    assert _json(capsys)["error"]["code"] == "crl-missing"
    crls = []
    for name in ("pck", "root"):
        path = tmp_path / f"{name}_crl.der"
        path.write_bytes(intel.crl(name).public_bytes(Encoding.DER))
        crls += ["--crl", str(path)]
    assert run(*argv, *crls) == 0
    out = _json(capsys)
    assert out["claims"]["identity"]["tcb_status"] == "SWHardeningNeeded"
    skipped = {n["name"]: n["reason"] for n in out["not_checked"]}
    assert "revocation" not in skipped
    assert skipped["qe-identity"] == "no QE Identity given"


def test_stale_collateral_refused_then_allowed(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _collateral_dir(tmp_path, intel)
    late = ("--at", NEXT_UPDATE.replace(day=2).isoformat())
    argv = ("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *late)
    assert run(*argv, "--json") == 1
    out = _json(capsys)
    assert out["error"]["code"] == "collateral-expired"
    assert out["error"]["check"] == "revocation"  # the CRLs come first
    assert run(*argv, "--allow-stale-collateral", "--json") == 0
    out = _json(capsys)
    names = {s["name"] for s in out["claims"]["raw"]["stale_collateral"]}
    assert names == {
        "CRL of Intel SGX PCK Platform CA",
        "CRL of Intel SGX Root CA",
        "TCB Info 50806f000000",
        "QE Identity",
    }
    details = {c["name"]: c.get("detail", "") for c in out["checks"]}
    assert "stale: allowed" in details["revocation"]
    assert "stale: allowed" in details["collateral"]


def test_revoked_tcb_exits_1(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _collateral_dir(
        tmp_path, intel, tcb_info__json=intel.tcb_info([platform_level("Revoked")])
    )
    code = run("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *AT,
               "--json")  # fmt: skip
    assert code == 1
    assert _json(capsys)["error"] == {
        "code": "certificate-revoked",
        "message": "the platform's TCB is revoked (TCB Info 50806f000000, advisories none)",
        "check": "tcb-status",
    }


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ({"tcb_info__json": b"{}"}, MalformedCollateral),
        ({"qe_identity__json": b"[1, 2"}, MalformedCollateral),
        ({"tcb_signing_chain__pem": b""}, ConfigError),  # documents without their chain
        ({"tcb_signing_chain__pem": b"-----BEGIN CERTIFICATE-----\nAAAA\n"}, MalformedCertificate),
        ({"pck_crl__der": b"\x30\x03\x02\x01\x01"}, MalformedCertificate),
    ],
)
def test_a_bad_collateral_file_is_a_usage_error(
    tmp_path: Path,
    intel: FakeIntel,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, bytes],
    error: type[Exception],
) -> None:
    folder = _collateral_dir(tmp_path, intel, **files)
    with pytest.raises(error):
        read_tdx_collateral(folder)
    code = run("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *AT)
    assert code == 2
    lenient = read_tdx_collateral(folder, strict=False)
    assert len(lenient.problems) == 1
    assert lenient.problems[0].startswith(str(folder))


def test_missing_collateral_directory(tmp_path: Path, intel: FakeIntel) -> None:
    quote = _quote(tmp_path, intel)
    assert run("evidence", "verify", quote, "--collateral", str(tmp_path / "nope"), *AT) == 2


def test_collateral_and_crls_for_formats_that_cannot_use_them(
    tmp_path: Path, intel: FakeIntel, snp_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _collateral_dir(tmp_path, intel)
    report = str(snp_dir / "deps_verifier_test_data_snp_test-report.bin")
    vcek = str(snp_dir / "deps_verifier_test_data_snp_test-vcek.der")
    code = run("evidence", "verify", report, "--cert", vcek, "--collateral", str(folder),
               "--json")  # fmt: skip
    assert code == 2
    assert "takes no Intel TDX collateral" in _json(capsys)["error"]["message"]
    crl = folder / "pck_crl.der"
    junk = tmp_path / "quote.cbor"
    junk.write_bytes(b"\xa3junk")
    for fmt in ("ironroot", "spdm"):
        code = run("evidence", "verify", str(junk), "--format", fmt, "--crl", str(crl), "--json")
        assert code == 2
        assert "not checked against CRLs" in _json(capsys)["error"]["message"]


@pytest.mark.parametrize("chain", [b"hello\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n"])
def test_a_bad_signing_chain_given_alone_is_a_usage_error(
    tmp_path: Path, intel: FakeIntel, capsys: pytest.CaptureFixture[str], chain: bytes
) -> None:
    # the chain is read strictly even with nothing it would check: a file the command was
    # given is never silently left out (it was, and the quote verified with exit 0)
    path = tmp_path / "tcb_signing_chain.pem"
    path.write_bytes(chain)
    with pytest.raises(MalformedCertificate):
        read_tdx_collateral(signing_chain=path)
    code = run("evidence", "verify", _quote(tmp_path, intel), "--tcb-signing-chain", str(path),
               *AT, "--json")  # fmt: skip
    assert code == 2
    assert _json(capsys)["error"]["code"] == "malformed-certificate"
    folder = tmp_path / "collateral"
    folder.mkdir()
    (folder / "tcb_signing_chain.pem").write_bytes(chain)
    assert run("evidence", "verify", _quote(tmp_path, intel), "--collateral", str(folder), *AT) == 2
    assert len(read_tdx_collateral(folder, strict=False).problems) == 1
