"""``ironroot key``: generate key pairs and show what a key file holds.

``generate`` writes ``PREFIX.key`` (the private key: PKCS#8 PEM, or the LMS state file; mode
0600), ``PREFIX.pub.pem`` (SubjectPublicKeyInfo; not for HSS-LMS, which has no PEM form here)
and always ``PREFIX.cose`` (the public COSE_Key with ``alg`` and ``kid``), and prints the kid.
It never writes over any of them: a run killed part way (``PREFIX.key`` there, ``PREFIX.cose``
not) is refused by the next with a ``Conflict`` naming what is there and what is missing,
never completed with a public file for the key left behind.
``show`` prints the algorithm, the RFC 9679 kid, the public COSE_Key and the public JWK of any
private or public key file; it never prints private material. For an LMS state file it also
prints the root-of-trust counter the state is bound to (``rot_counter``: its name and the
value the state was written with; with ``--rot-device``, the counter's value and whether the
state is the latest), reading the counter only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import cbor2

from ironroot._fileio import write_atomic
from ironroot.cli._input import named_as_folder, read_input
from ironroot.cli._output import check_output
from ironroot.crypto import (
    DEFAULT_LMS_PARAMETER_SET,
    LMS_PARAMETER_SETS,
    Algorithm,
    LmsPrivateKey,
    LmsPublicKey,
    PrivateKey,
    PublicKey,
    Verifier,
    load_signer,
    load_verifier,
    save_signer,
)
from ironroot.errors import ConfigError, Conflict, InputUnavailable, MalformedInput
from ironroot.rot import Device, DeviceCounter

__all__ = ["register"]

_MAX_KEY_FILE = 1024 * 1024


def register(sub: Any) -> None:
    group: argparse.ArgumentParser = sub.add_parser("key", help="generate and inspect keys")
    verbs = group.add_subparsers(dest="verb", metavar="<verb>", required=True)

    gen = verbs.add_parser("generate", help="generate a key pair")
    gen.add_argument(
        "--alg",
        required=True,
        metavar="ALG",
        help="one of: " + ", ".join(a.label for a in Algorithm),
    )
    gen.add_argument(
        "--out", required=True, type=Path, help="prefix of PREFIX.key, PREFIX.pub.pem, PREFIX.cose"
    )
    gen.add_argument(
        "--lms-params",
        default=DEFAULT_LMS_PARAMETER_SET,
        metavar="SET",
        help=f"HSS-LMS parameter set (default {DEFAULT_LMS_PARAMETER_SET}); one of: "
        + ", ".join(LMS_PARAMETER_SETS),
    )
    add_rot_device_option(gen)
    gen.add_argument(
        "--counter",
        metavar="NAME",
        help="HSS-LMS: bind the state to this monotonic counter of --rot-device (one per key)",
    )
    gen.add_argument("--json", action="store_true", help="print alg, kid and paths as JSON")
    gen.set_defaults(func=_generate)

    show = verbs.add_parser("show", help="print the algorithm, kid, COSE_Key and JWK of a key")
    show.add_argument("file", type=Path, help="private or public key file (any format)")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--rot-device",
        type=Path,
        metavar="DIR",
        help="HSS-LMS: compare the state with its counter on this root-of-trust device",
    )
    show.set_defaults(func=_show)


def add_rot_device_option(parser: argparse.ArgumentParser) -> None:
    """``--rot-device DIR``: the root of trust whose monotonic counters LMS states are bound to."""
    parser.add_argument(
        "--rot-device",
        type=Path,
        metavar="DIR",
        help="root-of-trust device that keeps the LMS keys' counters (ironroot rot init)",
    )


def lms_counter(rot_device: Path | None, name: str | None, flag: str) -> DeviceCounter | None:
    """The counter ``name`` of ``--rot-device`` an LMS state is bound to (``None``: unbound)."""
    if name is None:
        if rot_device is not None and flag == "--counter":
            raise ConfigError("--rot-device binds an LMS key only with --counter NAME")
        return None
    if rot_device is None:
        raise ConfigError(f"{flag} names a counter of the root of trust: give --rot-device DIR")
    return Device(rot_device).counter(name)


def _with_suffix(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


def _write_new(path: Path, data: bytes) -> None:
    """A new public file, whole or not at all (never over an existing one: ``Conflict``)."""
    write_atomic(path, data, mode=0o644, exclusive=True, asked=True)


def _cose_bytes(verifier: PublicKey | LmsPublicKey, *, include_kid: bool) -> bytes:
    return cbor2.dumps(verifier.to_cose_key(include_kid=include_kid), canonical=True)


def _generate(args: argparse.Namespace) -> int:
    alg = Algorithm.from_label(args.alg)
    prefix: Path = args.out
    if named_as_folder(prefix):  # Path dropped the /: the files would go beside the folder
        raise InputUnavailable(
            f"{prefix}/: ends in /, which names a folder: give the prefix of the key's files "
            f"({prefix}/NAME)"
        )
    private_path = _with_suffix(prefix, ".key")
    pem_path = None if alg is Algorithm.HSS_LMS else _with_suffix(prefix, ".pub.pem")
    cose_path = _with_suffix(prefix, ".cose")
    counter = lms_counter(args.rot_device, args.counter, "--counter")
    if counter is not None and alg is not Algorithm.HSS_LMS:
        raise ConfigError("--counter binds HSS-LMS state files only")
    paths = [path for path in (private_path, pem_path, cose_path) if path is not None]
    there = [path for path in paths if os.path.lexists(path)]  # a dangling link too
    if private_path in there and cose_path not in there:  # a run cut short (kill -9)
        raise Conflict(
            f"{private_path} already exists, without {cose_path}: the files of a key generate "
            f"cut short; remove {' and '.join(map(str, there))} to generate again"
        )
    for path in paths:  # each checked before any is written
        if path in there:  # never followed, never replaced, never completed
            raise Conflict(f"{path} already exists")
        check_output(path)

    written: list[Path] = []
    try:
        public = _write_keys(
            alg, args.lms_params, private_path, pem_path, cose_path, written, counter
        )
    except BaseException:  # none of the files without the others: remove what this run wrote
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise

    if args.json:
        files = {"private": str(private_path), "cose_key": str(cose_path)}
        if pem_path is not None:
            files["public_pem"] = str(pem_path)
        print(json.dumps({"alg": alg.label, "kid": public.kid.hex(), "files": files}, indent=2))
    else:
        print(public.kid.hex())
    return 0


def _write_keys(
    alg: Algorithm,
    lms_params: str,
    private_path: Path,
    pem_path: Path | None,
    cose_path: Path,
    written: list[Path],
    counter: DeviceCounter | None = None,
) -> PublicKey | LmsPublicKey:
    """Generate the key and write its files, each whole, listing in ``written`` what it wrote."""
    public: PublicKey | LmsPublicKey
    if alg is Algorithm.HSS_LMS:
        if lms_params not in LMS_PARAMETER_SETS:
            raise MalformedInput(f"unknown LMS parameter set {lms_params!r}")
        params = LMS_PARAMETER_SETS[lms_params]
        if params.h >= 15:
            print(
                f"ironroot: building {params.max_signatures} LMS one-time keys "
                "(pure Python: about 40 s for H15)",
                file=sys.stderr,
            )
        lms = LmsPrivateKey.generate(private_path, params.name, counter=counter)
        written.append(private_path)
        public = lms.public_key
    else:
        key = PrivateKey.generate(alg)
        save_signer(key, private_path)
        written.append(private_path)
        public = key.public_key
        if pem_path is not None:
            _write_new(pem_path, public.to_pem())
            written.append(pem_path)
    _write_new(cose_path, _cose_bytes(public, include_kid=True))
    written.append(cose_path)
    return public


_STATUS_TEXT = {
    "latest": "the latest state",
    "roll-forward": "the latest state; its last signer stopped before the counter's "
    "increment, which the next signature makes",
    "older-copy": "an older copy, refused for signing",
    "ahead": "ahead of the counter by more than one: another device's counter, or one "
    "rolled back; refused for signing",
    "unchecked": "",
}


def _binding(signer: LmsPrivateKey, rot_device: Path | None) -> dict[str, object] | None:
    """The ``rot_counter`` of ``key show`` for an LMS state (``None``: not bound). With
    ``rot_device`` the counter is read (never incremented) and compared as signing compares
    it (``ironroot.crypto._lms._bind``): ``latest`` at its value, ``roll-forward`` one ahead,
    ``older-copy`` behind, ``ahead`` further on; ``unchecked`` without a device, or for a
    counter without a name (nothing says which to read)."""
    binding = signer.counter_binding()
    if binding is None:
        return None
    name, written = binding
    current: int | None = None
    status = "unchecked"
    if rot_device is not None and name:
        current = Device(rot_device).counter(name).value()
        if written == current:
            status = "latest"
        elif written == current + 1:
            status = "roll-forward"
        else:
            status = "older-copy" if written < current else "ahead"
    return {
        "name": name,
        "state_value": written,
        "device": None if current is None else str(rot_device),
        "current_value": current,
        "status": status,
    }


def _binding_text(binding: object) -> str:
    if not isinstance(binding, dict):
        return "none (not bound: copies of the state are not detected)"
    name = binding["name"] or "(unnamed)"
    written = binding["state_value"]
    if binding["current_value"] is None:
        return (
            f"{name} (the state was written at {written}; give --rot-device DIR to compare it "
            "with the counter)"
        )
    return (
        f"{name} on {binding['device']} (the state was written at {written}, the counter is "
        f"at {binding['current_value']}: {_STATUS_TEXT[binding['status']]})"
    )


def _open_key(
    path: Path, rot_device: Path | None = None
) -> tuple[str, Verifier, dict[str, object]]:
    """(kind, verifier, extra facts) for any key file."""
    data = read_input(path, _MAX_KEY_FILE)
    if b"ENCRYPTED PRIVATE KEY" in data:
        raise MalformedInput(f"{path} is an encrypted private key; show its public key instead")
    try:
        signer = load_signer(path)
    except MalformedInput:
        signer = None
    if rot_device is not None and not isinstance(signer, LmsPrivateKey):
        raise ConfigError(
            f"--rot-device shows the counter of an LMS state file only; {path} is not one"
        )
    if signer is None:
        return "public", load_verifier(data), {}
    extra: dict[str, object] = {}
    if isinstance(signer, LmsPrivateKey):
        extra = {
            "lms_parameter_set": signer.parameter_set.name,
            "remaining_signatures": signer.remaining(),
            "rot_counter": _binding(signer, rot_device),
        }
    return "private", signer.verifier(), extra


def _show(args: argparse.Namespace) -> int:
    kind, verifier, extra = _open_key(args.file, args.rot_device)
    if not isinstance(verifier, PublicKey | LmsPublicKey):
        raise MalformedInput(f"{args.file} holds no key this command can show")
    if isinstance(verifier, LmsPublicKey):
        extra = {"hss_levels": verifier.levels, **extra}
        params = verifier.parameter_set
        if params is not None and "lms_parameter_set" not in extra:
            extra["lms_parameter_set"] = params.name
    jwk = verifier.to_jwk() if isinstance(verifier, PublicKey) else None
    report: dict[str, object] = {
        "kind": kind,
        "alg": verifier.algorithm.label,
        "kid": verifier.kid.hex(),
        "cose_key": _cose_bytes(verifier, include_kid=False).hex(),
        "jwk": jwk,
        **extra,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name, value in report.items():
        if name == "jwk":
            value = json.dumps(value) if value is not None else "(none: no JWK form)"
        elif name == "rot_counter":
            value = _binding_text(value)
        print(f"{name}: {value}")
    return 0
