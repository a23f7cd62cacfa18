"""Service signing keys held in an HSM: the ``[keys]`` table of a service's configuration.

A service (the transparency service's receipt and checkpoint keys, the verifier's EAR key)
names its keys by *purpose* (``"receipt-ES384"``, ``"checkpoint"``, ``"ear"``). This module turns
the operator's ``[keys]`` table into :class:`~ironroot.crypto.Signer` objects whose private
keys stay in the chosen backend::

    [keys]
    backend = "pkcs11"                          # "files" (default), "pkcs11" or "hsm"
    pkcs11_library = "/usr/lib/softhsm/libsofthsm2.so"  # a bare name: the system's search
    pkcs11_token = "ironroot"
    pkcs11_token_serial = "99a089d16863dbce"  # optional: that token only, not another so named
    pkcs11_pin_file = "token.pin"               # the user PIN, in a file (never in the config)
    # backend = "hsm" (the built-in boundary, initialized with `ironroot hsm init`):
    # hsm_dir = "hsm"
    # hsm_rot_device = "rot"                    # the RoT device keeping the HSM's counter
    # hsm_counter = "hsm"                       # that counter's name (default "hsm")
    # hsm_sealing_secret_file = "sealing.secret"
    # hsm_identity = "transparency"             # a crypto-user identity of that HSM
    # hsm_credential_file = "hsm.credential"
    [keys.handles]                              # optional: purpose -> existing key handle
    "receipt-ES384" = "5f0c…"

Handles not given in the table are read from ``keys/handles.json`` in the data directory; with
PKCS#11 a missing key is generated inside the token when the service is initialized. That
creation is crash-safe: the new key's handle is first recorded as pending
(``keys/pending-handles.json``, written durably), then the key is made on the token under it,
then the handle is recorded in ``handles.json`` and the pending record removed. A process killed
in between leaves a pending handle, and the next open destroys every object under a pending
handle that ``handles.json`` does not hold (a key no record names, never used) before it clears
the record: the token never keeps an orphan key. The
built-in boundary separates roles — a crypto officer generates keys (``ironroot hsm key
generate``), the service's crypto-user identity only signs — so its handles are named in
``[keys.handles]``. Relative
paths are relative to the data directory. ``files`` means the service's own PEM files and is
not handled here.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ironroot._fileio import (
    file_lock,
    is_write_temporary,
    make_dirs,
    read_limited,
    warn_if_exposed,
    write_atomic,
)
from ironroot.crypto import Algorithm
from ironroot.errors import (
    ConfigError,
    InputUnavailable,
    IronrootError,
    LimitExceeded,
    NotFound,
)
from ironroot.hsm._backend import BuiltinBackend, HsmSigner, KeyBackend
from ironroot.hsm._boundary import Hsm
from ironroot.hsm._model import KeyAttributes, KeyType, Usage
from ironroot.hsm._pkcs11 import Pkcs11Backend
from ironroot.hsm._storage import DirectoryStorage

__all__ = ["ServiceKeys", "ServiceKeysConfig"]

BACKENDS: Final = ("files", "pkcs11", "hsm")
_KEY_TYPES: Final = {
    Algorithm.ES256: KeyType.EC_P256,
    Algorithm.ES384: KeyType.EC_P384,
    Algorithm.EDDSA: KeyType.ED25519,
    Algorithm.ED25519: KeyType.ED25519,
    Algorithm.ML_DSA_44: KeyType.ML_DSA_44,
    Algorithm.ML_DSA_65: KeyType.ML_DSA_65,
    Algorithm.ML_DSA_87: KeyType.ML_DSA_87,
}
HANDLES_FILE: Final = "keys/handles.json"
PENDING_FILE: Final = "keys/pending-handles.json"
_HANDLES_LOCK: Final = ".handles.lock"
"""Held (``flock``, in ``keys/``) while a key is made and while a pending record is settled:
the record of a key another live process is making is never taken for a killed one's."""
_MAX_SECRET: Final = 64 * 1024  # a PIN, a sealing secret, a credential
_SETTINGS: Final = {
    "pkcs11": ("pkcs11_library", "pkcs11_token", "pkcs11_token_serial", "pkcs11_pin_file"),
    "hsm": (
        "hsm_dir",
        "hsm_rot_device",
        "hsm_counter",
        "hsm_sealing_secret_file",
        "hsm_identity",
        "hsm_credential_file",
    ),
}
_KEYS: Final = frozenset({"backend", "handles", *(k for ks in _SETTINGS.values() for k in ks)})


