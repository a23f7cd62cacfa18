"""``ironroot statement``: sign, register and verify SCITT Signed Statements."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ironroot import (
    cose,
    crypto,  # a lazy namespace: X.509 loads when used
    transparency,
)
from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, write_output
from ironroot.cli._service_keys import SERVICE_ISSUER_HELP, SERVICE_KEYS_HELP, service_keys
from ironroot.cli._serving import add_client_options, add_url_options, client_tls, token, url
from ironroot.cli._text import shown
from ironroot.cli._time import instant
from ironroot.crypto import PublicKey, load_signer, load_verifier
from ironroot.errors import (
    IronrootError,
    LimitExceeded,
    MalformedInput,
    PayloadTooLarge,
)


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "statement", help="sign, register and verify Signed Statements"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    sign = verbs.add_parser("sign", help="create a COSE_Sign1 Signed Statement")
    sign.add_argument("payload", type=Path, help="payload file (the preimage with --hash-envelope)")
    sign.add_argument("--key", required=True, type=Path, help="private key (PEM)")
    sign.add_argument("--iss", required=True, help="issuer (CWT claim 1)")
    sign.add_argument("--sub", required=True, help="subject (CWT claim 2)")
    sign.add_argument("--content-type", help="content type of the payload (header 3)")
    sign.add_argument(
        "--hash-envelope", action="store_true", help="sign the SHA-256 of the payload (RFC 9995)"
    )
    sign.add_argument("--location", help="payload location (header 260) with --hash-envelope")
    sign.add_argument(
        "--x5chain", type=Path, help="PEM certificate chain, leaf first (the leaf is --key's)"
    )
    sign.add_argument("--out", required=True, type=Path, help="where to write the statement")
    sign.set_defaults(func=_sign)

    reg = verbs.add_parser("register", help="register a statement and write its transparent form")
    reg.add_argument("statement", type=Path)
    add_url_options(reg, what="transparency service", token=True)
    reg.add_argument("--out", type=Path, help="transparent statement (default: <statement>.ts)")
    reg.add_argument(
        "--witness-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="require the checkpoint the statement lands in to be cosigned by these witnesses "
        "(repeatable; docs/witness.md)",
    )
    reg.add_argument(
        "--witness-quorum", type=int, help="how many of the --witness-key witnesses (all)"
    )
    reg.add_argument(
        "--service-keys",
        help=SERVICE_KEYS_HELP + "; the receipts are verified before the file is written "
        "(default: the keys the service publishes)",
    )
    reg.add_argument("--service-issuer", help=SERVICE_ISSUER_HELP)
    reg.add_argument("--json", action="store_true")
    add_client_options(reg)
    reg.set_defaults(func=_register)

    wit = verbs.add_parser(
        "witness",
        help="write a witnessed statement: the transparent statement with a cosigned "
        "checkpoint covering it and the consistency proof (what a platform requiring "
        "witnesses takes; docs/witness.md)",
        epilog="example: ironroot statement witness bmc-2.0.manifest.ts --url URL "
        "--witness-key VKEY --witness-key VKEY --witness-quorum 2",
    )
    wit.add_argument("statement", type=Path, help="a transparent statement (receipts in it)")
    add_url_options(wit, what="transparency service")
    wit.add_argument(
        "--witness-key",
        action="append",
        required=True,
        metavar="VKEY",
        help="a witness whose cosignature counts (repeatable)",
    )
    wit.add_argument(
        "--witness-quorum", type=int, help="how many of the --witness-key witnesses (all)"
    )
    wit.add_argument(
        "--log-key",
        action="append",
        default=[],
        metavar="VKEY",
        help="the log's checkpoint key (repeatable; default: the service's configuration)",
    )
    wit.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for a witnessed checkpoint covering the statement (30)",
    )
    wit.add_argument(
        "--out", type=Path, help="the witnessed statement (default: <statement>.witnessed)"
    )
    wit.add_argument("--json", action="store_true")
    add_client_options(wit)
    wit.set_defaults(func=_witness)

    ver = verbs.add_parser("verify", help="verify a transparent statement offline")
    ver.add_argument("statement", type=Path)
    ver.add_argument("--service-keys", required=True, help=SERVICE_KEYS_HELP)
    ver.add_argument("--service-issuer", help=SERVICE_ISSUER_HELP)
    ver.add_argument("--issuer-key", type=Path, help="also verify the issuer's signature")
    ver.add_argument(
        "--at",
        type=instant,
        help="judge the statement's CWT validity (exp, nbf) as of this time (default: now)",
    )
    ver.add_argument("--json", action="store_true")
    add_client_options(ver)
    ver.set_defaults(func=_verify)

    ins = verbs.add_parser(
        "inspect",
        help="show a signed or transparent statement: headers, claims, receipts (not verified)",
        epilog="example: ironroot statement inspect release.cose.ts --json",
    )
    ins.add_argument("statement", type=Path, help="a Signed or Transparent Statement (COSE)")
    ins.add_argument("--json", action="store_true")
    ins.set_defaults(func=_inspect)


def _payload(path: Path, *, hash_envelope: bool) -> bytes:
    """The payload to sign; without a hash envelope, refused from its size beyond what a
    statement holds (it is never read whole only to be refused)."""
    if hash_envelope:
        return read_input(path)
    limit = cose.DEFAULT_LIMITS.max_bytes
    try:
        return read_input(path, limit)
    except LimitExceeded as exc:
        raise PayloadTooLarge(
            f"{path} is larger than {limit} bytes, more than a statement holds: use a hash "
            "envelope (--hash-envelope)"
        ) from exc


def _sign(args: argparse.Namespace) -> int:
    if args.location and not args.hash_envelope:
        raise MalformedInput("--location needs --hash-envelope")
    content_type = None if args.hash_envelope and args.content_type is None else args.content_type
    chain: list[bytes] | None = None
    leaf: PublicKey | None = None
    if args.x5chain:
        from cryptography.hazmat.primitives.serialization import Encoding

        certs = crypto.load_certificates(read_input(args.x5chain), what=str(args.x5chain))
        chain = [c.public_bytes(Encoding.DER) for c in certs]
        if not certs:
            raise MalformedInput(f"{args.x5chain} holds no certificate")
        leaf = PublicKey(certs[0].public_key())  # type: ignore[arg-type]
    check_output(args.out)  # before signing: a refused output spends no one-time key
    signer = load_signer(args.key)
    if leaf is not None and leaf.kid != signer.kid:
        # RFC 9360: the leaf is the signer's certificate; another one names a second signer
        raise MalformedInput("the --x5chain leaf certificate is not for the --key key")
    statement = cose.create_statement(
        signer,
        _payload(args.payload, hash_envelope=args.hash_envelope),
        iss=args.iss,
        sub=args.sub,
        content_type=None if args.hash_envelope else content_type,
        hash_envelope=args.hash_envelope,
        preimage_content_type=args.content_type if args.hash_envelope else None,
        location=args.location,
        x5chain=chain,
        include_kid=chain is None,
    )
    write_output(args.out, statement)
    print(f"wrote {args.out} ({len(statement)} bytes, {signer.algorithm.label})")
    return 0


def _register(args: argparse.Namespace) -> int:
    statement = read_input(args.statement)
    out: Path = args.out or args.statement.with_suffix(args.statement.suffix + ".ts")
    check_output(out)  # before the statement is registered
    policy = None
    if args.witness_key:
        from ironroot.witness import WitnessPolicy

        policy = WitnessPolicy.from_vkeys(args.witness_key, args.witness_quorum)
    elif args.witness_quorum is not None:
        raise MalformedInput("--witness-quorum needs --witness-key")
    keys, issuer = None, args.service_issuer
    if args.service_keys:
        keys, named = service_keys(args.service_keys, args)
        issuer = issuer or named
    with transparency.TransparencyClient(
        url(args),
        token=token(args),
        verify=client_tls(args),
        witnesses=policy,
        service_keys=keys,
        service_issuer=issuer,
    ) as client:
        registration = client.register(statement)  # its receipts verified
    write_output(out, registration.transparent_statement)
    witnessed = registration.witnessed
    if args.json:
        doc: dict[str, Any] = {
            "entry_id": registration.entry_id,
            "receipts": len(registration.receipts),
            "transparent_statement": str(out),
        }
        if witnessed is not None:
            doc["witnessed"] = {
                "tree_size": witnessed.tree_size,
                "checkpoint_size": witnessed.checkpoint.checkpoint.size,
                "cosigned_by": [c.name for c in witnessed.checkpoint.cosignatures],
            }
        print(json.dumps(doc))
    else:
        print(
            f"registered entry {registration.entry_id} with {len(registration.receipts)} "
            f"receipt(s); wrote {out}"
        )
        if witnessed is not None:
            names = ", ".join(c.name for c in witnessed.checkpoint.cosignatures)
            print(
                f"witnessed: its tree (size {witnessed.tree_size}) is in the checkpoint at "
                f"size {witnessed.checkpoint.checkpoint.size} cosigned by {names}"
            )
    return 0


def _witness(args: argparse.Namespace) -> int:
    from ironroot.log import NoteVerifier
    from ironroot.witness import WitnessPolicy

    statement = read_input(args.statement)
    out: Path = args.out or args.statement.with_suffix(args.statement.suffix + ".witnessed")
    check_output(out)
    if not 0 < args.wait <= 3600:
        raise MalformedInput("--wait is more than 0 and at most 3600 seconds")
    policy = WitnessPolicy.from_vkeys(args.witness_key, args.witness_quorum)
    log_keys = tuple(NoteVerifier.from_vkey(v) for v in args.log_key) or None
    with transparency.TransparencyClient(
        url(args), verify=client_tls(args), log_verifiers=log_keys
    ) as client:
        witnessed = client.witness(statement, policy=policy, wait=args.wait)
    encoded = witnessed.encode()
    write_output(out, encoded)
    checkpoint = witnessed.checkpoint.checkpoint
    names = [c.name for c in witnessed.checkpoint.cosignatures]
    if args.json:
        doc = {
            "witnessed_statement": str(out),
            "origin": checkpoint.origin,
            "tree_size": witnessed.tree_size,
            "checkpoint_size": checkpoint.size,
            "cosigned_by": names,
            "proof_hashes": len(witnessed.proof),
        }
        print(json.dumps(doc))
    else:
        print(
            f"witnessed: its tree (size {witnessed.tree_size}) is in the checkpoint of "
            f"{shown(checkpoint.origin)} at size {checkpoint.size} cosigned by "
            f"{', '.join(shown(n) for n in names)}; wrote {out} ({len(encoded)} bytes)"
        )
    return 0


def _verify(args: argparse.Namespace) -> int:
    keys, named = service_keys(args.service_keys, args)
    issuer = args.service_issuer or named
    data = read_input(args.statement)
    try:
        # the receipts' iat against this clock: --at judges the statement, not when it was logged
        ts: cose.TransparentStatement = cose.verify_transparent_statement(
            data, keys, issuer=issuer, now=time.time()
        )
        if args.issuer_key:
            ts.statement.sign1.verify(load_verifier(args.issuer_key))
        # what its issuer said of its validity holds too: an expired statement does not verify
        ts.statement.check_validity(args.at or dt.datetime.now(dt.UTC))
    except IronrootError as exc:
        # Verification answers one question: a statement that does not parse does not verify.
        print(f"ironroot: NOT VERIFIED: {exc.code}: {shown(exc.detail)}", file=sys.stderr)
        return 1
    claims = ts.statement.claims
    if args.json:
        print(
            json.dumps(
                {
                    "verified": True,
                    "iss": claims.iss,
                    "sub": claims.sub,
                    "alg": ts.statement.algorithm.label,
                    "receipts": len(ts.receipts),
                    "service_issuer": issuer,
                    "issuer_signature_checked": bool(args.issuer_key),
                }
            )
        )
    else:
        print(
            f"OK: {len(ts.receipts)} receipt(s) verify; iss={shown(claims.iss)} "
            f"sub={shown(claims.sub)}"
            + (" ; issuer signature verifies" if args.issuer_key else ""),
            file=sys.stdout,
        )
    return 0


def _header_value(value: object) -> object:
    """A COSE header or claim value as JSON: bytes as hex, maps and arrays recursively."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): _header_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_header_value(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def _receipt_json(data: bytes) -> dict[str, object]:
    try:
        receipt = cose.Receipt.parse(data)
    except IronrootError as exc:
        return {"malformed": f"{exc.code}: {exc.detail}", "bytes": len(data)}
    return {
        "alg": receipt.algorithm.label,
        "kid": receipt.kid.hex(),
        "issuer": receipt.issuer,
        "iat": receipt.iat,
        "inclusion_proofs": [
            {"tree_size": p.tree_size, "leaf_index": p.leaf_index, "path_length": len(p.path)}
            for p in receipt.inclusion_proofs
        ],
        "consistency_proofs": len(receipt.consistency_proofs),
    }


