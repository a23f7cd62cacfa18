"""Key releases/s end to end over HTTP, against the raw cost of what a release must compute.

Run: ``make bench`` (or ``.venv/bin/python bench/keyrelease.py [--count N] [--rounds R]``).

Setup (not timed): a built-in HSM in memory holding an exportable AES-256 key whose release
policy is an Azure-grammar policy with four conditions; the key service over HTTP on a loopback
port, served by uvicorn in a separate process (so the client does not share its interpreter);
for each release a nonce from ``POST /keys/challenge`` and an EAR
JWT (ES384) from the verifier binding ``nonce ‖ SHA-256(TEE ML-KEM-768 key)``.

Timed, in interleaved rounds (median reported):

* **HTTP**: ``POST /keys/db-key/release`` (CBOR) one after another from one keep-alive client:
  request parsing, EAR verification (ES384 JWS, claims, times), nonce redemption, the binding,
  the policy, the HSM's release (session, audit, ML-KEM-768 encapsulation, HKDF, AES-KWP) and
  the response;
* **HTTP x4**: the same with four client threads (one server process: its event loop and a
  thread pool, all under one interpreter lock);
* **raw**: what no release can avoid, with plain ``cryptography`` calls: one ES384 signature
  verification of the EAR's signing input, one ML-KEM-768 encapsulation, HKDF-SHA-384 and
  AES key wrap of 32 bytes, and one ES384 signature (the HSM's release statement, signed with
  its attestation key).

It prints releases/s and the ratio of each HTTP rate to the raw rate.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.attestation import Appraisal, AttestationResult, TrustTier, VerifierId, sign_ear_jwt
from ironroot.cose import decode_cbor, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.ear import ChallengeLimits
from ironroot.hsm import DeviceIdentity, Hsm, HsmConfig, KeyAttributes, KeyType, MemoryStorage, Role
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseService,
    ReleasableKey,
    create_keyrelease_app,
)
from ironroot.keyrelease.tee import TeeKeyPair

VERIFIER = "https://verifier.example"
PCR2 = hashlib.sha384(b"approved").hexdigest()
POLICY = json.dumps(
    {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": VERIFIER,
                "allOf": [
                    {"claim": "ear.status", "equals": "affirming"},
                    {"claim": "evidence.debug", "equals": False},
                    {"claim": "evidence.svns.firmware", "greaterOrEquals": 3},
                    {"claim": "evidence.measurements.pcr2", "equals": PCR2},
                ],
            }
        ],
    }
)


def device_identity() -> DeviceIdentity:
    key = PrivateKey.generate(Algorithm.ES384)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench device")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key.raw, hashes.SHA384())  # type: ignore[arg-type]
    )
    return DeviceIdentity(key, (cert.public_bytes(Encoding.DER),))


def make_ear(signer: PrivateKey, report_data: bytes, now: dt.datetime) -> bytes:
    evidence = {
        "format": "ironroot",
        "measurements": {"pcr2": PCR2},
        "report_data": report_data.hex(),
        "debug": False,
        "svns": {"firmware": 3},
        "identity": {"ueid": "01" * 17, "lifecycle": "production"},
        "signer": "CN=RT Alias",
    }
    vector = {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2}
    t = int(now.timestamp())
    result = AttestationResult(
        iat=t,
        exp=t + 3600,
        verifier_id=VerifierId("Ironroot", "bench"),
        submods={"ironroot": Appraisal(TrustTier.AFFIRMING, vector, evidence=evidence)},
        nonce=report_data,
    )
    return sign_ear_jwt(result, signer)


def timed(run: Callable[[int], None], count: int) -> float:
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


def release_all(client: httpx.Client, url: str, prepared: list[bytes]) -> None:
    headers = {"Content-Type": "application/cbor"}
    for body in prepared:
        response = client.post(url, content=body, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"release failed: {response.status_code} {response.content!r}")


def release_concurrently(url: str, prepared: list[bytes], threads: int) -> None:
    clients = [httpx.Client(timeout=30) for _ in range(threads)]
    workers = [
        threading.Thread(target=release_all, args=(c, url, prepared[i::threads]))
        for i, c in enumerate(clients)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for c in clients:
        c.close()


def build_service(verifier_public: bytes) -> tuple[Hsm, KeyReleaseService]:
    """The key service: an HSM in memory with one releasable AES-256 key."""
    hsm = Hsm.initialize(
        MemoryStorage(),
        bytes(48),
        officer="officer",
        credential=b"officer-credential",
        device=device_identity(),
        # the bench asks for all its nonces up front, from one client
        config=HsmConfig(
            scrypt_n=2**10,
            release_challenges=ChallengeLimits(per_client=1_000_000, burst=1_000_000),
        ),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "keyrelease", Role.USER, b"user-credential")
    hsm.add_release_verifier(officer, VERIFIER, verifier_public)
    handle = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt", "decrypt"], exportable=True, release_policy=POLICY),
    )
    service = KeyReleaseService(
        keys=[ReleasableKey("db-key", handle)],
        vault=HsmVault(hsm, hsm.login("keyrelease", b"user-credential")),
    )
    return hsm, service


def serve_child(port: int, verifier_public: Path) -> None:
    """The server process: the key service on 127.0.0.1:port until killed."""
    _, service = build_service(verifier_public.read_bytes())
    config = uvicorn.Config(
        create_keyrelease_app(service),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
    )
    uvicorn.Server(config).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the key service process exited")
        try:
            httpx.get(f"{url}/keys", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("the key service did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="releases per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--verifier-public", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_child(args.serve, args.verifier_public)
        return

    verifier_key = PrivateKey.generate(Algorithm.ES384)
    tee = TeeKeyPair.generate("ML-KEM-768")
    # --- raw: one ES384 verification + one ML-KEM-768 wrap + one ES384 signature --------------
    sample = make_ear(verifier_key, tee.report_data(bytes(32)), dt.datetime.now(dt.UTC))
    signing_input, _, sig_b64 = sample.rpartition(b".")
    sig = base64.urlsafe_b64decode(sig_b64 + b"=" * (-len(sig_b64) % 4))
    der_sig = encode_dss_signature(int.from_bytes(sig[:48]), int.from_bytes(sig[48:]))
    public = verifier_key.public_key.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    ek = tee.public.key
    ek_hash = hashlib.sha384(ek.public_bytes_raw()).digest()  # type: ignore[union-attr]
    secret = bytes(32)
    attestation = ec.generate_private_key(ec.SECP384R1())
    statement = b"s" * 240  # about the size of a release statement's signed payload

    def raw(n: int) -> None:
        for _ in range(n):
            public.verify(der_sig, signing_input, ec.ECDSA(hashes.SHA384()))
            shared, _ct = ek.encapsulate()  # type: ignore[union-attr]
            kek = HKDF(hashes.SHA384(), 32, None, b"info" + ek_hash).derive(shared)
            keywrap.aes_key_wrap_with_padding(kek, secret)
            attestation.sign(statement, ec.ECDSA(hashes.SHA384()))

    with tempfile.TemporaryDirectory() as tmp:
        public_file = Path(tmp) / "verifier.pub.pem"
        public_file.write_bytes(verifier_key.public_key.to_pem())
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port), "--verifier-public", str(public_file)]
        )
        try:
            wait_for(base, proc)
            url = f"{base}/keys/db-key/release"

            def bodies(n: int, client: httpx.Client) -> list[bytes]:
                out = []
                now = dt.datetime.now(dt.UTC)
                for _ in range(n):
                    reply = client.post(
                        f"{base}/keys/challenge", headers={"Accept": "application/cbor"}
                    )
                    nonce = decode_cbor(reply.content)["nonce"]  # type: ignore[index]
                    ear = make_ear(verifier_key, tee.report_data(nonce), now)
                    out.append(
                        encode_cbor({"ear": ear, "wrapping_key": tee.public_spki, "nonce": nonce})
                    )
                return out

            rates: dict[str, list[float]] = {"HTTP": [], "HTTP x4": [], "raw": []}
            with httpx.Client(timeout=30) as client:
                release_all(client, url, bodies(20, client))  # warm up
                for _ in range(args.rounds):
                    prepared = bodies(args.count, client)
                    start = time.perf_counter()
                    release_all(client, url, prepared)
                    rates["HTTP"].append(args.count / (time.perf_counter() - start))

                    prepared = bodies(args.count, client)
                    start = time.perf_counter()
                    release_concurrently(url, prepared, 4)
                    rates["HTTP x4"].append(args.count / (time.perf_counter() - start))

                    rates["raw"].append(timed(raw, args.count))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"key releases/s, median of {args.rounds} rounds of {args.count}:")
    for name in ("HTTP", "HTTP x4"):
        print(
            f"  {name:8s} {medians[name]:8.0f}/s   "
            f"{medians[name] / medians['raw']:.2f} of raw "
            "(ES384 verify, ML-KEM-768 wrap, ES384 sign)"
        )
    print(f"  {'raw':8s} {medians['raw']:8.0f}/s")


if __name__ == "__main__":
    main()
