"""``ironroot safe``: sign, verify, publish and query OCP SAFE Short Form Reports."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ironroot import cose, safe, transparency
from ironroot.cli._input import read_input
from ironroot.cli._main import error_object
from ironroot.cli._output import check_output, write_output
from ironroot.cli._serving import add_client_options, add_url_options, client_tls, token, url
from ironroot.cli._text import shown
from ironroot.cli._time import now_or
from ironroot.crypto import PublicKey, Verifier, load_signer
from ironroot.errors import IronrootError, MalformedInput

_MAX_STATEMENT_FILE = 1024 * 1024


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "safe", help="OCP SAFE Short Form Reports: sign, verify, publish, query"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    key_help = (
        "review-provider public key: a PEM/DER key or certificate file, a folder of them "
        "(e.g. SRP_certificates/Active), or KID=FILE to name a key's kid; repeatable"
    )

    sign = verbs.add_parser("sign", help="sign a JSON report as compact JWS or CoRIM COSE_Sign")
    sign.add_argument("report", type=Path, help="the JSON Short Form Report")
    sign.add_argument("--key", required=True, type=Path, help="provider private key (ES384/ES512)")
    sign.add_argument("--kid", required=True, help="the provider's key id (JWS/COSE kid)")
    sign.add_argument("--format", choices=("jws", "cose"), default="jws")
    sign.add_argument("--out", required=True, type=Path)
    sign.set_defaults(func=_sign)

    ver = verbs.add_parser("verify", help="verify a signed report (exit 1 if it does not verify)")
    ver.add_argument("report", type=Path, help="*.jws, *.jwt or COSE (*_signed.cbor)")
    ver.add_argument("--provider-key", action="append", required=True, help=key_help)
    ver.add_argument("--at", help="ISO 8601 time for JWT exp/nbf checks (default: now)")
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=_verify)

    pub = verbs.add_parser("publish", help="register a signed report on a transparency service")
    pub.add_argument("report", type=Path)
    add_url_options(pub, what="transparency service", token=True)
    pub.add_argument("--key", required=True, type=Path, help="statement signing key (PEM)")
    pub.add_argument("--iss", required=True, help="statement issuer (CWT claim 1)")
    pub.add_argument("--provider-key", action="append", help="verify the report first: " + key_help)
    pub.add_argument("--out", type=Path, help="transparent statement (default: <report>.ts)")
    pub.add_argument("--json", action="store_true")
    add_client_options(pub)
    pub.set_defaults(func=_publish)

    query = verbs.add_parser(
        "query",
        help="reviews of a firmware hash among transparent statements "
        "(exit 0 iff there is one and none has an open issue at or above the threshold)",
    )
    query.add_argument("--hash", required=True, help="sha384:<hex>, sha512:<hex> or bare hex")
    query.add_argument("--dir", required=True, type=Path, help="folder of transparent statements")
    query.add_argument("--provider-key", action="append", required=True, help=key_help)
    query.add_argument("--service-keys", type=Path, help="COSE Key Set or PEM: verify receipts")
    query.add_argument(
        "--service-issuer",
        help="the transparency service's issuer: with --service-keys, a receipt naming "
        "another (CWT iss) is refused",
    )
    query.add_argument(
        "--threshold", type=_cvss, default=7.0, help="CVSS threshold, 0.0 to 10.0 (7.0)"
    )
    query.add_argument("--json", action="store_true")
    query.set_defaults(func=_query)


def _cvss(text: str) -> float:
    """A CVSS score as an argparse ``type``: 0.0 to 10.0. NaN is refused above all: it compares
    false with every score, so no open issue would be at or above it and every review pass."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 10.0:  # also false for NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a CVSS score (0.0 to 10.0)")
    return value


def _providers(values: Sequence[str]) -> safe.ProviderKeys:
    sources: list[Path] = []
    aliases: dict[str, Path] = {}
    for value in values:
        path = Path(value)
        if not path.exists() and "=" in value:
            kid, _, file = value.partition("=")
            aliases[kid] = Path(file)
        else:
            sources.append(path)
    keys = safe.ProviderKeys.load(sources, aliases)
    if not len(keys):
        raise MalformedInput("no review-provider keys were found")
    return keys


def _sign(args: argparse.Namespace) -> int:
    check_output(args.out)  # before the key signs
    signer = load_signer(args.key)
    data = read_input(args.report, safe.SafeLimits().max_report_bytes)  # a JSON report
    signed = safe.sign_report(data, signer, args.kid, format=args.format)
    dropped: tuple[str, ...] = ()
    if args.format == "cose":  # the CoRIM profile has no place for some fields: say which
        dropped = safe.corim_dropped_fields(safe.parse_report_json(data))
        for field in dropped:
            print(
                f"ironroot: warning: {field} is not carried in the CoRIM (COSE) form, so the "
                "signature does not cover it; sign as jws to keep it",
                file=sys.stderr,
            )
    write_output(args.out, signed)
    if args.json:
        print(
            json.dumps(
                {
                    "out": str(args.out),
                    "format": args.format,
                    "bytes": len(signed),
                    "alg": signer.algorithm.label,
                    "not_carried": list(dropped),
                }
            )
        )
        return 0
    print(f"wrote {args.out} ({len(signed)} bytes, {args.format}, {signer.algorithm.label})")
    return 0


