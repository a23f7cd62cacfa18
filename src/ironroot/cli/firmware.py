"""``ironroot firmware``: build, sign, verify, inspect and publish firmware bundles.

* ``build --fmc F --runtime R [--component ID=FILE]... --svn N --vendor-ecc-key PUB...
  --vendor-pqc-key PUB... [--ecc-index I] [--pqc-index J] --pqc-type mldsa|lms
  --not-before ISO --not-after ISO --out UNSIGNED`` lays out an unsigned bundle;
* ``sign UNSIGNED --ecc-key KEY --pqc-key KEY [--owner-ecc-key KEY --owner-pqc-key KEY]
  [--header-digest HEX] --out BUNDLE`` signs it (an LMS key is its state file, which
  advances), refusing any header but the one ``build`` printed when ``--header-digest`` is
  given;
* ``verify BUNDLE --vendor-key-hash HEX [--min-svn N] [--revoked-ecc MASK] [--revoked-pqc
  MASK] [--owner-key-hash HEX] [--anti-rollback-disabled] [--at ISO] [--json]`` runs every
  check, prints each, and exits 1 with the reason when one fails;
* ``inspect BUNDLE [--json]`` prints the manifest;
* ``key-descriptor --ecc PUB... --pqc PUB... [--pqc-type T]`` prints the hash to fuse;
* ``leaves STATEMENT... [--json]`` lists the LMS leaves manifest statements log and exits 1
  (``state-reuse``) when one key's leaf signed twice;
* ``publish BUNDLE --url URL --key KEY --iss ISS --sub PRODUCT --vendor-key-hash HEX
  [--revoked-ecc MASK] [--revoked-pqc MASK | --desired DESIRED.toml] [--published BUNDLE]...
  [--logged STATEMENT...
  --service-keys KEYS [--service-issuer ISS] [--issuer-key PUB]...] [--token T] [--at ISO]
  --out-dir DIR`` checks the bundle is signed with the product's keys, none of them revoked,
  and reuses no LMS leaf an earlier release (bundle or statement) used — each ``--logged``
  statement first verified as ``statement verify --issuer-key`` verifies one (its receipts
  under ``--service-keys``, which ``--logged`` needs, its signature under an ``--issuer-key``,
  default the public key of ``--key``) — registers the manifest and reference-value
  statements (their receipts verified under ``--service-keys`` when given) and writes
  ``<name>.manifest.ts`` and ``<name>.corim.ts`` into DIR (``<name>`` is the bundle's file
  name without a ``.bin``, ``.bundle``, ``.fw`` or ``.img`` suffix). ``--desired`` takes the
  revocation masks from a class's ``desired.toml`` (``[fuses] ecc_revoked``/``pqc_revoked``);
  given neither it nor a mask, none is checked and a warning says so on stderr.

Public keys may be PEM, DER, COSE_Key or JWK files (LMS keys: COSE_Key). ``--lms-params``
admits another N24 LMS parameter set than Caliptra's SHA256-N24-H15-W4 (for tests).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ironroot import firmware
from ironroot.cli._hex import parse_hex
from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, output_folder, write_output
from ironroot.cli._service_keys import SERVICE_ISSUER_HELP, SERVICE_KEYS_HELP, service_keys
from ironroot.cli._serving import add_client_options, add_url_options, client_tls, token, url
from ironroot.cli._text import shown
from ironroot.cli._time import now_or, parse_instant
from ironroot.cli.keys import add_rot_device_option, lms_counter
from ironroot.crypto import Algorithm, LmsPublicKey, Signer, Verifier, load_signer, load_verifier
from ironroot.errors import ConfigError, IronrootError, MalformedInput, StateReuse

__all__ = ["register"]

_PQC_TYPES = ("mldsa", "lms")
_BUNDLE_SUFFIXES = (".bin", ".bundle", ".fw", ".img")
_MAX_STATEMENT = 1024 * 1024  # a statement (64 KiB) and its receipts, with room to spare


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "firmware", help="build, sign, verify, inspect and publish firmware bundles"
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    build = verbs.add_parser("build", help="lay out an unsigned firmware bundle")
    build.add_argument("--fmc", required=True, type=Path, help="first mutable code image")
    build.add_argument("--runtime", required=True, type=Path, help="runtime image")
    build.add_argument(
        "--component",
        action="append",
        default=[],
        metavar="ID=FILE",
        help="another component (id ≥ 3); repeatable",
    )
    build.add_argument("--svn", required=True, type=int, help="security version number 0–128")
    build.add_argument("--vendor-ecc-key", required=True, nargs="+", type=Path, metavar="PUB")
    build.add_argument("--vendor-pqc-key", required=True, nargs="+", type=Path, metavar="PUB")
    build.add_argument("--ecc-index", type=int, default=0, help="active ECC key (default 0)")
    build.add_argument("--pqc-index", type=int, default=0, help="active PQC key (default 0)")
    build.add_argument("--pqc-type", required=True, choices=_PQC_TYPES)
    build.add_argument("--not-before", required=True, help="ISO 8601 time with a UTC offset")
    build.add_argument("--not-after", required=True, help="ISO 8601 time with a UTC offset")
    build.add_argument("--fmc-version", type=int, default=0)
    build.add_argument("--runtime-version", type=int, default=0)
    build.add_argument("--revision", type=int, default=0, help="manifest revision (u64)")
    build.add_argument("--out", required=True, type=Path, help="unsigned bundle to write")
    _lms_option(build)
    build.set_defaults(func=_build)

    sign = verbs.add_parser("sign", help="sign an unsigned bundle (vendor, optionally owner)")
    sign.add_argument("unsigned", type=Path)
    sign.add_argument("--ecc-key", required=True, type=Path, help="vendor ECDSA P-384 key")
    sign.add_argument(
        "--pqc-key", required=True, type=Path, help="vendor ML-DSA-87 key or LMS state"
    )
    sign.add_argument("--owner-ecc-key", type=Path, help="owner ECDSA P-384 key")
    sign.add_argument("--owner-pqc-key", type=Path, help="owner ML-DSA-87 key or LMS state")
    sign.add_argument(
        "--header-digest",
        metavar="HEX",
        help="the header digest build printed: any other header is refused, nothing signed",
    )
    sign.add_argument("--out", required=True, type=Path, help="signed bundle to write")
    add_rot_device_option(sign)
    sign.add_argument(
        "--pqc-counter", metavar="NAME", help="the --rot-device counter the LMS state is bound to"
    )
    sign.add_argument(
        "--owner-pqc-counter",
        metavar="NAME",
        help="the --rot-device counter the owner LMS state is bound to",
    )
    _lms_option(sign)
    sign.set_defaults(func=_sign)

    verify = verbs.add_parser("verify", help="verify a bundle as the root of trust would")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--vendor-key-hash", required=True, help="fused key descriptor hash (hex)")
    verify.add_argument("--min-svn", type=int, default=0)
    verify.add_argument("--revoked-ecc", default="0", metavar="MASK", help="4-bit mask (0x…)")
    verify.add_argument("--revoked-pqc", default="0", metavar="MASK", help="32-bit mask (0x…)")
    verify.add_argument("--owner-key-hash", help="fused owner key hash (hex)")
    verify.add_argument("--anti-rollback-disabled", action="store_true")
    verify.add_argument("--at", help="verification time (ISO 8601; default now)")
    verify.add_argument("--json", action="store_true", help="a JSON report of every check")
    _lms_option(verify)
    verify.set_defaults(func=_verify)

    inspect = verbs.add_parser("inspect", help="print a bundle's manifest")
    inspect.add_argument("bundle", type=Path)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(func=_inspect)

    desc = verbs.add_parser("key-descriptor", help="print the vendor key hash to fuse")
    desc.add_argument("--ecc", required=True, nargs="+", type=Path, metavar="PUB")
    desc.add_argument("--pqc", required=True, nargs="+", type=Path, metavar="PUB")
    desc.add_argument("--pqc-type", choices=_PQC_TYPES, help="default: from the PQC keys")
    desc.add_argument("--json", action="store_true")
    desc.set_defaults(func=_key_descriptor)

    leaves = verbs.add_parser(
        "leaves",
        help="list the LMS leaves manifest statements log; exit 1 if a leaf signed twice",
    )
    leaves.add_argument(
        "statements", nargs="+", type=Path, metavar="STATEMENT", help="manifest statements"
    )
    leaves.add_argument("--json", action="store_true")
    leaves.set_defaults(func=_leaves)

    pub = verbs.add_parser("publish", help="register a bundle's statements and write them")
    pub.add_argument("bundle", type=Path)
    add_url_options(pub, what="transparency service", token=True)
    pub.add_argument("--key", required=True, type=Path, help="vendor statement signing key")
    pub.add_argument("--iss", required=True, help="issuer (the vendor)")
    pub.add_argument("--sub", required=True, help="subject (the product)")
    pub.add_argument("--vendor", help="CoRIM vendor name (default: --iss)")
    pub.add_argument("--model", help="CoRIM model name (default: --sub)")
    pub.add_argument("--out-dir", required=True, type=Path)
    pub.add_argument("--at", help="publication time (ISO 8601; default now)")
    pub.add_argument(
        "--vendor-key-hash",
        required=True,
        help="the product's fused key descriptor hash (hex), which the bundle's must be",
    )
    pub.add_argument(
        "--revoked-ecc",
        metavar="MASK",
        help="the product's 4-bit ECC revocation fuse (0x…): a bundle signed with a revoked"
        " key is refused (key-revoked, exit 1)",
    )
    pub.add_argument(
        "--revoked-pqc",
        metavar="MASK",
        help="the product's 32-bit PQC revocation fuse (0x…), likewise",
    )
    pub.add_argument(
        "--desired",
        type=Path,
        metavar="DESIRED.toml",
        help="take the masks from a class's desired state (its [fuses] ecc_revoked and"
        " pqc_revoked, as `fleet desired sign` reads it) instead of --revoked-ecc/--revoked-pqc;"
        " with neither, no mask is checked (a warning on stderr)",
    )
    pub.add_argument(
        "--published",
        type=Path,
        action="append",
        default=[],
        metavar="BUNDLE",
        help="an earlier release bundle of the product (repeatable): a bundle whose LMS"
        " signature reuses a leaf one of them used is refused (state-reuse, exit 1)",
    )
    pub.add_argument(
        "--logged",
        type=Path,
        action="append",
        default=[],
        metavar="STATEMENT",
        help="an earlier release's manifest statement (its .manifest.ts; repeatable), verified"
        " first (its receipts under --service-keys, its signature under an --issuer-key): a"
        " bundle whose LMS key they show using one leaf twice is refused (state-reuse, exit 1)",
    )
    pub.add_argument(
        "--service-keys",
        help=SERVICE_KEYS_HELP + "; every receipt of a --logged statement must verify under"
        " them (needed with --logged), and so must those of the statements registered",
    )
    pub.add_argument("--service-issuer", help=SERVICE_ISSUER_HELP)
    pub.add_argument(
        "--issuer-key",
        type=Path,
        action="append",
        default=[],
        metavar="PUB",
        help="a key a --logged statement may be signed with (repeatable; default: the public"
        " key of --key)",
    )
    pub.add_argument("--json", action="store_true")
    _lms_option(pub)
    add_client_options(pub)
    pub.set_defaults(func=_publish)


def _lms_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lms-params",
        action="append",
        default=[],
        metavar="SET",
        help="also accept this LMS parameter set (default only SHA256-N24-H15-W4)",
    )


def _read_bundle(path: Path | str) -> bytes:
    """A bundle file, refused from its size beyond the largest bundle (never read whole)."""
    return read_input(path, firmware.DEFAULT_LIMITS.max_bundle_bytes)


def _read_component(path: Path | str) -> bytes:
    """A component image, refused from its size beyond the largest component."""
    return read_input(path, firmware.DEFAULT_LIMITS.max_component_bytes)


def _limits(args: argparse.Namespace) -> firmware.FirmwareLimits:
    if not args.lms_params:
        return firmware.DEFAULT_LIMITS
    return firmware.FirmwareLimits(
        lms_parameter_sets=firmware.DEFAULT_LIMITS.lms_parameter_sets | frozenset(args.lms_params)
    )


def _mask(value: str, what: str) -> int:
    try:
        return int(value, 0)
    except ValueError as exc:
        raise ConfigError(f"{what} {value!r} is not a number (decimal or 0x…)") from exc


def _component(spec: str) -> firmware.Component:
    ident, sep, path = spec.partition("=")
    if not sep or not path:
        raise ConfigError(f"--component {spec!r} is not ID=FILE")
    try:
        component_id = int(ident, 0)
    except ValueError as exc:
        raise ConfigError(f"--component id {ident!r} is not a number") from exc
    return firmware.Component(component_id, _read_component(path))


def _build(args: argparse.Namespace) -> int:
    components = [
        firmware.Component(1, _read_component(args.fmc), version=args.fmc_version),
        firmware.Component(2, _read_component(args.runtime), version=args.runtime_version),
        *(_component(spec) for spec in args.component),
    ]
    unsigned = firmware.build_bundle(
        components,
        svn=args.svn,
        not_before=parse_instant(args.not_before, "--not-before", bounded=False),
        not_after=parse_instant(args.not_after, "--not-after", bounded=False),
        vendor_ecc_keys=[load_verifier(p) for p in args.vendor_ecc_key],
        vendor_pqc_keys=[load_verifier(p) for p in args.vendor_pqc_key],
        ecc_index=args.ecc_index,
        pqc_index=args.pqc_index,
        pqc_type=args.pqc_type,
        revision=args.revision,
        limits=_limits(args),
    )
    data = unsigned.encode()
    write_output(args.out, data)
    print(f"unsigned bundle: {args.out} ({len(data)} bytes, {len(unsigned.components)} components)")
    print(f"header digest: {unsigned.header_digest().hex()}")
    return 0


def _refuse_output_over_keys(out: Path, keys: list[Path]) -> None:
    """``--out`` must not name a key file (through a link, or another name of it): the
    signed bundle would replace the key, and an LMS state file's seed and leaf index with it."""
    target = Path(os.path.realpath(out))
    for key in keys:
        real = Path(os.path.realpath(key))
        try:
            same = target == real or os.path.samefile(target, real)
        except OSError:  # one of them does not exist: loading the key reports it
            same = False
        if same:
            raise ConfigError(
                f"--out {out} is the key file {real}: the signed bundle would replace the key"
            )