def _inspect(args: argparse.Namespace) -> int:
    data = read_input(args.statement)
    receipts: tuple[bytes, ...] = ()
    try:
        transparent = cose.TransparentStatement.parse(data)
        statement, receipts, kind = transparent.statement, transparent.receipts, "transparent"
    except IronrootError:
        statement, kind = cose.SignedStatement.parse(data), "signed"  # its own error if not
    claims = statement.claims
    envelope = statement.hash_envelope
    value: dict[str, object] = {
        "kind": kind,
        "alg": statement.algorithm.label,
        "kid": statement.kid.hex() if statement.kid else None,
        "x5chain": [_subject(der) for der in statement.x5chain],
        "content_type": statement.content_type,
        "claims": {
            "iss": claims.iss,
            "sub": claims.sub,
            "iat": claims.iat,
            **{str(k): _header_value(v) for k, v in claims.other.items()},
        },
        "protected": {str(k): _header_value(v) for k, v in statement.sign1.protected.items()},
        "payload_bytes": len(statement.payload),
        "payload_sha256": hashlib.sha256(statement.payload).hexdigest(),
        "hash_envelope": None
        if envelope is None
        else {
            "hash_alg": envelope.hash_alg,
            "preimage_content_type": envelope.preimage_content_type,
            "location": envelope.location,
        },
        "receipts": [_receipt_json(r) for r in receipts],
    }
    if args.json:
        print(json.dumps(value))
        return 0
    print(f"{kind} statement, {value['alg']}, kid {value['kid'] or '-'}")
    # the claims and headers are the signer's text: shown, so no escape reaches the terminal
    print(f"  iss: {shown(claims.iss)}\n  sub: {shown(claims.sub)}\n  iat: {claims.iat}")
    print(
        f"  content type: {shown(str(statement.content_type))}; "
        f"payload {len(statement.payload)} bytes"
    )
    for der in statement.x5chain:
        print(f"  x5chain: {shown(_subject(der))}")
    for i, raw in enumerate(receipts):
        print(f"  receipt {i}: {json.dumps(_receipt_json(raw))}")
    print("(not verified: use `ironroot statement verify`)")
    return 0


def _subject(der: bytes) -> str:
    try:
        return crypto.load_certificates(der)[0].subject.rfc4514_string()
    except IronrootError as exc:
        return f"unreadable certificate ({exc.code})"
