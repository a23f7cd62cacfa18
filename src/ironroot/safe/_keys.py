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

**Who a key is.** A ``kid`` only says which key to verify with; the report itself names its
Security Review Provider in ``audit.srp``, and a key may sign only for its own provider
(:meth:`ProviderKeys.check_srp`), or provider X could publish a review in provider Y's name.
A key's *provider identities* are the names the operator gave the provider, not those taken
from a file name a provider chose: for a key in a provider folder below a folder
:meth:`ProviderKeys.load` reads (``Active/NCC_Group/x.pub``), the provider folder's name (both
spellings), never a certificate's subject common name (the provider chose it, as it chose
the file name; it only finds the key); for a key file given by itself or directly in the
folder read, the names its file gives it (folder, file name), again never the CN; and explicit
aliases. A :class:`ProviderKey` built in code names its provider with ``identities``; one
built with ``names`` only signs for any of its ``names``. ``srp`` matches an identity when,
both compared as words (Unicode NFKC, case-folded, split at anything but letters and digits),
the identity's words begin the ``srp``'s: folder ``IOActive`` signs for ``"IOActive,
Incorporated"``, ``Keysight`` for ``"Keysight Technologies Riscure, Inc."``,
``Tetrel_Security`` for ``"Tetrel Security Inc."``, but ``NCC_Group`` not for ``"IOActive"``
nor ``"NCCGroup Labs"``. An ``srp`` holding a control or format character (bidirectional
overrides, zero-width characters) matches nothing: it could display as another name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ironroot._fileio import read_limited
from ironroot.crypto import Algorithm, PublicKey, load_certificate
from ironroot.errors import (
    CertificateExpired,
    ConfigError,
    MalformedCertificate,
    MalformedInput,
    UnknownIssuer,
    VerificationFailed,
)

__all__ = ["ProviderKey", "ProviderKeys", "provider_names"]

_MAX_KEY_FILE: Final = 1024 * 1024
_KEY_SUFFIXES: Final = frozenset((".pem", ".pub", ".crt", ".cer", ".der", ".key"))
_NAME_SUFFIXES: Final = ("_public", "-public", "_pub", "-pub")
_WORD: Final = re.compile(r"[^\W_]+")
_CURVES: Final = {
    Algorithm.ES256: "secp256r1",
    Algorithm.ES384: "secp384r1",
    Algorithm.ES512: "secp521r1",
}


@dataclass(frozen=True, slots=True)
class ProviderKey:
    """One review provider's public key, the ``kid`` names it answers to, and the provider
    names (an SFR's ``srp``) it signs for: ``identities``, or its ``names`` when empty.

    ``not_before`` / ``not_after``: the validity of the provider certificate the key came
    from (``None`` for a bare public key): a report is verified with it only within them,
    both included (:meth:`ProviderKeys.check_validity`)."""

    key: PublicKey
    names: frozenset[str]
    source: str = ""
    identities: frozenset[str] = frozenset()
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None

    def __post_init__(self) -> None:
        for when in (self.not_before, self.not_after):
            if when is not None and when.utcoffset() is None:
                raise ConfigError("a provider key's validity is an aware datetime (UTC)")

    @property
    def provider_names(self) -> frozenset[str]:
        """The provider names this key signs for."""
        return self.identities or self.names


def _words(text: str) -> tuple[str, ...] | None:
    """``text`` as case-folded words; ``None`` when it holds a control or format character."""
    normal = unicodedata.normalize("NFKC", text).casefold()
    if any(unicodedata.category(c).startswith("C") for c in normal):
        return None
    return tuple(_WORD.findall(normal))


def srp_matches(srp: str, identity: str) -> bool:
    """Whether a report's ``srp`` names the provider ``identity`` (see the module docstring):
    the identity's words begin the ``srp``'s words."""
    claimed, own = _words(srp), _words(identity)
    if not claimed or not own:
        return False
    return claimed[: len(own)] == own


def provider_identities(path: Path) -> frozenset[str]:
    """The provider a key file at ``path`` belongs to: its folder's name, both spellings.
    Never the file name nor a certificate's subject common name: the provider chose both (a
    provider certificate is a key holder here, its chain not checked, so its CN says no more
    than a self-signed one), and a CN of ``NCC Group`` on a key in folder ``Acme`` would
    have Acme sign reviews in NCC Group's name."""
    provider = path.parent.name
    names = {provider, provider.replace("_", " ")} if provider else set()
    return frozenset(n for n in names if n.strip())


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


Validity = tuple[dt.datetime, dt.datetime] | None


def check_now(now: dt.datetime | None) -> None:
    """Refuse a naive ``now`` (``ConfigError``): it would be read as the machine's local time,
    and cannot be compared with a certificate's dates at all."""
    if now is not None and (not isinstance(now, dt.datetime) or now.utcoffset() is None):
        raise ConfigError("now must be a timezone-aware datetime")


def _load_key(data: bytes) -> tuple[PublicKey, str | None, Validity]:
    """A public key from PEM/DER SubjectPublicKeyInfo or an X.509 certificate (PEM or DER),
    with a certificate's subject CN and validity period."""
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
            validity = (cert.not_valid_before_utc, cert.not_valid_after_utc)
            return key, cn if isinstance(cn, str) else None, validity
    return PublicKey.from_pem(data), None, None


