"""``ironroot keyrelease``: the key service, its policies, and the TEE's side of a release.

::

    ironroot keyrelease serve --data DIR                  # <DIR>/keyrelease.toml
        [--fleet FLEET --fleet-verifier-key VERIFIER.pem]  # no key to a non-admitted node
    ironroot keyrelease policy check POLICY               # CEL or Azure JSON; exit 1 if invalid
    ironroot keyrelease tee-key --out tee.key [--type ML-KEM-768|ML-KEM-1024|RSA-3072]
    ironroot keyrelease challenge --url URL               # a release nonce (hex)
    ironroot keyrelease report-data --tee-key tee.key --nonce N     # hex, for the quote
    ironroot keyrelease report-data --tee-key tee.key --nonce N --gpus 8   # JSON: the composite
    ironroot keyrelease request --url URL --key NAME --ear ear.jwt --tee-key tee.key \\
                                --nonce N --out released.cbor
    ironroot keyrelease unwrap released.cbor --tee-key tee.key --nonce N \\
                               --hsm-root hsm-device.pem --out key.bin [--key NAME] [--handle H]
    ironroot keyrelease demo [--workdir DIR]              # the whole flow, in process
    ironroot keyrelease verifier remove NAME --url URL --identity OFFICER \\
                                [--credential-file F]   # from the running service's HSM
    ironroot keyrelease audit prune --before SEQ --url URL --identity OFFICER \\
                                [--credential-file F]   # the running service's HSM's segments

``verifier remove`` and ``audit prune`` log in to the running service's HSM (its ``/admin``
API) as an HSM crypto officer; the credential comes from ``--credential-file``,
``IRONROOT_HSM_CREDENTIAL`` (the credential itself), ``IRONROOT_HSM_CREDENTIAL_FILE`` (a file
holding it) or a prompt, never from the command line, as for ``ironroot hsm``. Under the
HSM's dual control, ``--approver NAME=FILE`` (repeatable) adds the other officers, who
approve that one removal or prune with its arguments.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from ironroot import keyrelease
from ironroot.cli._input import read_input
from ironroot.cli._output import check_output, write_output
from ironroot.cli._serving import (
    add_approver_option,
    add_client_options,
    add_server_options,
    add_url_options,
    client_tls,
    data_dir,
    hsm_approvers,
    hsm_credential,
    listen,
    url,
)
from ironroot.crypto import load_certificates
from ironroot.errors import ConfigError, MalformedInput

_MAX_FILE: Final = 1024 * 1024
_ENV_IDENTITY: Final = "IRONROOT_HSM_IDENTITY"
_ENV_CREDENTIAL: Final = "IRONROOT_HSM_CREDENTIAL"


def _read(path: Path) -> bytes:
    return read_input(path, _MAX_FILE)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` with permissions ``mode``, whole or not at all
    (:func:`write_output`): a file that was there already is replaced by one with ``mode``
    (an unwrapped key or a private key must not land in a world-readable one)."""
    write_output(path, data, mode=mode)


def _nonce(text: str) -> bytes:
    """A 32-byte nonce given as 64 hex digits or as unpadded base64url."""
    value = text.strip()
    if len(value) == 64:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        data = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput("a nonce is 64 hex digits or base64url") from exc
    if len(data) != 32:
        raise MalformedInput("a release nonce is 32 bytes")
    return data