def _sign(args: argparse.Namespace) -> int:
    if (args.owner_ecc_key is None) != (args.owner_pqc_key is None):
        raise ConfigError("owner signing needs both --owner-ecc-key and --owner-pqc-key")
    header_digest = (
        None if args.header_digest is None else parse_hex(args.header_digest, "--header-digest")
    )
    keys = [args.ecc_key, args.pqc_key, args.owner_ecc_key, args.owner_pqc_key]
    _refuse_output_over_keys(args.out, [k for k in keys if k is not None])
    check_output(args.out)  # before signing: a refused output spends no one-time key
    counter = lms_counter(args.rot_device, args.pqc_counter, "--pqc-counter")
    owner_counter = lms_counter(args.rot_device, args.owner_pqc_counter, "--owner-pqc-counter")
    if args.owner_pqc_counter is not None and args.owner_pqc_key is None:
        raise ConfigError("--owner-pqc-counter is for --owner-pqc-key")
    owner: tuple[Signer, Signer] | None = None
    if args.owner_ecc_key is not None:
        owner_pqc = load_signer(args.owner_pqc_key, lms_counter=owner_counter)
        owner = (load_signer(args.owner_ecc_key), owner_pqc)
    bundle = firmware.sign_bundle(
        _read_bundle(args.unsigned),
        load_signer(args.ecc_key),
        load_signer(args.pqc_key, lms_counter=counter),
        owner,
        limits=_limits(args),
        header_digest=header_digest,
    )
    write_output(args.out, bundle)
    print(f"signed bundle: {args.out} ({len(bundle)} bytes)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    now = now_or(args.at)
    policy = firmware.BundlePolicy(
        now=now,
        vendor_key_descriptor_hash=parse_hex(args.vendor_key_hash, "--vendor-key-hash"),
        ecc_revocation=_mask(args.revoked_ecc, "--revoked-ecc"),
        pqc_revocation=_mask(args.revoked_pqc, "--revoked-pqc"),
        min_svn=args.min_svn,
        anti_rollback_disabled=args.anti_rollback_disabled,
        owner_key_hash=parse_hex(args.owner_key_hash, "--owner-key-hash")
        if args.owner_key_hash
        else None,
        limits=_limits(args),
    )
    report = firmware.check_bundle(_read_bundle(args.bundle), policy)
    if args.json:
        doc = report.to_json()
        if report.verified is not None:
            doc["measurements"] = {m.name: m.value.hex() for m in report.verified.measurements()}
            doc["manifest_digest"] = report.verified.manifest_digest.hex()
        print(json.dumps(doc, indent=2))
    else:
        for check in report.checks:
            mark = {True: "ok  ", False: "FAIL", None: "skip"}[check.passed]
            print(f"{mark} {check.name}: {shown(check.detail)}")
    failure = report.first_failure
    if failure is not None:
        print(f"ironroot: {failure.code}: {shown(failure.detail)}", file=sys.stderr)
        return 1
    return 0


def _describe(bundle: firmware.FirmwareBundle) -> dict[str, Any]:
    manifest = bundle.manifest
    pre, header = manifest.preamble, manifest.header
    return {
        "manifest_version": manifest.version,
        "manifest_size": manifest.size,
        "manifest_digest": bundle.manifest_digest().hex(),
        "header_digest": bundle.header_digest().hex(),
        "pqc_key_type": manifest.pqc_key_type.name.lower(),
        "vendor_key_descriptor_hash": hashlib.sha384(pre.descriptors_bytes()).hexdigest(),
        "ecc_key_hashes": [h.hex() for h in pre.ecc_descriptor.key_hashes],
        "pqc_key_hashes": [h.hex() for h in pre.pqc_descriptor.key_hashes],
        "vendor_ecc_key_index": pre.vendor_ecc_key_index,
        "vendor_pqc_key_index": pre.vendor_pqc_key_index,
        "signed": {
            "vendor_ecc": bool(pre.vendor_ecc_signature),
            "vendor_pqc": bool(pre.vendor_pqc_signature),
            "owner_ecc": bool(pre.owner_ecc_signature),
            "owner_pqc": bool(pre.owner_pqc_signature),
        },
        "owner_key_hash": hashlib.sha384(pre.owner_keys_bytes()).hexdigest()
        if pre.has_owner
        else None,
        "revision": header.revision,
        "flags": header.flags,
        "pl0_pauser": header.pl0_pauser,
        "svn": header.svn,
        "not_before": header.not_before.isoformat(),
        "not_after": header.not_after.isoformat(),
        "owner_not_before": None
        if header.owner_not_before is None
        else header.owner_not_before.isoformat(),
        "owner_not_after": None
        if header.owner_not_after is None
        else header.owner_not_after.isoformat(),
        "toc_digest": header.toc_digest.hex(),
        "components": [
            {
                "id": e.component_id,
                "version": e.version,
                "revision": e.revision.hex(),
                "load_address": e.load_address,
                "entry_point": e.entry_point,
                "offset": e.offset,
                "size": e.size,
                "digest": e.digest.hex(),
            }
            for e in manifest.toc
        ],
    }


def _inspect(args: argparse.Namespace) -> int:
    doc = _describe(firmware.FirmwareBundle.parse(_read_bundle(args.bundle)))
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    for key, value in doc.items():
        if key == "components":
            for c in value:
                print(
                    f"component {c['id']}: version {c['version']}, {c['size']} bytes at"
                    f" 0x{c['load_address']:08x} (entry 0x{c['entry_point']:08x}),"
                    f" SHA-384 {c['digest']}"
                )
        elif isinstance(value, list):
            print(f"{key}:")
            for item in value:
                print(f"  {item}")
        elif isinstance(value, dict):
            print(f"{key}: " + ", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            print(f"{key}: {value}")
    return 0


def _pqc_type_of(keys: list[Verifier]) -> firmware.PqcKeyType:
    if all(isinstance(k, LmsPublicKey) for k in keys):
        return firmware.PqcKeyType.LMS
    if all(k.algorithm is Algorithm.ML_DSA_87 for k in keys):
        return firmware.PqcKeyType.MLDSA
    raise MalformedInput("PQC keys must all be ML-DSA-87 or all LMS")


def _key_descriptor(args: argparse.Namespace) -> int:
    ecc = [load_verifier(p) for p in args.ecc]
    pqc = [load_verifier(p) for p in args.pqc]
    pqc_type = firmware.PqcKeyType.parse(args.pqc_type) if args.pqc_type else _pqc_type_of(pqc)
    digest = firmware.key_descriptor_hash(ecc, pqc, pqc_type).hex()
    if args.json:
        print(
            json.dumps(
                {"vendor_key_descriptor_hash": digest, "pqc_key_type": pqc_type.name.lower()}
            )
        )
    else:
        print(digest)
    return 0


def _read_statement(path: Path, verify: Callable[[bytes], object] | None = None) -> bytes:
    """A manifest statement file, checked as one before anything is registered (the error
    names the file); with ``verify``, verified by it first."""
    data = read_input(path, _MAX_STATEMENT)
    try:
        if verify is not None:
            verify(data)
        firmware.logged_lms_leaves(data)
    except IronrootError as exc:  # its code kept: an instance may refine its class's
        raise type(exc)(f"{path}: {exc.detail}", code=exc.code) from exc
    return data


def _leaf_json(leaf: firmware.LoggedLmsLeaf, statement: str) -> dict[str, Any]:
    return {
        "statement": statement,
        "role": leaf.role,
        "key_hash": leaf.key_hash.hex(),
        "leaf": leaf.leaf,
        "message": leaf.message.hex(),
        "signature_hash": leaf.signature_hash.hex(),
        "manifest_digest": leaf.manifest_digest.hex(),
    }


def _leaves(args: argparse.Namespace) -> int:
    statements = [(str(path), _read_statement(path)) for path in args.statements]
    found = [(name, firmware.logged_lms_leaves(data)) for name, data in statements]
    where: dict[firmware.LoggedLmsLeaf, str] = {}
    for name, leaves in found:
        for leaf in leaves:
            where.setdefault(leaf, name)
    reuse = firmware.find_lms_leaf_reuse(data for _, data in statements)
    if args.json:
        doc = {
            "leaves": [_leaf_json(leaf, name) for name, leaves in found for leaf in leaves],
            "reuse": [[_leaf_json(x, where[x]) for x in pair] for pair in reuse],
        }
        print(json.dumps(doc, indent=2))
    else:
        for name, leaves in found:
            if not leaves:
                print(f"{name}: no LMS leaves logged")
            for leaf in leaves:
                print(
                    f"{name}: {leaf.role} LMS key {leaf.key_hash.hex()} leaf {leaf.leaf}"
                    f" manifest {leaf.manifest_digest.hex()}"
                )
    if reuse:  # as verify does: the report on stdout (JSON too), the reason on stderr
        more = f" (and {len(reuse) - 1} more)" if len(reuse) > 1 else ""
        print(f"ironroot: {StateReuse.code}: {shown(reuse[0].detail + more)}", file=sys.stderr)
        return 1
    return 0


def _out_dir(out_dir: Path, name: str) -> tuple[Path, Path]:
    """``<name>.manifest.ts`` and ``<name>.corim.ts`` in ``out_dir`` (made if missing), each
    checked as an output (:func:`check_output`)."""
    output_folder(out_dir)
    paths = (out_dir / f"{name}.manifest.ts", out_dir / f"{name}.corim.ts")
    for path in paths:
        check_output(path)
    return paths


def _revocation_masks(args: argparse.Namespace) -> tuple[int, int]:
    """The masks ``publish`` refuses a bundle by: the flags, or ``--desired``'s, never both
    (which would win is a guess); with neither, none — today's default, with a warning, since
    a bundle signed with a key the devices revoked would be logged unchecked."""
    flags = args.revoked_ecc is not None or args.revoked_pqc is not None
    if args.desired is not None:
        if flags:
            raise ConfigError(
                "--desired names the revocation masks: give it or --revoked-ecc/--revoked-pqc,"
                " not both"
            )
        from ironroot.fleet._desired import revocation_of_toml  # the CLI is the outer shell

        return revocation_of_toml(args.desired)
    if not flags:
        print(
            "ironroot: warning: no revocation masks were checked (no --revoked-ecc, "
            "--revoked-pqc or --desired): a bundle signed with a revoked vendor key would be "
            "published",
            file=sys.stderr,
        )
    return (
        0 if args.revoked_ecc is None else _mask(args.revoked_ecc, "--revoked-ecc"),
        0 if args.revoked_pqc is None else _mask(args.revoked_pqc, "--revoked-pqc"),
    )


def _publish(args: argparse.Namespace) -> int:
    from ironroot.transparency import TransparencyClient  # the CLI is the outer shell

    now = now_or(args.at)
    vendor_key_hash = parse_hex(args.vendor_key_hash, "--vendor-key-hash")
    ecc_revoked, pqc_revoked = _revocation_masks(args)
    bundle = _read_bundle(args.bundle)
    published = [_read_bundle(path) for path in args.published]
    if args.logged and not args.service_keys:
        raise ConfigError(
            "--logged needs --service-keys: a statement is read as logged only once its"
            " receipts verify under the transparency service's keys"
        )
    if args.issuer_key and not args.logged:
        raise ConfigError("--issuer-key is for --logged statements: give them, or leave it")
    keys, issuer = None, args.service_issuer
    if args.service_keys:
        keys, named = service_keys(args.service_keys, args)
        issuer = issuer or named
    signer = load_signer(args.key)
    issuer_keys = [load_verifier(path) for path in args.issuer_key] or [signer.verifier()]
    logged = [
        _read_statement(
            path,
            functools.partial(
                firmware.verify_logged_statement,
                service_keys=keys or {},
                issuer_keys=issuer_keys,
                service_issuer=issuer,
                now=time.time(),  # the receipts against this clock: --at judges the bundle
            ),
        )
        for path in args.logged
    ]
    name = args.bundle.name
    for suffix in _BUNDLE_SUFFIXES:
        name = name.removesuffix(suffix)
    # Both outputs are checked before anything is registered: a log never forgets an entry,
    # and a retry after a failed write would register the statements a second time.
    manifest_path, corim_path = _out_dir(args.out_dir, name)
    with TransparencyClient(
        url(args),
        token=token(args),
        verify=client_tls(args),
        service_keys=keys,
        service_issuer=issuer,
    ) as client:
        release = firmware.publish_bundle(
            bundle,
            client,
            signer,
            iss=args.iss,
            sub=args.sub,
            vendor=args.vendor,
            model=args.model,
            limits=_limits(args),
            now=now,
            vendor_key_descriptor_hash=vendor_key_hash,
            ecc_revocation=ecc_revoked,
            pqc_revocation=pqc_revoked,
            published=published,
            logged=logged,
            service_keys=keys,
            service_issuer=issuer,
            issuer_keys=issuer_keys,
        )
    write_output(manifest_path, release.manifest_statement)
    write_output(corim_path, release.corim_statement)
    doc = {
        "manifest_digest": release.manifest_digest.hex(),
        "manifest_entry_id": release.manifest_entry_id,
        "corim_entry_id": release.corim_entry_id,
        "manifest_statement": str(manifest_path),
        "corim_statement": str(corim_path),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for key, value in doc.items():
            print(f"{key}: {value}")
    return 0