def _summary(v: safe.VerifiedReport) -> dict[str, object]:
    return {
        "verified": True,
        "format": v.format,
        "kid": v.kid,
        "alg": v.algorithm.label,
        "max_open_cvss": v.report.max_cvss,
        "report": v.report.to_json_dict(),
    }


def _verify(args: argparse.Namespace) -> int:
    try:
        providers = _providers(args.provider_key)
        verified = safe.verify_report(read_input(args.report), providers, now=now_or(args.at))
    except IronrootError as exc:
        if args.json:
            print(json.dumps({"ok": False, "verified": False, "error": error_object(exc)}))
        else:
            print(f"FAILED: {exc.code}: {shown(exc.detail)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_summary(verified)))
        return 0
    r = verified.report
    hashes = ", ".join(f"{k}:{v.hex()[:16]}…" for k, v in r.firmware_hashes().items()) or "none"
    worst = "none" if r.max_cvss is None else f"{r.max_cvss:.1f}"
    # the report's text is the provider's: shown, so no escape reaches the terminal
    device = shown(f"{r.device.vendor} / {r.device.product} {r.device.fw_version}")
    print(
        f"OK: {verified.format} signed by {verified.kid!r} ({verified.algorithm.label})\n"
        f"  {device}; firmware {hashes}\n"
        f"  reviewed by {shown(r.audit.srp)} on {r.audit.completion_date}; "
        f"{len(r.audit.issues)} open issue(s), highest CVSS {worst}"
    )
    return 0


def _publish(args: argparse.Namespace) -> int:
    out: Path = args.out or args.report.with_name(args.report.name + ".ts")
    check_output(out)  # before the key signs and the statement is registered
    providers = _providers(args.provider_key) if args.provider_key else None
    signer = load_signer(args.key)
    statement = safe.sfr_statement(
        read_input(args.report),
        signer,
        iss=args.iss,
        providers=providers,
        now=dt.datetime.now(dt.UTC),
    )
    with transparency.TransparencyClient(
        url(args), token=token(args), verify=client_tls(args)
    ) as client:
        registration = client.register(statement)
    write_output(out, registration.transparent_statement)
    if args.json:
        print(
            json.dumps(
                {
                    "entry_id": registration.entry_id,
                    "receipts": len(registration.receipts),
                    "transparent_statement": str(out),
                    "report_verified": providers is not None,
                }
            )
        )
    else:
        print(
            f"registered entry {registration.entry_id} with {len(registration.receipts)} "
            f"receipt(s); wrote {out}"
        )
    return 0


def _service_keys(path: Path) -> dict[bytes, Verifier]:
    data = read_input(path)
    if data.lstrip().startswith(b"-----BEGIN"):
        key = PublicKey.from_pem(data)
        return {key.kid: key}
    return dict(cose.decode_key_set(data))


def _statements(folder: Path) -> list[bytes]:
    if not folder.is_dir():
        raise MalformedInput(f"{folder} is not a folder")
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.stat().st_size <= _MAX_STATEMENT_FILE:
            out.append(read_input(path))
    return out


def _query(args: argparse.Namespace) -> int:
    providers = _providers(args.provider_key)
    service_keys = _service_keys(args.service_keys) if args.service_keys else None
    found = safe.reviews_for(
        args.hash,
        _statements(args.dir),
        providers=providers,
        service_keys=service_keys,
        now=dt.datetime.now(dt.UTC),
        service_issuer=args.service_issuer,
    )
    # Every verified review of the same firmware counts: one clean review does not close an
    # issue another lists (the attestation verifier's rule).
    acceptable = bool(found) and not any(r.has_issue_at_or_above(args.threshold) for r in found)
    if args.json:
        print(
            json.dumps(
                {
                    "hash": args.hash,
                    "threshold": args.threshold,
                    "acceptable": acceptable,
                    "reviews": [
                        {
                            "provider_kid": r.provider_kid,
                            "srp": r.report.audit.srp,
                            "format": r.format,
                            "issuer": r.issuer,
                            "subject": r.subject,
                            "receipts_verified": r.receipts_verified,
                            "completion_date": r.report.audit.completion_date.isoformat()
                            if r.report.audit.completion_date
                            else None,
                            "open_issues": len(r.report.audit.issues),
                            "max_open_cvss": r.max_open_cvss,
                            "at_or_above_threshold": r.has_issue_at_or_above(args.threshold),
                        }
                        for r in found
                    ],
                }
            )
        )
    else:
        if not found:
            print(f"no verified review of {args.hash}")
        for r in found:
            worst = "none" if r.max_open_cvss is None else f"{r.max_open_cvss:.1f}"
            flag = "FAIL" if r.has_issue_at_or_above(args.threshold) else "ok"
            print(
                f"{flag}: {shown(r.report.audit.srp)} ({r.provider_kid!r}, {r.format}) on "
                f"{r.report.audit.completion_date}: {len(r.report.audit.issues)} open issue(s), "
                f"highest CVSS {worst}; receipts "
                + ("verified" if r.receipts_verified else "not checked")
            )
    return 0 if acceptable else 1
