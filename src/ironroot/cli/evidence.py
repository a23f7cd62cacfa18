"""``ironroot evidence``: verify attestation evidence offline, through the one format table.

``verify FILE [--format auto|<row>] [--nonce HEX [--bind-key FILE]] [--cert FILE]...
[--crl FILE]... [--collateral DIR] [--tcb-info FILE]... [--qe-identity FILE]
[--tcb-signing-chain FILE] [--allow-stale-collateral] [--at ISO-8601] [--json]``
    reads FILE (binary or hex text), verifies it with its format's row of the table and
    prints every check that ran (and those that could not, with why), the claims and the
    verdict. ``--nonce`` is checked by the format's binding rule (exact or zero-padded);
    ``--bind-key`` adds a public key bound beside the nonce (a format that cannot bind one,
    or no nonce at all, refuses it: exit 2). ``--cert`` gives the certificates the evidence
    does not carry (an SNP report's VCEK/VLEK) and the roots of formats without a built-in
    root (the RoT vendor CA, the SPDM device root); ``--crl`` CRLs to check chains against
    (SNP, Azure HCL, TDX); ``--collateral`` a directory of Intel's TDX collateral (TCB Info,
    QE Identity, their signing chain, PCK and root CA CRLs; file names in
    :data:`ironroot.attestation.COLLATERAL_FILES`), or the files one by one, which give a TDX
    quote its TCB status; ``--allow-stale-collateral`` accepts CRLs and collateral past their
    ``nextUpdate`` (the result lists them) instead of refusing them. CRLs or collateral for a
    format that cannot use them are a usage error. ``--at`` pins the verification time
    (default: now).
``inspect FILE [--format F] [--json]``
    prints the parsed structure WITHOUT verifying anything.
``formats [--json]``
    lists the rows of the format table: detection order, nonce binding, pinned roots.

Exit 0 verified, 1 when a check fails (the check is named), 2 on malformed input or usage
errors. With ``--json`` the result is printed on stdout whether or not it failed:
``{"ok": true, "format", "checks", "not_checked", "claims"}`` or ``{"ok": false, "error":
{"code", "message", "check"}, "checks", "not_checked"}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ironroot import attestation
from ironroot._text import shown
from ironroot.cli._hex import hex_bytes
from ironroot.cli._input import read_input
from ironroot.cli._main import error_object
from ironroot.cli._time import instant, now_or
from ironroot.errors import IronrootError, MalformedInput

__all__ = ["add_collateral_arguments", "collateral_from_args", "register"]

_MAX_FILE = 2 * 1024 * 1024


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("evidence", help="verify attestation evidence offline")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")
    # No `choices`: listing them would load every format's verifier to print help. An unknown
    # name is refused when the verb runs (MalformedInput naming the known ones: exit 2).
    formats_help = "evidence format: auto, or one `ironroot evidence formats` lists"

    verify = verbs.add_parser("verify", help="verify evidence of any format in the table")
    verify.add_argument("file", type=Path, help="the evidence (binary or hex text)")
    verify.add_argument("--format", default="auto", help=formats_help)
    verify.add_argument("--nonce", type=hex_bytes, help="the nonce the evidence must answer (hex)")
    verify.add_argument(
        "--bind-key",
        type=Path,
        help="a public key (PEM or DER) the evidence binds beside the nonce",
    )
    verify.add_argument(
        "--cert",
        action="append",
        default=[],
        type=Path,
        help="a certificate the evidence does not carry (VCEK/VLEK) or a configured root "
        "(RoT vendor CA, SPDM device root); DER or PEM",
    )
    verify.add_argument("--crl", action="append", default=[], type=Path, help="a CRL file")
    add_collateral_arguments(verify)
    verify.add_argument("--at", type=instant, help="verification time (ISO-8601; default now)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_verify)

    inspect = verbs.add_parser("inspect", help="print the parsed evidence (NOT verified)")
    inspect.add_argument("file", type=Path, help="the evidence (binary or hex text)")
    inspect.add_argument("--format", default="auto", help=formats_help)
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.set_defaults(func=_inspect)

    table = verbs.add_parser("formats", help="list the evidence formats")
    table.add_argument("--json", action="store_true", help="print JSON")
    table.set_defaults(func=_formats)


def add_collateral_arguments(parser: argparse.ArgumentParser) -> None:
    """``--collateral``, the single collateral files and ``--allow-stale-collateral``."""
    parser.add_argument(
        "--collateral",
        type=Path,
        metavar="DIR",
        help="Intel TDX collateral directory: tcb_info*.json, qe_identity.json, "
        "tcb_signing_chain.pem, pck_crl*.der|pem, root_crl.der|pem",
    )
    parser.add_argument(
        "--tcb-info",
        action="append",
        default=[],
        type=Path,
        help="an Intel TCB Info JSON file (as PCS serves it)",
    )
    parser.add_argument("--qe-identity", type=Path, help="an Intel QE Identity JSON file")
    parser.add_argument(
        "--tcb-signing-chain",
        type=Path,
        help="the TCB signing chain (PEM, or the TCB-Info-Issuer-Chain header value)",
    )
    parser.add_argument(
        "--allow-stale-collateral",
        action="store_true",
        help="accept CRLs, TCB Info and QE Identity past their nextUpdate (reported)",
    )


def collateral_from_args(args: argparse.Namespace) -> attestation.evidence.TdxCollateral | None:
    """The collateral the arguments name (read strictly: a bad file is an error), or None."""
    if (
        args.collateral is None
        and not args.tcb_info
        and args.qe_identity is None
        and args.tcb_signing_chain is None
    ):
        return None
    files = attestation.read_tdx_collateral(
        args.collateral,
        tcb_info=args.tcb_info,
        qe_identity=args.qe_identity,
        signing_chain=args.tcb_signing_chain,
        strict=True,
    )
    return (
        files.collateral if files.collateral is not None else attestation.evidence.TdxCollateral()
    )


def _read(path: Path) -> bytes:
    return read_input(path, _MAX_FILE)


def _public_key_der(path: Path) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM or DER public key file."""
    from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
    from cryptography.hazmat.primitives import serialization

    data = _read(path)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError, _LibraryUnsupported) as exc:
        raise MalformedInput(f"{path} is not a PEM or DER public key") from exc


