"""The key release service as an operator runs it: health, readiness, metrics, the start-up
line, its port checked first, and one process per data directory."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from _kr_helpers import build_harness

from hsm_devices import self_signed_device
from ironroot._fileio import DirectoryLock
from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.hsm import (
    DirectoryStorage,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    Role,
)
from ironroot.keyrelease import KeyReleaseServerThread, create_keyrelease_app
from rot_counters import provisioned_device


def test_health_ready_and_metrics() -> None:
    harness = build_harness()
    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        harness.url = server.url
        assert http.get("/health").status_code == 200
        ready = http.get("/ready")
        assert ready.status_code == 200, ready.text
        nonce = harness.nonce()
        assert harness.post("cel-key", harness.ear(nonce), nonce).status_code == 200
        assert harness.post("cel-key", harness.ear(nonce), nonce).status_code == 400  # reused
        metrics = http.get("/metrics").text
        assert 'ironroot_releases_total{decision="released"} 1.0' in metrics
        assert 'ironroot_releases_total{decision="nonce-reused"} 1.0' in metrics
        assert 'ironroot_hsm_operations_total{operation="release",result="ok"} 1.0' in metrics
        assert 'operation="release",result="nonce-reused"' in metrics
        index = http.get("/", headers={"Accept": "application/json"}).json()
        assert index["service"] == "keyrelease"
        assert index["docs"] == "docs/keyrelease.md"
        assert {"POST /keys/challenge", "POST /keys/{name}/release", "GET /keys"} <= set(
            index["endpoints"]
        )
        page = http.get("/", headers={"Accept": "text/html,*/*;q=0.8"}).text
        assert "<h1>Ironroot keyrelease</h1>" in page
        # with no verifier installed nothing can be released: not ready, and it says why
        harness.hsm.remove_release_verifier(harness.officer, "https://verifier.example")
        not_ready = http.get("/ready")
        assert not_ready.status_code == 503
        assert not_ready.headers["Retry-After"] == "1"
        assert not_ready.json()["checks"]["verifiers"] == "no-verifier: Invalid Configuration"


def _data_dir(tmp_path: Path) -> Path:
    """A key service data directory: an HSM on disk (bound to a RoT counter), a crypto user,
    an installed verifier, one releasable key, keyrelease.toml."""
    data = tmp_path / "keyservice"
    data.mkdir()
    rot = provisioned_device(tmp_path / "rot")
    (data / "sealing.secret").write_bytes(bytes(range(48)))
    (data / "user.credential").write_bytes(b"user-credential\n")
    with DirectoryStorage(data / "hsm", counter=rot.counter("hsm")) as storage:
        hsm = Hsm.initialize(
            storage,
            bytes(range(48)),
            officer="officer",
            credential=b"officer-credential",
            device=self_signed_device(),
            config=HsmConfig(scrypt_n=2**10),
        )
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "keyrelease", Role.USER, b"user-credential")
        hsm.add_release_verifier(
            officer,
            "https://verifier.example",
            PrivateKey.generate(Algorithm.ES384).public_key.to_pem(),
        )
        handle = hsm.generate(
            officer,
            KeyType.AES_256,
            KeyAttributes.of(["encrypt"], exportable=True, release_policy='status == "affirming"'),
        )
        hsm.close()
    (data / "keyrelease.toml").write_text(
        "[keyrelease]\nport = 8299\n[keyrelease.hsm]\n"
        f'dir = "hsm"\nrot_device = "{rot.directory}"\n'
        'sealing_secret_file = "sealing.secret"\nidentity = "keyrelease"\n'
        'credential_file = "user.credential"\n'
        f'[keyrelease.keys.db-key]\nhandle = "{handle}"\n'
    )
    return data


def test_serve_start_up_line_port_and_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    data = _data_dir(tmp_path)
    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(self))
    monkeypatch.setenv("IRONROOT_PORT", "8297")  # env over the file's 8299; the flag over both
    assert main(["keyrelease", "serve", "--data", str(data), "--log-format", "json"]) == 0
    assert len(served) == 1
    line = capsys.readouterr().err
    assert '"message":"key release service on http://127.0.0.1:8297' in line
    assert "keys db-key (" in line
    assert "EAR verifiers https://verifier.example" in line
    # a port in use is one line and exit 2, before the HSM is opened
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["keyrelease", "serve", "--data", str(data), "--port", str(port)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    # one process per data directory
    held = DirectoryLock(data, ".serve.lock", what="key service data directory")
    try:
        assert main(["keyrelease", "serve", "--data", str(data), "--port", "8296"]) == 2
        assert "in use" in capsys.readouterr().err
    finally:
        held.close()
    assert len(served) == 1


def test_the_key_service_serves_https_and_mutual_tls(tmp_path: Path) -> None:
    from ironroot.errors import Unreachable
    from ironroot.http import ServerThread, ServerTls, client_context
    from ironroot.keyrelease import KeyReleaseClient
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    harness = build_harness()
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    app = create_keyrelease_app(harness.service)
    with harness.http, ServerThread(app, name="keyrelease", tls=tls) as server:
        assert server.url.startswith("https://")
        mutual = client_context(pki.ca, pki.client_cert, pki.client_key)
        with KeyReleaseClient(server.url, verify=mutual) as client:
            assert len(client.challenge()) == 32
        with (
            KeyReleaseClient(server.url, verify=client_context(pki.ca)) as client,
            pytest.raises(Unreachable),
        ):
            client.challenge()  # no client certificate
        with KeyReleaseClient(server.url) as client, pytest.raises(Unreachable):
            client.challenge()  # the private CA is not a system CA


def test_serve_passes_tls_to_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    from ironroot.http import ServerTls
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    data = _data_dir(tmp_path)
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: served.append(self.config)
    )
    monkeypatch.setenv("IRONROOT_DATA", str(data))
    monkeypatch.setenv("IRONROOT_TLS_CERT", str(pki.server_cert))
    monkeypatch.setenv("IRONROOT_TLS_KEY", str(pki.server_key))
    assert main(["keyrelease", "serve", "--tls-client-ca", str(pki.ca)]) == 0
    config = served.pop()
    assert config.port == 8299  # keyrelease.toml's, with neither flag nor environment
    # the server's protocol does the TLS handshake, with these files (a required client CA)
    assert config.http.tls == ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    assert "key release service on https://127.0.0.1:8299" in capsys.readouterr().err
    # a key that is not the certificate's: one line, exit 2, nothing served
    monkeypatch.setenv("IRONROOT_TLS_KEY", str(pki.client_key))
    assert main(["keyrelease", "serve"]) == 2
    assert "not a PEM certificate chain and its key" in capsys.readouterr().err
    assert served == []


def test_the_cli_reaches_the_key_service_over_mutual_tls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ironroot.http import ServerThread, ServerTls
    from tls_pki import make_pki

    pki = make_pki(tmp_path)
    harness = build_harness()
    tls = ServerTls(pki.server_cert, pki.server_key, client_ca=pki.ca)
    app = create_keyrelease_app(harness.service)
    with harness.http, ServerThread(app, name="keyrelease", tls=tls) as server:
        challenge = ["keyrelease", "challenge", "--url", server.url, "--json"]
        mutual = ["--ca", str(pki.ca), "--client-cert", str(pki.client_cert)]
        mutual += ["--client-key", str(pki.client_key)]
        assert main([*challenge, *mutual]) == 0
        assert len(bytes.fromhex(json.loads(capsys.readouterr().out)["nonce"])) == 32
        assert main(challenge) == 1
        error = json.loads(capsys.readouterr().out)["error"]
        assert error["code"] == "unreachable"
        assert "certificate is not trusted" in error["message"]
        assert main([*challenge, "--ca", str(pki.other_ca), *mutual[2:]]) == 1
        assert "certificate is not trusted" in capsys.readouterr().out
        assert main([*challenge, "--ca", str(pki.ca)]) == 1
        assert "--client-cert and --client-key" in capsys.readouterr().out
        assert main([*challenge, "--ca", str(pki.ca), "--client-cert", str(pki.client_cert)]) == 2
        assert "give both --client-cert and --client-key" in capsys.readouterr().out
        assert main([*challenge, "--ca", str(tmp_path / "missing.pem")]) == 2
        assert "no such file" in capsys.readouterr().out


def test_serve_fleet_gate_options_are_checked_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--fleet`` puts the fleet's gate before every release; it needs the verifier keys
    whose EARs name the VMs' nodes, and a fleet there (each a one-line refusal, nothing
    served)."""
    import uvicorn

    data = _data_dir(tmp_path)
    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: served.append(self))
    key = tmp_path / "verifier.pem"
    key.write_bytes(PrivateKey.generate(Algorithm.ES384).public_key.to_pem())
    base = ["keyrelease", "serve", "--data", str(data), "--port", "8295"]
    assert main([*base, "--fleet", str(tmp_path / "fleet")]) == 2
    assert "--fleet needs --fleet-verifier-key" in capsys.readouterr().err
    assert main([*base, "--fleet-verifier-key", str(key)]) == 2
    assert "--fleet-verifier-key goes with --fleet" in capsys.readouterr().err
    assert main([*base, "--fleet", str(tmp_path / "none"), "--fleet-verifier-key", str(key)]) == 1
    assert "no fleet in" in capsys.readouterr().err
    assert served == []