def _text(table: Mapping[str, Any], name: str, required: bool) -> str:
    value = table.get(name)
    if value is None:
        if required:
            raise ConfigError(f"keys.{name} is required for this backend")
        return ""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"keys.{name} must be a non-empty string")
    return value


def _read_secret(path: Path, what: str) -> bytes:
    try:  # a named pipe reads as empty rather than being waited on
        data = read_limited(path, _MAX_SECRET)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} at {path}: {exc.strerror}") from exc
    except InputUnavailable as exc:
        raise ConfigError(f"cannot read the {what} at {exc.detail}") from exc
    except LimitExceeded as exc:
        raise ConfigError(f"the {what} at {path} is larger than {_MAX_SECRET} bytes") from exc
    warn_if_exposed(path, f"the {what}")
    data = data.strip()
    if not data:
        raise ConfigError(f"the {what} at {path} is empty")
    return data


@dataclass(frozen=True, slots=True)
class ServiceKeysConfig:
    """The parsed ``[keys]`` table."""

    backend: str
    base: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    handles: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(
        cls,
        table: Mapping[str, Any] | None,
        base: Path,
        *,
        purposes: Collection[str] | None = None,
    ) -> ServiceKeysConfig:
        """Check ``[keys]``: a setting of a backend other than the one chosen (a forgotten
        ``backend = "pkcs11"`` would keep the keys in files) and, with ``purposes`` (the keys
        the service ever asks for), a ``keys.handles`` entry for any other purpose (a
        misspelt one would have a new key generated) are ``ConfigError``."""
        table = dict(table or {})
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"unknown key keys.{sorted(unknown)[0]}")
        backend = table.get("backend", "files")
        if backend not in BACKENDS:
            raise ConfigError(f"keys.backend must be one of {', '.join(BACKENDS)}")
        for other, names in _SETTINGS.items():
            for name in names:
                if other != backend and name in table:
                    raise ConfigError(f'keys.{name} needs keys.backend = "{other}"')
        handles = table.get("handles", {})
        if not isinstance(handles, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in handles.items()
        ):
            raise ConfigError("keys.handles maps purposes to key handles (strings)")
        if handles and backend == "files":
            raise ConfigError('keys.handles needs keys.backend = "pkcs11" or "hsm"')
        stray = sorted(set(handles) - set(handles if purposes is None else purposes))
        if stray:
            raise ConfigError(
                f"keys.handles.{stray[0]}: this service has no such key (its keys: "
                f"{', '.join(sorted(purposes or ()))})"
            )
        settings: dict[str, str] = {}
        if backend == "pkcs11":
            for name in ("pkcs11_library", "pkcs11_token", "pkcs11_pin_file"):
                settings[name] = _text(table, name, True)
            serial = _text(table, "pkcs11_token_serial", False)
            if serial:
                settings["pkcs11_token_serial"] = serial
            library = settings["pkcs11_library"]
            if "/" in library:  # a path: relative to the data directory, never to the CWD
                settings["pkcs11_library"] = str(base / library)
        elif backend == "hsm":
            for name in ("hsm_dir", "hsm_rot_device", "hsm_sealing_secret_file", "hsm_identity"):
                settings[name] = _text(table, name, True)
            settings["hsm_credential_file"] = _text(table, "hsm_credential_file", True)
            settings["hsm_counter"] = _text(table, "hsm_counter", False) or "hsm"
        return cls(backend, base, settings, dict(handles))

    @property
    def in_hsm(self) -> bool:
        return self.backend != "files"