def _print_checks(log: attestation.evidence.CheckLog) -> None:
    print("checks:")
    for check in log.checks:
        mark = "ok  " if check.ok else "FAIL"
        print(f"  {mark} {check.name}" + (f": {shown(check.detail)}" if check.detail else ""))
    for skipped in log.not_checked:
        print(f"  --   {skipped.name}: not checked ({shown(skipped.reason)})")


def _print_claims(claims: attestation.evidence.EvidenceClaims) -> None:
    print(f"format:      {claims.format}")
    print(f"signer:      {shown(str(claims.signer))}")
    print(f"debug:       {'yes' if claims.debug else 'no'}")
    print(f"report_data: {claims.report_data.hex()}")
    print("identity:")
    for name, value in claims.identity.items():
        print(f"  {shown(name)}: {shown(str(value))}")
    print("measurements:")
    for name, digest in claims.measurements.items():
        print(f"  {shown(name)}: {digest.hex()}")
    print("svns:")
    for name, svn in claims.svns.items():
        print(f"  {shown(name)}: {svn}")


def _checks_json(log: attestation.evidence.CheckLog) -> dict[str, Any]:
    return {
        "checks": [c.to_dict() for c in log.checks],
        "not_checked": [c.to_dict() for c in log.not_checked],
    }


def _verify(args: argparse.Namespace) -> int:
    log = attestation.evidence.CheckLog()
    now = now_or(args.at)
    try:
        options = attestation.evidence.VerifyOptions(
            now=now,
            nonce=args.nonce,
            bound_key=_public_key_der(args.bind_key) if args.bind_key is not None else None,
            certificates=tuple(_read(path) for path in args.cert),
            crls=tuple(_read(path) for path in args.crl),
            collateral=collateral_from_args(args),
            allow_stale_collateral=args.allow_stale_collateral,
        )
        claims = attestation.evidence.verify_evidence(
            _read(args.file), options, format=args.format, checks=log
        )
    except IronrootError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": error_object(exc), **_checks_json(log)}))
        else:
            if log.checks:
                _print_checks(log)
            where = f" [{exc.check}]" if exc.check else ""
            print(f"verdict: FAILED{where} ({exc.code}): {shown(exc.detail)}")
        print(f"ironroot: {exc.code}: {shown(exc.detail)}", file=sys.stderr)  # as every verb
        return exc.exit_code
    if args.json:
        body = claims.to_dict()
        body.pop("checks")
        body.pop("not_checked")
        result = {"ok": True, "format": claims.format, **_checks_json(log), "claims": body}
        print(json.dumps(result, indent=2))
    else:
        _print_claims(claims)
        _print_checks(log)
        print(f"verdict: verified at {now.isoformat()}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    name, parsed = attestation.evidence.parse_evidence(_read(args.file), format=args.format)
    if args.json:
        print(json.dumps({"ok": True, "format": name, "verified": False, "parsed": parsed}))
    else:
        print(f"format: {name} (parsed only: NOT verified)")
        print(json.dumps(parsed, indent=2))
    return 0


def _formats(args: argparse.Namespace) -> int:
    rows = [row.describe() for row in attestation.evidence.EVIDENCE_FORMATS.values()]
    if args.json:
        print(json.dumps({"ok": True, "formats": rows}, indent=2))
        return 0
    for row in rows:
        binding = row["nonce_binding"]
        print(f"{row['name']}: {row['description']}")
        if binding is None:
            print("  nonce: cannot be bound")
        else:
            keyed = ", a key can be bound beside it" if binding["keyed"] else ""
            print(f"  nonce: {binding['rule']}: {binding['description']}{keyed}")
        roots = row["pinned_roots"]
        if roots:
            for root in roots:
                print(f"  pinned root: {root['name']} sha256:{root['sha256']}")
        else:
            print("  roots: configured by the verifier (--cert)")
    return 0
