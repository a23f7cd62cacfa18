"""``ironroot spdm``: an SPDM device and an SPDM verifier on the wire of DMTF's emulators.

* ``device-init DIR [--algorithm p256|p384|p521] [--name CN] [--days N]`` makes a simulated
  device: a new key and certificate chain (or ``--key FILE --chain FILE`` to import existing
  ones, e.g. libspdm's sample keys) and an editable ``measurements.json``;
* ``responder --device DIR [--listen [HOST:]PORT] [--transport mctp|pci-doe|tcp] [--version V]...
  [--measurement-hash H]`` serves that device with the socket framing of DMTF's
  ``spdm_responder_emu`` until a requester sends SHUTDOWN (or Ctrl-C);
* ``requester --connect HOST:PORT --root CERT [--transport mctp|pci-doe|tcp] [--nonce HEX]
  [--out FILE] [--json]`` runs VCA, DIGESTS, CERTIFICATE, CHALLENGE and signed MEASUREMENTS
  against a responder (``spdm_responder_emu`` or ``ironroot spdm responder``), verifies every
  answer, prints the measurement blocks and can write the SPDM evidence ``ironroot evidence
  verify --format spdm`` checks.

A device directory holds ``device.key.pem`` (mode 0600), ``chain.pem`` (root first, leaf
last), ``root.pem`` (the trust anchor to give requesters) and ``measurements.json``::

    {"measurements": [{"index": 1, "type": "IMMUTABLE_ROM", "raw": true, "text": "..."},
                      {"index": 5, "type": "SECURE_VERSION_NUMBER", "raw": true,
                       "value": "0100000000000000"}, ...]}

``type`` is a DMTF measurement value type name or number (0..127; a number this version of
Ironroot does not know is served as given); the value is ``value`` (hex) or ``text`` (UTF-8).

Exit codes: 0 success; 1 a verification failure or a failed link; 2 a usage error or malformed
input.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Final

from ironroot import (
    crypto,  # a lazy namespace: X.509 loads when used
    spdm,
)
from ironroot._fileio import write_atomic
from ironroot.cli._hex import parse_hex
from ironroot.cli._input import read_input
from ironroot.cli._main import error_object
from ironroot.cli._output import output_folder, write_output
from ironroot.cli._text import shown
from ironroot.cli._time import now_or
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, IronrootError, MalformedInput, VerificationFailed

__all__ = ["register"]

_KEY, _CHAIN, _ROOT, _MEASUREMENTS = "device.key.pem", "chain.pem", "root.pem", "measurements.json"
_ALGORITHMS: Final = {"p256": Algorithm.ES256, "p384": Algorithm.ES384, "p521": Algorithm.ES512}
_TRANSPORTS: Final = {
    "mctp": spdm.SocketTransportType.MCTP,
    "pci-doe": spdm.SocketTransportType.PCI_DOE,
    "tcp": spdm.SocketTransportType.TCP,
}
_VERSIONS: Final = {"1.2": spdm.SpdmVersion.V1_2, "1.3": spdm.SpdmVersion.V1_3}
_MEASUREMENT_HASHES: Final = {
    "sha256": spdm.MeasurementHashAlgo.SHA_256,
    "sha384": spdm.MeasurementHashAlgo.SHA_384,
    "sha512": spdm.MeasurementHashAlgo.SHA_512,
    "raw": spdm.MeasurementHashAlgo.RAW_BIT_STREAM_ONLY,
}
_MAX_FILE: Final = 1 << 20
_DEFAULT_PORT: Final = 2323  # spdm-emu's platform port for MCTP and PCI DOE


def register(subparsers: Any) -> None:
    group = subparsers.add_parser("spdm", help="SPDM devices and verifiers on the spdm-emu wire")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    init = verbs.add_parser("device-init", help="make a simulated SPDM device directory")
    init.add_argument("dir", type=Path, help="the device directory to create")
    init.add_argument("--algorithm", choices=sorted(_ALGORITHMS), default="p384")
    init.add_argument("--name", default="Ironroot SPDM Device", help="device common name")
    init.add_argument("--days", type=int, default=3650, help="certificate validity (days)")
    init.add_argument("--key", type=Path, help="import this PEM private key instead")
    init.add_argument("--chain", type=Path, help="with --key: its chain (PEM or DER, root first)")
    init.add_argument("--at", help="not-before time, ISO 8601 with offset (default: now)")
    init.add_argument("--json", action="store_true", help="print JSON")
    init.set_defaults(func=_device_init)

    serve = verbs.add_parser("responder", help="serve a device over the spdm-emu socket framing")
    serve.add_argument("--device", type=Path, required=True, help="device directory")
    serve.add_argument(
        "--listen", default=f"127.0.0.1:{_DEFAULT_PORT}", help="[HOST:]PORT (port 0: any free)"
    )
    serve.add_argument("--transport", choices=sorted(_TRANSPORTS), default="mctp")
    serve.add_argument(
        "--version", action="append", choices=sorted(_VERSIONS), help="SPDM version (repeat)"
    )
    serve.add_argument("--measurement-hash", choices=sorted(_MEASUREMENT_HASHES), default="sha384")
    serve.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        help="drop a connection not sending a whole frame in this time (seconds)",
    )
    serve.set_defaults(func=_responder)

    req = verbs.add_parser("requester", help="measure a device and verify every answer")
    req.add_argument("--connect", required=True, help="HOST:PORT of the responder")
    req.add_argument("--transport", choices=sorted(_TRANSPORTS), default="mctp")
    req.add_argument("--root", type=Path, required=True, help="the device root certificate")
    req.add_argument("--nonce", help="the verifier's 32-byte nonce (hex; default: random)")
    req.add_argument("--out", type=Path, help="write the SPDM evidence here")
    req.add_argument(
        "--version", action="append", choices=sorted(_VERSIONS), help="SPDM version (repeat)"
    )
    req.add_argument("--raw", action="store_true", help="ask for raw bit streams")
    req.add_argument("--no-challenge", action="store_true", help="skip CHALLENGE")
    req.add_argument(
        "--end",
        choices=("shutdown", "continue"),
        default="shutdown",
        help="what to tell the responder at the end (spdm-emu's --exe_mode)",
    )
    req.add_argument("--timeout", type=float, default=30.0, help="per-answer timeout (seconds)")
    req.add_argument("--wait", type=float, default=0.0, help="retry connecting for this long")
    req.add_argument("--at", help="time the certificates must be valid at (ISO 8601)")
    req.add_argument("--json", action="store_true", help="print JSON")
    req.set_defaults(func=_requester)


# --- small parsers ---------------------------------------------------------------------------


def _address(text: str, *, default_host: str | None) -> tuple[str, int]:
    """``HOST:PORT`` (``[IPv6]:PORT``; ``PORT`` alone on ``default_host``): a host that is no
    name IDNA can encode (an empty label, a byte that is not UTF-8) or an unbalanced bracket
    is ``ConfigError``, never a lookup that fails with another error."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        sep, port_text = rest[:1], rest[1:]
        if not bracket or sep != ":":
            raise ConfigError(f"{text!r} is not HOST:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            if default_host is None:
                raise ConfigError(f"{text!r} is not HOST:PORT")
            host = default_host
    try:
        port = int(port_text)
    except ValueError as exc:
        raise ConfigError(f"{text!r}: the port is not a number") from exc
    if not 0 <= port <= 0xFFFF or not host or "[" in host or "]" in host:
        raise ConfigError(f"{text!r} is not HOST:PORT")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise ConfigError(f"{text!r} is not HOST:PORT") from exc
    return host, port


def _read(path: Path) -> bytes:
    return read_input(path, _MAX_FILE)


def _versions(values: list[str] | None) -> tuple[spdm.SpdmVersion, ...]:
    return tuple(_VERSIONS[v] for v in sorted(set(values or _VERSIONS)))


def _pem(der: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return crypto.load_certificate(der, der_only=True).public_bytes(Encoding.PEM)


# --- measurements.json -----------------------------------------------------------------------


def _default_blocks() -> list[spdm.AnyMeasurementBlock]:
    text = spdm.MeasurementValueType
    return [
        spdm.MeasurementBlock(1, text.IMMUTABLE_ROM, b"Ironroot simulated boot ROM 1.0", raw=True),
        spdm.MeasurementBlock(
            2, text.MUTABLE_FIRMWARE, b"Ironroot simulated firmware 1.0.0", raw=True
        ),
        spdm.MeasurementBlock(3, text.HARDWARE_CONFIG, b"Ironroot simulated straps", raw=True),
        spdm.MeasurementBlock(4, text.FIRMWARE_CONFIG, b"Ironroot simulated settings", raw=True),
        spdm.MeasurementBlock(5, text.VERSION, b"1.0.0", raw=True),
        spdm.MeasurementBlock(6, text.SECURE_VERSION_NUMBER, (1).to_bytes(8, "little"), raw=True),
        spdm.MeasurementBlock(
            0xFE, text.DEVICE_MODE, spdm.DeviceMode(0x3F, 0x04, 0x1F, 0).encode(), True
        ),
    ]


def _block_json(block: spdm.AnyMeasurementBlock) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": block.index,
        "type": block.type_name if block.known else block.type_number,
        "raw": block.raw,
    }
    try:
        text = block.value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if (
        text is not None
        and text.isprintable()
        and block.value_type
        not in (
            spdm.MeasurementValueType.SECURE_VERSION_NUMBER,
            spdm.MeasurementValueType.DEVICE_MODE,
        )
    ):
        out["text"] = text
    else:
        out["value"] = block.value.hex()
    return out


def _block_from_json(item: object, position: int) -> spdm.AnyMeasurementBlock:
    where = f"{_MEASUREMENTS} entry {position}"
    if not isinstance(item, dict) or not {"index", "type", "raw"} <= set(item):
        raise ConfigError(f"{where}: an object with index, type, raw and value or text")
    if set(item) - {"index", "type", "raw", "value", "text"}:
        raise ConfigError(f"{where}: unknown members {sorted(set(item) - {'index', 'type'})}")
    if ("value" in item) == ("text" in item):
        raise ConfigError(f"{where}: give exactly one of value (hex) and text")
    try:
        value = bytes.fromhex(item["value"]) if "value" in item else str(item["text"]).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: value is not hex") from exc
    index, kind, raw = item["index"], item["type"], item["raw"]
    if not isinstance(raw, bool):
        raise ConfigError(f"{where}: raw is true or false")
    try:
        if isinstance(kind, str):
            if kind not in spdm.MeasurementValueType.__members__:
                raise ConfigError(f"{where}: unknown measurement type {kind!r}")
            return spdm.MeasurementBlock(index, spdm.MeasurementValueType[kind], value, raw)
        if isinstance(kind, int) and not isinstance(kind, bool):
            if kind in spdm.MeasurementValueType._value2member_map_:
                return spdm.MeasurementBlock(index, spdm.MeasurementValueType(kind), value, raw)
            return spdm.UnknownMeasurementBlock(index, kind, value, raw)
    except MalformedInput as exc:
        raise ConfigError(f"{where}: {exc.detail}") from exc
    raise ConfigError(f"{where}: type is a name or a number")


def _load_blocks(path: Path) -> list[spdm.AnyMeasurementBlock]:
    try:
        document = json.loads(_read(path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from exc
    items = document.get("measurements") if isinstance(document, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= 254:
        raise ConfigError(f"{path}: a 'measurements' list of 1 to 254 blocks")
    return [_block_from_json(item, i) for i, item in enumerate(items)]


# --- device-init -----------------------------------------------------------------------------


def _device_init(args: argparse.Namespace) -> int:
    if (args.key is None) != (args.chain is None):
        raise ConfigError("--key and --chain go together")
    if args.key is not None:
        identity = spdm.DeviceIdentity(
            PrivateKey.from_pem(_read(args.key)), spdm.load_certificates(_read(args.chain))
        )
    else:
        identity = spdm.DeviceIdentity.generate(
            _ALGORITHMS[args.algorithm], now=now_or(args.at), common_name=args.name, days=args.days
        )
    warnings = spdm.check_device_leaf(identity.leaf)
    output_folder(args.dir)  # before the key is written into it
    write_atomic(args.dir / _KEY, identity.key.to_pem(), mode=0o600, exclusive=True)
    write_atomic(
        args.dir / _CHAIN, b"".join(_pem(c) for c in identity.chain), mode=0o644, asked=True
    )
    write_atomic(args.dir / _ROOT, _pem(identity.root), mode=0o644, asked=True)
    document = {"measurements": [_block_json(b) for b in _default_blocks()]}
    blocks_path = args.dir / _MEASUREMENTS
    if not blocks_path.exists():
        write_atomic(
            blocks_path, json.dumps(document, indent=2).encode() + b"\n", mode=0o644, asked=True
        )
    leaf = crypto.load_certificate(identity.leaf, what="device certificate", der_only=True)
    doc = {
        "device": str(args.dir),
        "algorithm": identity.key.algorithm.label,
        "subject": leaf.subject.rfc4514_string(),
        "root": str(args.dir / _ROOT),
        "leaf_warnings": warnings,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        leaf_subject = shown(str(doc["subject"]))
        print(f"device {shown(str(args.dir))}: {doc['algorithm']} key, leaf {leaf_subject}")
        print(f"trust anchor for requesters: {shown(str(doc['root']))}")
    for warning in warnings:
        print(f"ironroot: warning: the leaf certificate: {shown(str(warning))}", file=sys.stderr)
    return 0


def _load_device(path: Path) -> tuple[spdm.DeviceIdentity, list[spdm.AnyMeasurementBlock]]:
    key_path = path / _KEY
    if key_path.stat().st_mode & 0o077:
        print(f"ironroot: warning: {key_path} is readable by others", file=sys.stderr)
    identity = spdm.DeviceIdentity(
        PrivateKey.from_pem(_read(key_path)), spdm.load_certificates(_read(path / _CHAIN))
    )
    return identity, _load_blocks(path / _MEASUREMENTS)


# --- responder -------------------------------------------------------------------------------


def _responder(args: argparse.Namespace) -> int:
    identity, blocks = _load_device(args.device)
    kind = _TRANSPORTS[args.transport]
    if not 0 < args.idle_timeout <= 3600:
        raise ConfigError("--idle-timeout is between 0 and 3600 seconds")
    responder = spdm.Responder(
        identity.key,
        identity.chain,
        blocks,
        versions=_versions(args.version),
        measurement_hash_algo=_MEASUREMENT_HASHES[args.measurement_hash],
        alignment=kind.alignment,
    )
    host, port = _address(args.listen, default_host="127.0.0.1")
    with socket.create_server((host, port)) as listener:
        bound = listener.getsockname()
        print(f"serving SPDM over {args.transport} on {bound[0]}:{bound[1]}", flush=True)
        spdm.serve_spdm_emu(
            listener, responder, kind, stop=threading.Event(), idle_timeout=args.idle_timeout
        )
    print("stopped (SHUTDOWN received)", flush=True)
    return 0


# --- requester -------------------------------------------------------------------------------


def _nonce(text: str | None) -> bytes:
    if text is None:
        return os.urandom(spdm.NONCE_SIZE)
    nonce = parse_hex(text, "--nonce")
    if len(nonce) != spdm.NONCE_SIZE:
        raise ConfigError(f"--nonce is {spdm.NONCE_SIZE} bytes ({2 * spdm.NONCE_SIZE} hex digits)")
    return nonce


def _requester(args: argparse.Namespace) -> int:
    roots = spdm.load_certificates(_read(args.root))
    nonce = _nonce(args.nonce)
    now = now_or(args.at)
    host, port = _address(args.connect, default_host=None)
    kind = _TRANSPORTS[args.transport]
    if not 0 < args.timeout <= 3600 or not 0 <= args.wait <= 3600:
        raise ConfigError("--timeout and --wait are between 0 and 3600 seconds")
    checks: list[dict[str, Any]] = []
    client = spdm.SpdmEmuClient.connect(host, port, kind, timeout=args.timeout, wait=args.wait)
    try:
        client.hello()
        if kind is spdm.SocketTransportType.PCI_DOE:
            if (0x0001, 0x01) not in client.discover():
                raise VerificationFailed("the responder's DOE Discovery does not list SPDM")
            checks.append({"name": "doe-discovery", "ok": True})
        requester = spdm.Requester(
            client,
            root_certificate=roots[0],
            now=now,
            versions=_versions(args.version),
            base_asym_algo=spdm.BaseAsymAlgo.ECDSA_P256
            | spdm.BaseAsymAlgo.ECDSA_P384
            | spdm.BaseAsymAlgo.ECDSA_P521,
            base_hash_algo=spdm.BaseHashAlgo.SHA_256
            | spdm.BaseHashAlgo.SHA_384
            | spdm.BaseHashAlgo.SHA_512,
            alignment=client.alignment,
        )
        try:
            result = requester.attest(
                raw_bit_stream=args.raw, challenge=not args.no_challenge, nonce=nonce
            )
            evidence = requester.last_evidence()
        except IronrootError as exc:
            _end(client, args.end)
            return _failed(exc, args.json)
        _end(client, args.end)
    finally:
        client.close()
    connection = result.connection
    chal_cap = bool(connection.capabilities.flags & spdm.CapabilityFlag.CHAL_CAP)
    challenged = result.challenge_auth is not None
    checks += [
        {"name": "certificate-chain", "ok": True},
        {
            "name": "challenge-auth",
            "ok": True if challenged else None,
            "ran": challenged,
            **({} if challenged else {"why": "skipped" if chal_cap else "no CHAL_CAP"}),
        },
        {
            "name": "measurement-summary",
            "ok": True if challenged and not args.raw else None,
            "ran": challenged and not args.raw,
        },
        {"name": "measurements-signature", "ok": True},
        {"name": "nonce", "ok": True},
    ]
    if args.out is not None:
        write_output(args.out, evidence)
    leaf = crypto.load_certificate(
        result.certificate_chain.leaf, what="device certificate", der_only=True
    )
    doc = {
        "verdict": "verified",
        "transport": args.transport,
        "version": connection.version.label,
        "base_asym_algo": connection.base_asym_algo.name,
        "base_hash_algo": connection.base_hash_algo.name,
        "measurement_hash_algo": connection.measurement_hash_algo.name,
        "leaf": leaf.subject.rfc4514_string(),
        "nonce": nonce.hex(),
        "measurement_summary_hash": (
            result.challenge_auth.measurement_summary_hash.hex()
            if result.challenge_auth is not None
            else None
        ),
        "checks": checks,
        "blocks": [
            {
                "index": b.index,
                "type": b.type_name,
                "type_number": b.type_number,
                "raw": b.raw,
                "value": b.value.hex(),
            }
            for b in result.blocks
        ],
        "evidence": str(args.out) if args.out is not None else None,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(
        f"SPDM {doc['version']} over {args.transport}: {doc['base_asym_algo']}, "
        f"{doc['base_hash_algo']}, measurements {doc['measurement_hash_algo']}"
    )
    print(f"device:    {shown(doc['leaf'])}")
    print(f"challenge: {'verified (M1/M2)' if challenged else 'not run'}")
    print(f"nonce:     {doc['nonce']}")
    for block in doc["blocks"]:
        kind_text = (
            block["type"] if block["type"] != "UNKNOWN" else f"UNKNOWN({block['type_number']})"
        )
        form = "raw" if block["raw"] else "digest"
        value = block["value"] if len(block["value"]) <= 64 else block["value"][:64] + "..."
        print(f"  {block['index']:3}  {kind_text:<32} {form:<6} {value}")
    if args.out is not None:
        print(f"evidence:  {args.out}")
    print("verdict:   verified")
    return 0


def _end(client: spdm.SpdmEmuClient, how: str) -> None:
    """Tell the responder the session is over; a peer already gone is not an error here."""
    command = spdm.SocketCommand.SHUTDOWN if how == "shutdown" else spdm.SocketCommand.CONTINUE
    with contextlib.suppress(IronrootError):
        client.exchange(command)


def _failed(exc: IronrootError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": False, "verdict": "failed", "error": error_object(exc)}))
    else:
        print(f"verdict: FAILED ({exc.code}): {shown(exc.detail)}")
    return exc.exit_code
