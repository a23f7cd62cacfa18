"""``ironroot audit export|verify`` end to end, the trust file, and the HTML report."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world
from tests.hsm_devices import self_signed_device

from ironroot.audit import (
    AuditReport,
    AuditStep,
    AuditTrust,
    check_bundle,
    render_html,
    verify_bundle,
)
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey, load_certificate
from ironroot.errors import ConfigError, MalformedInput, UnknownIssuer
from ironroot.witness import Cosigner

AT = EXPORTED.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-cli"))


@pytest.fixture(scope="module")
def trust_file(aw: AuditWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return aw.write_trust(tmp_path_factory.mktemp("auditor"))


@pytest.fixture(scope="module")
def exported(aw: AuditWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "node-0001.audit"
    argv = ["audit", "export", NODE, "--fleet", str(aw.fleet.directory)]
    argv += ["--log-url", aw.world.urls["trusted"], "--out", str(out), "--at", AT]
    assert main(argv) == 0
    return out


def test_the_trust_file_is_the_trust_the_tests_build(
    aw: AuditWorld, trust_file: Path, exported: Path
) -> None:
    trust = AuditTrust.load_toml(trust_file)
    built = aw.trust()
    for name in ("platform", "vendor_ecc", "vendor_pqc", "service_keys", "issuers"):
        assert getattr(trust.platform, name) == getattr(built.platform, name), name
    assert trust.platform.safe["bmc"].max_severity == "medium"
    assert [p.key for p in trust.review_providers] == [aw.provider.public_key]
    assert trust.vendor_roots == built.vendor_roots
    assert trust.checkpoint_keys == built.checkpoint_keys
    assert set(trust.verifier_keys) == set(built.verifier_keys)
    assert trust.fused_vendor_key_hash == built.platform.vendor_key_hash
    assert verify_bundle(exported.read_bytes(), trust).ok


def test_export_then_verify_from_the_command_line(
    aw: AuditWorld,
    trust_file: Path,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    html = tmp_path / "report.html"
    code = main(["audit", "verify", str(exported), "--trust", str(trust_file), "--html", str(html)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"Audit of {NODE}" in out
    for title in ("Sealed by the node's root of trust", "Firmware of bmc", "SPDM measurements"):
        assert title in out
    assert "no step failed; not checked: hsm, releases" in out  # the node has no HSM
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert (
        "No step failed. Not checked (not present, or nothing trusted to check it with): " in page
    )
    assert "firmware:bmc" in page
    assert "<script" not in page


def test_the_report_and_the_bundle_never_replace_a_private_key(
    aw: AuditWorld,
    trust_file: Path,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--html`` and ``--out`` keep every verb's rule (``ironroot.cli._output``)."""
    assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "k")]) == 0
    key = tmp_path / "k.key"
    before = key.read_bytes()
    verify = ["audit", "verify", str(exported), "--trust", str(trust_file), "--html", str(key)]
    export = ["audit", "export", NODE, "--fleet", str(aw.fleet.directory),
              "--log-url", aw.world.urls["trusted"], "--out", str(key), "--at", AT]  # fmt: skip
    for argv in (verify, export):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"ironroot: config: {key} holds a private key"), err
        assert key.read_bytes() == before