class ServiceKeys:
    """Open the configured backend; hand out signers by purpose. A context manager."""

    def __init__(self, config: ServiceKeysConfig) -> None:
        if not config.in_hsm:
            raise ConfigError("keys.backend = 'files' keeps the keys in PEM files, not an HSM")
        self._config = config
        self._handles_path = config.base / HANDLES_FILE
        self._pending_path = config.base / PENDING_FILE
        self._storage: DirectoryStorage | None = None
        self._hsm: Hsm | None = None
        self._backend: KeyBackend = self._open()
        try:
            self._reconcile()
        except BaseException:
            self.close()
            raise

    def _path(self, name: str) -> Path:
        return self._config.base / self._config.settings[name]

    def _open(self) -> KeyBackend:
        settings = self._config.settings
        if self._config.backend == "pkcs11":
            pin = _read_secret(self._path("pkcs11_pin_file"), "PKCS#11 PIN").decode()
            return Pkcs11Backend(
                settings["pkcs11_library"],
                token_label=settings["pkcs11_token"],
                pin=pin,
                token_serial=settings.get("pkcs11_token_serial"),
            )
        secret = _read_secret(self._path("hsm_sealing_secret_file"), "HSM sealing secret")
        credential = _read_secret(self._path("hsm_credential_file"), "HSM credential")
        self._storage = DirectoryStorage.on_device(
            self._path("hsm_dir"),
            self._path("hsm_rot_device"),
            counter=settings["hsm_counter"],
        )
        try:
            self._hsm = Hsm.open(self._storage, secret)
            session = self._hsm.login(settings["hsm_identity"], credential)
        except BaseException:
            self.close()
            raise
        return BuiltinBackend(self._hsm, session)

    def _stored_handles(self, path: Path | None = None) -> dict[str, str]:
        path = self._handles_path if path is None else path
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} is not a JSON object of handles") from exc
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ConfigError(f"{path} is not a JSON object of handles")
        return value

    def _write_handles(self, path: Path, handles: Mapping[str, str]) -> None:
        make_dirs(path.parent)
        text = json.dumps(dict(handles), indent=2, sort_keys=True)
        write_atomic(path, text.encode("utf-8"), mode=0o600)

    def _store_handle(self, purpose: str, handle: str) -> None:
        handles = self._stored_handles()
        handles[purpose] = handle
        self._write_handles(self._handles_path, handles)

    def _reconcile(self) -> None:
        """Finish what a process killed while making a key left (module docs): destroy the
        token's objects under each pending handle that ``handles.json`` (or ``keys.handles``)
        does not hold, then remove the pending record. Run again after a crash here, it
        destroys what is left and removes the record. Only while no other process makes a
        key here (:data:`_HANDLES_LOCK`): one that does is alive, and its pending record and
        temporary files are its work under way, not a killed process's leftovers."""
        if not self._handles_path.parent.is_dir():
            return
        with self._handles_locked(wait=False) as held:
            if held:
                self._settle()

    def _settle(self) -> None:
        self._remove_temporaries()
        pending = self._stored_handles(self._pending_path)
        if not pending:
            self._pending_path.unlink(missing_ok=True)
            return
        backend = self._backend
        if not isinstance(backend, Pkcs11Backend):
            raise ConfigError(
                f"{self._pending_path} names keys being made on a PKCS#11 token, and "
                f"keys.backend is {self._config.backend!r}: remove it once those are checked"
            )
        committed = {**self._stored_handles(), **self._config.handles}
        for purpose, handle in sorted(pending.items()):
            if committed.get(purpose) != handle:
                backend.purge(handle)
        self._pending_path.unlink()

    def _remove_temporaries(self) -> None:
        """Remove the temporary files a write of ``handles.json`` or the pending record
        killed before its rename left (only theirs: ``.<name>.XXXXXXXX.tmp``)."""
        folder = self._handles_path.parent
        names = (self._handles_path.name, self._pending_path.name)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            if (
                is_write_temporary(entry.name)
                and entry.name.startswith(tuple(f".{name}." for name in names))
                and entry.is_file(follow_symlinks=False)
            ):
                Path(entry.path).unlink(missing_ok=True)

    def _generate(self, purpose: str, key_type: KeyType) -> str:
        """Make ``purpose``'s key on the token, crash-safe (module docs)."""
        make_dirs(self._handles_path.parent)
        with self._handles_locked(wait=True):
            return self._make(purpose, key_type)

    def _handles_locked(self, *, wait: bool) -> contextlib.AbstractContextManager[bool]:
        """Hold :data:`_HANDLES_LOCK`; without ``wait``, ``False`` at once when another
        process holds it."""
        path = self._handles_path.parent / _HANDLES_LOCK
        return file_lock(path, "the key handles' lock", wait=wait)

    def _make(self, purpose: str, key_type: KeyType) -> str:
        backend = self._backend
        assert isinstance(backend, Pkcs11Backend)  # the built-in HSM's keys are an officer's
        handle = backend.new_handle()
        self._write_handles(
            self._pending_path, {**self._stored_handles(self._pending_path), purpose: handle}
        )
        try:
            backend.generate(
                key_type, KeyAttributes(usages=frozenset({Usage.SIGN, Usage.VERIFY})), handle=handle
            )
        except BaseException:
            with contextlib.suppress(IronrootError):  # else the next open purges it
                backend.purge(handle)
                self._clear_pending(purpose)
            raise
        self._store_handle(purpose, handle)
        self._clear_pending(purpose)
        return handle

    def _clear_pending(self, purpose: str) -> None:
        pending = self._stored_handles(self._pending_path)
        pending.pop(purpose, None)
        if pending:
            self._write_handles(self._pending_path, pending)
        else:
            self._pending_path.unlink(missing_ok=True)

    def signer(self, purpose: str, algorithm: Algorithm, *, create: bool = False) -> HsmSigner:
        """The signer for ``purpose``; with ``create``, generate its key if it has none yet."""
        handle = self._config.handles.get(purpose) or self._stored_handles().get(purpose)
        if handle is None:
            if self._config.backend == "hsm":
                # Role separation: a crypto officer creates keys, the service's identity (a
                # crypto user) only uses them.
                raise NotFound(
                    f"no {purpose} key: a crypto officer creates it (`ironroot hsm key generate`)"
                    f" and keys.handles names it"
                )
            if not create:
                raise NotFound(
                    f"no {purpose} key in the HSM: run `ironroot serve --init-only` or set "
                    f"keys.handles.{purpose}"
                )
            key_type = _KEY_TYPES.get(algorithm)
            if key_type is None:
                raise ConfigError(f"{algorithm.label} keys cannot be held in an HSM here")
            handle = self._generate(purpose, key_type)
        try:
            signer = HsmSigner(self._backend, handle)
        except IronrootError as exc:
            raise ConfigError(f"the {purpose} key handle {handle} is not usable: {exc}") from exc
        same = signer.algorithm == algorithm or {signer.algorithm, algorithm} <= {
            Algorithm.EDDSA,
            Algorithm.ED25519,
        }
        if not same:
            raise ConfigError(
                f"the {purpose} key is {signer.algorithm.label}, the service needs "
                f"{algorithm.label}"
            )
        return signer

    def close(self) -> None:
        if isinstance(self._backend_or_none(), Pkcs11Backend):
            self._backend.close()  # type: ignore[attr-defined]
        if self._hsm is not None:
            self._hsm.close()
            self._hsm = None
        if self._storage is not None:
            self._storage.close()
            self._storage = None

    def _backend_or_none(self) -> KeyBackend | None:
        return getattr(self, "_backend", None)

    def __enter__(self) -> ServiceKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
