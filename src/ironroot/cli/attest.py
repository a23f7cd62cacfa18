"""``ironroot attest``: the attestation verifier.

``init --data DIR [--release FILE]``
    create a verifier data directory (``attestation.toml``, folders, an ES384 signing key);
    with ``--release``, the vendor's first release names the products and the one issuer
    allowed to publish their reference values (``[[attestation.products]]``).
``serve --data DIR [--host H] [--port P]``
    serve ``/attestation/challenge``, ``/attestation/verify`` and ``/attestation/keys``.
``appraise FILE --data DIR --nonce HEX [--format F] [--cert FILE]... [--crl FILE]...
[--collateral DIR] [--tcb-info FILE]... [--qe-identity FILE] [--tcb-signing-chain FILE]
[--allow-stale-collateral] [--at TIME] [--cwt] [--out FILE] [--json]``
    verify evidence of any format in the table and appraise it offline with the directory's
    endorsements and policy; print the checks that ran and the appraisal; write the signed
    EAR (JWT, or CWT with ``--cwt``) to ``--out``. Exit 1 unless affirming. CRLs and
    collateral given here are used instead of the configured ones (``ironroot evidence
    verify`` documents them); giving them for a format that cannot use them exits 2.
``verify-result FILE --keys FILE|URL [--at TIME] [--json]``
    check an EAR (JWT or CWT) against the verifier's keys (a JWK Set, a COSE Key Set, a
    public key file, or the URL of ``/attestation/keys``) and print its appraisals. Exit 1 when
    it does not verify, has expired, or is not affirming.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ironroot import attestation, cose
from ironroot.cli._hex import hex_bytes
from ironroot.cli._input import read_input
from ironroot.cli._output import write_output
from ironroot.cli._serving import (
    add_client_options,
    add_server_options,
    client_tls,
    data_dir,
    listen,
)
from ironroot.cli._text import shown
from ironroot.cli._time import instant, now_or
from ironroot.cli.evidence import add_collateral_arguments, collateral_from_args
from ironroot.crypto import PublicKey, Verifier, load_verifier
from ironroot.errors import ConfigError, LimitExceeded, MalformedInput, Unreachable

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["register"]

_MAX_FILE = 2 * 1024 * 1024


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("attest", help="the attestation verifier (EAR results)")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>")

    init = verbs.add_parser("init", help="create a verifier data directory")
    init.add_argument("--data", type=Path, required=True)
    init.add_argument(
        "--release",
        type=Path,
        metavar="FILE",
        help="the vendor's first release (Transparent Statement of its CoRIM): its issuer "
        "becomes the one allowed publisher of reference values for the products it names",
    )
    init.set_defaults(func=_init)

    serve = verbs.add_parser(
        "serve",
        help="serve the attestation HTTP API",
        epilog="example: ironroot attest serve --data verifier --log-format json",
    )
    add_server_options(serve, default_host="attestation.toml's, else 127.0.0.1", default_port=8100)
    serve.set_defaults(func=_serve)

    appraise = verbs.add_parser("appraise", help="verify and appraise evidence offline")
    appraise.add_argument("file", type=Path, help="the evidence (quote, SNP report, TDX quote)")
    appraise.add_argument("--data", type=Path, required=True)
    appraise.add_argument("--nonce", type=hex_bytes, help="the nonce the evidence answers (hex)")
    appraise.add_argument(
        "--format",
        default="auto",
        help="evidence format: auto, or one `ironroot evidence formats` lists (default: auto)",
    )
    appraise.add_argument(
        "--cert",
        action="append",
        default=[],
        type=Path,
        help="a certificate the evidence does not carry (an SNP report's VCEK/VLEK)",
    )
    appraise.add_argument("--crl", action="append", default=[], type=Path, help="a CRL file")
    appraise.add_argument(
        "--gpu",
        action="append",
        default=[],
        type=Path,
        help="a composite: the report of GPU 0, 1, … of this CVM (nvidia-gpu; repeat per GPU; "
        "--nonce is then the composite's challenge)",
    )
    appraise.add_argument(
        "--gpu-cert",
        action="append",
        default=[],
        type=Path,
        help="the certificate chain of each --gpu, in the same order",
    )
    appraise.add_argument(
        "--gpu-root",
        type=Path,
        help="the GPUs' root CA (PEM) instead of the built-in NVIDIA Device Identity CA",
    )
    add_collateral_arguments(appraise)
    appraise.add_argument("--at", type=instant, help="appraisal time (ISO-8601; default now)")
    appraise.add_argument("--cwt", action="store_true", help="sign as a CWT (default JWT)")
    appraise.add_argument("--out", type=Path, help="write the signed EAR here")
    appraise.add_argument("--json", action="store_true", help="print JSON")
    appraise.set_defaults(func=_appraise)

    explain = verbs.add_parser(
        "explain",
        help="an EAR's status and trust vector in words, per submodule",
        epilog="example: ironroot attest explain ear.jwt --keys verifier.pub.pem",
    )
    explain.add_argument("ear", type=Path, help="the EAR (JWT or CWT)")
    explain.add_argument(
        "--keys", help="verify its signature too: key file, or URL of /attestation/keys"
    )
    explain.add_argument("--json", action="store_true")
    add_client_options(explain)
    explain.set_defaults(func=_explain)

    check = verbs.add_parser("verify-result", help="check an EAR offline")
    check.add_argument("file", type=Path, help="the EAR (JWT or CWT)")
    check.add_argument("--keys", required=True, help="key file, or URL of /attestation/keys")
    check.add_argument("--at", type=instant, help="verification time (default now)")
    check.add_argument("--json", action="store_true", help="print JSON")
    add_client_options(check)
    check.set_defaults(func=_verify_result)


def _read(path: Path) -> bytes:
    return read_input(path, _MAX_FILE)


def _init(args: argparse.Namespace) -> int:
    path = attestation.init_attestation_dir(args.data, release=args.release)
    print(f"created {path}")
    config = attestation.load_attestation_config(args.data)
    for product in config.products:
        model = f" model {product.model!r}" if product.model is not None else ""
        issuers = ", ".join(sorted(product.issuers))
        print(f"reference values for vendor {product.vendor!r}{model} only from {issuers}")
    if not config.products:
        print(
            "ironroot: warning: no product is configured ([[attestation.products]]): no "
            "reference value is accepted until one is",
            file=sys.stderr,
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import logging

    from ironroot._fileio import DirectoryLock
    from ironroot.http import check_listen, configure_logging, run_server, server_config

    data = data_dir(args)
    config = attestation.load_attestation_config(data)
    bind = listen(
        args,
        file_host=config.host,
        file_port=config.port,
        default_host="127.0.0.1",
        default_port=8100,
    )
    check_listen(bind.host, bind.port)
    configure_logging(bind.log_level, bind.log_format)
    log = logging.getLogger("ironroot.attestation")
    lock = DirectoryLock(data, ".serve.lock", what="attestation data directory")
    try:
        now = datetime.now(UTC)
        with config.open_service(now) as service:
            for line in service.endorsements.rejected:
                log.warning("endorsement refused: %s", line)
            for line in service.collateral_problems:
                log.warning("collateral left out: %s", line)
            for item in attestation.stale_at(service.collateral, service.crls, now):
                allowed = "allowed" if service.allow_stale_collateral else "refused until renewed"
                log.warning("stale collateral (%s): %s", allowed, item.describe())
            log.info(
                "attestation verifier on %s://%s:%d: data %s, EAR keys %s, %d reference values, "
                "%d SAFE reviews, %d endorsements refused",
                bind.scheme,
                bind.host,
                bind.port,
                data,
                ", ".join(k.kid.hex()[:16] for k in service.public_keys),
                len(service.endorsements.reference_values),
                len(service.endorsements.reviews),
                len(service.endorsements.rejected),
            )
            run_server(
                server_config(
                    attestation.create_attestation_app(service),
                    bind.host,
                    bind.port,
                    config.server,
                    tls=bind.tls,
                )
            )
    finally:
        lock.close()
    return 0


def _summary(
    result: attestation.AttestationResult, log: attestation.CheckLog | None = None
) -> dict[str, Any]:
    checks = {}
    if log is not None:
        checks = {
            "checks": [c.to_dict() for c in log.checks],
            "not_checked": [c.to_dict() for c in log.not_checked],
        }
    return {
        **checks,
        "status": result.status.value,
        "iat": result.iat,
        "exp": result.exp,
        "submods": {
            name: {
                "status": a.status.value,
                "trust_vector": dict(a.trust_vector),
                "policy_id": a.policy_id,
                "reasons": list(a.reasons),
            }
            for name, a in result.submods.items()
        },
    }


def _print(result: attestation.AttestationResult, log: attestation.CheckLog | None = None) -> None:
    if log is not None:
        print("checks:")
        for check in log.checks:
            mark = "ok  " if check.ok else "FAIL"
            print(f"  {mark} {check.name}" + (f": {shown(check.detail)}" if check.detail else ""))
        for skipped in log.not_checked:
            print(f"  --   {skipped.name}: not checked ({shown(skipped.reason)})")
    print(f"status: {result.status.value}")
    for name, appraisal in result.submods.items():
        print(f"{shown(name)}: {appraisal.status.value} (policy {shown(str(appraisal.policy_id))})")
        for category, value in sorted(appraisal.trust_vector.items()):
            tag = attestation.TRUST_CLAIM_TAGS[category].get(value, str(value))
            print(f"  {category}: {value} {tag}")
        for reason in appraisal.reasons:
            print(f"  why: {shown(reason)}")


def _appraise(args: argparse.Namespace) -> int:
    if args.format != "auto":
        attestation.evidence.format_row(args.format)  # MalformedInput naming the known ones
    config = attestation.load_attestation_config(args.data)
    now = now_or(args.at)
    log = attestation.CheckLog()
    evidence = _read(args.file)
    crls = tuple(_read(p) for p in args.crl)
    collateral = collateral_from_args(args)
    if crls or collateral is not None:  # given for a format that cannot use them: usage error
        fmt = attestation.detect_format(evidence) if args.format == "auto" else args.format
        attestation.evidence.check_binding(
            attestation.evidence.format_row(fmt),
            attestation.VerifyOptions(now=now, crls=crls, collateral=collateral),
        )
    gpus = _gpu_reports(args) if args.gpu else None
    with config.open_service(now) as service:
        common: dict[str, Any] = {
            "format": args.format,
            "nonce": args.nonce,
            "now": now,
            "certificates": [_read(p) for p in args.cert],
            "crls": crls or service.crls,
            "collateral": collateral if collateral is not None else service.collateral,
            "allow_stale_collateral": args.allow_stale_collateral or service.allow_stale_collateral,
            "collateral_problems": () if collateral is not None else service.collateral_problems,
            "lifetime": service.lifetime,
            "checks": log,
        }
        if gpus is None:
            result = attestation.appraise_evidence(
                evidence, service.endorsements, service.policy, **common
            )
        else:
            reports, root = gpus
            result = attestation.appraise_composite(
                evidence, reports, service.endorsements, service.policy, gpu_root=root, **common
            )
        sign = attestation.sign_ear_cwt if args.cwt else attestation.sign_ear_jwt
        token = sign(result, service.signing_key)
    return _emit(args, result, token, log)


def _gpu_reports(
    args: argparse.Namespace,
) -> tuple[list[attestation.GpuReport], x509.Certificate | None]:
    """The composite's GPU reports (``--gpu`` with its ``--gpu-cert``) and ``--gpu-root``."""
    if args.nonce is None:
        raise MalformedInput("a composite (--gpu) needs --nonce, its challenge")
    if len(args.gpu_cert) != len(args.gpu):
        raise MalformedInput("give one --gpu-cert per --gpu, in the same order")
    gpus = [
        attestation.GpuReport(_read(report), (_read(chain),))
        for report, chain in zip(args.gpu, args.gpu_cert, strict=True)
    ]
    root = None
    if args.gpu_root is not None:
        found = attestation.evidence.load_certificates(_read(args.gpu_root))
        if len(found) != 1:
            raise MalformedInput("--gpu-root holds exactly one certificate")
        root = found[0]
    return gpus, root


