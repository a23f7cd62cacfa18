"""The two protocols every signing and verifying component implements.

Anything that signs (an in-memory key, an HSM handle, a PKCS#11 token, a hybrid pair) is a
:class:`Signer`; anything that verifies is a :class:`Verifier`. Higher layers depend only on
these, never on ``cryptography`` key classes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ironroot.crypto._algorithms import Algorithm

__all__ = ["Signer", "Verifier"]


@runtime_checkable
class Verifier(Protocol):
    """Verifies signatures of one algorithm under one public key."""

    @property
    def algorithm(self) -> Algorithm: ...

    @property
    def kid(self) -> bytes:
        """RFC 9679 COSE key thumbprint (SHA-256) of the public key."""
        ...

    def verify(self, signature: bytes, data: bytes) -> None:
        """Return ``None`` if ``signature`` is valid over ``data``; raise ``BadSignature``."""
        ...


@runtime_checkable
class Signer(Protocol):
    """Produces signatures of one algorithm; the private key never leaves it."""

    @property
    def algorithm(self) -> Algorithm: ...

    @property
    def kid(self) -> bytes:
        """RFC 9679 COSE key thumbprint (SHA-256) of the public key."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``; signatures use the COSE encoding (ECDSA as fixed-width r ‖ s)."""
        ...

    def verifier(self) -> Verifier:
        """The matching public verifier."""
        ...
