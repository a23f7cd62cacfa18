"""The `ironroot serve`, `key` and `statement` commands against a real service."""

from __future__ import annotations

import datetime as dt
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, make_ca_chain, write_config
from cryptography.hazmat.primitives import serialization

import http_calls
from ironroot.cli import main
from ironroot.cose import SignedStatement, create_statement
from ironroot.crypto import load_signer
from ironroot.transparency import ServiceThread, TransparencyService

pytestmark = pytest.mark.integration


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A running service trusting the vendor key made with `ironroot key generate`."""
    assert main(["key", "generate", "--alg", "ES384", "--out", str(tmp_path / "vendor")]) == 0
    data = tmp_path / "data"
    write_config(data, issuers=[(VENDOR_ISS, load_signer(tmp_path / "vendor.key"))])  # type: ignore[list-item]
    svc = TransparencyService.open(data)
    with svc, ServiceThread(svc) as server:
        yield server.url, tmp_path


def _run(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_serve_init_only_creates_config_and_keys(tmp_path: Path) -> None:
    data = tmp_path / "fresh"
    assert _run("serve", "--data", data, "--init-only") == 0
    assert (data / "ironroot.toml").exists()
    assert (data / "keys" / "receipt-es384.key").stat().st_mode & 0o777 == 0o600
    assert (data / "keys" / "checkpoint.key").exists()


def test_serve_refuses_a_policy_naming_an_unknown_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A typo (claim.iss for claims.iss) started the service, which then rejected every
    # statement; it is a configuration error at start-up, exit 2, before any port is bound.
    data = tmp_path / "d"
    assert _run("serve", "--data", data, "--init-only") == 0
    config = data / "ironroot.toml"
    text = config.read_text()
    assert '\npolicy = ""\n' in text
    config.write_text(text.replace('\npolicy = ""\n', "\npolicy = 'claim.iss == \"x\"'\n"))
    capsys.readouterr()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    assert _run("serve", "--data", data, "--port", port) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: transparency.policy names unknown variables: claim (known: alg, "
        "claims, content_type, hash_envelope, iat, iss, kid, payload_hash_alg, "
        "payload_location, preimage_content_type, sub, x5chain_length)\n"
    )


def test_sign_register_verify(service: tuple[str, Path]) -> None:
    url, work = service
    (work / "release.json").write_text('{"v": 1}')
    stmt, ts = work / "release.cose", work / "release.cose.ts"
    assert _run(
        "statement", "sign", work / "release.json", "--key", work / "vendor.key",
        "--iss", VENDOR_ISS, "--sub", "pkg:fw/cli", "--content-type", "application/json",
        "--out", stmt,
    ) == 0  # fmt: skip
    assert _run("statement", "register", stmt, "--url", url) == 0
    assert ts.exists()
    assert _run("statement", "verify", ts, "--service-keys", url) == 0
    # Offline, from a saved key set, and with the issuer's signature too.

    keys = work / "keys.cbor"
    keys.write_bytes(http_calls.get(url + "/.well-known/scitt-keys").content)
    assert _run(
        "statement", "verify", ts, "--service-keys", keys, "--issuer-key", work / "vendor.pub.pem"
    ) == 0  # fmt: skip
    # Tampered, truncated, or checked against another service's key: exit 1, every time.
    data = bytearray(ts.read_bytes())
    data[-3] ^= 0x01
    (work / "bad.ts").write_bytes(bytes(data))
    assert _run("statement", "verify", work / "bad.ts", "--service-keys", keys) == 1
    (work / "short.ts").write_bytes(ts.read_bytes()[:40])
    assert _run("statement", "verify", work / "short.ts", "--service-keys", keys) == 1
    assert _run("key", "generate", "--alg", "ES384", "--out", work / "other") == 0
    assert _run("statement", "verify", ts, "--service-keys", work / "other.pub.pem") == 1
    # A statement the service does not trust: the registration fails with exit 1.
    (work / "x.json").write_text("{}")
    assert _run(
        "statement", "sign", work / "x.json", "--key", work / "other.key", "--iss", VENDOR_ISS,
        "--sub", "s", "--out", work / "x.cose",
    ) == 0  # fmt: skip
    assert _run("statement", "register", work / "x.cose", "--url", url) == 1


def test_statement_inspect(service: tuple[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    url, work = service
    (work / "inspect.json").write_text('{"v": 2}')
    stmt = work / "inspect.cose"
    assert _run(
        "statement", "sign", work / "inspect.json", "--key", work / "vendor.key",
        "--iss", VENDOR_ISS, "--sub", "pkg:fw/inspect", "--out", stmt,
    ) == 0  # fmt: skip
    assert _run("statement", "register", stmt, "--url", url) == 0
    capsys.readouterr()
    assert _run("statement", "inspect", stmt, "--json") == 0
    signed = json.loads(capsys.readouterr().out)
    assert (signed["kind"], signed["claims"]["sub"], signed["receipts"]) == (
        "signed", "pkg:fw/inspect", [],
    )  # fmt: skip
    assert _run("statement", "inspect", work / "inspect.cose.ts", "--json") == 0
    transparent = json.loads(capsys.readouterr().out)
    assert transparent["kind"] == "transparent"
    (receipt,) = transparent["receipts"]
    assert receipt["alg"] == "ES384"
    assert receipt["inclusion_proofs"][0]["tree_size"] >= 1
    assert _run("statement", "inspect", work / "inspect.cose.ts") == 0
    assert "not verified" in capsys.readouterr().out


def test_hash_envelope_and_x5chain_statements(tmp_path: Path) -> None:
    (tmp_path / "fw.bin").write_bytes(b"firmware image")
    now = dt.datetime.now(dt.UTC)
    root, leaf, key = make_ca_chain(
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=1)
    )
    (tmp_path / "leaf.key").write_bytes(key.to_pem())
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root))
    (tmp_path / "chain.pem").write_bytes(chain)
    out = tmp_path / "fw.cose"
    assert _run(
        "statement", "sign", tmp_path / "fw.bin", "--key", tmp_path / "leaf.key",
        "--iss", "did:x509:0:sha256:abc::eku:1.3.6.1.5.5.7.3.3", "--sub", "pkg:fw",
        "--hash-envelope", "--content-type", "application/octet-stream",
        "--location", "https://vendor.example/fw.bin", "--x5chain", tmp_path / "chain.pem",
        "--out", out,
    ) == 0  # fmt: skip
    parsed = SignedStatement.parse(out.read_bytes())
    assert parsed.payload == hashlib.sha256(b"firmware image").digest()
    assert parsed.hash_envelope is not None
    assert parsed.hash_envelope.location == "https://vendor.example/fw.bin"
    assert len(parsed.x5chain) == 2
    assert parsed.kid is None


def test_an_x5chain_whose_leaf_is_not_the_signing_key_is_refused_before_signing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `statement sign --key A --x5chain <B's chain>` wrote a statement naming B's certificate as
    # its signer and signed by A: one that no verifier accepts, written as a success.
    (tmp_path / "fw.bin").write_bytes(b"firmware image")
    now = dt.datetime.now(dt.UTC)
    period = {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(days=1)}
    root, leaf, _ = make_ca_chain(**period)
    _, _, other_key = make_ca_chain(**period)
    (tmp_path / "other.key").write_bytes(other_key.to_pem())
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root))
    (tmp_path / "chain.pem").write_bytes(chain)
    out = tmp_path / "fw.cose"
    assert _run(
        "statement", "sign", tmp_path / "fw.bin", "--key", tmp_path / "other.key",
        "--iss", "did:x509:0:sha256:abc::eku:1.3.6.1.5.5.7.3.3", "--sub", "pkg:fw",
        "--x5chain", tmp_path / "chain.pem", "--out", out,
    ) == 2  # fmt: skip
    assert "malformed: the --x5chain leaf certificate is not for the --key key" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_location_without_hash_envelope_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "p").write_text("x")
    assert _run("key", "generate", "--alg", "ES256", "--out", tmp_path / "k") == 0
    assert _run(
        "statement", "sign", tmp_path / "p", "--key", tmp_path / "k.key", "--iss", "i",
        "--sub", "s", "--location", "https://x", "--out", tmp_path / "o",
    ) == 2  # fmt: skip


def test_a_payload_too_large_for_a_statement_is_refused_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without ``--hash-envelope`` a payload over a statement's limit (65535 bytes) is
    refused from the file's size: a 200 MiB payload was read and copied into a statement
    (some 650 MB of memory) before the statement's size was checked."""
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    assert _run("key", "generate", "--alg", "ES256", "--out", tmp_path / "k") == 0
    out = tmp_path / "o"
    assert _run(
        "statement", "sign", big, "--key", tmp_path / "k.key", "--iss", "i", "--sub", "s",
        "--out", out,
    ) == 2  # fmt: skip
    assert capsys.readouterr().err == (
        f"ironroot: payload-too-large: {big} is larger than 65535 bytes, more than a "
        "statement holds: use a hash envelope (--hash-envelope)\n"
    )
    assert not out.exists()


def test_verify_refuses_a_statement_past_its_own_exp(
    service: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`statement verify` checked the receipts and the issuer's signature but not what the
    issuer said of the statement's validity: one past its CWT ``exp`` printed OK (exit 0)."""
    url, work = service
    exp = int(time.time()) + 3600
    signed = create_statement(
        load_signer(work / "vendor.key"),
        b'{"v": 2}',
        iss=VENDOR_ISS,
        sub="pkg:fw/expiring",
        content_type="application/json",
        exp=exp,
    )
    (work / "expiring.cose").write_bytes(signed)
    assert _run("statement", "register", work / "expiring.cose", "--url", url) == 0
    ts = work / "expiring.cose.ts"
    assert _run("statement", "verify", ts, "--service-keys", url) == 0
    later = dt.datetime.fromtimestamp(exp + 1, dt.UTC).isoformat().replace("+00:00", "Z")
    capsys.readouterr()
    assert _run("statement", "verify", ts, "--service-keys", url, "--at", later) == 1
    assert "NOT VERIFIED: statement-expired" in capsys.readouterr().err