def _emit(
    args: argparse.Namespace,
    result: attestation.AttestationResult,
    token: bytes,
    log: attestation.CheckLog,
) -> int:
    if args.out is not None:
        write_output(args.out, token)
    if args.json:
        print(
            json.dumps(
                {"ok": result.status is attestation.TrustTier.AFFIRMING, **_summary(result, log)}
            )
        )
    else:
        _print(result, log)
    return 0 if result.status is attestation.TrustTier.AFFIRMING else 1


def _jwks(data: bytes) -> dict[bytes, Verifier]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedInput(f"the key file is not JSON: {exc}") from exc
    if not isinstance(document, Mapping):
        raise MalformedInput("a JWK Set is a JSON object")
    items = document.get("keys", [document])
    if not isinstance(items, list):
        raise MalformedInput("a JWK Set has a keys list")
    keys: dict[bytes, Verifier] = {}
    for item in items:
        key = PublicKey.from_jwk(item)
        keys[key.kid] = key
    return keys


def _keys(source: str, args: argparse.Namespace) -> dict[bytes, Verifier]:
    if source.startswith(("http://", "https://")):
        import httpx  # here: a network client costs a tenth of a second to import

        from ironroot._httpclient import (
            bounded_response,
            checked_url,
            redirect_target,
            shown_url,
        )

        url = checked_url(source, "the verifier keys")
        too_large = f"the verifier keys' answer is larger than {_MAX_FILE} bytes"
        try:  # read as a keys file is: within its limit, and within a deadline
            with httpx.Client(
                timeout=10.0,
                verify=client_tls(args),
                follow_redirects=False,  # a redirect is ConfigError redirect, never followed
            ) as client:
                response = bounded_response(
                    client,
                    "GET",
                    url,
                    limit=_MAX_FILE,
                    too_large=lambda: LimitExceeded(too_large),
                    total=30.0,
                    headers={"Accept": "application/jwk-set+json"},
                )
        except httpx.HTTPError as exc:
            raise Unreachable.of("the verifier keys", exc) from exc
        status = response.status_code
        if 300 <= status < 400:
            raise ConfigError(
                f"{shown_url(url)} answered {status}, a redirect to {redirect_target(response)}: "
                "the verifier keys are read only at the URL given, no redirect is followed; if "
                "they moved, give their new URL",
                code="redirect",
            )
        if status != 200:
            raise ConfigError(f"{shown_url(url)} answered {status}")
        return _jwks(response.content)
    data = _read(Path(source))
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        return _jwks(data)
    if data[:1] and 0x80 <= data[0] <= 0x9F:
        return dict(cose.decode_key_set(data))
    key = load_verifier(data)
    return {key.kid: key}


