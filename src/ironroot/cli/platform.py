"""``ironroot platform``: the node (``init``, ``show``, ``boot``, ``update``, ``measure``,
``recover``, ``events``, ``journal``, ``flash-write``: :mod:`ironroot.cli._platform_node`) and
its firmware manifests.

``pfm build --platform ID --svn N --image NAME=VERSION:SVN:FILE... [--read-only NAME=OFF:LEN]...
[--read-write NAME=OFF:LEN]... --ecc-key K --pqc-key K --out PFM``
    build a Platform Firmware Manifest listing each image's SHA-384, signed by the vendor's
    ECDSA P-384 and ML-DSA-87 keys (without keys: unsigned, for ``pfm sign``).
``pfm sign UNSIGNED --ecc-key K --pqc-key K --out PFM``
    sign an unsigned PFM.
``pfm verify PFM --vendor-key-hash HEX --ecc PUB --pqc PUB [--min-svn N] [--image NAME=FILE]``
    verify it against the fused vendor key descriptor (exit 1 when it does not verify); with
    ``--image``, also whether the PFM allows that image.
``serve --node DIR [--host H] [--port P] [--tls-cert C --tls-key K]``
    serve the node's DMTF Redfish API (:mod:`ironroot.platform._redfish`).
``account add|list|remove``
    the Redfish accounts of a node whose service is not running
    (:mod:`ironroot.cli._platform_accounts`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from ironroot import platform
from ironroot.cli._hex import parse_hex
from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, write_output
from ironroot.cli._platform_accounts import register_account_verbs
from ironroot.cli._platform_node import node_dir, node_option, register_node_verbs
from ironroot.cli._serving import (
    add_client_options,
    add_server_options,
    add_url_options,
    client_tls,
    listen,
    token,
    url,
)
from ironroot.cli._text import shown
from ironroot.crypto import load_signer, load_verifier
from ironroot.errors import ConfigError, PolicyRejected

__all__ = ["register"]


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser(
        "platform",
        help="the platform: a DC-SCM RoT and BMC, its flash, updates, PFMs",
    )
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)
    register_node_verbs(verbs)
    pfm = verbs.add_parser("pfm", help="Platform Firmware Manifests")
    pfm_verbs = pfm.add_subparsers(dest="pfm_verb", metavar="<verb>", required=True)

    build = pfm_verbs.add_parser(
        "build",
        help="build and sign a PFM",
        epilog="example: ironroot platform pfm build --platform pkg:platform/acme/node "
        "--svn 2 --image bmc=2.0:2:bmc-2.0.bin --read-only bmc=0:0x100000 "
        "--ecc-key vendor.key --pqc-key vendor-pqc.key --out node.pfm",
    )
    build.add_argument("--platform", required=True, help="the platform's identifier")
    build.add_argument("--svn", required=True, type=int, help="the PFM's security version")
    build.add_argument(
        "--image",
        action="append",
        required=True,
        metavar="NAME=VERSION:SVN:FILE",
        help="an allowed firmware image of component NAME (repeat for each)",
    )
    for kind in ("read-only", "read-write"):
        build.add_argument(
            f"--{kind}",
            action="append",
            default=[],
            metavar="NAME=OFFSET:LENGTH",
            help=f"a {kind} flash region of component NAME (repeat for each)",
        )
    build.add_argument(
        "--ecc-key", type=Path, help="vendor ECDSA P-384 key (without both keys: unsigned)"
    )
    build.add_argument("--pqc-key", type=Path, help="vendor ML-DSA-87 key")
    build.add_argument("--out", required=True, type=Path, help="where to write the PFM")
    build.set_defaults(func=_build)

    sign = pfm_verbs.add_parser(
        "sign",
        help="sign an unsigned PFM (from pfm build without keys)",
        epilog="example: ironroot platform pfm sign node.pfm.cbor --ecc-key vendor.key "
        "--pqc-key vendor-pqc.key --out node.pfm",
    )
    sign.add_argument("unsigned", type=Path, help="the unsigned PFM (its CBOR payload)")
    sign.add_argument("--ecc-key", required=True, type=Path, help="vendor ECDSA P-384 key")
    sign.add_argument("--pqc-key", required=True, type=Path, help="vendor ML-DSA-87 key")
    sign.add_argument("--out", required=True, type=Path, help="where to write the signed PFM")
    sign.set_defaults(func=_sign)

    verify = pfm_verbs.add_parser(
        "verify",
        help="verify a PFM against the fused vendor keys (exit 1 if it does not)",
        epilog="example: ironroot platform pfm verify node.pfm --vendor-key-hash HEX "
        "--ecc vendor.pub.pem --pqc vendor-pqc.pub.pem --image bmc=bmc-2.0.bin",
    )
    verify.add_argument("pfm", type=Path, help="the signed PFM")
    verify.add_argument(
        "--vendor-key-hash", required=True, help="the fused vendor key descriptor hash (hex)"
    )
    verify.add_argument("--ecc", required=True, type=Path, help="vendor ECDSA P-384 public key")
    verify.add_argument("--pqc", required=True, type=Path, help="vendor ML-DSA-87 public key")
    verify.add_argument("--min-svn", type=int, default=0, help="the active PFM's svn")
    verify.add_argument(
        "--platform", help="the platform it must be for, as the RoT checks (exit 1 if another)"
    )
    verify.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="also check the PFM allows this image for component NAME",
    )
    verify.set_defaults(func=_verify)

    publish = pfm_verbs.add_parser(
        "publish",
        help="register a signed PFM on a transparency service",
        epilog="example: ironroot platform pfm publish node.pfm --url http://127.0.0.1:8000 "
        "--key vendor.key --iss https://vendor.example --sub pkg:platform/acme/node",
    )
    publish.add_argument("pfm", type=Path, help="the signed PFM")
    add_url_options(publish, what="transparency service", token=True)
    add_client_options(publish)
    publish.add_argument("--key", required=True, type=Path, help="the issuer's signing key")
    publish.add_argument("--iss", required=True, help="the statement's issuer")
    publish.add_argument("--sub", required=True, help="the statement's subject (the platform)")
    publish.add_argument(
        "--out", type=Path, help="where to write the transparent statement (default: PFM.ts)"
    )
    publish.set_defaults(func=_publish)

    serve = verbs.add_parser(
        "serve",
        help="serve the node's DMTF Redfish management API",
        epilog="example: ironroot platform serve --node node --port 8300 "
        "--tls-cert bmc.pem --tls-key bmc.key",
    )
    node_option(serve)
    add_server_options(serve, default_host="127.0.0.1", default_port=8300, data=False)
    serve.set_defaults(func=_serve)
    register_account_verbs(verbs)


def _split(spec: str, what: str) -> tuple[str, str]:
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"{what} {spec!r}: expected NAME=…")
    return name, rest


def _number(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a number") from None


def _build(args: argparse.Namespace) -> int:
    check_output(args.out)  # before the keys sign
    versions: dict[str, list[platform.PfmVersion]] = {}
    for spec in args.image:
        name, rest = _split(spec, "--image")
        version, svn, path = [*rest.split(":", 2), "", ""][:3]
        if not version or not svn or not path:
            raise ConfigError(f"--image {spec!r}: expected NAME=VERSION:SVN:FILE")
        digest = hashlib.sha384(read_input(path)).digest()
        entry = platform.PfmVersion(version, _number(svn, "--image svn"), digest)
        versions.setdefault(name, []).append(entry)
    regions: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for kind in ("read_only", "read_write"):
        for spec in getattr(args, kind):
            name, rest = _split(spec, f"--{kind}")
            if name not in versions:
                raise ConfigError(f"--{kind} {spec!r}: no --image for component {name!r}")
            offset, _, length = rest.partition(":")
            span = (_number(offset, "offset"), _number(length, "length"))
            regions.setdefault((name, kind), []).append(span)
    pfm = platform.Pfm(
        platform=args.platform,
        svn=args.svn,
        components=tuple(
            platform.PfmComponent(
                name,
                tuple(entries),
                read_only=tuple(regions.get((name, "read_only"), ())),
                read_write=tuple(regions.get((name, "read_write"), ())),
            )
            for name, entries in versions.items()
        ),
    )
    if (args.ecc_key is None) != (args.pqc_key is None):
        raise ConfigError("--ecc-key and --pqc-key go together (neither: an unsigned PFM)")
    if args.ecc_key is None:
        write_output(args.out, pfm.encode())
    else:
        signed = platform.sign_pfm(pfm, load_signer(args.ecc_key), load_signer(args.pqc_key))
        write_output(args.out, signed)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "platform": pfm.platform,
                "svn": pfm.svn,
                "components": {c.name: [v.version for v in c.versions] for c in pfm.components},
            }
        )
        if args.json
        else f"wrote {args.out}: PFM svn {pfm.svn} for {shown(pfm.platform)}, "
        f"{sum(len(c.versions) for c in pfm.components)} image(s)"
    )
    return 0


def _sign(args: argparse.Namespace) -> int:
    from ironroot._fileio import read_limited

    check_output(args.out)  # before the keys sign
    pfm = platform.Pfm.decode(read_limited(args.unsigned, 1024 * 1024))
    signed = platform.sign_pfm(pfm, load_signer(args.ecc_key), load_signer(args.pqc_key))
    write_output(args.out, signed)
    value = {"out": str(args.out), "platform": pfm.platform, "svn": pfm.svn}
    print(json.dumps(value) if args.json else f"wrote {args.out}: signed PFM svn {pfm.svn}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    fused = parse_hex(args.vendor_key_hash, "--vendor-key-hash")
    pfm = platform.verify_pfm(
        read_input(args.pfm, platform.MAX_PFM_BYTES),
        ecc_keys=[load_verifier(args.ecc)],
        pqc_keys=[load_verifier(args.pqc)],
        vendor_key_hash=fused,
        min_svn=args.min_svn,
    )
    if args.platform is not None and pfm.platform != args.platform:
        raise PolicyRejected(
            f"the PFM is for platform {pfm.platform!r}, not {args.platform!r}",
            code="pfm-platform-mismatch",
        )
    allowed = {}
    for spec in args.image:
        name, path = _split(spec, "--image")
        allowed[name] = pfm.allows(name, read_input(path)).version
    value = {
        "platform": pfm.platform,
        "svn": pfm.svn,
        "components": {c.name: [v.version for v in c.versions] for c in pfm.components},
        "allowed": allowed,
    }
    if args.json:
        print(json.dumps(value))
    else:
        print(f"PFM verifies: {shown(pfm.platform)}, svn {pfm.svn}")
        for name, version in allowed.items():
            print(f"  {shown(name)}: the image is version {shown(version)}, allowed")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from ironroot.transparency import TransparencyClient

    out: Path = args.out or args.pfm.with_name(args.pfm.name + ".ts")
    check_output(out)  # before the key signs and the statement is registered
    statement = platform.pfm_statement(
        read_input(args.pfm, platform.MAX_PFM_BYTES),
        load_signer(args.key),
        iss=args.iss,
        sub=args.sub,
    )
    with TransparencyClient(url(args), token=token(args), verify=client_tls(args)) as client:
        registration = client.register(statement)
    write_output(out, registration.transparent_statement)
    value = {"entry_id": registration.entry_id, "out": str(out)}
    print(json.dumps(value) if args.json else f"registered {registration.entry_id}; wrote {out}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``platform serve``: the node's Redfish service until SIGINT/SIGTERM. Its SimpleUpdate
    fetches trust ``$IRONROOT_CA`` (and present ``$IRONROOT_CLIENT_CERT``) when set."""
    from ironroot.http import configure_logging
    from ironroot.platform._redfish import serve_redfish

    node = node_dir(args)
    bind = listen(args, default_host="127.0.0.1", default_port=8300)
    configure_logging(bind.log_level, bind.log_format)
    serve_redfish(node, bind.host, bind.port, tls=bind.tls, fetch_verify=client_tls(args))
    return 0
