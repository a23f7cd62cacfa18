"""``ironroot hsm``: run the built-in HSM kept in a directory.

Every verb opens the HSM in ``--dir`` (``keystore.sealed`` + ``audit.jsonl``) with the device's
sealing secret (``--sealing-secret-file``, or the file that ``IRONROOT_HSM_SEALING_SECRET_FILE``
names; on a real device the root of trust provides it), logs in as ``--identity`` (or
``IRONROOT_HSM_IDENTITY``) and performs one operation. Credentials are never command-line
arguments: they come from ``--credential-file``, from ``IRONROOT_HSM_CREDENTIAL``, or from a
prompt. Under dual control (``hsm quorum N``), the other officers approve the one
dual-control operation a verb runs, with its arguments (``Hsm.approve``), with
``--approver NAME=FILE`` (the file holding that officer's credential) or ``--approver NAME``
(asked for on a terminal); only those verbs take it. ``audit verify`` works offline on the
log file and needs no credential. Binary outputs (signatures, ciphertexts, wrapped keys,
statements) go to ``--out`` files; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import getpass
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ironroot import crypto  # a lazy namespace: X.509 loads when used
from ironroot import hsm as hsmlib
from ironroot._fileio import read_limited_fd, warn_if_exposed
from ironroot.cli._hex import parse_hex
from ironroot.cli._input import note_folder, read_input, read_secret
from ironroot.cli._output import check_output, write_output
from ironroot.cli._serving import (
    add_approver_option,
    add_client_options,
    client_tls,
    hsm_approvers,
    hsm_credential,
)
from ironroot.cli._text import shown
from ironroot.crypto import (
    Algorithm,
    ecdsa_from_der,
    ecdsa_to_der,
    load_signer,
    load_verifier,
)
from ironroot.errors import (
    AuditChainBroken,
    ConfigError,
    HsmErrorState,
    MalformedInput,
    StoreRolledBack,
)

__all__ = ["register"]

_MAX_INPUT: Final = 64 * 1024 * 1024
_MAX_SMALL: Final = 1024 * 1024
_ENV_SECRET: Final = "IRONROOT_HSM_SEALING_SECRET_FILE"  # noqa: S105  (a variable's name)
_ENV_IDENTITY: Final = "IRONROOT_HSM_IDENTITY"
_ENV_CREDENTIAL: Final = "IRONROOT_HSM_CREDENTIAL"
_ENV_ROT: Final = "IRONROOT_HSM_ROT_DEVICE"


# --- plumbing ----------------------------------------------------------------------------------


def _read(path: Path, limit: int = _MAX_INPUT) -> bytes:
    return read_input(path, limit)


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` owner-only, whole or not at all (:func:`write_output`): a file that was
    there already is replaced by one with mode 0600 (a decrypted plaintext must not land in a
    world-readable one), and an output named the same as the input is never truncated."""
    write_output(path, data, mode=0o600)


def _secret(args: argparse.Namespace) -> bytes:
    path = args.sealing_secret_file or os.environ.get(_ENV_SECRET)
    if not path:
        raise ConfigError(f"give --sealing-secret-file or set {_ENV_SECRET}")
    warn_if_exposed(Path(path), "the HSM sealing secret")
    return read_secret(Path(path), _MAX_SMALL)


def _storage(args: argparse.Namespace) -> hsmlib.DirectoryStorage:
    """The HSM directory, with its root of trust's monotonic counter."""
    rot = args.rot_device or os.environ.get(_ENV_ROT)
    if not rot:
        raise ConfigError(
            f"give --rot-device or set {_ENV_ROT}: the root of trust that keeps the HSM's "
            "monotonic counter (ironroot rot init)"
        )
    note_folder(args.dir)  # its sealed store: no output replaces a file of it
    note_folder(rot)
    return hsmlib.DirectoryStorage.on_device(args.dir, Path(rot), counter=args.counter)


def _identity(args: argparse.Namespace) -> str:
    name = args.identity or os.environ.get(_ENV_IDENTITY)
    if not name:
        raise ConfigError(f"give --identity or set {_ENV_IDENTITY}")
    return str(name)


def _open(args: argparse.Namespace) -> tuple[hsmlib.DirectoryStorage, hsmlib.Hsm]:
    storage = _storage(args)
    try:
        hsm = hsmlib.Hsm.open(storage, _secret(args))
    except BaseException:
        storage.close()
        raise
    if hsm.state != "operational":
        storage.close()
        raise HsmErrorState(f"the HSM is in its error state: {hsm.error}")
    return storage, hsm


