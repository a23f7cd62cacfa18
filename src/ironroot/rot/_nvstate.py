"""The RoT's non-volatile state, tamper-evident: obfuscated secrets, MAC'd state files, and one
state root that names the current copy of each file.

Modelled on Caliptra's UDS obfuscation: the fuse bank holds the UDS seed and field entropy only
*encrypted* under the device's obfuscation key, a secret the silicon holds and firmware never
reads. Here that key is a 32-byte file kept outside the device directory (``Device``
decides where); this module receives its bytes.

* **Obfuscation.** A secret fuse is stored as AES-256-GCM under the obfuscation key, with a
  fresh 96-bit nonce and the associated data ``"ironroot-rot-obfuscated:" ‖ fuse name``:
  ``{"nonce": hex, "ciphertext": hex}`` (ciphertext ‖ 16-byte tag), or ``null`` when the fuse
  is not programmed. A changed ciphertext, nonce or key does not decrypt.
* **State files.** Every state file (``fuses.json``, ``boot.json``, ``counter-<name>.json``) is
  ``{"format": "ironroot-rot-state/1", "file": <name>, "body": {...}, "mac": hex}`` where
  ``mac = HMAC-SHA-384(K_file, canonical({"format", "file", "body"}))``; canonical is JSON with
  sorted keys, no whitespace, ASCII only. ``K_file = KDF(UDS, "rot_state_mac", <name>)``
  (the SP 800-108 KDF of :mod:`._kdf`), so a MAC is bound to the device and to the file name;
  before the UDS is fused the only state file, ``fuses.json``, is keyed by
  ``KDF(obfuscation key, "rot_state_mac_unprovisioned", "fuses.json")``.
* **State root.** ``state-root.json`` is a state file of the same shape keyed by
  ``KDF(obfuscation key, "rot_state_root")`` (it must verify before the UDS is fused, and its key
  does not change when it is), whose body ``{"files": {<name>: [tag, ...]}}`` lists, for each
  state file, the MAC of the copy the device last wrote (``null`` = absent; a file not listed
  must be absent). An older copy of a state file has a valid MAC but not the listed one, so
  it is refused, as is a removed or an added file.

A write of state files is three durable steps: the root first lists both the old and the new
MAC of each changed file, then the files are written, then the root lists only the new MACs.
A crash at any point leaves each file old or new, and the device opens either; once the write
has returned, only the new copy opens. The first load after a write cut short settles the
root on the copies it found (it writes the root naming only them), before any value is
returned: what a caller read once never goes back.

Every failure to verify raises :class:`~ironroot.errors.DeviceStateTampered`.

**Verified once per exact bytes.** A state file other than ``fuses.json`` (the root, the boot
state, a counter) found to verify is remembered by SHA-256 of its MAC key, its name and its
exact bytes, with what it parsed to (public values: PCRs, log, certificates, a counter's value,
the root's list of MACs). The same bytes under the same key verify again to the same value, so
a device opened again (a fleet opens each node's RoT several times per attestation) skips the
JSON decoding, canonical re-encoding and HMAC of what it read; every file is still read and
listed each time, and a changed byte, another key or another name is verified in full. The
fuses, which hold the secrets, are never in that cache; nothing secret is kept outside the
store that holds the obfuscation key (the cache holds digests and public values only). The
store itself keeps the fuse file it last verified, bytes and value, and
verifies again only when the bytes read differ: one open device (a fleet keeps one for an
attestation) loads its state several times.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ironroot._fileio import read_beneath, write_atomic
from ironroot._memo import Memo
from ironroot.errors import (
    ConfigError,
    DeviceStateTampered,
    InputUnavailable,
    LimitExceeded,
    StorageError,
)
from ironroot.rot._boot import BootState
from ironroot.rot._counter import MAX_COUNTER_VALUE
from ironroot.rot._fuses import FIELD_ENTROPY_SIZE, UDS_SEED_SIZE, Fuses
from ironroot.rot._kdf import kdf

__all__ = [
    "BOOT",
    "FUSES",
    "MAX_COUNTERS",
    "OBFUSCATION_KEY_SIZE",
    "ROOT",
    "NvSnapshot",
    "NvStore",
    "check_counter_name",
    "counter_file",
]

OBFUSCATION_KEY_SIZE: Final = 32
FUSES: Final = "fuses.json"
BOOT: Final = "boot.json"
ROOT: Final = "state-root.json"
MAX_COUNTERS: Final = 64
_FORMAT: Final = "ironroot-rot-state/1"
_COUNTER_FORMAT: Final = "ironroot-rot-counter/1"
_MAX_FILE: Final = 1024 * 1024
_MAC_SIZE: Final = 48
_NONCE_SIZE: Final = 12
_COUNTER_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_COUNTER_FILE: Final = re.compile(r"counter-(.+)\.json")
_SECRETS: Final = {"uds_seed": UDS_SEED_SIZE, "field_entropy": FIELD_ENTROPY_SIZE}


def check_counter_name(name: object) -> str:
    """A counter name: 1-32 of lowercase letters, digits, '.', '_' and '-', starting with a
    letter or digit (it names a file, on case-insensitive file systems too)."""
    if not isinstance(name, str) or not _COUNTER_NAME.fullmatch(name):
        raise ConfigError(
            "a counter name is 1-32 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def counter_file(name: str) -> str:
    return f"counter-{check_counter_name(name)}.json"


# --- the pure core: canonical bytes, obfuscation, MACs -----------------------------------------


def _canonical(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


def _aad(name: str) -> bytes:
    return b"ironroot-rot-obfuscated:" + name.encode()


def _obfuscate(key: bytes, name: str, secret: bytes) -> dict[str, str] | None:
    if not secret:
        return None
    nonce = secrets.token_bytes(_NONCE_SIZE)
    return {
        "nonce": nonce.hex(),
        "ciphertext": AESGCM(key).encrypt(nonce, secret, _aad(name)).hex(),
    }


def _deobfuscate(key: bytes, name: str, doc: object) -> bytes:
    if doc is None:
        return b""
    try:
        if not isinstance(doc, dict) or set(doc) != {"nonce", "ciphertext"}:
            raise ValueError("not an obfuscated fuse")
        nonce = bytes.fromhex(doc["nonce"])
        ciphertext = bytes.fromhex(doc["ciphertext"])
        if len(nonce) != _NONCE_SIZE:
            raise ValueError("bad nonce")
        secret = AESGCM(key).decrypt(nonce, ciphertext, _aad(name))
    except (ValueError, TypeError, InvalidTag) as exc:
        raise DeviceStateTampered(
            f"the obfuscated {name} fuse does not decrypt under this device's obfuscation key: "
            "it was altered, or the key is not this device's"
        ) from exc
    if len(secret) != _SECRETS[name]:
        raise DeviceStateTampered(f"the obfuscated {name} fuse has the wrong size")
    return secret


def _mac(key: bytes, name: str, body: object) -> bytes:
    message = _canonical({"format": _FORMAT, "file": name, "body": body})
    return hmac.new(key, message, "sha384").digest()


def _seal(key: bytes, name: str, body: dict[str, Any]) -> tuple[bytes, bytes]:
    """The file bytes of a state file, and its MAC (the tag the root lists)."""
    tag = _mac(key, name, body)
    doc = {"format": _FORMAT, "file": name, "body": body, "mac": tag.hex()}
    return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n", tag


def _envelope(data: bytes, name: str) -> tuple[dict[str, Any], bytes]:
    """The body and claimed MAC of a state file (structure only: the MAC is checked apart)."""
    try:
        doc = json.loads(data)
        if (
            not isinstance(doc, dict)
            or set(doc) != {"format", "file", "body", "mac"}
            or doc["format"] != _FORMAT
            or doc["file"] != name
            or not isinstance(doc["body"], dict)
            or not isinstance(doc["mac"], str)
        ):
            raise ValueError("not a state file")
        tag = bytes.fromhex(doc["mac"])
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise DeviceStateTampered(
            f"{name} is not a well-formed state file of that name: it was edited or copied"
        ) from exc
    if len(tag) != _MAC_SIZE:
        raise DeviceStateTampered(f"{name} has a MAC of the wrong size: it was edited")
    return doc["body"], tag


def _check(key: bytes, name: str, body: dict[str, Any], tag: bytes) -> None:
    try:
        expected = _mac(key, name, body)
    except (ValueError, RecursionError) as exc:  # what the parser took, the encoder refuses
        raise DeviceStateTampered(f"{name} does not encode canonically: it was edited") from exc
    if not hmac.compare_digest(expected, tag):
        raise DeviceStateTampered(
            f"{name} does not verify under this device's key: it was edited, "
            "or it is not this device's"
        )


# State files (not the fuses) found to verify: SHA-256 of (MAC key, name, exact bytes) -> (the
# value they parsed to, their MAC). Bounded; only successes are kept (see the module docs).
# About three files a node: the last 85 nodes opened (a boot state ~40 KB).
_VERIFIED: Memo[bytes, tuple[Any, bytes]] = Memo(256)


def _verified_label(key: bytes, name: str, data: bytes) -> bytes:
    return hashlib.sha256(
        b"ironroot-rot-state-verified/1\0" + key + name.encode() + b"\0" + data
    ).digest()


def _remember(label: bytes, value: Any, tag: bytes) -> None:
    _VERIFIED.put(label, (value, tag))


def _file_key(uds_seed: bytes, name: str) -> bytes:
    return kdf(uds_seed, b"rot_state_mac", name.encode())


def _unprovisioned_key(obfuscation_key: bytes) -> bytes:
    return kdf(obfuscation_key, b"rot_state_mac_unprovisioned", FUSES.encode())


def _root_key(obfuscation_key: bytes) -> bytes:
    return kdf(obfuscation_key, b"rot_state_root")


def _counter_value(body: dict[str, Any], name: str) -> int:
    value = body.get("value")
    if (
        set(body) != {"format", "counter", "value"}
        or body.get("format") != _COUNTER_FORMAT
        or body.get("counter") != name
        or isinstance(value, bool)
        or not isinstance(value, int)
        or not 0 <= value <= MAX_COUNTER_VALUE
    ):
        raise StorageError(f"the counter record {name} is invalid")
    return value


# --- the store ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NvSnapshot:
    """The verified state of a device: its fuses, last boot, counters, and the MAC of each
    state file as it is now (what the root must keep listing)."""

    fuses: Fuses
    boot: BootState | None
    counters: Mapping[str, int]
    tags: Mapping[str, bytes] = field(repr=False)


class NvStore:
    """The state files of one device directory, under one obfuscation key.

    Not locked: :class:`~ironroot.rot.Device` holds the directory lock around every call.
    """

    def __init__(self, directory: Path, obfuscation_key: bytes) -> None:
        if len(obfuscation_key) != OBFUSCATION_KEY_SIZE:
            raise StorageError(f"an obfuscation key is {OBFUSCATION_KEY_SIZE} bytes")
        self.directory = directory
        self._key = obfuscation_key
        self._fuses: tuple[bytes, Fuses, bytes] | None = None  # bytes, fuses, MAC (load)

    def __repr__(self) -> str:
        return f"NvStore({str(self.directory)!r})"

    # --- writing ---------------------------------------------------------------------------

    def initialize(self, fuses: Fuses) -> None:
        """Write a new device's state in the three steps of every write: the root naming
        ``fuses.json`` absent or new, ``fuses.json``, the root naming it. A creation cut short
        is told apart from a device whose fuse file was removed by that first root
        (:meth:`creation_interrupted`)."""
        data, tag = self._seal_fuses(fuses)
        self._write_root({FUSES: [None, tag]})
        self._write(FUSES, data)
        self._write_root({FUSES: [tag]})

    def creation_interrupted(self) -> bool:
        """Whether the (verified) root is that of a creation cut short before ``fuses.json``
        was written: it lets the fuse file be absent. ``DeviceStateTampered`` when the root
        does not verify under this store's obfuscation key."""
        return None in self._root().get(FUSES, [])

    def commit(
        self,
        old: NvSnapshot,
        *,
        fuses: Fuses | None = None,
        boot: BootState | None = None,
        counters: Mapping[str, int] | None = None,
    ) -> NvSnapshot:
        """Write the given parts of the state over ``old`` (which the caller loaded under the
        same lock); return the new snapshot. Counters only ever go up."""
        files: dict[str, bytes] = {}
        tags = dict(old.tags)
        new_counters = dict(old.counters)
        if fuses is not None and fuses != old.fuses:
            files[FUSES], tags[FUSES] = self._seal_fuses(fuses)
        if boot is not None and boot != old.boot:
            if not (fuses or old.fuses).uds_programmed:
                raise StorageError("an unprovisioned device keeps no boot state")
            files[BOOT], tags[BOOT] = _seal(
                _file_key((fuses or old.fuses).uds_seed, BOOT), BOOT, boot.to_record()
            )
        for name, value in (counters or {}).items():
            current = old.counters.get(name, 0)
            if value <= current:
                raise StorageError(f"counter {name} is at {current}: it never goes down")
            if name not in old.counters and len(old.counters) >= MAX_COUNTERS:
                raise LimitExceeded(f"a device holds at most {MAX_COUNTERS} counters")
            file = counter_file(name)
            body = {"format": _COUNTER_FORMAT, "counter": name, "value": value}
            files[file], tags[file] = _seal(_file_key(old.fuses.uds_seed, file), file, body)
            new_counters[name] = value
        if not files:
            return old
        pending: dict[str, list[bytes | None]] = {name: [tag] for name, tag in old.tags.items()}
        for name in files:
            pending[name] = [old.tags.get(name), tags[name]]
        self._write_root(pending)
        for name, data in files.items():
            self._write(name, data)
        self._write_root({name: [tag] for name, tag in tags.items()})
        return NvSnapshot(
            fuses=fuses if fuses is not None else old.fuses,
            boot=boot if boot is not None else old.boot,
            counters=new_counters,
            tags=tags,
        )

    def _seal_fuses(self, fuses: Fuses) -> tuple[bytes, bytes]:
        body = {
            "fuses": fuses.to_record(),
            "uds_seed": _obfuscate(self._key, "uds_seed", fuses.uds_seed),
            "field_entropy": _obfuscate(self._key, "field_entropy", fuses.field_entropy),
        }
        if fuses.uds_programmed:
            key = _file_key(fuses.uds_seed, FUSES)
        else:
            key = _unprovisioned_key(self._key)
        return _seal(key, FUSES, body)

    def _write_root(self, files: Mapping[str, list[bytes | None]]) -> None:
        body = {
            "files": {
                name: [None if tag is None else tag.hex() for tag in tags]
                for name, tags in sorted(files.items())
            }
        }
        data, _ = _seal(_root_key(self._key), ROOT, body)
        self._write(ROOT, data)

    def _write(self, name: str, data: bytes) -> None:
        """One durable step of a write; a failure (a full disk, a read-only file system) is
        ``StorageError``, and leaves the state the module docs describe for a crash there."""
        try:
            write_atomic(self.directory / name, data)
        except OSError as exc:
            raise StorageError(
                f"cannot write {name} in {self.directory}: {exc.strerror or exc}"
            ) from exc

    # --- reading ---------------------------------------------------------------------------

    def _read(self, name: str) -> bytes | None:
        """A state file's bytes (``None``: absent), never through a link: the device writes
        none (each write replaces the file whole), so a link there is an edit, refused before
        it is followed (a loop escaped as a bare ``OSError``)."""
        try:
            return read_beneath(self.directory, name, _MAX_FILE, regular=True)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise DeviceStateTampered(
                    f"{name} is a link, not a state file the device writes"
                ) from None
            raise StorageError(
                f"cannot read {name} in {self.directory}: {exc.strerror or exc}"
            ) from exc
        except LimitExceeded:
            raise DeviceStateTampered(
                f"{name} is larger than any state file the device writes"
            ) from None
        except InputUnavailable:  # a directory, a named pipe or a device where it writes a file
            kind = "a directory" if (self.directory / name).is_dir() else "not a regular file"
            raise DeviceStateTampered(
                f"{name} is {kind}, not a state file the device writes"
            ) from None

    def _root(self) -> dict[str, list[bytes | None]]:
        data = self._read(ROOT)
        if data is None:
            raise DeviceStateTampered(f"{ROOT} is missing: the device state was removed")
        key = _root_key(self._key)
        label = _verified_label(key, ROOT, data)
        known = _VERIFIED.get(label)
        if known is not None:
            return {name: list(tags) for name, tags in known[0].items()}
        files = self._verify_root(key, data)
        _remember(label, {name: tuple(tags) for name, tags in files.items()}, b"")
        return files

    def _verify_root(self, key: bytes, data: bytes) -> dict[str, list[bytes | None]]:
        body, tag = _envelope(data, ROOT)
        try:
            _check(key, ROOT, body, tag)
        except DeviceStateTampered:
            raise DeviceStateTampered(
                f"{ROOT} does not verify: it was edited, or the obfuscation key is not "
                "this device's"
            ) from None
        try:
            files = body["files"]
            if set(body) != {"files"} or not isinstance(files, dict):
                raise ValueError("bad root")
            return {
                str(name): [None if t is None else bytes.fromhex(t) for t in tags]
                for name, tags in files.items()
            }
        except (ValueError, TypeError, AttributeError) as exc:  # a MAC'd root we did not write
            raise StorageError(f"{ROOT} is not a state root") from exc

    def _load_fuses(self) -> tuple[Fuses, bytes]:
        data = self._read(FUSES)
        if data is None:
            raise DeviceStateTampered(f"{FUSES} was removed")
        # The fuse file verifies to what it did last time when its bytes are the same: the
        # result depends on them and on the obfuscation key this store holds, nothing else.
        memo = self._fuses
        if memo is not None and hmac.compare_digest(memo[0], data):
            return memo[1], memo[2]
        fuses, tag = self._verify_fuses(data)
        self._fuses = (data, fuses, tag)
        return fuses, tag

    def _verify_fuses(self, data: bytes) -> tuple[Fuses, bytes]:
        body, tag = _envelope(data, FUSES)
        if set(body) != {"fuses", "uds_seed", "field_entropy"}:
            raise DeviceStateTampered(f"{FUSES} has missing or unknown fields: it was edited")
        uds_seed = _deobfuscate(self._key, "uds_seed", body["uds_seed"])
        key = _file_key(uds_seed, FUSES) if uds_seed else _unprovisioned_key(self._key)
        _check(key, FUSES, body, tag)
        field_entropy = _deobfuscate(self._key, "field_entropy", body["field_entropy"])
        fuses = Fuses.from_record(body["fuses"], uds_seed=uds_seed, field_entropy=field_entropy)
        return fuses, tag

    def load(self) -> NvSnapshot:
        """Verify every state file against its MAC and the root; the verified state."""
        accepted = self._root()
        fuses, fuses_tag = self._load_fuses()
        tags: dict[str, bytes] = {FUSES: fuses_tag}
        boot: BootState | None = None
        counters: dict[str, int] = {}
        present = {
            name
            for name in os.listdir(self.directory)
            if name == BOOT or _COUNTER_FILE.fullmatch(name)
        }
        for name in sorted((present | set(accepted)) - {FUSES}):
            data = self._read(name)
            tag: bytes | None = None
            if data is not None:
                counter = _COUNTER_FILE.fullmatch(name)
                if name != BOOT and (
                    counter is None or not _COUNTER_NAME.fullmatch(counter.group(1))
                ):
                    raise DeviceStateTampered(f"{name} is not a state file the device writes")
                if not fuses.uds_programmed:
                    raise DeviceStateTampered(f"{name} is on a device without a UDS: it was added")
                key = _file_key(fuses.uds_seed, name)
                label = _verified_label(key, name, data)
                known = _VERIFIED.get(label)
                if known is not None:
                    value, tag = known
                else:
                    body, tag = _envelope(data, name)
                    _check(key, name, body, tag)
                    if name == BOOT:
                        value = BootState.from_record(body)
                    else:
                        assert counter is not None
                        value = _counter_value(body, counter.group(1))
                    _remember(label, value, tag)
                if name == BOOT:
                    boot = value
                else:
                    assert counter is not None
                    counters[counter.group(1)] = value
                tags[name] = tag
            allowed = accepted.get(name, [None])
            if not any(_same(tag, ok) for ok in allowed):
                if tag is None:
                    raise DeviceStateTampered(f"{name} was removed from the device")
                if allowed == [None]:
                    raise DeviceStateTampered(f"{name} was added: the device never wrote it")
                raise DeviceStateTampered(
                    f"{name} is not the copy the device last wrote: an older copy was restored"
                )
        if not any(_same(fuses_tag, ok) for ok in accepted.get(FUSES, [None])):
            raise DeviceStateTampered(
                f"{FUSES} is not the copy the device last wrote: an older copy was restored"
            )
        if any(len(ok) > 1 for ok in accepted.values()):
            # A write was cut short before its root named only the new copies. What is read
            # now may be relied on (a counter value, the SVN fuse), so the root names exactly
            # the copies found before anything is returned: the other is refused from now on.
            # The lock held excludes every writer; readers settling together write one root.
            self._write_root({name: [tag] for name, tag in tags.items()})
        return NvSnapshot(fuses=fuses, boot=boot, counters=counters, tags=tags)


def _same(tag: bytes | None, expected: bytes | None) -> bool:
    if tag is None or expected is None:
        return tag is None and expected is None
    return hmac.compare_digest(tag, expected)