def _verify_result(args: argparse.Namespace) -> int:
    keys = _keys(args.keys, args)
    result = attestation.verify_ear(_read(args.file), keys, now=now_or(args.at))
    if args.json:
        print(json.dumps({"verified": True, **_summary(result)}, indent=2))
    else:
        print("verified: signature and lifetime")
        _print(result)
    return 0 if result.status is attestation.TrustTier.AFFIRMING else 1


# What each AR4SI tag means, in a phrase (draft-ietf-rats-ar4si §2.3.4).
_MEANING: Final = {
    "verifier_malfunction": "the verifier could not appraise this",
    "no_claim": "the verifier makes no claim",
    "unexpected_evidence": "the evidence was not what the verifier expected",
    "crypto_failed": "a signature or other cryptographic check failed",
    "recognized_instance": "a recognized, trustworthy instance",
    "untrustworthy_instance": "the instance is recognized but not trustworthy",
    "unrecognized_instance": "the instance is not recognized",
    "approved_config": "the configuration is approved",
    "safe_config": "no known vulnerabilities in the configuration",
    "unsafe_config": "the configuration is known to be unsafe",
    "unsupportable_config": "the configuration cannot be supported",
    "approved_rt": "only approved runtime code was loaded",
    "approved_boot": "only approved boot code was loaded",
    "unsafe_rt": "the runtime code is known to be unsafe",
    "unrecognized_rt": "the runtime code is not recognized",
    "contraindicated_rt": "the runtime code is contraindicated (revoked, vulnerable)",
    "approved_fs": "the file system is approved",
    "unrecognized_fs": "the file system is not recognized",
    "contraindicated_fs": "the file system is contraindicated",
    "genuine_hw": "genuine hardware",
    "unsafe_hw": "the hardware or its TCB is known to be unsafe (e.g. out of date)",
    "contraindicated_hw": "the hardware is contraindicated",
    "unrecognized_hw": "the hardware is not recognized",
    "encrypted_rt": "memory is encrypted from the host",
    "isolated_rt": "memory is isolated but not encrypted",
    "visible_rt": "memory is visible to the host",
    "hw_encrypted_secrets": "secrets are encrypted with hardware keys",
    "sw_encrypted_secrets": "secrets are encrypted with software keys",
    "unencrypted_secrets": "secrets are not encrypted",
    "trusted_sources": "data comes from trusted sources",
    "untrusted_sources": "data comes from untrusted sources",
    "contraindicated_sources": "data comes from contraindicated sources",
}