def _session_command(
    action: Callable[[hsmlib.Hsm, hsmlib.Session, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        identity = _identity(args)  # configuration first: nothing is opened on a usage error
        credential = hsm_credential(args.credential_file, "HSM credential: ")
        args.approvers = hsm_approvers(getattr(args, "approver", None))
        storage, hsm = _open(args)
        try:
            if getattr(args, "out", None) is not None:  # before the operation is done
                check_output(args.out)
            session = hsm.login(identity, credential)
            return action(hsm, session, args)
        finally:
            hsm.close()
            storage.close()

    return run


def _approve(
    hsm: hsmlib.Hsm,
    session: hsmlib.Session,
    args: argparse.Namespace,
    operation: str,
    *arguments: object,
) -> None:
    """Have the ``--approver`` officers approve the command's one dual-control
    ``operation`` with the very ``arguments`` it then runs with (``Hsm.approve``)."""
    if args.approvers:
        hsm.approve(session, operation, *arguments, approvers=args.approvers)


def _print(args: argparse.Namespace, value: object, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(value, indent=2, sort_keys=True))
    else:
        print(text)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_json(info: hsmlib.KeyInfo) -> dict[str, object]:
    out: dict[str, object] = {
        "handle": info.handle,
        "type": info.key_type.value,
        "generated_inside": info.generated_inside,
        "created": info.created,
        **info.attributes.to_map(),
    }
    if info.public_der is not None:
        out["public_key_der"] = _b64(info.public_der)
    if info.public_key is not None:
        out["kid"] = info.public_key.kid.hex()
        out["alg"] = info.public_key.algorithm.label
    return out


def _attributes(args: argparse.Namespace, key_type: hsmlib.KeyType) -> hsmlib.KeyAttributes:
    usages = (
        frozenset(hsmlib.Usage.parse(u) for u in args.usage)
        if args.usage
        else key_type.default_usages
    )
    policy = None
    if getattr(args, "release_policy_file", None):
        try:
            policy = _read(args.release_policy_file, _MAX_SMALL).decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise MalformedInput(
                f"{args.release_policy_file} is not UTF-8 text: not a release policy"
            ) from None
    return hsmlib.KeyAttributes(
        usages,
        getattr(args, "exportable", False),
        args.label or "",
        policy,
        getattr(args, "release_on_warning", False),
        frozenset(args.user) if args.user else None,
    )


# --- parser ------------------------------------------------------------------------------------


def _common(
    parser: argparse.ArgumentParser, *, login: bool = True, dual_control: bool = False
) -> None:
    """The options every verb takes; ``dual_control``: its operation is under the HSM's
    dual control (``--approver``)."""
    parser.add_argument("--dir", required=True, type=Path, help="the HSM directory")
    parser.add_argument(
        "--rot-device",
        type=Path,
        help=f"the root-of-trust device that keeps the HSM's counter (or ${_ENV_ROT})",
    )
    parser.add_argument(
        "--counter", default="hsm", help="the name of that counter (default: %(default)s)"
    )
    parser.add_argument(
        "--sealing-secret-file", type=Path, help=f"device sealing secret (or ${_ENV_SECRET})"
    )
    if login:
        parser.add_argument("--identity", help=f"identity to log in as (or ${_ENV_IDENTITY})")
        parser.add_argument(
            "--credential-file",
            type=Path,
            help=f"a file holding the credential (or ${_ENV_CREDENTIAL} holding the credential "
            f"itself, or ${_ENV_CREDENTIAL}_FILE naming a file; else a prompt)",
        )
        if dual_control:
            add_approver_option(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _key_options(parser: argparse.ArgumentParser, *, exportable: bool = True) -> None:
    parser.add_argument(
        "--usage",
        action="append",
        metavar="USAGE",
        help="repeat for each: " + ", ".join(u.value for u in hsmlib.Usage),
    )
    parser.add_argument("--label", default="", help="a label for the key")
    parser.add_argument(
        "--user",
        action="append",
        metavar="IDENTITY",
        help="a crypto user that may use the key; repeat for each (default: every crypto "
        "user; a derived or unwrapped key takes its parent's users)",
    )
    if exportable:
        parser.add_argument("--exportable", action="store_true", help="may leave wrapped")
        parser.add_argument("--release-policy-file", type=Path, help="release policy text")
        parser.add_argument(
            "--release-on-warning",
            action="store_true",
            help="an EAR whose status is warning may release it (default: affirming only)",
        )


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser("hsm", help="the built-in HSM")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    init = verbs.add_parser("init", help="create an HSM and its first crypto officer")
    _common(init, login=False)
    init.add_argument("--officer", required=True, help="name of the first crypto officer")
    init.add_argument("--credential-file", type=Path, help="the officer's credential")
    init.add_argument("--device-key", required=True, type=Path, help="device identity key")
    init.add_argument(
        "--device-chain", required=True, type=Path, help="device certificate chain (PEM)"
    )
    init.add_argument(
        "--audit-segment-records",
        type=int,
        metavar="N",
        help="audit records per archived segment, sealed in the HSM (2-250000; default "
        "100000; a service naming another seals that one when it opens the HSM)",
    )
    init.set_defaults(func=_init)

    info = verbs.add_parser("info", help="HSM id, attestation key and chain")
    _common(info, login=False)
    info.add_argument("--chain-out", type=Path, help="write the attestation chain (PEM)")
    info.add_argument("--key-out", type=Path, help="write the attestation public key (PEM)")
    info.add_argument(
        "--device-out",
        type=Path,
        help="write the device certificate alone (PEM): what a TEE trusts this HSM's release "
        "statements by (keyrelease unwrap --hsm-root)",
    )
    info.set_defaults(func=_info)

    identity = verbs.add_parser("identity", help="manage identities (crypto officer)")
    idverbs = identity.add_subparsers(dest="identity_verb", metavar="<verb>", required=True)
    add = idverbs.add_parser("add", help="add an identity")
    _common(add, dual_control=True)
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in hsmlib.Role])
    add.add_argument("--new-credential-file", type=Path, help="the new identity's credential")
    add.set_defaults(func=_session_command(_identity_add))
    for verb, action in (("lock", _identity_lock), ("unlock", _identity_unlock)):
        parser = idverbs.add_parser(verb, help=f"{verb} an identity")
        _common(parser, dual_control=verb == "unlock")
        parser.add_argument("name")
        parser.set_defaults(func=_session_command(action))
    listing = idverbs.add_parser("list", help="list identities")
    _common(listing)
    listing.set_defaults(func=_session_command(_identity_list))

    quorum = verbs.add_parser(
        "quorum", help="set how many crypto officers a dual-control operation needs"
    )
    _common(quorum, dual_control=True)
    quorum.add_argument("officers", type=int, help="1 (each officer alone) to 16")
    quorum.set_defaults(func=_session_command(_quorum))

    key = verbs.add_parser("key", help="key lifecycle")
    keyverbs = key.add_subparsers(dest="key_verb", metavar="<verb>", required=True)
    gen = keyverbs.add_parser("generate", help="generate a key inside (crypto officer)")
    _common(gen)
    gen.add_argument("--type", required=True, choices=[t.value for t in hsmlib.KeyType])
    _key_options(gen)
    gen.set_defaults(func=_session_command(_key_generate))
    klist = keyverbs.add_parser("list", help="list keys")
    _common(klist)
    klist.set_defaults(func=_session_command(_key_list))
    for verb, action in (("show", _key_show), ("delete", _key_delete)):
        parser = keyverbs.add_parser(verb, help=f"{verb} a key")
        _common(parser, dual_control=verb == "delete")
        parser.add_argument("handle")
        parser.set_defaults(func=_session_command(action))
    users = keyverbs.add_parser(
        "users", help="name the crypto users that may use a key (crypto officer)"
    )
    _common(users, dual_control=True)
    users.add_argument("handle")
    named = users.add_mutually_exclusive_group(required=True)
    named.add_argument(
        "--user", action="append", metavar="IDENTITY", help="a crypto user; repeat for each"
    )
    named.add_argument("--any", action="store_true", help="every crypto user may use it")
    users.set_defaults(func=_session_command(_key_users))

    _register_named_keys(
        verbs,
        "verifier",
        "EAR verifiers trusted for key release",
        add=(
            "install a verifier's EAR public key (crypto officer)",
            "what an Azure-grammar policy's authority names",
            "the verifier's public key (PEM or DER SPKI)",
        ),
        remove="uninstall a verifier (crypto officer)",
        listing="list the installed verifiers",
        field="kid",
        calls=("add_release_verifier", "remove_release_verifier", "release_verifiers"),
    )
    _register_named_keys(
        verbs,
        "recipient",
        "outside keys approved to receive wrapped exportable keys",
        add=(
            "approve a wrap recipient's public key (crypto officer)",
            "a name for the recipient (an escrow, another HSM)",
            "its ML-KEM or RSA public key (PEM or DER SPKI)",
        ),
        remove="withdraw an approval (crypto officer)",
        listing="list the approved recipients",
        field="sha256",
        calls=("add_wrap_recipient", "remove_wrap_recipient", "wrap_recipients"),
    )

    sign = verbs.add_parser("sign", help="sign a file")
    _common(sign)
    sign.add_argument("handle")
    sign.add_argument("--in", dest="input", required=True, type=Path)
    sign.add_argument("--out", required=True, type=Path)
    sign.add_argument(
        "--format",
        choices=("der", "raw"),
        default="der",
        help="ECDSA signature encoding: DER (openssl, most tools) or raw r || s (COSE, JOSE); "
        "other algorithms have one form",
    )
    sign.set_defaults(func=_session_command(_sign))

    verify = verbs.add_parser("verify", help="verify a signature (exit 1 if it does not)")
    _common(verify)
    verify.add_argument("handle")
    verify.add_argument("--in", dest="input", required=True, type=Path)
    verify.add_argument("--signature", required=True, type=Path)
    verify.add_argument(
        "--format",
        choices=("der", "raw"),
        default="der",
        help="ECDSA signature encoding: DER or raw r || s",
    )
    verify.set_defaults(func=_session_command(_verify))

    for verb, action in (("encrypt", _encrypt), ("decrypt", _decrypt)):
        parser = verbs.add_parser(verb, help=f"AES-256-GCM {verb}")
        _common(parser)
        parser.add_argument("handle")
        parser.add_argument("--in", dest="input", required=True, type=Path)
        parser.add_argument("--out", required=True, type=Path)
        parser.add_argument("--aad-file", type=Path, help="additional authenticated data")
        parser.set_defaults(func=_session_command(action))

    wrap = verbs.add_parser("wrap", help="wrap an exportable key")
    _common(wrap)
    wrap.add_argument("handle")
    target = wrap.add_mutually_exclusive_group(required=True)
    target.add_argument("--wrapping-key", help="handle of an ML-KEM, RSA or AES wrapping key")
    target.add_argument("--recipient", type=Path, help="ML-KEM or RSA public key (SPKI PEM/DER)")
    wrap.add_argument("--out", required=True, type=Path)
    wrap.set_defaults(func=_session_command(_wrap))

    unwrap = verbs.add_parser("unwrap", help="import a wrapped key (never exportable)")
    _common(unwrap)
    unwrap.add_argument("--unwrapping-key", required=True)
    unwrap.add_argument("--in", dest="input", required=True, type=Path)
    unwrap.add_argument("--type", choices=[t.value for t in hsmlib.KeyType])
    _key_options(unwrap, exportable=False)
    unwrap.set_defaults(func=_session_command(_unwrap))

    derive = verbs.add_parser("derive", help="HKDF-SHA-384 a new key inside")
    _common(derive)
    derive.add_argument("handle")
    derive.add_argument("--info", required=True, help="HKDF info (text)")
    derive.add_argument("--salt-hex", default="", help="HKDF salt (hex)")
    derive.add_argument(
        "--type",
        default=hsmlib.KeyType.AES_256.value,
        choices=[hsmlib.KeyType.AES_256.value, hsmlib.KeyType.HMAC_SHA384.value],
    )
    _key_options(derive)
    derive.set_defaults(func=_session_command(_derive))

    attest = verbs.add_parser("attest", help="a key attestation statement")
    _common(attest)
    attest.add_argument("handle")
    attest.add_argument("--nonce-hex", default="", help="the relying party's nonce (hex)")
    attest.add_argument("--out", required=True, type=Path)
    attest.set_defaults(func=_session_command(_attest))

    selftest = verbs.add_parser("self-test", help="run the known-answer tests")
    _common(selftest)
    selftest.set_defaults(func=_session_command(_self_test))

    audit = verbs.add_parser("audit", help="the audit log")
    averbs = audit.add_subparsers(dest="audit_verb", metavar="<verb>", required=True)
    show = averbs.add_parser("show", help="print the audit records (auditor)")
    _common(show)
    show.set_defaults(func=_session_command(_audit_show))
    averify = averbs.add_parser(
        "verify",
        help="verify the audit log, its archived segments and the live log as one chain: the "
        "chain (public), a checkpoint, and with the sealing secret every MAC and the sealed "
        "head (a cut tail, a missing, altered or truncated segment is reported)",
    )
    averify.add_argument("--dir", required=True, type=Path)
    averify.add_argument("--checkpoint", type=Path, help="a checkpoint statement to check")
    averify.add_argument("--key", type=Path, help="the attestation public key (PEM)")
    averify.add_argument(
        "--sealing-secret-file",
        type=Path,
        help=f"check MACs and the sealed head too (or ${_ENV_SECRET})",
    )
    averify.add_argument(
        "--rot-device",
        type=Path,
        help=f"also check the anchor against the RoT's counter (or ${_ENV_ROT})",
    )
    averify.add_argument("--counter", default="hsm", help="that counter's name (default: hsm)")
    averify.add_argument("--json", action="store_true")
    averify.set_defaults(func=_audit_verify)
    prune = averbs.add_parser(
        "prune",
        help="remove the archived audit segments before a record (crypto officer; recorded "
        "in the chain, which then verifies from that record)",
    )
    _common(prune, dual_control=True)
    prune.add_argument(
        "--before",
        required=True,
        type=int,
        metavar="SEQ",
        help="the first record kept: the first record of an archived segment or of the live log",
    )
    prune.set_defaults(func=_session_command(_audit_prune))
    checkpoint = averbs.add_parser("checkpoint", help="sign the log head (auditor)")
    _common(checkpoint)
    checkpoint.add_argument("--out", required=True, type=Path)
    checkpoint.add_argument("--register", metavar="URL", help="register on this service")
    add_client_options(checkpoint)
    checkpoint.set_defaults(func=_session_command(_audit_checkpoint))

    tamper = verbs.add_parser("tamper", help="signal a tamper event: zeroize everything")
    _common(tamper, login=False)
    tamper.add_argument("--yes", action="store_true", required=True, help="really zeroize")
    tamper.set_defaults(func=_tamper)


# --- verbs -------------------------------------------------------------------------------------


def _load_chain(path: Path) -> tuple[bytes, ...]:
    from cryptography.hazmat.primitives.serialization import Encoding

    certs = crypto.load_certificates(_read(path, _MAX_SMALL), what=f"certificate chain {path}")
    return tuple(c.public_bytes(Encoding.DER) for c in certs)


def _init(args: argparse.Namespace) -> int:
    device = hsmlib.DeviceIdentity(load_signer(args.device_key), _load_chain(args.device_chain))
    credential = hsm_credential(args.credential_file, f"credential for {args.officer}: ")
    with _storage(args) as storage:
        hsm = hsmlib.Hsm.initialize(
            storage,
            _secret(args),
            officer=args.officer,
            credential=credential,
            device=device,
            config=hsmlib.HsmConfig(audit_segment_records=args.audit_segment_records),
        )
        if hsm.state != "operational":
            raise HsmErrorState(f"self-tests failed: {hsm.error}")
        hsm.close()
        value = {"hsm": hsm.hsm_id.hex(), "attestation_kid": hsm.attestation_public_key.kid.hex()}
    _print(args, value, hsm.hsm_id.hex())
    return 0


def _info(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    storage, hsm = _open(args)
    try:
        chain = [
            crypto.load_certificate(c, what="attestation chain", der_only=True)
            for c in hsm.attestation_chain
        ]
        if args.chain_out:
            _write(args.chain_out, b"".join(c.public_bytes(Encoding.PEM) for c in chain))
        if args.key_out:
            _write(args.key_out, hsm.attestation_public_key.to_pem())
        if args.device_out:
            _write(args.device_out, chain[1].public_bytes(Encoding.PEM))
        value = {
            "hsm": hsm.hsm_id.hex(),
            "attestation_kid": hsm.attestation_public_key.kid.hex(),
            "attestation_alg": hsm.attestation_public_key.algorithm.label,
            "chain": [c.subject.rfc4514_string() for c in chain],
            "audit_segment_records": hsm.audit_segment_records,
            "officer_quorum": hsm.officer_quorum,
        }
        _print(args, value, "\n".join(f"{k}: {v}" for k, v in value.items()))
    finally:
        hsm.close()
        storage.close()
    return 0


def _identity_add(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    path = args.new_credential_file
    if path is None:
        if not sys.stdin.isatty():
            raise ConfigError("give --new-credential-file")
        new = getpass.getpass(f"credential for {args.name}: ").encode()
    else:
        warn_if_exposed(path, "an HSM credential")  # as every other credential file
        new = read_secret(path, _MAX_SMALL).rstrip(b"\r\n")
    role = hsmlib.Role.parse(args.role)
    _approve(hsm, session, args, "identity-add", args.name, role, new)
    hsm.add_identity(session, args.name, role, new)
    _print(args, {"identity": args.name, "role": args.role}, args.name)
    return 0


def _quorum(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _approve(hsm, session, args, "officer-quorum", args.officers)
    hsm.set_officer_quorum(session, args.officers)
    _print(args, {"officer_quorum": args.officers}, f"officer quorum: {args.officers}")
    return 0


def _identity_lock(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    hsm.lock_identity(session, args.name)
    return 0


def _identity_unlock(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _approve(hsm, session, args, "identity-unlock", args.name)
    hsm.unlock_identity(session, args.name)
    return 0


def _identity_list(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    rows = hsm.identities(session)
    until = {n: _iso_time(t) for n, t in hsm.lockouts(session).items()}

    def state(name: str, locked: bool) -> str:
        if locked:
            return "locked"
        return f"locked out until {until[name]}" if name in until else ""

    _print(
        args,
        [
            {"name": n, "role": r.value, "locked": locked, "locked_out_until": until.get(n)}
            for n, r, locked in rows
        ],
        "\n".join("\t".join((n, r.value, state(n, locked))) for n, r, locked in rows),
    )
    return 0


def _iso_time(posix: int) -> str:
    return dt.datetime.fromtimestamp(posix, dt.UTC).isoformat().replace("+00:00", "Z")


def _register_named_keys(
    verbs: Any,
    noun: str,
    help_text: str,
    *,
    add: tuple[str, str, str],
    remove: str,
    listing: str,
    field: str,
    calls: tuple[str, str, str],
) -> None:
    """``ironroot hsm NOUN add NAME KEY | remove NAME | list``: public keys an officer installs
    by name (EAR verifiers, wrap recipients); ``field`` names what identifies each key,
    ``calls`` the :class:`~ironroot.hsm.Hsm` methods that add, remove and list them (by name:
    the HSM is imported only when a command runs)."""
    add_key, remove_key, list_keys = calls
    group = verbs.add_parser(noun, help=help_text)
    nouns = group.add_subparsers(dest=f"{noun}_verb", metavar="<verb>", required=True)
    adding = nouns.add_parser("add", help=add[0])
    _common(adding, dual_control=True)
    adding.add_argument("name", help=add[1])
    adding.add_argument("key", type=Path, help=add[2])

    def do_add(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
        key = _read(args.key, _MAX_SMALL)
        _approve(hsm, session, args, f"{noun}-add", args.name, key)
        value = str(getattr(hsm, add_key)(session, args.name, key))
        _print(args, {"name": args.name, field: value}, value)
        return 0

    def do_remove(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
        _approve(hsm, session, args, f"{noun}-remove", args.name)
        getattr(hsm, remove_key)(session, args.name)
        _print(args, {"name": args.name, "removed": True}, f"removed {args.name}")
        return 0

    def do_list(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
        rows: tuple[tuple[str, str], ...] = getattr(hsm, list_keys)(session)
        _print(
            args,
            [{"name": n, field: v} for n, v in rows],
            "\n".join(f"{n}\t{v}" for n, v in rows),
        )
        return 0

    adding.set_defaults(func=_session_command(do_add))
    removing = nouns.add_parser("remove", help=remove)
    _common(removing, dual_control=True)
    removing.add_argument("name")
    removing.set_defaults(func=_session_command(do_remove))
    listed = nouns.add_parser("list", help=listing)
    _common(listed)
    listed.set_defaults(func=_session_command(do_list))


def _key_generate(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    key_type = hsmlib.KeyType.parse(args.type)
    handle = hsm.generate(session, key_type, _attributes(args, key_type))
    _print(args, _key_json(hsm.key_info(session, handle)), handle)
    return 0


def _key_list(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    keys = hsm.keys(session)
    _print(
        args,
        [_key_json(k) for k in keys],
        # a label is its creator's text (any client of a served HSM): shown, no escape raw
        "\n".join(f"{k.handle}\t{k.key_type.value}\t{shown(k.attributes.label)}" for k in keys),
    )
    return 0


def _key_show(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    value = _key_json(hsm.key_info(session, args.handle))
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0


def _key_users(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    named = None if args.any else args.user
    _approve(hsm, session, args, "key-users", args.handle, named)
    info = hsm.set_key_users(session, args.handle, named)
    users = info.attributes.users
    _print(
        args,
        _key_json(info),
        f"{info.handle}: " + ("every crypto user" if users is None else ", ".join(sorted(users))),
    )
    return 0


def _key_delete(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _approve(hsm, session, args, "delete", args.handle)
    hsm.delete(session, args.handle)
    return 0


def _ecdsa(hsm: hsmlib.Hsm, session: hsmlib.Session, handle: str) -> Algorithm | None:
    """The ECDSA algorithm of ``handle`` (``None`` for any other key: no DER form)."""
    info = hsm.key_info(session, handle)
    alg = info.public_key.algorithm if info.public_key is not None else None
    return alg if alg in (Algorithm.ES256, Algorithm.ES384, Algorithm.ES512) else None


def _sign(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    signature = hsm.sign(session, args.handle, _read(args.input))
    alg = _ecdsa(hsm, session, args.handle)
    if alg is not None and args.format == "der":  # what openssl and most tools read
        signature = ecdsa_to_der(alg, signature)
    _write(args.out, signature)
    _print(args, {"signature": _b64(signature)}, f"wrote {len(signature)} bytes to {args.out}")
    return 0


def _verify(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    signature = _read(args.signature, _MAX_SMALL)
    alg = _ecdsa(hsm, session, args.handle)
    if alg is not None and args.format == "der":
        try:
            signature = ecdsa_from_der(alg, signature)
        except MalformedInput as exc:
            raise MalformedInput(f"{exc.detail} (give --format raw for r || s)") from exc
    hsm.verify(session, args.handle, signature, _read(args.input))
    _print(args, {"valid": True}, "signature verifies")
    return 0


def _aad(args: argparse.Namespace) -> bytes:
    return _read(args.aad_file, _MAX_SMALL) if args.aad_file else b""


def _encrypt(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _write(args.out, hsm.encrypt(session, args.handle, _read(args.input), aad=_aad(args)))
    return 0


def _decrypt(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _write(args.out, hsm.decrypt(session, args.handle, _read(args.input), aad=_aad(args)))
    return 0


def _wrap(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    recipient = _read(args.recipient, _MAX_SMALL) if args.recipient else None
    wrapped = hsm.wrap(session, args.handle, wrapping_key=args.wrapping_key, recipient=recipient)
    _write(args.out, wrapped)
    _print(args, {"wrapped": _b64(wrapped)}, f"wrote {len(wrapped)} bytes to {args.out}")
    return 0


def _unwrap(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    key_type = hsmlib.KeyType.parse(args.type) if args.type else None
    if not args.usage:
        raise MalformedInput("name the imported key's usages with --usage")
    attributes = hsmlib.KeyAttributes.of(args.usage, label=args.label or "")
    handle = hsm.unwrap(
        session,
        _read(args.input, _MAX_SMALL),
        unwrapping_key=args.unwrapping_key,
        attributes=attributes,
        key_type=key_type,
    )
    _print(args, _key_json(hsm.key_info(session, handle)), handle)
    return 0


def _derive(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    key_type = hsmlib.KeyType.parse(args.type)
    handle = hsm.derive(
        session,
        args.handle,
        info=args.info.encode(),
        salt=parse_hex(args.salt_hex, "--salt-hex"),
        key_type=key_type,
        attributes=_attributes(args, key_type),
    )
    _print(args, _key_json(hsm.key_info(session, handle)), handle)
    return 0


def _attest(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    nonce = parse_hex(args.nonce_hex, "--nonce-hex") or None
    statement = hsm.attest(session, args.handle, nonce=nonce)
    _write(args.out, statement)
    _print(args, {"attestation": _b64(statement)}, f"wrote {len(statement)} bytes to {args.out}")
    return 0


def _self_test(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    hsm.self_test(session)
    _print(args, {"self_test": "passed"}, "self-tests passed")
    return 0


def _audit_show(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    records = hsm.audit_records(session)
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    for r in records:
        print(audit_line(r))
    return 0


def audit_line(record: hsmlib.AuditRecord) -> str:
    """One record as a tab-separated line: seq, time, identity, operation, key, result and,
    for a release bound to what it released (ADR 0015), the digests it binds; the text the
    HSM was given (identity, key) is shown escaped."""
    when = dt.datetime.fromtimestamp(record.time, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (
        f"{record.seq}\t{when}\t{shown(record.identity)}\t{record.operation}\t"
        f"{shown(record.key) if record.key else '-'}\t{shown(record.result)}"
    )
    if record.release is not None:
        bound = " ".join(f"{name}={value}" for name, value in record.release.to_json().items())
        line += f"\trelease {bound}"
    return line


def _read_log(path: Path) -> bytes:
    """An audit log file, the live log or a segment, read as the HSM reads its own: a regular
    file (a link to one is followed: segments moved to other storage) within
    ``MAX_AUDIT_FILE``. Anything else in its place — a pipe, a device, a directory — is
    ``AuditChainBroken`` before a byte is read (a link to ``/dev/zero`` was read to the cap)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    if not regular:
        os.close(fd)
        raise AuditChainBroken(
            f"{path.name} is not a regular file: the HSM writes only regular files there"
        )
    return read_limited_fd(fd, path, hsmlib.MAX_AUDIT_FILE)


def _read_optional(path: Path) -> bytes | None:
    return _read(path) if path.exists() else None


_AUDIT_READS: Final = 5
_ROTATION_WAITS: Final = 10
_ROTATION_WAIT: Final = 0.05  # seconds, times the wait: a rotation's commit is a few fsyncs


def _rotating(audit: bytes, segments: list[str]) -> bool:
    """Whether a segment starts where the live log does: the HSM is between the link and the
    reset of a rotation (``_audit_buffer``: the segment's records are still the live log's),
    or a crash cut a rotation short there (power-up removes or finishes it)."""
    try:
        head = hsmlib.parse_audit_log(audit.partition(b"\n")[0])
    except MalformedInput:
        return False
    return bool(head) and any(
        (span := hsmlib.parse_segment_name(n)) is not None and span[0] == head[0].seq
        for n in segments
    )


def _audit_verify(args: argparse.Namespace) -> int:
    if args.key and not args.checkpoint:  # ignored, it would pass as if the key had checked
        raise ConfigError(
            "--key is the key a --checkpoint is checked with, and no --checkpoint was given"
        )
    secret_path = args.sealing_secret_file or os.environ.get(_ENV_SECRET)
    # The RoT device as every hsm command takes it: --rot-device or its environment variable
    # (ignored here before, so a whole HSM directory restored from a copy passed the check).
    rot = args.rot_device or os.environ.get(_ENV_ROT)
    counter: Callable[[], int] | None = None
    if secret_path and rot:
        from ironroot.rot import Device

        counter = Device(Path(rot)).counter(args.counter).value
    sealing_secret = read_secret(Path(secret_path), _MAX_SMALL) if secret_path else b""
    # The HSM may be running: read in commit order (anchor, store, log: a log is never
    # shorter than its anchor) between two readings of the counter. A check that fails while
    # the counter moved, the archived segments changed or the live log grew is read again:
    # the HSM committed, rotated, pruned (a segment listed is gone) or appended (a group read
    # half-written) meanwhile (twice or more between the anchor and the store); a rollback, a
    # cut log, a removed segment or a line that stays partial fails every time. Read between
    # a rotation's link and its commit, nothing has moved yet but a segment overlaps the live
    # log: the check waits a little and reads again (a crash's leftover fails after some 3 s),
    # without counting it as a read (on a busy HSM with small segments, a few in a row).
    reads = waits = 0
    while True:
        before = counter() if counter is not None else None
        anchor = _read_optional(args.dir / "anchor.sealed") if secret_path else None
        store = _read_optional(args.dir / "keystore.sealed") if secret_path else None
        audit = _read_log(args.dir / "audit.jsonl")
        segments = _segment_names(args.dir)
        after = counter() if counter is not None else None
        try:
            value = _audit_report(
                args, audit, segments, store, anchor, sealing_secret, before, after
            )
        except (StoreRolledBack, AuditChainBroken, MalformedInput, FileNotFoundError):
            if waits < _ROTATION_WAITS and _rotating(audit, segments):
                waits += 1
                time.sleep(_ROTATION_WAIT * waits)  # let it commit, then read again
                continue
            reads += 1
            moved = (
                before != after
                or (bool(secret_path) and _read_optional(args.dir / "anchor.sealed") != anchor)
                or _segment_names(args.dir) != segments  # the HSM rotated (or pruned) meanwhile
                or _read_log(args.dir / "audit.jsonl") != audit  # appended
            )
            if not moved or reads == _AUDIT_READS:
                raise
            continue
        break
    scope = (
        f"MACs and sealed head checked ({value['anchored']} records anchored)"
        if value["sealed"]
        else "chain checked (public); a cut tail shows only against a checkpoint or with "
        "--sealing-secret-file"
    )
    _print(
        args,
        value,
        f"audit log verifies: {value['records']} records"
        + (f" from record {value['first']} (those before it pruned)" if value["first"] else "")
        + f" in {value['segments']} archived segment(s) and the live log, head "
        f"{value['head']}; {scope}",
    )
    return 0


def _segment_names(directory: Path) -> list[str]:
    """The archived segments' names in ``directory`` (``audit-*.jsonl``: one that is not a
    segment's name is refused by the verification, not skipped)."""
    return sorted(p.name for p in directory.glob("audit-*.jsonl"))


def _audit_report(
    args: argparse.Namespace,
    audit: bytes,
    segments: list[str],
    store: bytes | None,
    anchor: bytes | None,
    sealing_secret: bytes,
    before: int | None,
    after: int | None,
) -> dict[str, object]:
    checkpoint = None
    if args.checkpoint:
        if not args.key:
            raise ConfigError("checking a checkpoint needs the attestation key (--key)")
        verifier = load_verifier(args.key)
        checkpoint = hsmlib.verify_audit_checkpoint(_read(args.checkpoint, _MAX_SMALL), verifier)

    def read_segment(name: str) -> bytes:
        return _read_log(args.dir / name)

    value: dict[str, object] = {
        "segments": len(segments),
        "checkpoint": bool(checkpoint),
        "sealed": bool(sealing_secret),
    }
    if not sealing_secret:
        span = hsmlib.verify_audit_segments(segments, read_segment, audit, checkpoint=checkpoint)
        first, records, head = span.first, span.records, span.head
    else:  # the public chain, the checkpoint and every MAC in one pass over the files
        report = hsmlib.check_sealed_audit(
            audit=audit,
            store=store,
            anchor=anchor,
            sealing_secret=sealing_secret,
            counter=before,
            rot_counter=args.counter if before is not None else "",
            counter_after=after,
            segments=segments,
            read_segment=read_segment,
            checkpoint=checkpoint,
        )
        first, records, head = report.first, report.records - report.first, report.head
        value.update(anchored=report.anchored, keyed_from=report.keyed_from, counter=report.counter)
    value.update(records=records, first=first, head=head.hex() if records else "")
    return value


def _audit_prune(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    _approve(hsm, session, args, "audit-prune", args.before)
    removed = hsm.prune_audit(session, args.before)
    _print(
        args,
        {"removed": list(removed), "first_kept": args.before},
        f"removed {len(removed)} archived segment(s); the chain now starts at record {args.before}",
    )
    return 0


def _audit_checkpoint(hsm: hsmlib.Hsm, session: hsmlib.Session, args: argparse.Namespace) -> int:
    statement = hsm.audit_checkpoint(session)
    _write(args.out, statement)
    value: dict[str, object] = {"checkpoint": str(args.out)}
    if args.register:
        from ironroot.transparency import TransparencyClient

        with TransparencyClient(args.register, verify=client_tls(args)) as client:
            registration = client.register(statement)
        value["entry_id"] = registration.entry_id
    _print(args, value, str(value.get("entry_id", args.out)))
    return 0


def _tamper(args: argparse.Namespace) -> int:
    storage, hsm = _open(args)
    try:
        hsm.tamper()
    finally:
        storage.close()
    _print(args, {"state": hsm.state}, "zeroized")
    return 0
