"""TDX quote verifications/s with CRLs and Intel collateral, as ratios to raw P-256 verifies.

Run: ``.venv/bin/python bench/attestation_tdx.py [--seconds S]`` (reads the quote, CRLs, TCB
Info and QE Identity from ../shared/vectors/tee/tdx, or $IRONROOT_VECTORS).

In one run on this machine it measures:
1. baseline: raw ECDSA P-256/SHA-256 verifications/s of the quote signature;
2. full quote verifications/s with a :class:`TdxChainCache` (two P-256 signatures, parsing,
   validity every time; the PCK chain signatures once);
3. the same with the PCS PCK CRL and root CA CRL checked (at a time they are fresh);
4. parsing Intel's TCB Info response (done once per file by a service);
5. the TCB status: QE identity check and Intel's TCB level matching on parsed collateral
   (what a quote adds when collateral is given; the collateral's own signatures are checked
   once per document by the chain cache).
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
    TdxChainCache,
    check_qe_identity,
    evaluate_tdx_tcb,
    load_certificates,
    load_crls,
    parse_pck_extensions,
    parse_qe_identity,
    parse_tcb_info,
    parse_tdx_quote,
    verify_tdx_quote,
)
from ironroot.crypto import PublicKey

FRESH = datetime(2023, 6, 20, tzinfo=UTC)


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
    tdx = root / "tee" / "tdx"
    if not tdx.is_dir():
        print(f"vectors not found at {tdx}: set IRONROOT_VECTORS", file=sys.stderr)
        return 2
    data = (tdx / "deps_verifier_test_data_tdx_quote_4.dat").read_bytes()
    crls = load_crls((tdx / "testing_testdata_pckcrl").read_bytes()) + load_crls(
        (tdx / "testing_testdata_rootcrl.der").read_bytes()
    )
    tcb_body = (tdx / "testing_testdata_sample_tcbInfo_response").read_bytes()
    info = parse_tcb_info(tcb_body)
    identity = parse_qe_identity((tdx / "testing_testdata_sample_qeIdentity_response").read_bytes())
    quote = parse_tdx_quote(data)
    ext = parse_pck_extensions(load_certificates(quote.pck_chain_pem.rstrip(b"\0"))[0])
    x, y = quote.attestation_key[:32], quote.attestation_key[32:]
    key = PublicKey.from_cose_key({1: 2, -1: 1, -2: x, -3: y})
    cache = TdxChainCache()

    def status() -> object:
        qe = check_qe_identity(identity, quote.qe_report)
        return evaluate_tdx_tcb(
            info,
            fmspc=ext.fmspc,
            pce_id=ext.pceid,
            pck_components=ext.tcb_components,
            pcesvn=ext.pcesvn,
            quote=quote,
            qe=qe,
        )

    runs = [
        ("raw P-256 verify (baseline)", lambda: key.verify(quote.signature, quote.signed_bytes)),
        ("verify_tdx_quote, chain cached", lambda: verify_tdx_quote(data, now=FRESH, cache=cache)),
        (
            "  + PCK CRL and root CA CRL",
            lambda: verify_tdx_quote(data, now=FRESH, cache=cache, crls=crls),
        ),
        ("parse TCB Info response", lambda: parse_tcb_info(tcb_body)),
        ("QE identity + TCB status", status),
    ]
    base = None
    for name, fn in runs:
        per_second = rate(fn, args.seconds)
        base = base or per_second
        print(f"{name:34s} {per_second:10.0f}/s  ratio {per_second / base:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