def test_readiness_probes_do_not_each_add_to_the_hsms_audit_log() -> None:
    """``/ready`` is open to anyone: its verifier check asks the HSM (an audited operation)
    only when the HSM's store changed, so a flood of probes is not a flood of audit records,
    and a verifier removed is still seen at the next probe."""
    harness = build_harness()
    auditor_pass = b"auditor-credential"
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, auditor_pass)
    auditor = harness.hsm.login("auditor", auditor_pass)

    def listed() -> int:
        records = harness.hsm.audit_records(auditor)
        return sum(1 for r in records if r.operation == "verifier-list")

    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        before = listed()
        for _ in range(20):
            assert http.get("/ready").status_code == 200
        assert listed() == before + 1
        harness.hsm.remove_release_verifier(harness.officer, "https://verifier.example")
        assert http.get("/ready").status_code == 503
        assert listed() == before + 2


def test_a_failing_readiness_check_names_no_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``/ready`` answers anyone: an HSM whose key store cannot be read is said as the
    check's error kind (``storage: Storage Error``), never as the detail naming its file."""
    from ironroot.errors import StorageError
    from ironroot.keyrelease import HsmVault

    secret = "/var/lib/ironroot/hsm/keys.json"

    def unreadable(self: HsmVault, handle: str) -> object:
        raise StorageError(f"cannot read {secret}: input/output error")

    harness = build_harness()
    monkeypatch.setattr(HsmVault, "key_type", unreadable)
    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):
        ready = http.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["keys"] == "storage: Storage Error"
    assert secret not in ready.text