class ProviderKeys:
    """``kid`` → provider key. Immutable; build with the constructor or the loaders."""

    __slots__ = ("_by_name", "_by_thumbprint", "_identities", "_keys", "_validity")

    def __init__(
        self, keys: Iterable[ProviderKey] = (), aliases: Mapping[str, PublicKey] | None = None
    ) -> None:
        self._keys: tuple[ProviderKey, ...] = tuple(keys)
        claims: dict[str, set[PublicKey]] = {}
        for entry in self._keys:
            for name in entry.names:
                claims.setdefault(name, set()).add(entry.key)
        by_name = {name: next(iter(ks)) for name, ks in claims.items() if len(ks) == 1}
        identities: dict[PublicKey, set[str]] = {}
        for entry in self._keys:
            identities.setdefault(entry.key, set()).update(entry.provider_names)
        for name, key in (aliases or {}).items():
            if not name:
                raise ConfigError("a provider key alias must be a non-empty name")
            if name in by_name and by_name[name] != key:
                raise ConfigError(f"kid {name!r} already names another provider key")
            by_name[name] = key
            identities.setdefault(key, set()).add(name)
            if not any(e.key == key for e in self._keys):
                self._keys += (ProviderKey(key, frozenset((name,))),)
        self._by_name: dict[str, PublicKey] = by_name
        self._by_thumbprint: dict[bytes, PublicKey] = {e.key.kid: e.key for e in self._keys}
        self._identities: dict[PublicKey, frozenset[str]] = {
            key: frozenset(names) for key, names in identities.items()
        }
        # A key given once without a certificate (a bare key, an alias) is trusted at any
        # time; one given only by certificates within any of their validity periods.
        bare = {e.key for e in self._keys if e.not_before is None or e.not_after is None}
        periods: dict[PublicKey, list[tuple[dt.datetime, dt.datetime]]] = {}
        for entry in self._keys:
            if entry.key not in bare and entry.not_before and entry.not_after:
                periods.setdefault(entry.key, []).append((entry.not_before, entry.not_after))
        self._validity: dict[PublicKey, tuple[tuple[dt.datetime, dt.datetime], ...]] = {
            key: tuple(found) for key, found in periods.items()
        }

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

    def identities(self, key: PublicKey) -> frozenset[str]:
        """The provider names ``key`` signs for (empty for a key not in the store)."""
        return self._identities.get(key, frozenset())

    def validity(self, key: PublicKey) -> tuple[tuple[dt.datetime, dt.datetime], ...]:
        """The validity periods of the certificates ``key`` was given by (empty: it was given
        as a bare key too, or is not in the store, and no period applies)."""
        return self._validity.get(key, ())

    def check_validity(self, key: PublicKey, now: dt.datetime) -> None:
        """Refuse ``key`` at ``now`` outside every validity period of the provider
        certificates it came from (``CertificateExpired``, code ``certificate-expired``): an
        expired (or not yet valid) provider certificate verifies no report."""
        check_now(now)
        periods = self.validity(key)
        if not periods or any(start <= now <= end for start, end in periods):
            return
        shown = ", ".join(f"{a.isoformat()} to {b.isoformat()}" for a, b in periods)
        names = ", ".join(repr(n) for n in sorted(self.identities(key))) or "a review provider"
        raise CertificateExpired(
            f"the certificate of {names} is valid {shown}, not at {now.isoformat()}"
        )

    def check_srp(self, key: PublicKey, srp: str) -> None:
        """Refuse a report whose ``srp`` names another provider than the one ``key`` is
        (``VerificationFailed``, code ``srp-mismatch``, naming both)."""
        own = self.identities(key)
        if any(srp_matches(srp, identity) for identity in own):
            return
        shown = ", ".join(repr(n) for n in sorted(own)) or "no provider name"
        raise VerificationFailed(
            f"the report claims review provider {srp!r}, but it is signed by the key of {shown}",
            code="srp-mismatch",
        )

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
    def read_key_file(
        path: str | os.PathLike[str], *, provider_folder: bool = False
    ) -> ProviderKey:
        """One key file (PEM/DER public key or certificate) and the names it answers to.

        With ``provider_folder`` the folder it sits in names its provider; without, the key
        signs for any of the names its file gives it. A certificate's subject CN only ever
        finds the key."""
        file = Path(path)
        # within the limit whatever it is: /dev/zero stops there, a pipe is never waited on
        data = read_limited(file, _MAX_KEY_FILE)
        try:
            key, cn, validity = _load_key(data)
        except MalformedInput as exc:
            raise ConfigError(f"{file}: {exc.detail}") from exc
        start, end = validity if validity is not None else (None, None)
        names = provider_names(file, key, cn)
        # the provider folder names the provider; without one, the names of the file, but
        # never a certificate's CN, which the provider wrote (it only finds the key)
        identities = provider_identities(file) if provider_folder else provider_names(file, key)
        return ProviderKey(key, names, str(file), identities, not_before=start, not_after=end)

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
                # <source>/<Provider>/<key>: the folder names the provider (a key directly
                # in the source folder is the provider its names say)
                found += [cls.read_key_file(p, provider_folder=p.parent != path) for p in files]
            else:
                found.append(cls.read_key_file(path))
        alias_entries = {name: cls.read_key_file(p) for name, p in (aliases or {}).items()}
        # an alias names the key; the entry keeps its certificate's validity
        found += [dataclasses.replace(e, names=frozenset()) for e in alias_entries.values()]
        return cls(found, {name: entry.key for name, entry in alias_entries.items()})
