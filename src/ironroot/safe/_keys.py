"""The trust store of review-provider keys: which public key answers to which ``kid``.

An SFR names its signer only by a free-text ``kid`` (``"NCC Group"``, ``"Keysight"``,
``"IOActive - secp521r1"``, ``"tetrel-ocp-sfr-signing-key"``), and OCP publishes the keys as
files under ``SRP_certificates/Active/<Provider>/``. Nothing maps one to the other, so the names
a key answers to are derived from where it was found, by fixed rules:

* the provider folder it sits in, as written and with ``_`` read as a space
  (``NCC_Group`` → ``NCC Group``);
* that provider name followed by ``" - "`` and the key's curve (``IOActive - secp521r1``);
* the file name without its extensions, and without a trailing ``_public``/``-public``/
  ``_pub``/``-pub`` (``OCP_SAFE_SFR_KEYS_SGS_BRS_2026_public.pem`` →
  ``OCP_SAFE_SFR_KEYS_SGS_BRS_2026``);
* for a certificate, its subject common name;
* plus any explicit alias the operator gives (``--provider-key "Wile E Coyote=key.pem"``).

A derived name that two different keys would answer to is ambiguous and dropped (a look-up by
it is an unknown issuer); an explicit alias that clashes is a configuration error. Byte ``kid``
values (COSE) are looked up as UTF-8 names and as RFC 9679 key thumbprints. An empty store
rejects everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PublicKey, load_certificate
from ironroot.errors import (
    ConfigError,
    LimitExceeded,
    MalformedCertificate,
    MalformedInput,
    UnknownIssuer,
)

__all__ = ["ProviderKey", "ProviderKeys", "provider_names"]

_MAX_KEY_FILE: Final = 1024 * 1024
_KEY_SUFFIXES: Final = frozenset((".pem", ".pub", ".crt", ".cer", ".der", ".key"))
_NAME_SUFFIXES: Final = ("_public", "-public", "_pub", "-pub")
_CURVES: Final = {
    Algorithm.ES256: "secp256r1",
    Algorithm.ES384: "secp384r1",
    Algorithm.ES512: "secp521r1",
}


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """One review provider's public key and the ``kid`` names it answers to."""

    key: PublicKey
    names: frozenset[str]
    source: str = ""


def provider_names(path: Path, key: PublicKey, common_name: str | None = None) -> frozenset[str]:
    """The names a key file at ``path`` answers to (see the module docstring)."""
    names: set[str] = set()
    provider = path.parent.name
    if provider:
        for name in {provider, provider.replace("_", " ")}:
            names.add(name)
            curve = _CURVES.get(key.algorithm)
            if curve:
                names.add(f"{name} - {curve}")
    stem = path.name
    while Path(stem).suffix.lower() in _KEY_SUFFIXES:
        stem = stem[: -len(Path(stem).suffix)]
    if stem:
        names.add(stem)
        for suffix in _NAME_SUFFIXES:
            if stem.lower().endswith(suffix) and len(stem) > len(suffix):
                names.add(stem[: -len(suffix)])
    if common_name:
        names.add(common_name)
    return frozenset(n for n in names if n.strip())


def _load_key(data: bytes) -> tuple[PublicKey, str | None]:
    """A public key from PEM/DER SubjectPublicKeyInfo or an X.509 certificate (PEM or DER)."""
    stripped = data.lstrip()
    if b"-----BEGIN CERTIFICATE-----" in stripped[:64] or stripped[:1] == b"\x30":
        try:
            cert: x509.Certificate | None = load_certificate(data, what="provider certificate")
        except MalformedCertificate:
            cert = None
        if cert is not None:
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = cns[0].value if cns else None
            spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
            key = PublicKey.from_der(spki)
            return key, cn if isinstance(cn, str) else None
    return PublicKey.from_pem(data), None


class ProviderKeys:
    """``kid`` → provider key. Immutable; build with the constructor or the loaders."""

    __slots__ = ("_by_name", "_by_thumbprint", "_keys")

    def __init__(
        self, keys: Iterable[ProviderKey] = (), aliases: Mapping[str, PublicKey] | None = None
    ) -> None:
        self._keys: tuple[ProviderKey, ...] = tuple(keys)
        claims: dict[str, set[PublicKey]] = {}
        for entry in self._keys:
            for name in entry.names:
                claims.setdefault(name, set()).add(entry.key)
        by_name = {name: next(iter(ks)) for name, ks in claims.items() if len(ks) == 1}
        for name, key in (aliases or {}).items():
            if not name:
                raise ConfigError("a provider key alias must be a non-empty name")
            if name in by_name and by_name[name] != key:
                raise ConfigError(f"kid {name!r} already names another provider key")
            by_name[name] = key
            if not any(e.key == key for e in self._keys):
                self._keys += (ProviderKey(key, frozenset((name,))),)
        self._by_name: dict[str, PublicKey] = by_name
        self._by_thumbprint: dict[bytes, PublicKey] = {e.key.kid: e.key for e in self._keys}

    def lookup(self, kid: str | bytes) -> PublicKey:
        """The key for ``kid``; ``UnknownIssuer`` when no key answers to it."""
        name: str
        if isinstance(kid, bytes):
            key = self._by_thumbprint.get(kid)
            if key is not None:
                return key
            try:
                name = kid.decode("utf-8")
            except UnicodeDecodeError:
                raise UnknownIssuer(f"no review provider key has kid {kid.hex()}") from None
        else:
            name = kid
        found = self._by_name.get(name)
        if found is None:
            raise UnknownIssuer(f"no review provider key answers to kid {name!r}")
        return found

    def names(self) -> list[str]:
        """Every ``kid`` name this store answers to, sorted."""
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[ProviderKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"ProviderKeys({len(self._keys)} keys, {len(self._by_name)} names)"

    # --- loading (I/O) -------------------------------------------------------------------

    @staticmethod
    def read_key_file(path: str | os.PathLike[str]) -> ProviderKey:
        """One key file (PEM/DER public key or certificate) and the names it answers to."""
        file = Path(path)
        size = file.stat().st_size
        if size > _MAX_KEY_FILE:
            raise LimitExceeded(f"{file} is larger than {_MAX_KEY_FILE} bytes")
        try:
            key, cn = _load_key(file.read_bytes())
        except MalformedInput as exc:
            raise ConfigError(f"{file}: {exc.detail}") from exc
        return ProviderKey(key, provider_names(file, key, cn), str(file))

    @classmethod
    def load(
        cls,
        sources: Iterable[str | os.PathLike[str]],
        aliases: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> ProviderKeys:
        """Keys from files and folders (searched recursively for ``.pem/.pub/.crt/.cer/.der``),
        plus explicit ``alias → key file`` entries."""
        found: list[ProviderKey] = []
        for source in sources:
            path = Path(source)
            if path.is_dir():
                files = sorted(
                    p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _KEY_SUFFIXES
                )
                found += [cls.read_key_file(p) for p in files]
            else:
                found.append(cls.read_key_file(path))
        alias_keys = {name: cls.read_key_file(p).key for name, p in (aliases or {}).items()}
        return cls(found, alias_keys)