def test_every_refused_release_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A release refused before the HSM is asked (no such key, a malformed request, a
    degenerate wrapping key) is a refusal too: counted by its code and logged as a warning,
    like the HSM's refusals (which its audit log also records)."""
    harness = build_harness()
    zero_key = bytes.fromhex("308204b2300b0609608648016503040402038204a100") + bytes(
        1184
    )  # the all-zero ML-KEM-768 key
    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
        caplog.at_level("WARNING", logger="ironroot.keyrelease"),
    ):
        harness.url = server.url
        nonce = harness.nonce()
        assert harness.post("no-such-key", harness.ear(nonce), nonce).status_code == 404
        malformed = http.post("/keys/cel-key/release", json={"ear": "x"})
        assert malformed.status_code == 400
        degenerate = harness.post("cel-key", harness.ear(nonce), nonce, wrapping_key=zero_key)
        assert degenerate.status_code == 400
        metrics = http.get("/metrics").text
    assert 'ironroot_releases_total{decision="not-found"} 1.0' in metrics
    assert 'ironroot_releases_total{decision="malformed"} 1.0' in metrics
    assert 'ironroot_releases_total{decision="degenerate-wrapping-key"} 1.0' in metrics
    refusals = [r.getMessage() for r in caplog.records if r.name == "ironroot.keyrelease"]
    assert refusals == [
        "release of 'no-such-key' refused: not-found",
        "release of 'cel-key' refused: malformed",
        "release of 'cel-key' refused: degenerate-wrapping-key",
    ]