def _tee(path: Path) -> keyrelease.TeeKeyPair:
    return keyrelease.TeeKeyPair.from_pem(_read(path))


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "keyrelease",
        help="secure key release to attested TEEs",
        description="Serve the key release service, check release policies, and do the TEE's "
        "side of a release.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)

    serve = verbs.add_parser(
        "serve",
        help="serve DIR/keyrelease.toml over HTTP",
        epilog="example: ironroot keyrelease serve --data keyservice --log-format json",
    )
    add_server_options(serve, default_host="keyrelease.toml's, else 127.0.0.1", default_port=8200)
    serve.add_argument(
        "--fleet",
        type=Path,
        help="a fleet's directory: no key to a VM whose node it has not admitted",
    )
    serve.add_argument(
        "--fleet-verifier-key",
        action="append",
        type=Path,
        default=[],
        help="with --fleet: a public key (PEM) of the verifier whose EARs name the VMs' nodes "
        "(repeatable)",
    )
    serve.set_defaults(func=_serve)

    policy = verbs.add_parser("policy", help="release policies")
    policy_verbs = policy.add_subparsers(dest="policy_verb", metavar="<verb>", required=True)
    check = policy_verbs.add_parser("check", help="compile a policy (CEL or Azure JSON)")
    check.add_argument("policy", type=Path)
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=_policy_check)

    tee_key = verbs.add_parser("tee-key", help="generate a TEE wrapping key pair")
    tee_key.add_argument("--type", default="ML-KEM-768", help="ML-KEM-768, ML-KEM-1024, RSA-3072")
    tee_key.add_argument("--out", required=True, type=Path, help="private key (PKCS#8 PEM)")
    tee_key.set_defaults(func=_tee_key)

    challenge = verbs.add_parser("challenge", help="ask the key service for a release nonce")
    add_url_options(challenge, what="key release service")
    challenge.add_argument("--json", action="store_true")
    add_client_options(challenge)
    challenge.set_defaults(func=_challenge)

    report = verbs.add_parser("report-data", help="the 64 bytes the TEE's evidence must sign")
    report.add_argument("--tee-key", required=True, type=Path)
    report.add_argument("--nonce", required=True)
    report.add_argument(
        "--gpus",
        type=int,
        metavar="N",
        help="a VM with N GPUs (the composite rule): print, as JSON, the challenge, each "
        "GPU's nonce and the CVM's report data",
    )
    report.set_defaults(func=_report_data)

    request = verbs.add_parser("request", help="request a key release")
    add_url_options(request, what="key release service")
    request.add_argument("--key", required=True, help="the key's name")
    request.add_argument("--ear", required=True, type=Path, help="the EAR (JWT or CWT file)")
    request.add_argument("--tee-key", required=True, type=Path)
    request.add_argument("--nonce", required=True, help="the nonce the evidence binds")
    request.add_argument("--out", required=True, type=Path, help="the released key (CBOR)")
    add_client_options(request)
    request.set_defaults(func=_request)

    unwrap = verbs.add_parser("unwrap", help="unwrap a released key with the TEE's key")
    unwrap.add_argument("released", type=Path)
    unwrap.add_argument("--tee-key", required=True, type=Path)
    unwrap.add_argument(
        "--nonce", required=True, help="the challenge the release must answer (hex or base64url)"
    )
    unwrap.add_argument(
        "--hsm-root",
        required=True,
        type=Path,
        help="the HSM's device certificate(s), PEM or DER (ironroot hsm info --device-out), "
        "the release statement chains to; not the vendor's root",
    )
    unwrap.add_argument(
        "--key", default=None, help="check the service labelled the release with this key name"
    )
    unwrap.add_argument(
        "--handle",
        default=None,
        help="check the HSM's release statement is of the key with this HSM handle",
    )
    unwrap.add_argument("--out", required=True, type=Path, help="the key material")
    unwrap.set_defaults(func=_unwrap)

    verifier = verbs.add_parser("verifier", help="the EAR verifiers the running service trusts")
    verifier_verbs = verifier.add_subparsers(dest="verifier_verb", metavar="<verb>", required=True)
    remove = verifier_verbs.add_parser(
        "remove", help="uninstall a verifier from the running service's HSM (crypto officer)"
    )
    remove.add_argument("name", help="the verifier's name, as installed")
    _add_officer_options(remove)
    remove.set_defaults(func=_verifier_remove)

    audit = verbs.add_parser("audit", help="the audit log of the running service's HSM")
    audit_verbs = audit.add_subparsers(dest="audit_verb", metavar="<verb>", required=True)
    prune = audit_verbs.add_parser(
        "prune",
        help="remove the running service's HSM's archived audit segments before a record "
        "(crypto officer; audited)",
    )
    prune.add_argument(
        "--before",
        required=True,
        type=int,
        metavar="SEQ",
        help="the first record kept: the first record of an archived segment or of the live log",
    )
    _add_officer_options(prune)
    prune.set_defaults(func=_audit_prune)

    demo = verbs.add_parser("demo", help="release a key to one VM and refuse another")
    demo.add_argument("--workdir", type=Path, default=None)
    demo.set_defaults(func=_demo)


