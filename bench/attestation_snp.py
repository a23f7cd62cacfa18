"""SEV-SNP report verifications/s, with and without chain caching, as ratios to raw P-384 verifies.

Run: ``.venv/bin/python bench/attestation_snp.py [--seconds S]`` (reads the Milan report and
VCEK from ../shared/vectors/tee/snp, or $IRONROOT_VECTORS).

In one run on this machine it measures:
1. baseline: raw ECDSA P-384/SHA-384 verifications/s of the report's signature
   (``ironroot.crypto.PublicKey.verify`` over bytes 0x000-0x29F), the floor cost of a report;
2. full verifications/s with an :class:`SnpChainCache` (the VCEK -> ASK -> ARK RSA-PSS checks
   done once; the report signature, parsing, validity and TCB/chip-id checks every time);
3. full verifications/s without a cache (two RSA-4096 PSS signature checks per report).
Each is printed with its ratio to the baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ironroot.attestation.evidence import (
    SnpChainCache,
    load_certificates,
    verify_snp_report,
)
from ironroot.crypto import Algorithm, PublicKey

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def rate(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    env = os.environ.get("IRONROOT_VECTORS")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "vectors"
    snp = root / "tee" / "snp"
    if not snp.is_dir():
        print(f"vectors not found at {snp}: set IRONROOT_VECTORS", file=sys.stderr)
        return 2
    report = (snp / "deps_verifier_test_data_snp_test-report.bin").read_bytes()
    vcek_der = (snp / "deps_verifier_test_data_snp_test-vcek.der").read_bytes()
    (vcek,) = load_certificates(vcek_der)
    key = PublicKey(vcek.public_key(), Algorithm.ES384)  # type: ignore[arg-type]
    block = report[0x2A0:]
    signature = block[:48][::-1] + block[72:120][::-1]
    signed = report[:0x2A0]

    cache = SnpChainCache()
    verify_snp_report(report, [vcek], now=NOW, cache=cache)  # warm the cache and the roots

    raw = rate(lambda: key.verify(signature, signed), args.seconds)
    cached = rate(lambda: verify_snp_report(report, [vcek], now=NOW, cache=cache), args.seconds)
    uncached = rate(lambda: verify_snp_report(report, [vcek], now=NOW), args.seconds)

    print(f"raw P-384 report-signature verifies/s : {raw:10.0f}")
    print(f"SNP report verifies/s, chain cached   : {cached:10.0f}  ratio {cached / raw:.2f}")
    print(f"SNP report verifies/s, no cache       : {uncached:10.0f}  ratio {uncached / raw:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
