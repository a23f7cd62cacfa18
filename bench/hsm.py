"""Signatures/s through the built-in HSM, through SoftHSM2 (PKCS#11) and with raw `cryptography`.

Run: ``make bench`` (or ``.venv/bin/python bench/hsm.py [--seconds S] [--rounds R]``).

In one run on this machine, for a 64-byte message:

* ES384 and ML-DSA-87 signatures/s through ``Hsm.sign`` (a crypto-user session: session and
  role check, usage check, audit record buffered for group commit, COSE r ‖ s encoding);
* ES384 signatures/s through SoftHSM2 via ``Pkcs11Backend.sign`` (SHA-384 here, CKM_ECDSA on
  the token; SoftHSM2 has no ML-DSA), if SoftHSM2 is installed;
* the same algorithms with raw ``cryptography`` calls (``sign`` on the library key, DER output);

and the ratios: built-in / raw (target >= 0.8) and built-in / SoftHSM2 (target >= 1.0).
The three paths are measured in interleaved rounds and the median of the rounds is reported, so
a busy neighbour on the machine moves all three alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, mldsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.hsm import (
    DeviceIdentity,
    Hsm,
    HsmConfig,
    KeyAttributes,
    KeyType,
    MemoryStorage,
    Pkcs11Backend,
    Role,
)

MESSAGE = bytes(range(64))
_SOFTHSM = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def rate(call: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(8):
            call()
        count += 8
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def device_identity() -> DeviceIdentity:
    key = PrivateKey.generate(Algorithm.ES384)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench device")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key.raw)
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key.raw, hashes.SHA384())
    )
    return DeviceIdentity(key, (cert.public_bytes(Encoding.DER),))


def softhsm(workdir: Path) -> Pkcs11Backend | None:
    library = next((p for p in _SOFTHSM if Path(p).exists()), None)
    if library is None or shutil.which("softhsm2-util") is None:
        return None
    (workdir / "tokens").mkdir()
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {workdir / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench",
         "--so-pin", "123456", "--pin", "1234"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Pkcs11Backend(library, token_label="bench", pin="1234")  # noqa: S106  (a test token)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.6, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args()

    hsm = Hsm.initialize(
        MemoryStorage(),
        os.urandom(48),
        officer="officer",
        credential=b"officer-credential",
        device=device_identity(),
        config=HsmConfig(scrypt_n=2**10),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "service", Role.USER, b"service-credential")
    user = hsm.login("service", b"service-credential")
    es384 = hsm.generate(officer, KeyType.EC_P384, KeyAttributes.of(["sign"]))
    mldsa87 = hsm.generate(officer, KeyType.ML_DSA_87, KeyAttributes.of(["sign"]))
    raw_ec = ec.generate_private_key(ec.SECP384R1())
    raw_mldsa = mldsa.MLDSA87PrivateKey.generate()
    ecdsa = ec.ECDSA(hashes.SHA384())

    with tempfile.TemporaryDirectory() as tmp:
        token = softhsm(Path(tmp))
        token_key = token.generate(KeyType.EC_P384, KeyAttributes.of(["sign"])) if token else None
        paths: dict[str, Callable[[], object]] = {
            "ES384 built-in": lambda: hsm.sign(user, es384, MESSAGE),
            "ES384 raw": lambda: raw_ec.sign(MESSAGE, ecdsa),
            "ML-DSA-87 built-in": lambda: hsm.sign(user, mldsa87, MESSAGE),
            "ML-DSA-87 raw": lambda: raw_mldsa.sign(MESSAGE),
        }
        if token is not None and token_key is not None:
            paths["ES384 SoftHSM2"] = lambda: token.sign(token_key, MESSAGE)
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, call in paths.items():
                samples[name].append(rate(call, args.seconds))
        if token is not None:
            token.close()
    hsm.close()

    result = {name: statistics.median(values) for name, values in samples.items()}
    print(f"signatures/s, median of {args.rounds} interleaved rounds of {args.seconds} s")
    for name, value in result.items():
        print(f"  {name:<20} {value:10.0f}")
    print("ratios (targets: built-in/raw >= 0.8, built-in/SoftHSM2 >= 1.0)")
    es_raw = result["ES384 built-in"] / result["ES384 raw"]
    ml_raw = result["ML-DSA-87 built-in"] / result["ML-DSA-87 raw"]
    print(f"  ES384     built-in / raw       {es_raw:6.2f}")
    print(f"  ML-DSA-87 built-in / raw       {ml_raw:6.2f}")
    if "ES384 SoftHSM2" in result:
        es_soft = result["ES384 built-in"] / result["ES384 SoftHSM2"]
        print(f"  ES384     built-in / SoftHSM2  {es_soft:6.2f}")
    else:
        print("  ES384     built-in / SoftHSM2  (SoftHSM2 not installed)")
    print(
        "audit durability: key-use records are group-committed (256 per write, or at the next "
        "management operation, flush or close)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
