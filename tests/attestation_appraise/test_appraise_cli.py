"""``ironroot attest init | appraise | verify-result`` on a real data directory."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from _ar_helpers import NOW, World, make_verifier_dir

from hostile_http import HostileServer, bounded, endless_body, redirect
from ironroot.attestation import (
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    load_attestation_config,
    sign_ear_cwt,
)
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.rot import Device
from serving import free_port


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


def test_explain_reads_a_cwt_ear_whole_even_when_it_ends_in_a_whitespace_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CWT is binary: its last signature byte is 0x0a, 0x20, … in about one EAR in forty."""
    key = PrivateKey.generate(Algorithm.ES384)
    t = int(NOW.timestamp())
    appraisal = Appraisal(TrustTier.AFFIRMING, {"instance-identity": 2}, policy_id="p")
    result = AttestationResult(
        iat=t, exp=t + 600, verifier_id=VerifierId("Ironroot", "test"), submods={"vm": appraisal}
    )
    ear = sign_ear_cwt(result, key)
    while ear[-1:] not in (b" ", b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
        ear = sign_ear_cwt(result, key)  # ECDSA: a fresh signature each time
    (tmp_path / "ear.cwt").write_bytes(ear)
    (tmp_path / "verifier.pem").write_bytes(key.public_key.to_pem())
    keys = ["--keys", str(tmp_path / "verifier.pem")]
    assert main(["attest", "explain", str(tmp_path / "ear.cwt"), *keys, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["signature"], doc["status"]) == ("verified", "affirming")


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


def test_serve_options_come_from_flags_then_environment_then_file(
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:

    import uvicorn

    from ironroot.http import ServerTls
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: served.append(self.config)
    )

    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    config = data_dir / "attestation.toml"
    config.write_text(config.read_text().replace("port = 8100\n", f"port = {file_port}\n", 1))
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    assert main(["attest", "serve", "--data", str(data_dir), *tls]) == 0
    assert served.pop().port == file_port  # the file, with no flag and no environment
    monkeypatch.setenv("IRONROOT_PORT", str(env_port))
    monkeypatch.setenv("IRONROOT_LOG_FORMAT", "json")
    mutual = [*tls, "--tls-client-ca", str(pki.ca)]
    assert main(["attest", "serve", "--data", str(data_dir), *mutual]) == 0
    first = served.pop()
    assert first.port == env_port  # the environment over the file
    # the server's protocol does the TLS handshake, with these files (a required client CA)
    assert first.http.tls == ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    err = capsys.readouterr().err
    assert f'"message":"attestation verifier on https://127.0.0.1:{env_port}: data ' in err
    assert "EAR keys " in err
    argv = ["attest", "serve", "--data", str(data_dir), "--port", str(flag_port)]
    assert main([*argv, "--log-format", "text"]) == 0
    second = served.pop()
    assert second.port == flag_port  # the flag over both
    assert getattr(second.http, "tls", None) is None  # off without --tls-cert/--tls-key
    assert f"attestation verifier on http://127.0.0.1:{flag_port}" in capsys.readouterr().err
    # a client CA alone is refused: mutual TLS needs the service's certificate and key
    assert main([*argv, "--tls-client-ca", str(pki.ca)]) == 2
    assert "HTTPS needs both --tls-cert and --tls-key" in capsys.readouterr().err
    assert served == []


def test_clients_reach_the_verifier_over_https_with_its_ca(
    data_dir: Path, good_device: Device, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.attestation import create_attestation_app
    from ironroot.http import ServerThread, ServerTls
    from tls_pki import make_pki

    nonce = bytes(range(32))
    quote = tmp_path / "quote.cbor"
    quote.write_bytes(good_device.quote(nonce))
    ear = tmp_path / "ear.jwt"
    at = NOW.isoformat()
    argv = ["attest", "appraise", str(quote), "--data", str(data_dir), "--nonce", nonce.hex()]
    assert main([*argv, "--at", at, "--out", str(ear)]) == 0
    pki = make_pki(tmp_path)
    config = load_attestation_config(data_dir)
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    with (
        config.open_service(NOW) as service,
        ServerThread(create_attestation_app(service), name="attestation", tls=tls) as server,
    ):
        keys = f"{server.url}/attestation/keys"
        check = ["attest", "verify-result", str(ear), "--keys", keys, "--at", at]
        mutual = ["--ca", str(pki.ca), "--client-cert", str(pki.client_cert)]
        mutual += ["--client-key", str(pki.client_key)]
        capsys.readouterr()
        assert main([*check, *mutual]) == 0
        assert "status: affirming" in capsys.readouterr().out
        assert main(["attest", "explain", str(ear), "--keys", keys, *mutual, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["signature"] == "verified"
        assert main(check) == 1
        assert "give the CA that issued it with --ca" in capsys.readouterr().err
        assert main([*check, "--ca", str(pki.ca)]) == 1
        assert "client certificate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        (b'{"a": ' * 20_000 + b"1" + b"}" * 20_000, "the JWT claims"),  # deep: RecursionError
        (b'{"eat_profile": "a", "eat_profile": "b"}', "the JWT claims is not JSON"),
        (b'{"iat": NaN}', "the JWT claims is not JSON"),
        (b"\xff\xfe{}", "the JWT claims are not UTF-8"),
    ],
    ids=["deeply-nested", "duplicate-member", "nan", "not-utf-8"],
)
def test_explain_without_keys_reads_the_claims_as_strictly_as_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], claims: bytes, message: str
) -> None:
    # Unverified, the claims were read with plain json.loads: a deeply nested payload was a
    # traceback (RecursionError), and duplicates or NaN were read one way here, another there.
    from ironroot.crypto import b64url_encode

    header = b64url_encode(b'{"alg":"ES256","kid":"AA"}')
    token = f"{header}.{b64url_encode(claims)}.{b64url_encode(bytes(64))}"
    ear = tmp_path / "ear.jwt"
    ear.write_text(token)
    assert main(["attest", "explain", str(ear)]) == 2  # malformed input
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_verifier_keys_fetched_from_a_url_are_read_within_a_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keys URL``: an answer that never ends is refused at the limit of a keys file
    (``limit-exceeded``, exit 2), not read into memory for as long as it comes."""
    ear = tmp_path / "ear.jwt"
    ear.write_bytes(b"x.y.z")
    with HostileServer(attacks={"jwks": endless_body()}) as server, bounded(60):
        code = main(["attest", "verify-result", str(ear), "--keys", f"{server.url}/jwks"])
    assert code == 2
    assert capsys.readouterr().err == (
        "ironroot: limit-exceeded: the verifier keys' answer is larger than 2097152 bytes\n"
    )


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_verifier_keys_url_answering_a_redirect_is_a_config_error_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    """``--keys URL`` answered with a redirect: ``ConfigError`` ``redirect`` (exit 2) naming
    the status and where it points without its query, as every client of a service given by
    URL; the target is never asked (it was a ``ConfigError`` "answered 302" naming neither)."""
    ear = tmp_path / "ear.jwt"
    ear.write_bytes(b"x.y.z")
    with HostileServer() as target, bounded(60):
        attacks = {"jwks": redirect(f"{target.url}/keys.json?token=s3cret", status)}
        with HostileServer(attacks=attacks) as server:
            code = main(["attest", "verify-result", str(ear), "--keys", f"{server.url}/jwks"])
        assert target.requests == []
    assert code == 2
    assert capsys.readouterr().err == (
        f"ironroot: redirect: {server.url}/jwks answered {status}, a redirect to "
        f"{target.url}/keys.json?(hidden): the verifier keys are read only at the URL given, "
        "no redirect is followed; if they moved, give their new URL\n"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://", "it names no host"),
        ("http://127.0.0.1:65536/jwks", "port 65536 is not 1-65535"),
    ],
)
def test_a_verifier_keys_url_no_request_can_be_sent_to_is_malformed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, why: str
) -> None:
    ear = tmp_path / "ear.jwt"
    ear.write_bytes(b"x.y.z")
    assert main(["attest", "verify-result", str(ear), "--keys", url]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: malformed: the URL of the verifier keys is not valid: {why}\n"
    )


@pytest.mark.parametrize("keys", ['{"keys": [5]}', '{"keys": [["kty"]]}', '{"keys": [null]}'])
def test_verify_result_refuses_a_key_set_holding_no_jwk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: str
) -> None:
    jwks = tmp_path / "keys.json"
    jwks.write_text(keys)
    ear = tmp_path / "ear.jwt"
    ear.write_text("e30.e30.AA")
    assert main(["attest", "verify-result", str(ear), "--keys", str(jwks), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "malformed"