def _add_officer_options(parser: argparse.ArgumentParser) -> None:
    """``--url``, the officer's ``--identity`` and ``--credential-file``, ``--json`` and TLS."""
    add_url_options(parser, what="key release service")
    parser.add_argument(
        "--identity", help=f"the HSM crypto officer to log in as (or ${_ENV_IDENTITY})"
    )
    parser.add_argument(
        "--credential-file",
        type=Path,
        help=f"a file holding its credential (or ${_ENV_CREDENTIAL} holding the credential "
        f"itself, or ${_ENV_CREDENTIAL}_FILE naming a file; else a prompt)",
    )
    add_approver_option(parser)
    parser.add_argument("--json", action="store_true")
    add_client_options(parser)


def _officer(args: argparse.Namespace) -> tuple[str, str, bytes, list[tuple[str, bytes]]]:
    """The service's URL, the officer's identity and credential and the approving officers
    (dual control), in that order: no credential is read on a usage error."""
    base = url(args)
    identity = args.identity or os.environ.get(_ENV_IDENTITY)
    if not identity:
        raise ConfigError(f"give --identity or set {_ENV_IDENTITY}")
    return base, identity, hsm_credential(args.credential_file), hsm_approvers(args.approver)


def _serve(args: argparse.Namespace) -> int:
    from ironroot.http import configure_logging

    data = data_dir(args)
    config = keyrelease.load_keyrelease_config(data)
    bind = listen(
        args,
        file_host=config.host,
        file_port=config.port,
        default_host="127.0.0.1",
        default_port=8200,
    )
    configure_logging(bind.log_level, bind.log_format)
    keyrelease.serve_keyrelease(data, bind.host, bind.port, tls=bind.tls, gate=_gate(args))
    return 0


def _gate(args: argparse.Namespace) -> keyrelease.ReleaseGate | None:
    """``--fleet``: the fleet's gate on every release (verifier keys required with it)."""
    if args.fleet is None:
        if args.fleet_verifier_key:
            raise ConfigError("--fleet-verifier-key goes with --fleet")
        return None
    if not args.fleet_verifier_key:
        raise ConfigError("--fleet needs --fleet-verifier-key: the keys of the VMs' verifier")
    from ironroot.crypto import PublicKey
    from ironroot.fleet import Fleet, FleetReleaseGate

    keys = [PublicKey.from_pem(_read(path)) for path in args.fleet_verifier_key]
    return FleetReleaseGate(Fleet.open(args.fleet), keys)


def _policy_check(args: argparse.Namespace) -> int:
    try:
        text = _read(args.policy).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedInput(f"{args.policy} is not UTF-8 text: not a release policy") from None
    policy = keyrelease.parse_release_policy(text)
    if args.json:
        print(json.dumps({"valid": True, "kind": policy.kind}))
    else:
        print(f"valid {policy.kind} release policy")
    return 0


def _tee_key(args: argparse.Namespace) -> int:
    public = args.out.with_name(args.out.name + ".pub.pem")
    for path in (args.out, public):  # each checked before either is written
        check_output(path)
    tee = keyrelease.TeeKeyPair.generate(args.type)
    _write(args.out, tee.to_pem())
    _write(public, tee.public.to_pem().encode(), 0o644)
    print(f"{tee.kind} wrapping key: {args.out} (public: {public})")
    return 0


