"""``ironroot attest init | appraise | verify-result`` on a real data directory."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from _ar_helpers import NOW, World, make_verifier_dir

from ironroot.attestation import load_attestation_config
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.rot import Device


@pytest.fixture
def data_dir(tmp_path: Path, world: World) -> Path:
    return make_verifier_dir(tmp_path, world)


def test_appraise_then_verify_result(
    data_dir: Path, good_device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nonce = bytes(range(32))
    quote = tmp_path / "quote.cbor"
    quote.write_bytes(good_device.quote(nonce))
    ear = tmp_path / "ear.jwt"
    at = NOW.isoformat()
    argv = ["attest", "appraise", str(quote), "--data", str(data_dir), "--nonce", nonce.hex()]
    assert main([*argv, "--at", at, "--out", str(ear)]) == 0
    out = capsys.readouterr().out
    assert "status: affirming" in out
    assert "ok   quote: DICE chains" in out
    assert "ok   nonce: exact: report data = nonce" in out
    public = tmp_path / "verifier.pub.pem"
    key = PrivateKey.from_pem((data_dir / "verifier-es384.pem").read_bytes())
    public.write_bytes(key.public_key.to_pem())
    assert main(["attest", "verify-result", str(ear), "--keys", str(public), "--at", at]) == 0
    out = capsys.readouterr().out
    assert "executables: 2 approved_rt" in out
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": [key.public_key.to_jwk(include_kid=True)]}))
    code = main(["attest", "verify-result", str(ear), "--keys", str(jwks), "--at", at, "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["status"] == "affirming"
    # expired, checked with another key, or tampered: exit 1
    late = (NOW + dt.timedelta(hours=2)).isoformat()
    assert main(["attest", "verify-result", str(ear), "--keys", str(public), "--at", late]) == 1
    # explain: the trust vector in words; unverified without --keys, verified with them
    capsys.readouterr()
    assert main(["attest", "explain", str(ear)]) == 0
    text = capsys.readouterr().out
    assert "status: affirming" in text
    assert "signature not checked" in text
    assert "instance-identity" in text
    assert "a recognized, trustworthy instance" in text
    assert main(["attest", "explain", str(ear), "--keys", str(public), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["ok"], doc["signature"], doc["status"]) == (True, "verified", "affirming")
    other = PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    (tmp_path / "other.pem").write_bytes(other)
    assert main(["attest", "explain", str(ear), "--keys", str(tmp_path / "other.pem")]) == 1
    other = tmp_path / "other.pem"
    other.write_bytes(PrivateKey.generate(key.algorithm).public_key.to_pem())
    assert main(["attest", "verify-result", str(ear), "--keys", str(other), "--at", at]) == 1
    token = bytearray(ear.read_bytes())
    token[-10] = ord("A") if token[-10] != ord("A") else ord("B")  # one signature character
    ear.write_bytes(bytes(token))
    assert main(["attest", "verify-result", str(ear), "--keys", str(public), "--at", at]) == 1


def test_appraise_refused_evidence_exits_1(
    data_dir: Path, good_device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    quote = tmp_path / "quote.cbor"
    quote.write_bytes(good_device.quote(bytes(32)))
    argv = ["attest", "appraise", str(quote), "--data", str(data_dir), "--json"]
    code = main([*argv, "--nonce", "11" * 32, "--at", NOW.isoformat(), "--cwt"])
    assert code == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is False
    assert summary["status"] == "contraindicated"
    assert summary["submods"]["ironroot"]["trust_vector"] == {"instance-identity": 96}
    assert [(c["name"], c["ok"]) for c in summary["checks"]] == [("quote", True), ("nonce", False)]


def test_config_errors(tmp_path: Path) -> None:
    data = tmp_path / "v"
    assert main(["attest", "init", "--data", str(data)]) == 0
    assert main(["attest", "init", "--data", str(data)]) == 2  # exists: ConfigError
    config = data / "attestation.toml"
    config.write_text(config.read_text() + "surprise = 1\n")
    with pytest.raises(ConfigError):
        load_attestation_config(data)


def test_serve_checks_its_port_and_holds_its_directory(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    import uvicorn

    from ironroot._fileio import DirectoryLock

    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(self))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["attest", "serve", "--data", str(data_dir), "--port", str(port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert main(["attest", "serve", "--data", str(data_dir), "--port", "99999"]) == 2
    assert "a TCP port is 1-65535" in capsys.readouterr().err
    held = DirectoryLock(data_dir, ".serve.lock", what="attestation data directory")
    try:
        assert main(["attest", "serve", "--data", str(data_dir), "--port", "8198"]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        held.close()
    assert served == []
    monkeypatch.setenv("IRONROOT_DATA", str(data_dir))  # --data from the environment
    assert main(["attest", "serve", "--port", "8198", "--log-level", "warning"]) == 0
    assert len(served) == 1


def test_the_appraisal_policy_is_a_file_named_policy_file(data_dir: Path) -> None:
    from ironroot.attestation import load_attestation_config

    config_file = data_dir / "attestation.toml"
    text = config_file.read_text()
    rules = data_dir / "lab.toml"
    rules.write_text('[policy]\nname = "lab"\n')
    config_file.write_text(text.replace('policy_file = ""', 'policy_file = "lab.toml"'))
    assert load_attestation_config(data_dir).load_policy().name == "lab"
    config_file.write_text(text.replace('policy_file = ""', 'policy = "debug == false"'))
    with pytest.raises(ConfigError, match="policy_file"):
        load_attestation_config(data_dir)
