"""``ironroot evidence``: verify hardware attestation evidence offline.

``verify FILE [--format auto|ironroot|spdm|azure-hcl|snp|tdx] [--nonce HEX] [--cert FILE]...
[--crl FILE]... [--at ISO-8601] [--allow-trailing] [--json]`` reads FILE (binary or hex text),
verifies it and prints the claims and the verdict. SNP and TDX evidence verify to the built-in
AMD/Intel roots; an Ironroot RoT quote (``ironroot``) to the vendor CA certificates and SPDM
evidence (``spdm``) to the device root certificate given with ``--cert``, each answering
``--nonce``. ``--cert`` also supplies certificates the evidence does not carry (an SNP report's
VCEK or VLEK, DER or PEM, ASK/ARK optional); ``--crl``
CRLs to check a TDX PCK chain against; ``--at`` pins the verification time (default: now);
``--allow-trailing`` accepts bytes after a TDX quote (CCEL padding). Exit 0 verified, 1 when
verification fails (the reason is printed), 2 on malformed input or usage errors.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ironroot.attestation import (
    ROT_QUOTE_FORMAT,
    SPDM_FORMAT,
    detect_evidence_format,
    verify_evidence_bytes,
)
from ironroot.attestation.evidence import (
    EVIDENCE_FORMATS,
    EvidenceClaims,
    VerifyOptions,
    verify_evidence,
)
from ironroot.errors import VerificationFailed

__all__ = ["register"]


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("evidence", help="verify hardware attestation evidence")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")
    verify = verbs.add_parser("verify", help="verify an SNP report or a TDX quote")
    verify.add_argument("file", type=Path, help="the evidence (binary or hex text)")
    verify.add_argument(
        "--format",
        default="auto",
        choices=("auto", ROT_QUOTE_FORMAT, SPDM_FORMAT, *EVIDENCE_FORMATS),
        help="evidence format",
    )
    verify.add_argument(
        "--nonce", type=bytes.fromhex, help="the nonce RoT quotes and SPDM evidence answer (hex)"
    )
    verify.add_argument(
        "--cert",
        action="append",
        default=[],
        type=Path,
        help="a certificate file the evidence does not carry (VCEK/VLEK, DER or PEM)",
    )
    verify.add_argument("--crl", action="append", default=[], type=Path, help="a CRL file")
    verify.add_argument("--at", type=_instant, help="verification time (ISO-8601; default now)")
    verify.add_argument(
        "--allow-trailing", action="store_true", help="accept bytes after a TDX quote"
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_verify)


def _print_claims(claims: EvidenceClaims) -> None:
    print(f"format:      {claims.format}")
    print(f"signer:      {claims.signer}")
    print(f"debug:       {'yes' if claims.debug else 'no'}")
    print(f"report_data: {claims.report_data.hex()}")
    print("identity:")
    for name, value in claims.identity.items():
        print(f"  {name}: {value}")
    print("measurements:")
    for name, digest in claims.measurements.items():
        print(f"  {name}: {digest.hex()}")
    print("svns:")
    for name, svn in claims.svns.items():
        print(f"  {name}: {svn}")


def _verify(args: argparse.Namespace) -> int:
    options = VerifyOptions(
        now=args.at or datetime.now(UTC),
        certificates=tuple(path.read_bytes() for path in args.cert),
        crls=tuple(path.read_bytes() for path in args.crl),
        allow_trailing=args.allow_trailing,
    )
    data = args.file.read_bytes()
    fmt = detect_evidence_format(data) if args.format == "auto" else args.format
    try:
        if fmt in (ROT_QUOTE_FORMAT, SPDM_FORMAT):
            claims = verify_evidence_bytes(
                data,
                format=fmt,
                nonce=args.nonce,
                now=options.now,
                vendor_roots=options.certificates,
            )
        else:
            claims = verify_evidence(data, options, format=fmt)
    except VerificationFailed as exc:
        if args.json:
            print(json.dumps({"verdict": "failed", "error": exc.code, "detail": exc.detail}))
        else:
            print(f"verdict: FAILED ({exc.code}): {exc.detail}")
        return exc.exit_code
    if args.json:
        print(json.dumps({"verdict": "verified", "claims": claims.to_dict()}, indent=2))
    else:
        _print_claims(claims)
        print(f"verdict: verified at {options.now.isoformat()}")
    return 0
