"""Microsoft's CTS client, pyscitt, unchanged, against ``ironroot serve`` with ``cts_prefix``.

pyscitt runs in its own venv (``pyscitt_venv.py``: it pins cryptography 44 and cbor2 5.4) as a
subprocess, over loopback HTTP: it signs statements with its own COSE code (pycose, x5chain,
CWT claims), registers them with ``submit_signed_statement_and_wait`` and the other calls,
and hits every refusal; what it returns is then verified here with ironroot. Skipped, saying
why, when pyscitt cannot be installed (no PyPI); ``IRONROOT_REQUIRE_PYSCITT=1`` (CI) makes
that a failure.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _tx_helpers import VENDOR_ISS, write_config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyscitt_venv import PyscittUnavailable, ensure_venv
from test_transparency_cts import GatedSigner

import http_calls
import ironroot
from ironroot.cose import (
    SignedStatement,
    TransparentStatement,
    create_statement,
    decode_key_set,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.transparency import ServiceThread, TransparencyService
from serving import answers, start_server

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
SRC = str(Path(ironroot.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "PYTHONDONTWRITEBYTECODE": "1"}
for _name in [n for n in ENV if n.startswith("IRONROOT_") and n != "IRONROOT_VECTORS"]:
    del ENV[_name]
CODE_SIGNING = "1.3.6.1.5.5.7.3.3"


@pytest.fixture(scope="module")
def pyscitt_python() -> Path:
    try:
        return ensure_venv()
    except PyscittUnavailable as exc:
        reason = f"pyscitt is not installable here: {exc}"
        if os.environ.get("IRONROOT_REQUIRE_PYSCITT", "") not in ("", "0"):
            pytest.fail(f"{reason} (IRONROOT_REQUIRE_PYSCITT is set)")
        pytest.skip(reason)


def _pyscitt(python: Path, *argv: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [str(python), str(HERE / "pyscitt_client.py"), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def _pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _chain(folder: Path) -> tuple[x509.Certificate, str]:
    """A root CA and a code-signing leaf valid now; writes root/leaf/key PEMs; the root and
    the did:x509 issuer naming it."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CTS Interop Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(root_key, hashes.SHA384())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Release Signing")]))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA384())
    )
    (folder / "root.pem").write_bytes(_pem(root))
    (folder / "leaf.pem").write_bytes(_pem(leaf))
    (folder / "leaf.key").write_bytes(_pem(leaf_key))
    der = root.public_bytes(serialization.Encoding.DER)
    fingerprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    return root, f"did:x509:0:sha256:{fingerprint}::eku:{CODE_SIGNING}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """``ironroot serve`` in its own process with the CTS API at /cts: (url, data, issuer)."""
    root, issuer = _chain(tmp_path)
    data = write_config(tmp_path / "ts", roots=[root], policy='sub != "pkg:fw/refused"')
    text = (data / "ironroot.toml").read_text()
    (data / "ironroot.toml").write_text(
        text.replace("[transparency]\n", '[transparency]\ncts_prefix = "/cts"\n', 1)
    )

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "ironroot", "serve", "--data", str(data), "--port", str(port)]

    started = start_server(command, answers(), env=ENV, pipes=True)
    process, url = started.process, f"http://127.0.0.1:{started.port}"
    try:
        yield url, data, issuer
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=30)


def test_pyscitt_registers_and_fetches_unchanged(
    pyscitt_python: Path, served: tuple[str, Path, str], tmp_path: Path
) -> None:
    url, _data, issuer = served
    out = tmp_path / "out"
    out.mkdir()
    key, leaf, root = (str(tmp_path / n) for n in ("leaf.key", "leaf.pem", "root.pem"))
    result = _pyscitt(pyscitt_python, "scenario", f"{url}/cts", str(out), key, leaf, root, issuer)

    with httpx.Client(base_url=url) as http:
        keys = decode_key_set(http.get("/.well-known/scitt-keys").content)
        first = (out / "first.cose").read_bytes()
        entry_id = hashlib.sha256(SignedStatement.parse(first).log_entry()).hexdigest()
        # the operation and the entry are the entry id; the transparent statement pyscitt got
        # is the service's, and its receipt verifies offline for pyscitt's own statement
        assert result["operation"] == result["tx"] == entry_id
        transparent = (out / "first.ts.cose").read_bytes()
        assert transparent == http.get(f"/entries/{entry_id}/statement").content
        parsed: TransparentStatement = verify_transparent_statement(transparent, keys)
        assert parsed.statement.claims.iss == issuer
        assert parsed.statement.claims.sub == "pkg:fw/bmc"
        receipt = (out / "first.receipt.cose").read_bytes()
        verify_receipt(receipt, SignedStatement.parse(first).log_entry(), keys)
        assert result["receipt_by_operation"] is True
        assert result["embedded_receipt_is_the_receipt"] is True  # header 394, as CTS has it

        second = (out / "second.cose").read_bytes()
        second_id = hashlib.sha256(SignedStatement.parse(second).log_entry()).hexdigest()
        assert result["second_operation"] == result["second_tx"] == second_id
        verify_transparent_statement((out / "second.ts.cose").read_bytes(), keys)
        assert http.get("/checkpoint").text.split("\n")[1] == "2"  # nothing else registered

        # pyscitt's command line too: `scitt submit` (the same statement: the same entry)
        scitt = pyscitt_python.parent / "scitt"
        argv = [str(scitt), "submit", str(out / "second.cose"), "--url", f"{url}/cts"]
        argv += ["--development", "--transparent-statement", str(out / "cli.ts.cose")]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        assert f"as transaction {second_id}" in done.stdout
        statement = http.get(f"/entries/{second_id}/statement").content
        assert (out / "cli.ts.cose").read_bytes() == statement

    assert result["errors"] == {
        "refused": {
            "code": "PolicyFailed",
            "message": "Signed Statement not accepted by the current Registration Policy",
        },
        "stranger": {
            "code": "InvalidInput",
            "message": f"no key with this kid is configured for issuer {issuer!r}",
        },
        "tampered": {"code": "InvalidInput", "message": "ES256 signature does not verify"},
        "unknown_operation": {"code": "NotFound", "message": "Invalid operation ID"},
        "ccf_operation_id": {"code": "InvalidInput", "message": "Invalid Operation ID: 2.15"},
        "unknown_entry": {"code": "NotFound", "message": "no entry has this id"},
    }


def test_pyscitt_waits_while_the_entry_is_running(pyscitt_python: Path, tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = write_config(tmp_path / "ts", issuers=[(VENDOR_ISS, vendor)], registration_wait=0.0)
    text = (data / "ironroot.toml").read_text()
    (data / "ironroot.toml").write_text(
        text.replace("[transparency]\n", '[transparency]\ncts_prefix = "/cts"\n', 1)
    )
    signer = GatedSigner(PrivateKey.generate(Algorithm.ES384))
    statement = tmp_path / "release.cose"
    statement.write_bytes(create_statement(vendor, b"{}", iss=VENDOR_ISS, sub="pkg:fw/slow"))
    entry_id = hashlib.sha256(SignedStatement.parse(statement.read_bytes()).log_entry()).hexdigest()
    service = TransparencyService.open(data, receipt_signers=[signer])
    with service, ServiceThread(service) as server:

        def running_answers() -> int:  # 202s the operation's route has given (pyscitt's)
            metrics = http_calls.get(f"{server.url}/metrics", timeout=5).text
            return sum(
                int(float(line.rsplit(" ", 1)[1]))
                for line in metrics.splitlines()
                if line.startswith("ironroot_http_requests_total{")
                and 'route="/cts/operations/{operation_id}"' in line
                and 'status="202"' in line
            )

        def open_once_running() -> None:  # pyscitt has been told "running" at least once
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (
                service.log.in_flight and running_answers() >= 1
            ):
                time.sleep(0.05)
            signer.gate.set()

        opener = threading.Thread(target=open_once_running)
        opener.start()
        try:
            result = _pyscitt(
                pyscitt_python, "register", f"{server.url}/cts", str(tmp_path), str(statement)
            )
        finally:
            signer.gate.set()
            opener.join()
        assert result == {"operation": entry_id, "tx": entry_id}
        # pyscitt was told "running" (202), waited as told and polled again until done
        assert running_answers() >= 1
        keys = {signer.kid: signer.verifier()}
        verify_transparent_statement((tmp_path / "registered.ts.cose").read_bytes(), keys)
