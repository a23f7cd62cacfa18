"""One narrow protocol for every key backend, and a ``Signer`` over any of them.

:class:`KeyBackend` is what a service needs from a key store that keeps its keys: generate a
key, get its public key, sign, verify — each by handle. :class:`BuiltinBackend` puts the
built-in :class:`~ironroot.hsm.Hsm` behind it (bound to one authenticated session);
:class:`~ironroot.hsm.Pkcs11Backend` puts a PKCS#11 token behind it. :class:`HsmSigner` turns
(backend, handle) into an :class:`ironroot.crypto.Signer`, so the transparency service's receipt
and checkpoint keys and the verifier's EAR key can live in either backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ironroot.crypto import Algorithm, PublicKey
from ironroot.errors import UnsupportedAlgorithm
from ironroot.hsm._boundary import Hsm
from ironroot.hsm._model import KeyAttributes, KeyType, Session

__all__ = ["BuiltinBackend", "HsmSigner", "KeyBackend"]


@runtime_checkable
class KeyBackend(Protocol):
    """A key store that keeps its keys: callers hold handles, never key material."""

    def generate(self, key_type: KeyType, attributes: KeyAttributes) -> str:
        """Generate a key inside; return its handle."""
        ...

    def public_key(self, handle: str) -> PublicKey:
        """The public key of a signing key (``UnsupportedAlgorithm`` for other keys)."""
        ...

    def sign(self, handle: str, data: bytes) -> bytes:
        """Sign ``data``: COSE signature encoding (ECDSA as fixed-width r ‖ s)."""
        ...

    def verify(self, handle: str, signature: bytes, data: bytes) -> None:
        """Return ``None`` or raise ``BadSignature``."""
        ...


class BuiltinBackend:
    """The built-in HSM behind :class:`KeyBackend`, acting in one session.

    ``generate`` needs a crypto-officer session; ``sign``/``verify`` a crypto-user session
    (the HSM checks, and audits, every call).
    """

    __slots__ = ("_hsm", "_session")

    def __init__(self, hsm: Hsm, session: Session) -> None:
        self._hsm = hsm
        self._session = session

    def generate(self, key_type: KeyType, attributes: KeyAttributes) -> str:
        return self._hsm.generate(self._session, key_type, attributes)

    def public_key(self, handle: str) -> PublicKey:
        info = self._hsm.key_info(self._session, handle)
        if info.public_key is None:
            raise UnsupportedAlgorithm(f"key {handle} is not a signing key")
        return info.public_key

    def sign(self, handle: str, data: bytes) -> bytes:
        return self._hsm.sign(self._session, handle, data)

    def verify(self, handle: str, signature: bytes, data: bytes) -> None:
        self._hsm.verify(self._session, handle, signature, data)


class HsmSigner:
    """A :class:`~ironroot.crypto.Signer` whose key stays in a backend."""

    __slots__ = ("_backend", "_handle", "_public")

    def __init__(self, backend: KeyBackend, handle: str) -> None:
        self._backend = backend
        self._handle = handle
        self._public = backend.public_key(handle)

    @property
    def algorithm(self) -> Algorithm:
        return self._public.algorithm

    @property
    def kid(self) -> bytes:
        return self._public.kid

    @property
    def handle(self) -> str:
        return self._handle

    def sign(self, data: bytes) -> bytes:
        return self._backend.sign(self._handle, data)

    def verifier(self) -> PublicKey:
        return self._public

    def __repr__(self) -> str:
        return f"HsmSigner({self._public.algorithm.label}, handle={self._handle})"
