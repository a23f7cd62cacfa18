"""``ironroot rot``: root-of-trust commands.

Device lifecycle (the device is a directory, see :class:`ironroot.rot.Device`):

* ``ca-init --out DIR`` makes a test vendor CA (ECC P-384 and ML-DSA-87 roots, PEM files);
* ``provision --device DIR --vendor-ca-key KEY --vendor-ca-cert CERT --vendor-key-hash HEX``
  manufactures a device (``--vendor-ca-key``/``--vendor-ca-cert`` given once per algorithm);
* ``boot --device DIR --bundle FILE [--at ISO]`` verifies and measures a firmware bundle;
* ``quote --device DIR --nonce HEX --out FILE`` and ``verify-quote FILE --nonce HEX
  --vendor-ca-cert CERT``;
* ``derive-child --device DIR --measurement HEX --label NAME --out DIR`` (DPE);
* ``show --device DIR [--json]`` and ``fuse --device DIR <write>`` (each fuse write verb);
* ``counter show --device DIR NAME [--json]`` and ``counter increment --device DIR NAME
  [--json]``: the device's monotonic counters.

Every device verb takes ``--obfuscation-key FILE``: the file holding the device's obfuscation
key (default: the file ``IRONROOT_ROT_OBFUSCATION_KEY_FILE`` names, else ``DIR.obfuscation-key``
beside the device directory). ``provision`` creates it (0600) when it does not exist. A device
whose state was edited exits 1 with ``device-state-tampered``; a bad counter name exits 2.

``inspect-cert FILE [--json]`` prints every DICE field of each certificate or CSR in FILE
(PEM or DER, several concatenated allowed); with ``--json``, a JSON list with one object per
certificate or CSR, in file order. Undecodable DICE extensions are listed, not fatal,
so redacted samples can still be inspected; a file that holds no certificate or CSR exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ironroot import (
    crypto,  # a lazy namespace: X.509 loads when used
    rot,
)
from ironroot._fileio import write_atomic
from ironroot.cli._hex import parse_hex
from ironroot.cli._input import note_folder, note_secret, read_input
from ironroot.cli._output import output_folder, write_output
from ironroot.cli._text import markup
from ironroot.cli._time import now_or
from ironroot.crypto import Algorithm
from ironroot.errors import ConfigError

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["register"]


def _read_certificates(path: Path) -> bytes:
    """A certificate file, refused from its size beyond the largest the parsers take (a
    chain of the most certificates, each of the largest size), unread."""
    from ironroot.rot import dice  # here: X.509 loads when used

    return read_input(path, dice.MAX_CERTIFICATE_BYTES * dice.MAX_CERTIFICATES)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rot", help="silicon root of trust: DICE identities")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>", required=True)
    inspect = verbs.add_parser(
        "inspect-cert", help="print the DICE fields of certificates or CSRs (PEM or DER)"
    )
    inspect.add_argument(
        "file",
        type=Path,
        help="certificate(s) or CSR, PEM or DER; or an Open DICE CBOR certificate",
    )
    inspect.add_argument(
        "--issuer",
        type=Path,
        help="Open DICE CBOR: the issuer's certificate, to verify the signature with its key "
        "(a self-issued certificate is verified with its own)",
    )
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument(
        "--svn-encoding",
        choices=("auto", "caliptra", "plain"),
        default="auto",
        help="how to read TcbInfo SVNs (Caliptra writes 0x100|svn); default auto",
    )
    inspect.set_defaults(func=_inspect)
    _register_device_verbs(verbs)


def _open_dice_cbor(data: bytes, issuer_file: Path | None) -> dict[str, Any]:
    """An Open DICE CBOR certificate as JSON, with its signature checked when the issuer's key
    is known (``BadSignature``, exit 1, when it does not verify)."""
    certificate = rot.parse_open_dice_cbor(data)
    doc = certificate.to_json()
    if issuer_file is not None:
        issuer = _read_certificates(issuer_file)
        certificate.verify(rot.parse_open_dice_cbor(issuer).public_key())
        doc["signature"] = f"verified with the key of {issuer_file.name}"
    elif certificate.issuer == certificate.subject:
        certificate.verify(certificate.public_key())
        doc["signature"] = "verified (self-issued)"
    else:
        doc["signature"] = "not checked (give --issuer)"
    return doc


def _inspect(args: argparse.Namespace) -> int:
    data = _read_certificates(args.file)
    if data[:1] == b"\x84":  # a 4-item CBOR array: an untagged COSE_Sign1 (Open DICE CBOR)
        documents = [_open_dice_cbor(data, args.issuer)]
        if args.json:
            print(json.dumps(documents, indent=2))
            return 0
        from rich.table import Table

        from ironroot.cli._text import rich_console

        table = Table(title=markup(args.file.name), show_header=False, title_justify="left")
        for key, value in documents[0].items():
            if value is not None:
                table.add_row(key, _text(value))
        rich_console().print(table)
        return 0
    if args.issuer is not None:
        raise ConfigError("--issuer applies to Open DICE CBOR certificates")
    objects = rot.load_dice_objects(data, strict=False, svn_encoding=args.svn_encoding)
    documents = [obj.to_json() for obj in objects]
    if args.json:
        print(json.dumps(documents, indent=2))
        return 0
    from ironroot.cli._text import rich_console

    console = rich_console()
    for position, doc in enumerate(documents):
        console.print(_table(doc, f"{markup(args.file.name)} [{position}]"))
    return 0


def _table(doc: dict[str, Any], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in (
        "kind",
        "subject",
        "issuer",
        "serial",
        "not_before",
        "not_after",
        "signature_algorithm",
        "public_key_algorithm",
        "is_ca",
        "key_usage",
        "quirks",
    ):
        value = doc[key]
        if value not in (None, [], ""):
            table.add_row(key, _text(value))
    dice = doc["dice"]
    if dice["ueid"] is not None:
        table.add_row("ueid", _text(dice["ueid"]))
    if dice["key_purposes"]:
        table.add_row("key purposes", _text(dice["key_purposes"]))
    label = "MultiTcbInfo" if dice["multi_tcb_info"] else "TcbInfo"
    for index, tcb in enumerate(dice["tcb_infos"]):
        for key, value in tcb.items():
            if value in (None, []):
                continue
            if key == "fwids":
                value = [f"{f['hash_alg']}:{f['digest']}" for f in value]
            elif key in ("flags", "flags_mask"):
                value = value["names"]
            table.add_row(f"{label}[{index}].{key}", _text(value))
    if dice["open_dice"] is not None:
        for key, value in dice["open_dice"].items():
            if value is not None:
                table.add_row(f"OpenDice.{key}", _text(value))
    for bad in dice["invalid"]:
        table.add_row("invalid extension", _text(f"{bad['oid']}: {bad['reason']}"), style="red")
    return table


def _text(value: object) -> str:
    """Plain text for a cell: DICE strings may hold rich markup brackets or control
    characters (:func:`ironroot.cli._text.markup`)."""
    if isinstance(value, list):
        return markup(", ".join(str(v) for v in value))
    return markup(value)


# --- device verbs ----------------------------------------------------------------------------

_ENV_KEY = "IRONROOT_ROT_OBFUSCATION_KEY_FILE"
_OLD_ENV_KEY = "IRONROOT_ROT_OBFUSCATION_KEY"  # held a path without saying so: refused
_CA_FILES = {Algorithm.ES384: "vendor-ca-ecc", Algorithm.ML_DSA_87: "vendor-ca-mldsa"}


def _register_device_verbs(verbs: Any) -> None:
    ca = verbs.add_parser("ca-init", help="make a test vendor CA (ECC P-384 and ML-DSA-87 roots)")
    ca.add_argument("--out", type=Path, required=True, help="directory for the PEM files")
    ca.add_argument("--name", default="Ironroot Test Vendor CA", help="common name prefix")
    ca.add_argument("--at", help="not-before time, ISO 8601 with offset (default: now)")
    ca.set_defaults(func=_ca_init)

    prov = verbs.add_parser("provision", help="manufacture a device: UDS, IDevID, vendor CA")
    prov.add_argument("--device", type=Path, required=True, help="device directory")
    _key_option(prov)
    prov.add_argument(
        "--vendor-ca-key", type=Path, action="append", required=True, help="PEM key (per alg)"
    )
    prov.add_argument(
        "--vendor-ca-cert", type=Path, action="append", required=True, help="PEM/DER cert"
    )
    prov.add_argument(
        "--vendor-key-hash", required=True, help="firmware vendor key descriptor hash (hex)"
    )
    prov.add_argument("--owner-key-hash", help="owner key hash to fuse (hex)")
    prov.add_argument("--at", help="time, ISO 8601 with offset (default: now)")
    prov.add_argument("--json", action="store_true", help="print JSON")
    prov.set_defaults(func=_provision)

    boot = verbs.add_parser("boot", help="verify, measure and boot a firmware bundle")
    boot.add_argument("--device", type=Path, required=True)
    _key_option(boot)
    boot.add_argument("--bundle", type=Path, required=True)
    boot.add_argument("--at", help="time, ISO 8601 with offset (default: now)")
    boot.add_argument(
        "--expired-manifest",
        choices=("refuse", "report"),
        default="refuse",
        help="a manifest outside its validity dates: refuse it (default, manifest-expired) or"
        " boot it and record why in the boot state's manifest_validity",
    )
    boot.add_argument("--json", action="store_true", help="print JSON")
    boot.set_defaults(func=_boot)

    quote = verbs.add_parser("quote", help="sign the PCRs and log for a nonce")
    quote.add_argument("--device", type=Path, required=True)
    _key_option(quote)
    quote.add_argument("--nonce", required=True, help="the verifier's nonce (hex, 8-64 bytes)")
    quote.add_argument("--out", type=Path, required=True, help="where to write the quote (CBOR)")
    quote.set_defaults(func=_quote)

    verify = verbs.add_parser("verify-quote", help="verify a quote against vendor CA roots")
    verify.add_argument("file", type=Path)
    verify.add_argument("--nonce", required=True, help="the nonce that was sent (hex)")
    verify.add_argument("--vendor-ca-cert", type=Path, action="append", required=True)
    verify.add_argument("--at", help="time, ISO 8601 with offset (default: now)")
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(func=_verify_quote)

    seal = verbs.add_parser(
        "sealing-secret",
        help="a secret bound to this device and its booted firmware (for the HSM's key store)",
    )
    seal.add_argument("--device", type=Path, required=True)
    _key_option(seal)
    seal.add_argument("--label", default="hsm", help="separates users of the secret")
    seal.add_argument("--out", type=Path, required=True, help="file to write (mode 0600)")
    seal.set_defaults(func=_sealing_secret)

    child = verbs.add_parser("derive-child", help="DPE: certify a key for the next layer")
    child.add_argument("--device", type=Path, required=True)
    _key_option(child)
    child.add_argument("--measurement", required=True, help="SHA-384 of the child (hex)")
    child.add_argument("--label", required=True, help="child name, e.g. bmc")
    child.add_argument("--out", type=Path, required=True, help="directory for certs and keys")
    child.set_defaults(func=_derive_child)

    show = verbs.add_parser("show", help="lifecycle, fuses (never the UDS), PCRs and chain")
    show.add_argument("--device", type=Path, required=True)
    _key_option(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)

    fuse = verbs.add_parser("fuse", help="program a fuse (one-time: bits are only ever set)")
    fuse.add_argument("--device", type=Path, required=True)
    _key_option(fuse)
    writes = fuse.add_subparsers(dest="write", metavar="<write>", required=True)
    svn = writes.add_parser("svn", help="advance the firmware SVN fuse")
    svn.add_argument("value", type=int)
    for which in ("ecc", "pqc"):
        revoke = writes.add_parser(f"revoke-{which}", help=f"revoke a vendor {which} key slot")
        revoke.add_argument("index", type=int)
        revoke.add_argument(
            "--key-count",
            type=int,
            required=True,
            help=f"{which.upper()} keys the product's descriptor lists (required: revoking the"
            " last of them is refused, and slots beyond them hold no key)",
        )
    for which in ("vendor-key-hash", "owner-key-hash"):
        value = writes.add_parser(which, help=f"fuse the {which.replace('-', ' ')}")
        value.add_argument("hex")
    entropy = writes.add_parser("field-entropy", help="fuse field entropy (random by default)")
    entropy.add_argument("--hex", help="32 bytes of entropy (hex)")
    writes.add_parser("anti-rollback-disable", help="disable the SVN check (irreversible)")
    lifecycle = writes.add_parser("lifecycle", help="advance the lifecycle")
    lifecycle.add_argument("state", choices=[s.label for s in rot.Lifecycle])
    writes.add_parser("lock-debug", help="lock debug (irreversible)")
    fuse.set_defaults(func=_fuse)

    counter = verbs.add_parser("counter", help="monotonic counters held by the device")
    counter_verbs = counter.add_subparsers(dest="counter_verb", metavar="<verb>", required=True)
    for verb, text in (
        ("show", "print a counter's value (0 before its first increment)"),
        ("increment", "add one to a counter (durable before it prints)"),
    ):
        sub = counter_verbs.add_parser(verb, help=text)
        sub.add_argument("--device", type=Path, required=True)
        _key_option(sub)
        sub.add_argument("name", help="counter name: 1-32 of a-z 0-9 . _ -")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.set_defaults(func=_counter)


def _key_option(parser: Any) -> None:
    parser.add_argument(
        "--obfuscation-key",
        type=Path,
        help=f"the device's obfuscation key file (default: ${_ENV_KEY}, else DIR.obfuscation-key "
        "beside the device directory; never inside it)",
    )


def _obfuscation_key(args: argparse.Namespace) -> Path | None:
    if os.environ.get(_OLD_ENV_KEY):
        raise ConfigError(
            f"{_OLD_ENV_KEY} is now {_ENV_KEY}: a variable ending in _FILE names a file"
        )
    given: Path | None = args.obfuscation_key
    if given is None and os.environ.get(_ENV_KEY):
        given = Path(os.environ[_ENV_KEY])
    return given


def _device(args: argparse.Namespace) -> rot.Device:
    device = rot.Device(args.device, obfuscation_key=_obfuscation_key(args))
    note_secret(device.obfuscation_key_path)  # the device reads it: no output replaces it
    note_folder(device.directory)
    return device


def _ca_init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    ca = rot.VendorCA.generate(now=now_or(args.at), common_name=args.name)
    output_folder(args.out)  # before a key is written into it
    for alg, stem in _CA_FILES.items():
        key_path = args.out / f"{stem}.key.pem"
        _write_private(key_path, ca.key(alg).to_pem(), exclusive=True)  # never overwrite a CA key
        cert_pem = crypto.load_certificate(ca.certificate(alg), der_only=True).public_bytes(
            serialization.Encoding.PEM
        )
        write_output(args.out / f"{stem}.cert.pem", cert_pem)
        print(f"{alg.label}: {key_path} {args.out / f'{stem}.cert.pem'}")
    return 0


def load_vendor_ca(directory: Path) -> rot.VendorCA:
    """The vendor CA ``ca-init`` wrote to ``directory`` (its keys and certificates)."""
    return rot.VendorCA.from_pem(
        [read_input(directory / f"{stem}.key.pem") for stem in _CA_FILES.values()],
        _certificate_files([directory / f"{stem}.cert.pem" for stem in _CA_FILES.values()]),
    )


def _write_private(path: Path, data: bytes, *, exclusive: bool) -> None:
    """Write a private key file readable only by its owner (atomically, durably)."""
    write_atomic(path, data, mode=0o600, exclusive=exclusive)


def _certificate_files(paths: list[Path]) -> list[bytes]:
    return [cert.der for path in paths for cert in rot.parse_certificates(_read_certificates(path))]


def _provision(args: argparse.Namespace) -> int:
    ca = rot.VendorCA.from_pem(
        [read_input(p) for p in args.vendor_ca_key], _certificate_files(args.vendor_ca_cert)
    )
    key = _obfuscation_key(args)
    if os.path.lexists(args.device / "fuses.json"):  # a link there is the device's, refused
        device = rot.Device(args.device, obfuscation_key=key)
    else:
        device = rot.Device.create(args.device, obfuscation_key=key)
    result = device.provision(
        ca,
        vendor_key_hash=parse_hex(args.vendor_key_hash, "--vendor-key-hash"),
        owner_key_hash=parse_hex(args.owner_key_hash, "--owner-key-hash")
        if args.owner_key_hash
        else None,
        now=now_or(args.at),
    )
    doc = {"device": str(args.device), "ueid": result.ueid.hex(), **device.show()["fuses"]}
    _print(doc, args.json, "provisioned")
    return 0


def _boot(args: argparse.Namespace) -> int:
    device = _device(args)
    from ironroot import firmware  # the bundle's own limit: refused from its size, unread

    bundle = read_input(args.bundle, firmware.DEFAULT_LIMITS.max_bundle_bytes)
    state = device.boot(bundle, now=now_or(args.at), expired_manifest=args.expired_manifest)
    _print(state.public_json(), args.json, "booted")
    return 0


def _quote(args: argparse.Namespace) -> int:
    quote = _device(args).quote(parse_hex(args.nonce, "--nonce"))
    write_output(args.out, quote)
    print(f"quote: {args.out} ({len(quote)} bytes)")
    return 0


def _verify_quote(args: argparse.Namespace) -> int:
    claims = rot.verify_quote(
        read_input(args.file),
        nonce=parse_hex(args.nonce, "--nonce"),
        trust_anchors=_certificate_files(args.vendor_ca_cert),
        now=now_or(args.at),
    )
    _print({"ok": True, **claims.to_json()}, args.json, "quote verifies")
    return 0


def _sealing_secret(args: argparse.Namespace) -> int:
    secret = _device(args).sealing_secret(args.label)
    write_output(args.out, secret.hex().encode() + b"\n", mode=0o600)
    print(f"sealing secret ({args.label}) written to {args.out}")
    return 0


def _derive_child(args: argparse.Namespace) -> int:
    device = _device(args)
    measurement = parse_hex(args.measurement, "--measurement")
    # The folder first: the derivation extends PCR2, which a failure after it cannot undo.
    output_folder(args.out)
    child = device.derive_child(measurement, label=args.label)
    stem = args.label.replace(" ", "_")
    for name, cert, key in (
        ("ecc", child.ecc_certificate, child.ecc_key),
        ("mldsa", child.mldsa_certificate, child.mldsa_key),
    ):
        write_output(args.out / f"{stem}-{name}.cert.der", cert)
        key_path = args.out / f"{stem}-{name}.key.pem"
        _write_private(key_path, key.to_pem(), exclusive=False)
        print(f"{child.label} {name}: {args.out / f'{stem}-{name}.cert.der'} {key_path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    doc = _device(args).show()
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    from rich.table import Table

    from ironroot.cli._text import rich_console

    console = rich_console()
    table = Table(title=f"device {markup(doc['device'])}", show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in doc["fuses"].items():
        table.add_row(key, _text(value))
    boot = doc["boot"]
    if boot is None:
        table.add_row("boot", "not booted")
    else:
        table.add_row("booted at", _text(boot["booted_at"]))
        for index, value in boot["pcrs"].items():
            table.add_row(f"PCR{index}", _text(value))
        for event in boot["log"]:
            table.add_row(f"log PCR{event['pcr']}", _text(f"{event['name']}: {event['data']}"))
    for name, chain in doc["chains"].items():
        for position, cert in enumerate(chain):
            table.add_row(f"{name} chain [{position}]", _text(cert["subject"]))
    for name, value in doc["counters"].items():
        table.add_row(f"counter {name}", _text(value))
    console.print(table)
    return 0


def _fuse(args: argparse.Namespace) -> int:
    write = args.write

    def change(fuses: rot.Fuses) -> rot.Fuses:
        if write == "svn":
            return fuses.advance_svn(args.value)
        if write == "revoke-ecc":
            return fuses.revoke_ecc_key(args.index, key_count=args.key_count)
        if write == "revoke-pqc":
            return fuses.revoke_pqc_key(args.index, key_count=args.key_count)
        if write == "vendor-key-hash":
            return fuses.program_vendor_key_hash(parse_hex(args.hex, "the vendor key hash"))
        if write == "owner-key-hash":
            return fuses.program_owner_key_hash(parse_hex(args.hex, "the owner key hash"))
        if write == "field-entropy":
            entropy = parse_hex(args.hex, "--hex") if args.hex else secrets.token_bytes(32)
            return fuses.program_field_entropy(entropy)
        if write == "anti-rollback-disable":
            return fuses.disable_anti_rollback()
        if write == "lifecycle":
            return fuses.advance_lifecycle(rot.Lifecycle.from_label(args.state))
        return fuses.lock_debug()

    new = _device(args).program(change)
    print(json.dumps(new.public_json(), indent=2))
    return 0


def _counter(args: argparse.Namespace) -> int:
    counter = _device(args).counter(args.name)
    value = counter.increment() if args.counter_verb == "increment" else counter.value()
    doc = {"device": str(args.device), "counter": counter.name, "value": value}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"counter {counter.name}: {value}")
    return 0


def _print(doc: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    print(title)
    for key, value in doc.items():
        if not isinstance(value, (dict, list)):
            print(f"  {key}: {value}")