def _unverified_ear(token: bytes) -> attestation.AttestationResult:
    """An EAR's claims without checking its signature (``explain`` says so)."""
    from ironroot.ear import read_ear_unchecked

    return read_ear_unchecked(token)


def _explain(args: argparse.Namespace) -> int:
    token = _read(args.ear)  # a CWT's bytes whole (its last may be 0x0a); a JWT's trimmed below
    if args.keys:
        result = attestation.decode_ear(token, _keys(args.keys, args))
        signature = "verified"
    else:
        result = _unverified_ear(token)
        signature = "not checked (give --keys)"
    submods: dict[str, dict[str, Any]] = {}
    for label, appraisal in result.submods.items():
        vector: dict[str, dict[str, Any]] = {}
        for category, code in appraisal.trust_vector.items():
            tag = attestation.TRUST_CLAIM_TAGS.get(category, {}).get(code, str(code))
            vector[category] = {
                "code": code,
                "tag": tag,
                "tier": attestation.tier_of(code).value,
                "meaning": _MEANING.get(tag, "a code this verifier does not name"),
            }
        submods[label] = {
            "status": appraisal.status.value,
            "policy": appraisal.policy_id,
            "vector": vector,
            "reasons": list(appraisal.reasons),
        }
    if args.json:
        print(
            json.dumps(
                {
                    "status": result.status.value,
                    "signature": signature,
                    "iat": result.iat,
                    "exp": result.exp,
                    "submods": submods,
                }
            )
        )
        return 0
    print(f"status: {result.status.value} (the worst of its submodules); signature {signature}")
    for label, sub in submods.items():
        print(f"{shown(label)}: {sub['status']} (policy {shown(sub['policy'] or '-')})")
        for category, item in sub["vector"].items():
            print(
                f"  {category:<18} {item['code']:>4} {item['tag']:<22} [{item['tier']}] "
                f"{item['meaning']}"
            )
        for reason in sub["reasons"]:
            print(f"  why: {shown(reason)}")
    return 0