def _challenge(args: argparse.Namespace) -> int:
    with keyrelease.KeyReleaseClient(url(args), verify=client_tls(args)) as client:
        nonce = client.challenge()
    if args.json:
        print(json.dumps({"nonce": nonce.hex()}))
    else:
        print(nonce.hex())
    return 0


def _report_data(args: argparse.Namespace) -> int:
    tee, nonce = _tee(args.tee_key), _nonce(args.nonce)
    if args.gpus is None:
        print(tee.report_data(nonce).hex())
        return 0
    cvm = tee.composite_report_data(nonce, args.gpus)  # MalformedInput outside 0..64
    composite = {
        "challenge": tee.report_data(nonce).hex(),
        "gpu_nonces": [tee.gpu_nonce(nonce, i).hex() for i in range(args.gpus)],
        "cvm_report_data": cvm.hex(),
    }
    print(json.dumps(composite, indent=2))
    return 0


def _request(args: argparse.Namespace) -> int:
    check_output(args.out)  # before the key is released
    tee = _tee(args.tee_key)
    ear = _read(args.ear)
    if ear[:1] != b"\xd2":  # a JWT's text, not a CWT's bytes (its last may be 0x0a)
        ear = ear.strip()
    if not ear:
        raise ConfigError(f"{args.ear} is empty")
    with keyrelease.KeyReleaseClient(url(args), verify=client_tls(args)) as client:
        released = client.release(
            args.key, ear=ear, wrapping_key=tee.public_spki, nonce=_nonce(args.nonce)
        )
    _write(args.out, released.to_cbor(), 0o644)
    print(f"released {released.kid} ({released.key_type.value}, {released.alg}) to {args.out}")
    return 0


def _unwrap(args: argparse.Namespace) -> int:
    tee = _tee(args.tee_key)
    released = keyrelease.ReleasedKey.parse(_read(args.released))
    roots = load_certificates(_read(args.hsm_root), what=f"HSM root {args.hsm_root}")
    key = tee.unwrap(
        released, nonce=_nonce(args.nonce), hsm_roots=roots, kid=args.key, handle=args.handle
    )
    _write(args.out, key.material)
    print(f"unwrapped {key.kid} ({key.key_type.value}) to {args.out}")
    return 0


def _verifier_remove(args: argparse.Namespace) -> int:
    base, identity, credential, approvers = _officer(args)
    with keyrelease.KeyReleaseClient(base, verify=client_tls(args)) as client:
        client.remove_verifier(
            args.name, identity=identity, credential=credential, approvers=approvers
        )
    if args.json:
        print(json.dumps({"name": args.name, "removed": True}))
    else:
        print(f"removed {args.name}: its EARs release no key from now on")
    return 0


def _audit_prune(args: argparse.Namespace) -> int:
    base, identity, credential, approvers = _officer(args)
    with keyrelease.KeyReleaseClient(base, verify=client_tls(args)) as client:
        removed = client.prune_audit(
            args.before, identity=identity, credential=credential, approvers=approvers
        )
    if args.json:  # as ironroot hsm audit prune --json
        print(json.dumps({"removed": list(removed), "first_kept": args.before}))
    else:
        print(
            f"removed {len(removed)} archived segment(s); the chain now starts at record "
            f"{args.before}"
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.workdir is not None:
        released, refused = keyrelease.demo_release(args.workdir, say=print)
    else:
        with tempfile.TemporaryDirectory(prefix="ironroot-keyrelease-") as work:
            released, refused = keyrelease.demo_release(work, say=print)
    ok = released and refused
    print("demo: key released to VM A, refused to VM B" if ok else "demo: FAILED")
    return 0 if ok else 1
