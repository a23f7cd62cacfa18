"""Cost of a full RoT cold boot with DICE derivation, as a ratio to its raw crypto in one run.

Run: ``.venv/bin/python bench/rot.py [--seconds S]``.

What it measures, on this machine, in this run:

1. ``cold_boot``: :func:`ironroot.rot.cold_boot` on a provisioned fuse bank and an ECC +
   ML-DSA-87 signed bundle with a 64 KiB FMC and a 256 KiB runtime: verify the manifest (both
   signatures, TOC and component digests), extend the PCRs, derive the CDIs and the 4 layers ×
   2 key pairs (P-384 and ML-DSA-87), and build and sign 6 certificates (LDevID, FMC alias, RT
   alias, each ECDSA P-384 and ML-DSA-87). Pure, no file I/O.
2. the baseline, the same work done with bare primitives: ``verify_bundle`` of the same bundle,
   8 key derivations from fixed CDIs, and 3 ECDSA P-384 + 3 ML-DSA-87 signatures over a
   certificate-sized message. The ratio baseline / cold boot says how much is overhead
   (certificate building, DER, KDF calls): 1.0 would be none.
3. the device's whole ``boot`` (with the atomic, fsynced writes of the fuse and boot-state
   files and the state root), ``quote`` and ``verify_quote``.
4. the tamper-evident state: verifying the whole device state (``counter.value()``: the root,
   the UDS deobfuscation and every file's MAC) and a counter ``increment()`` (three fsynced
   writes), against one bare ``write_atomic`` of a file of the same size in the same directory.

``cold_boot_once(fuses, bundle)`` is importable for other benchmarks (``bench/firmware.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ironroot._fileio import write_atomic
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.firmware import (
    BundlePolicy,
    Component,
    build_bundle,
    key_descriptor_hash,
    sign_bundle,
    verify_bundle,
)
from ironroot.rot import (
    Device,
    Fuses,
    Lifecycle,
    VendorCA,
    cold_boot,
    derive_ecc_p384,
    derive_mldsa87,
    verify_quote,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def cold_boot_once(fuses: Fuses, bundle: bytes) -> None:
    """One full cold boot (verify, measure, derive 4 layers × 2 keys, sign 6 certificates)."""
    cold_boot(fuses, bundle, now=NOW)


def _product() -> tuple[bytes, bytes]:
    ecc = PrivateKey.generate(Algorithm.ES384)
    pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
    unsigned = build_bundle(
        [Component(1, os.urandom(64 * 1024)), Component(2, os.urandom(256 * 1024))],
        svn=3,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        vendor_ecc_keys=[ecc.public_key],
        vendor_pqc_keys=[pqc.public_key],
        pqc_type="mldsa",
    )
    descriptor = key_descriptor_hash([ecc.public_key], [pqc.public_key], "mldsa")
    return sign_bundle(unsigned, ecc, pqc), descriptor


def _fuses(descriptor: bytes) -> Fuses:
    return (
        Fuses()
        .program_uds(os.urandom(64))
        .program_field_entropy(os.urandom(32))
        .program_vendor_key_hash(descriptor)
        .advance_lifecycle(Lifecycle.PRODUCTION)
    )


def _time(run: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Median seconds per call over batches filling ``seconds``; and the call count."""
    run()  # warm up
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples) < 5:
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), len(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args(argv)
    bundle, descriptor = _product()
    fuses = _fuses(descriptor)

    boot_s, boots = _time(lambda: cold_boot_once(fuses, bundle), args.seconds)

    ecc_sig = PrivateKey.generate(Algorithm.ES384)
    ml_sig = PrivateKey.generate(Algorithm.ML_DSA_87)
    tbs = os.urandom(1200)
    cdis = [hashlib.sha384(bytes([i])).digest() for i in range(4)]

    def baseline() -> None:
        verify_bundle(bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=descriptor))
        for cdi in cdis:
            derive_ecc_p384(cdi, b"x_ecc_key")
            derive_mldsa87(cdi, b"x_mldsa_key")
        for _ in range(3):
            ecc_sig.sign(tbs)
            ml_sig.sign(tbs)

    base_s, _ = _time(baseline, args.seconds)
    verify_s, _ = _time(
        lambda: verify_bundle(bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=descriptor)),
        args.seconds / 2,
    )

    with tempfile.TemporaryDirectory() as tmp:
        ca = VendorCA.generate(now=NOW - dt.timedelta(days=1))
        device = Device.create(Path(tmp) / "device")
        device.provision(ca, vendor_key_hash=descriptor, now=NOW - dt.timedelta(hours=1))
        device_boot_s, _ = _time(lambda: device.boot(bundle, now=NOW), args.seconds / 2)
        nonce = os.urandom(32)
        quote_s, _ = _time(lambda: device.quote(nonce), args.seconds / 2)
        quote = device.quote(nonce)
        check_s, _ = _time(
            lambda: verify_quote(quote, nonce=nonce, trust_anchors=ca.trust_anchors, now=NOW),
            args.seconds / 2,
        )
        counter = device.counter("bench")
        counter.increment()
        value_s, _ = _time(counter.value, args.seconds / 2)
        increment_s, _ = _time(counter.increment, args.seconds / 2)
        size = len((device.directory / "counter-bench.json").read_bytes())
        scratch = Path(tmp) / "scratch.json"
        write_s, _ = _time(lambda: write_atomic(scratch, os.urandom(size)), args.seconds / 2)

    print(f"python {sys.version.split()[0]}, bundle {len(bundle) // 1024} KiB")
    print(f"cold boot (pure, {boots} runs):        {boot_s * 1e3:8.2f} ms")
    print(f"  of which verify_bundle:              {verify_s * 1e3:8.2f} ms")
    print(f"baseline (verify + 8 keygens + 6 sigs): {base_s * 1e3:8.2f} ms")
    print(f"ratio baseline / cold boot:            {base_s / boot_s:8.2f}")
    print(f"device boot (with fsynced writes):     {device_boot_s * 1e3:8.2f} ms")
    print(f"quote (ES384 + ML-DSA-87):             {quote_s * 1e3:8.2f} ms, {len(quote)} bytes")
    print(f"verify_quote (2 chains, 10 sigs):      {check_s * 1e3:8.2f} ms")
    print(f"verify the device state (value()):     {value_s * 1e3:8.2f} ms")
    print(f"counter increment():                   {increment_s * 1e3:8.2f} ms")
    print(f"one bare write_atomic, same size:      {write_s * 1e3:8.2f} ms ({size} bytes)")
    print(f"ratio increment / bare write:          {increment_s / write_s:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
