"""``ironroot rim``: NVIDIA's GPU Reference Integrity Manifests, verified, logged, appraised.

``verify FILE [--at TIME] [--root PEM]... [--json]``
    verifies a SWID-tag RIM (XML-DSig, the chain to NVIDIA's pinned RIM root or ``--root``,
    the chain's validity at ``--at``, default now) and prints its identity and its active
    golden measurements.
``register FILE --url URL --key KEY --iss ISS [--id ID | --project P --sku S --chip C]
[--at TIME] [--root PEM]... [--out FILE] [--json]``
    verifies the RIM, then registers it on a transparency service as a Signed Statement
    (content type ``application/swid+xml``, subject the RIM id) and writes its Transparent
    Statement (default ``FILE.ts``). A driver RIM's id comes from the RIM; a VBIOS RIM's needs
    the board's project, SKU and chip SKU (``--project/--sku/--chip``, or NVIDIA's file name
    ``<project>_<sku>_<chip>_<version>_….swidtag``), or ``--id``.
``appraise (--evidence FILE --cert CHAIN [--nonce HEX] | --measurements FILE --project P
--sku S --chip C --vbios-version V --driver-version D [--nvdec0-disabled]) --rims PATH...
--service-keys FILE [--service-issuer ISS] --issuer ISS... [--product GH100] [--at TIME]
[--root PEM]... [--json]``
    appraises a GPU against the RIM Transparent Statements in ``--rims`` (files or folders)
    whose receipts verify under ``--service-keys`` (and name the transparency service
    ``--service-issuer``, when given) and whose issuer is an ``--issuer``, exactly
    as the verifier's endorsements do: an NVIDIA GPU report (``--evidence``, verified as the
    ``nvidia-gpu`` format; its opaque data names the board, the versions and NVDEC0's status),
    or bare measurement blocks (JSON ``{"<SPDM block index>": "<hex>", …}``) with the values
    given. Refused statements are logged as warnings (stderr) and listed
    in the JSON output.

Exit 0 verified (affirmed), 1 when a check fails (the error names it: ``bad-signature``,
``chain-not-trusted``, ``certificate-expired``, ``no-receipt``, ``rim-not-found``,
``measurement-mismatch``), 2 on malformed input or usage errors.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Final

from ironroot import rim
from ironroot._json import DECODER as STRICT_JSON
from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, write_output
from ironroot.cli._serving import add_client_options, add_url_options, client_tls, token, url
from ironroot.cli._text import shown
from ironroot.cli._time import now_or
from ironroot.errors import ConfigError, LimitExceeded, MalformedInput

__all__ = ["register"]

_MAX_FILE: Final = 1024 * 1024
# NVIDIA's VBIOS RIM files: <project>_<sku>_<chip>_<version, no dots>_<PROD|…>.swidtag
_VBIOS_FILE: Final = re.compile(
    r"(?P<project>[A-Za-z0-9]{4})_(?P<sku>[0-9]{4})_(?P<chip>[0-9]{3})_(?P<version>[0-9A-Fa-f]{10})"
    r"(?:_[^/]*)?\.swidtag"
)


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "rim", help="NVIDIA GPU reference manifests (RIMs): verify, register, appraise"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    root_help = "trust this RIM root CA (PEM) instead of NVIDIA's pinned root; repeatable"

    ver = verbs.add_parser(
        "verify",
        help="verify a RIM: XML signature, chain, dates",
        epilog="example: ironroot rim verify 1010_0200_882_96005E0001_PROD.swidtag --at 2024-06-01",
    )
    ver.add_argument("rim", type=Path, help="the RIM (SWID tag, .swidtag)")
    ver.add_argument("--at", help="verification time, RFC 3339 (default: now)")
    ver.add_argument("--root", action="append", type=Path, default=[], help=root_help)
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=_verify)

    reg = verbs.add_parser(
        "register",
        help="register a RIM on a transparency service",
        epilog="example: ironroot rim register 1010_0200_882_96005E0001_PROD.swidtag "
        "--url http://127.0.0.1:8000 --key registrant.key --iss https://rims.example",
    )
    reg.add_argument("rim", type=Path, help="the RIM (SWID tag, .swidtag)")
    add_url_options(reg, what="transparency service", token=True)
    reg.add_argument("--key", required=True, type=Path, help="statement signing key (PEM)")
    reg.add_argument("--iss", required=True, help="statement issuer (CWT claim 1)")
    reg.add_argument("--id", help="the RIM id (NV_GPU_VBIOS_… or NV_GPU_DRIVER_…)")
    reg.add_argument("--project", help="a VBIOS RIM's board project (e.g. 1010)")
    reg.add_argument("--sku", help="a VBIOS RIM's board SKU (e.g. 0200)")
    reg.add_argument("--chip", help="a VBIOS RIM's chip SKU (e.g. 882)")
    reg.add_argument("--at", help="verify the RIM at this time, RFC 3339 (default: now)")
    reg.add_argument("--root", action="append", type=Path, default=[], help=root_help)
    reg.add_argument("--out", type=Path, help="transparent statement (default: <rim>.ts)")
    reg.add_argument("--json", action="store_true")
    add_client_options(reg)
    reg.set_defaults(func=_register)

    app = verbs.add_parser(
        "appraise",
        help="appraise GPU measurement blocks against logged driver and VBIOS RIMs",
        epilog="example: ironroot rim appraise --evidence hopperAttestationReport.txt "
        "--cert hopperCertChain.txt --rims rims/ --service-keys scitt-keys.cbor "
        "--issuer https://rims.example",
    )
    given = app.add_mutually_exclusive_group(required=True)
    given.add_argument(
        "--evidence",
        type=Path,
        help="an NVIDIA GPU report (nvidia-gpu, hex or binary): verified with --cert and "
        "--nonce, its blocks and opaque fields select and meet the RIMs",
    )
    given.add_argument(
        "--measurements",
        type=Path,
        help='instead of --evidence: JSON {"<SPDM block index>": "<hex>", ...}, with the '
        "board and versions given by --project/--sku/--chip/--vbios-version/--driver-version",
    )
    app.add_argument("--cert", type=Path, help="with --evidence: the GPU's certificate chain")
    app.add_argument("--nonce", help="with --evidence: the nonce it must answer (hex)")
    app.add_argument(
        "--rims",
        required=True,
        action="append",
        type=Path,
        help="RIM Transparent Statements: files or folders; repeatable",
    )
    app.add_argument(
        "--service-keys", required=True, type=Path, help="COSE Key Set or PEM: verify receipts"
    )
    app.add_argument(
        "--service-issuer",
        help="the transparency service's issuer: a receipt naming another (CWT iss) is refused",
    )
    app.add_argument(
        "--issuer",
        required=True,
        action="append",
        help="a statement issuer trusted to register NVIDIA RIMs; repeatable",
    )
    app.add_argument("--project", help="with --measurements: the project (e.g. 1010)")
    app.add_argument("--sku", help="with --measurements: the project SKU (e.g. 0200)")
    app.add_argument("--chip", help="with --measurements: the chip SKU (e.g. 882)")
    app.add_argument("--vbios-version", help="with --measurements: e.g. 96.00.5E.00.01")
    app.add_argument("--driver-version", help="with --measurements: e.g. 550.90.07")
    app.add_argument("--product", default="GH100", help="the GPU (driver RIM ids), GH100")
    app.add_argument(
        "--nvdec0-disabled",
        action="store_true",
        help="with --measurements: NVDEC0 is disabled, block 36 is not compared",
    )
    app.add_argument("--vendor", default="NVIDIA Corporation", help="RIM manufacturer")
    app.add_argument("--at", help="appraisal time, RFC 3339 (default: now)")
    app.add_argument("--root", action="append", type=Path, default=[], help=root_help)
    app.add_argument("--json", action="store_true")
    app.set_defaults(func=_appraise)


def _read(path: Path, what: str) -> bytes:
    if path.is_dir():
        raise MalformedInput(f"{path}: the {what} is a folder, not a file")
    try:
        return read_input(path, _MAX_FILE)
    except LimitExceeded:
        raise LimitExceeded(f"{path}: the {what} is larger than {_MAX_FILE} bytes") from None


def _roots(paths: list[Path]) -> tuple[Any, ...] | None:
    if not paths:
        return None
    from ironroot.crypto import load_certificates

    return tuple(c for p in paths for c in load_certificates(_read(p, "root"), what=str(p)))


def _summary(verified: rim.Rim) -> dict[str, Any]:
    return {
        "tag_id": verified.tag_id,
        "name": verified.name,
        "version": verified.colloquial_version,
        "product": verified.product,
        "manufacturer": verified.manufacturer,
        "model": verified.model,
        "edition": verified.edition,
        "signer": verified.signer,
        "not_after": verified.not_after.isoformat(),
        "sha384": verified.digest.hex(),
        "active": [
            {
                "block": m.block,
                "index": m.index,
                "name": m.name,
                "size": m.size,
                "alternatives": [v.hex() for v in m.alternatives],
            }
            for m in verified.active
        ],
    }


def _verify(args: argparse.Namespace) -> int:
    verified = rim.verify_rim(_read(args.rim, "RIM"), now=now_or(args.at), roots=_roots(args.root))
    summary = _summary(verified)
    if args.json:
        print(json.dumps({"verified": True, **summary}))
        return 0
    print(
        f"OK: {shown(verified.product)} RIM version {shown(verified.colloquial_version)} "
        f"(tag {shown(verified.tag_id[:16])}…), signed by {verified.signer!r}, "
        f"valid until {verified.not_after.isoformat()}"
    )
    for m in verified.active:
        values = ", ".join(v.hex()[:16] + "…" for v in m.alternatives)
        print(f"  block {m.block:>3} (index {m.index:>2}) {shown(m.name)}: {values}")
    return 0


def _rim_id(args: argparse.Namespace, verified: rim.Rim) -> rim.RimId:
    board = (args.project, args.sku, args.chip)
    if args.id:
        if any(board):
            raise ConfigError("give --id or --project/--sku/--chip, not both")
        return rim.RimId.parse(args.id)
    if any(board):
        if not all(board):
            raise ConfigError("a VBIOS RIM id needs --project, --sku and --chip")
        return rim.RimId.vbios(args.project, args.sku, args.chip, verified.colloquial_version)
    if re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){0,2}", verified.colloquial_version):
        return rim.RimId.driver(verified.product, verified.colloquial_version)
    found = _VBIOS_FILE.fullmatch(args.rim.name)
    if found is None:
        raise ConfigError(
            f"{args.rim.name}: a VBIOS RIM's id needs the board: give --project, --sku and "
            "--chip (or --id)"
        )
    return rim.RimId.vbios(found["project"], found["sku"], found["chip"], found["version"])


def _register(args: argparse.Namespace) -> int:
    from ironroot import transparency
    from ironroot.crypto import load_signer

    out: Path = args.out or args.rim.with_name(args.rim.name + ".ts")
    check_output(out)  # before the key signs and the statement is registered
    data = _read(args.rim, "RIM")
    now, roots = now_or(args.at), _roots(args.root)
    rim_id = _rim_id(args, rim.verify_rim(data, now=now, roots=roots))
    statement = rim.rim_statement(
        data, load_signer(args.key), iss=args.iss, rim_id=rim_id, now=now, roots=roots
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
                    "rim_id": str(rim_id),
                    "entry_id": registration.entry_id,
                    "receipts": len(registration.receipts),
                    "transparent_statement": str(out),
                }
            )
        )
    else:
        print(
            f"registered {rim_id} as entry {registration.entry_id} with "
            f"{len(registration.receipts)} receipt(s); wrote {out}"
        )
    return 0


_INDEX: Final = re.compile(r"[1-9][0-9]{0,2}")


def _blocks(path: Path) -> dict[int, bytes]:
    try:  # strictly: a block given twice (or NaN, or a number past int()'s digits) is refused
        document = STRICT_JSON.decode(_read(path, "measurements").decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedInput(f"{path}: the measurements are not JSON: {exc}") from exc
    if isinstance(document, dict) and isinstance(document.get("measurements"), dict):
        document = document["measurements"]
    if not isinstance(document, dict):
        raise MalformedInput(f'{path}: measurements are a JSON object {{"<block>": "<hex>"}}')
    blocks: dict[int, bytes] = {}
    for key, value in document.items():
        # ASCII digits without leading zeros: "²" is a digit to isdigit() but not to int(),
        # and "01" would be block 1 a second time
        if not (_INDEX.fullmatch(key) and 1 <= int(key) <= 254):
            raise MalformedInput(f"{path}: {key!r} is not an SPDM block index (1..254)")
        try:
            blocks[int(key)] = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError as exc:
            raise MalformedInput(f"{path}: block {key} is not hex") from exc
        if not blocks[int(key)]:
            raise MalformedInput(f"{path}: block {key} is not a hex value")
    return blocks


def _statement_files(paths: list[Path]) -> list[tuple[str, bytes]]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        else:
            files.append(path)
    return [(str(p), _read(p, "RIM statement")) for p in files]


def _service_keys(path: Path) -> dict[bytes, Any]:
    from ironroot.cose import decode_key_set
    from ironroot.crypto import PublicKey

    data = _read(path, "service keys")
    if data.lstrip().startswith(b"-----BEGIN"):
        key = PublicKey.from_pem(data)
        return {key.kid: key}
    return dict(decode_key_set(data))


_BOARD: Final = ("project", "sku", "chip", "vbios_version", "driver_version")


def _from_evidence(args: argparse.Namespace, now: Any, rims: rim.LoggedRims) -> rim.RimAppraisal:
    from ironroot import attestation
    from ironroot.attestation.evidence import GpuEvidence

    if any(getattr(args, name) for name in _BOARD) or args.nvdec0_disabled:
        raise ConfigError("with --evidence the board, versions and NVDEC0 come from the report")
    if args.cert is None:
        raise ConfigError("--evidence needs --cert: the GPU's certificate chain")
    try:
        nonce = bytes.fromhex(args.nonce) if args.nonce is not None else None
    except ValueError as exc:
        raise MalformedInput("--nonce must be hex") from exc
    options = attestation.VerifyOptions(
        now=now, nonce=nonce, certificates=(_read(args.cert, "certificate chain"),)
    )
    claims = attestation.verify_evidence(
        _read(args.evidence, "evidence"), options, format="nvidia-gpu"
    )
    evidence = GpuEvidence.from_claims(claims)
    return attestation.appraise_gpu_rims(evidence, rims, product=args.product)


def _from_measurements(args: argparse.Namespace, rims: rim.LoggedRims) -> rim.RimAppraisal:
    if args.cert is not None or args.nonce is not None:
        raise ConfigError("--cert and --nonce go with --evidence")
    missing = [f"--{name.replace('_', '-')}" for name in _BOARD if not getattr(args, name)]
    if missing:
        raise ConfigError(f"--measurements needs {', '.join(missing)}")
    return rims.appraise(
        _blocks(args.measurements),
        project=args.project,
        sku=args.sku,
        chip=args.chip,
        vbios_version=args.vbios_version,
        driver_version=args.driver_version,
        product=args.product,
        nvdec0_disabled=args.nvdec0_disabled,
    )


def _appraise(args: argparse.Namespace) -> int:
    from ironroot.attestation import Endorsements, ReferencePublisher

    now = now_or(args.at)
    endorsements = Endorsements.build(
        service_keys=_service_keys(args.service_keys),
        reference_statements=_statement_files(args.rims),
        publishers=(ReferencePublisher(args.vendor, None, frozenset(args.issuer)),),
        now=now,
        rim_roots=_roots(args.root),
        service_issuer=args.service_issuer,
    )
    if args.evidence is not None:
        result = _from_evidence(args, now, endorsements.rims)
    else:
        result = _from_measurements(args, endorsements.rims)
    if args.json:
        print(
            json.dumps(
                {
                    "affirmed": True,
                    "driver_rim": str(result.driver.rim_id),
                    "vbios_rim": str(result.vbios.rim_id),
                    "matched": list(result.matched),
                    "skipped": list(result.skipped),
                    "not_covered": list(result.not_covered),
                    "rejected": list(endorsements.rejected),
                }
            )
        )
        return 0
    print(
        f"OK: {len(result.matched)} measurement block(s) allowed by {result.driver.rim_id} and "
        f"{result.vbios.rim_id}; {len(result.not_covered)} block(s) no RIM measures"
        + (f"; skipped {', '.join(map(str, result.skipped))}" if result.skipped else "")
    )
    return 0