def test_json_output_of_export_and_verify(
    aw: AuditWorld,
    trust_file: Path,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "again.audit"
    argv = ["audit", "export", NODE, "--fleet", str(aw.fleet.directory), "--json"]
    argv += ["--log-url", aw.world.urls["trusted"], "--out", str(out), "--at", AT]
    capsys.readouterr()
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    assert summary["node"] == NODE
    assert summary["absent"] == {"hsm": summary["absent"]["hsm"]}
    assert "firmware/bmc/bundle.bin" in summary["members"]
    monkeypatch.setenv("IRONROOT_AUDIT_TRUST", str(trust_file))  # the trust from the environment
    assert main(["audit", "verify", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["error"] is None
    assert report["steps"][1] == {
        "name": "seal",
        "title": "Sealed by the node's root of trust",
        "status": "ok",
        "lines": report["steps"][1]["lines"],
        "error": None,
    }


def test_a_changed_byte_exits_1_naming_the_break(
    trust_file: Path, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(exported.read_bytes())
    data[-100] ^= 0x40  # inside the last member
    changed = tmp_path / "changed.audit"
    changed.write_bytes(bytes(data))
    html = tmp_path / "broken.html"
    capsys.readouterr()
    argv = ["audit", "verify", str(changed), "--trust", str(trust_file), "--html", str(html)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("ironroot: member-changed: members: member ")
    assert "broken at members" in captured.out
    assert "Broken at step members: member-changed" in html.read_text()
    assert main([*argv, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["error"]["code"] == "member-changed"
    assert doc["error"]["check"] == "members"
    assert [s["status"] for s in doc["steps"]] == ["ok", "ok", "failed"]


def test_a_truncated_bundle_exits_1_naming_the_format(
    trust_file: Path, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = exported.read_bytes()
    for keep in (0, 1, len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut-{keep}.audit"
        cut.write_bytes(data[:keep])
        capsys.readouterr()
        assert main(["audit", "verify", str(cut), "--trust", str(trust_file)]) == 1
        assert capsys.readouterr().err.startswith("ironroot: bundle-malformed: format: ")


def test_a_file_larger_than_any_bundle_exits_1_naming_the_format(
    trust_file: Path,
    exported: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file over the 1 GiB a bundle may be was ``limit-exceeded`` with exit 2 (a usage
    error, though the auditor typed nothing wrong), no step named and no report written; it
    is the format step's failure like any other file that is no bundle. (The limit is
    lowered for the test: a file of 1 GiB would be read whole.)"""
    import ironroot.cli.audit

    monkeypatch.setattr(ironroot.cli.audit, "_MAX_BUNDLE", exported.stat().st_size - 1)
    html = tmp_path / "oversized.html"
    argv = ["audit", "verify", str(exported), "--trust", str(trust_file), "--html", str(html)]
    capsys.readouterr()
    assert main(argv) == 1
    captured = capsys.readouterr()
    detail = (
        f"{exported} is larger than any audit bundle ({exported.stat().st_size - 1} bytes): "
        "not read"
    )
    assert captured.err == f"ironroot: bundle-malformed: format: {detail}\n"
    assert "broken at format" in captured.out
    assert "Broken at step format: bundle-malformed" in html.read_text()
    assert main([*argv, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["bundle_sha384"]) == (False, "")
    assert doc["error"] == {
        "code": "bundle-malformed",
        "class": "AuditBundleRejected",
        "message": detail,
        "check": "format",
    }
    assert [(s["name"], s["status"]) for s in doc["steps"]] == [("format", "failed")]


def test_verify_without_a_trust_is_a_usage_error(
    exported: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONROOT_AUDIT_TRUST", raising=False)
    assert main(["audit", "verify", str(exported)]) == 2
    assert "give --trust FILE or set IRONROOT_AUDIT_TRUST" in capsys.readouterr().err


def test_trust_file_refusals(trust_file: Path, tmp_path: Path) -> None:
    text = trust_file.read_text()
    cases = {
        "no vendor roots": text.replace('roots = ["vendor-ca"]\n', ""),
        "a missing key file": text.replace("verifier.pub.pem", "absent.pem"),
        "an unknown setting": text + "\n[hsm]\nkeys = []\n",
        "a checkpoint key that is no vkey": text.replace(
            "checkpoint_keys = [", 'checkpoint_keys = ["x", '
        ),
        "a fused hash that is no hex": text.replace("[vendor]\n", '[vendor]\nfused_hash = "zz"\n'),
    }
    for case, content in cases.items():
        path = trust_file.parent / f"{case.replace(' ', '-')}.toml"
        path.write_text(content)
        with pytest.raises(ConfigError):
            AuditTrust.load_toml(path)
    not_toml = tmp_path / "trust.toml"
    not_toml.write_text("[vendor\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        AuditTrust.load_toml(not_toml)
    assert issubclass(ConfigError, MalformedInput)  # exit 2: the auditor's input


def test_the_html_report_escapes_what_the_bundle_says() -> None:
    report = AuditReport(
        "ab" * 48,
        (AuditStep("node", "The node <b>", "ok", ('<script>alert("x")</script>',)),),
        node="<img src=x onerror=alert(1)>",
    )
    page = render_html(report)
    assert "<script>" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def _audit_section() -> str:
    text = (Path(__file__).parents[2] / "docs" / "fleet.md").read_text()
    start = text.index("## External audit")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def test_the_documented_commands_parse() -> None:
    from ironroot.cli._main import build_parser

    lines = [
        line.split("  #")[0].strip()
        for line in _audit_section().splitlines()
        if line.startswith("ironroot audit")
    ]
    assert len(lines) >= 4
    for line in lines:
        words = shlex.split(line)[1:]
        args = build_parser(words).parse_args(words)
        assert args.group == "audit", line


def test_the_documented_trust_file_loads(aw: AuditWorld, trust_file: Path) -> None:
    section = _audit_section()
    start = section.index("```toml\n") + len("```toml\n")
    text = section[start : section.index("```", start)]
    vkey = aw.checkpoint_keys()[0].vkey
    text = text.replace("transparency.example+1a2b3c4d+AU…", vkey)
    witnesses = {}
    for name in re.findall(r'"(witness\.example/w\d)\+[0-9a-f]{8}\+[A-Za-z0-9+/]*…"', text):
        cosigner = Cosigner(name, PrivateKey.generate(Algorithm.ED25519))
        witnesses[name] = cosigner.verifier().vkey
    text = re.sub(
        r'"(witness\.example/w\d)\+[0-9a-f]{8}\+[A-Za-z0-9+/]*…"',
        lambda m: f'"{witnesses[m.group(1)]}"',
        text,
    )
    base = trust_file.parent
    (base / "hsm-attestation.pub.pem").write_bytes(aw.verifier.public_key.to_pem())
    hsm_root = load_certificate(self_signed_device().chain[-1], der_only=True)
    (base / "hsm-vendor-root.pem").write_bytes(hsm_root.public_bytes(Encoding.PEM))
    documented = base / "documented.toml"
    documented.write_text(text)
    trust = AuditTrust.load_toml(documented)
    assert trust.platform.issuers_of("nvme") == frozenset({"https://vendor.example"})
    assert len(trust.hsm_attestation_keys) == 1
    assert len(trust.hsm_roots) == 1
    assert len(witnesses) == 3
    assert {w.vkey for w in trust.witnesses} == set(witnesses.values())
    assert trust.witness_quorum == 2


def test_the_trust_file_s_service_issuer_pins_every_receipt_the_audit_relies_on(
    aw: AuditWorld, trust_file: Path, exported: Path
) -> None:
    bundle = exported.read_bytes()
    assert AuditTrust.load_toml(trust_file).platform.service_issuer is None  # as before
    text = trust_file.read_text()
    service = "https://transparency.example"  # what the trusted log's receipts name
    other = "https://another-ts.example"

    def pinned(issuer: str) -> AuditTrust:
        path = trust_file.parent / "pinned-trust.toml"
        path.write_text(
            text.replace(
                'service_keys = ["service-keys.cbor"]\n',
                f'service_keys = ["service-keys.cbor"]\nservice_issuer = "{issuer}"\n',
            )
        )
        trust = AuditTrust.load_toml(path)
        assert trust.platform.service_issuer == issuer
        return trust

    unpinned = check_bundle(bundle, AuditTrust.load_toml(trust_file))
    assert unpinned.ok
    assert unpinned.step("transparency").status == "ok"
    right = check_bundle(bundle, pinned(service))
    assert right.ok
    assert right.step("transparency").status == "ok"
    # the trusted key signed every receipt, but the auditor knows the log by another iss:
    # the PFM, each device's reference values, the SAFE review and the log proofs of the
    # transparency step are refused alike
    report = check_bundle(bundle, pinned(other))
    refused = {
        s.name: s.error for s in report.steps if s.status == "failed" and s.error is not None
    }
    assert set(refused) == {"pfm", "spdm:nic", "spdm:gpu", "spdm:nvme", "reviews", "transparency"}
    proofs = refused.pop("transparency")
    assert type(proofs) is UnknownIssuer
    assert proofs.code == "untrusted-service"
    assert re.fullmatch(
        r"receipt \d+ of \S+ is not by the trusted transparency service \(the receipt is "
        + re.escape(f"issued by {service!r}, not by the transparency service {other!r})"),
        proofs.detail,
    ), proofs.detail
    for name, error in refused.items():
        assert type(error) is UnknownIssuer, name
        assert error.code == "untrusted-service", name
        assert error.detail.endswith(
            f"is by a trusted transparency service (the receipt is issued by {service!r}, "
            f"not by the transparency service {other!r})"
        ), name
    assert report.step("reviews").error.detail.startswith(  # type: ignore[union-attr]
        "no receipt of the review of 'sha384:"
    )
