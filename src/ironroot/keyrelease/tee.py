"""The TEE side of secure key release: a wrapping key pair, the report data, the unwrap.

Inside the confidential VM::

    tee = TeeKeyPair.generate()                  # ML-KEM-768 (or "ML-KEM-1024", "RSA-3072")
    nonce = client.challenge()                   # POST /keys/challenge
    evidence = quote(report_data=tee.report_data(nonce))   # the hardware signs the binding
    ear = verifier.attest(evidence)              # an EAR carrying that report data
    released = client.release("db-key", ear=ear, wrapping_key=tee.public_spki, nonce=nonce)
    key = tee.unwrap(released, nonce=nonce, hsm_roots=[hsm_device])  # UnwrappedKey

A confidential VM with GPUs attests them in one composite (``docs/keyrelease.md``): the
challenge is ``tee.report_data(nonce)``, GPU ``i`` is asked for ``tee.gpu_nonce(nonce, i)``
and the CVM's hardware signs ``tee.composite_report_data(nonce, gpu_count)``.

The HSM signs a release statement with every release (``ironroot.hsm._release_statement``);
:meth:`TeeKeyPair.unwrap` verifies it against the HSM's device certificate before it unwraps
(``ironroot hsm info --device-out``; not the vendor's root, under which every machine of the
vendor and each DPE child of one, a VM's identity too, could sign a statement), so a key
that did not come from an HSM's release decision for this request is never used.

The private key never leaves this object except through :meth:`to_pem` (PKCS#8, for a TEE that
keeps it sealed). Unwrapping uses the HSM's own wrap functions, so both ends share one
implementation of each format.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, rsa

from ironroot.ear import composite_nonce, gpu_nonce
from ironroot.errors import (
    KeyBindingMismatch,
    LimitExceeded,
    MalformedInput,
    StaleNonce,
    UnsupportedAlgorithm,
)
from ironroot.hsm import (
    KeyType,
    WrappingKey,
    bind_report_data,
    check_wrapped_material,
    unwrap_key_kem,
    unwrap_key_rsa_aes,
    verify_release_statement,
)
from ironroot.keyrelease._format import ReleasedKey, wrap_algorithm

__all__ = ["TeeKeyPair", "UnwrappedKey"]

_MAX_PEM: Final = 64 * 1024
_KINDS: Final = ("ML-KEM-768", "ML-KEM-1024", "RSA-3072")

PrivateWrappingKey = mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True, slots=True)
class UnwrappedKey:
    """A released key, unwrapped: its name, type and material (raw secret value, or PKCS#8 DER
    of a private key). The material is never in ``repr``."""

    kid: str
    key_type: KeyType
    material: bytes = field(repr=False)


class TeeKeyPair:
    """The TEE's wrapping key pair (ML-KEM-768 by default)."""

    __slots__ = ("_private", "public")

    def __init__(self, private: PrivateWrappingKey) -> None:
        if not isinstance(
            private, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | rsa.RSAPrivateKey
        ):
            raise UnsupportedAlgorithm("a TEE wrapping key is ML-KEM-768, ML-KEM-1024 or RSA")
        self._private = private
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public: WrappingKey = WrappingKey.parse(spki)

    def __repr__(self) -> str:
        return f"TeeKeyPair(kind={self.public.kind!r})"

    @classmethod
    def generate(cls, kind: str = "ML-KEM-768") -> TeeKeyPair:
        """A fresh key pair of ``kind``: ML-KEM-768, ML-KEM-1024 or RSA-3072."""
        if kind == "ML-KEM-768":
            return cls(mlkem.MLKEM768PrivateKey.generate())
        if kind == "ML-KEM-1024":
            return cls(mlkem.MLKEM1024PrivateKey.generate())
        if kind == "RSA-3072":
            return cls(rsa.generate_private_key(65537, 3072))
        raise UnsupportedAlgorithm(f"a TEE wrapping key is one of {', '.join(_KINDS)}")

    @classmethod
    def from_pem(cls, data: bytes) -> TeeKeyPair:
        """From an unencrypted PKCS#8 PEM private key."""
        if not isinstance(data, bytes) or len(data) > _MAX_PEM:
            raise LimitExceeded(f"a TEE key file is at most {_MAX_PEM} bytes")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise MalformedInput("not an unencrypted PKCS#8 PEM private key") from exc
        except _LibraryUnsupported as exc:  # an algorithm the library does not know
            raise UnsupportedAlgorithm(
                "the TEE key file's algorithm is not a key type a TEE wraps with"
            ) from exc
        if not isinstance(
            key, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey | rsa.RSAPrivateKey
        ):
            raise UnsupportedAlgorithm("a TEE wrapping key is ML-KEM-768, ML-KEM-1024 or RSA")
        return cls(key)

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (keep it inside the TEE)."""
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def kind(self) -> str:
        return self.public.kind

    @property
    def public_spki(self) -> bytes:
        """The canonical public key (DER SubjectPublicKeyInfo) to send with a release."""
        return self.public.spki

    def report_data(self, nonce: bytes) -> bytes:
        """The 64 bytes the TEE's evidence must sign: ``nonce ‖ SHA-256(public SPKI)``."""
        return bind_report_data(nonce, self.public)

    def gpu_nonce(self, nonce: bytes, index: int) -> bytes:
        """The nonce GPU ``index`` of this VM answers for the release of ``nonce`` (the
        composite rule under the challenge :meth:`report_data`)."""
        return gpu_nonce(self.report_data(nonce), index)

    def composite_report_data(self, nonce: bytes, gpu_count: int) -> bytes:
        """The 32 bytes the CVM's evidence signs when it brings ``gpu_count`` GPUs: the
        composite nonce under the challenge :meth:`report_data` (commits to ``nonce``, this
        wrapping key and every GPU's nonce)."""
        return composite_nonce(self.report_data(nonce), gpu_count)

    def unwrap(
        self,
        response: ReleasedKey | bytes | str,
        *,
        nonce: bytes,
        hsm_roots: Sequence[x509.Certificate],
        kid: str | None = None,
        handle: str | None = None,
        now: dt.datetime | None = None,
    ) -> UnwrappedKey:
        """Unwrap a release response (parsed or CBOR/JSON bytes) that answers ``nonce`` (the
        challenge this TEE asked for: required, so a response to an older request is never
        taken for this one), whose release statement an HSM certified to one of ``hsm_roots``
        signed (at ``now``, default the current time), and, when ``kid`` is given, that names
        that key. ``kid`` is the key service's name for the key, which nothing signs: a party
        between the TEE and the HSM can answer with the release of another key this EAR also
        unlocks and name it ``kid``. ``handle`` pins the key itself: the HSM's statement must
        be of the key it holds under that handle.

        ``KeyBindingMismatch`` when it is wrapped to another key (or, code ``other-key``, names
        another key than ``kid``, or the HSM released another key than ``handle``; code
        ``release-statement``, the HSM's statement is of other wrapped bytes or another key
        type), ``StaleNonce`` when it answers another nonce,
        ``ChainNotTrusted`` / ``CertificateExpired`` / ``BadSignature`` when the statement is
        not an HSM's under ``hsm_roots``, ``MalformedInput`` for a response that does not
        parse or disagrees with itself (including key material that is not a key of the type
        it names), ``VerificationFailed`` when it does not unwrap.
        """
        released = response if isinstance(response, ReleasedKey) else ReleasedKey.parse(response)
        if not hmac.compare_digest(released.recipient, self.public.digest):
            raise KeyBindingMismatch("the released key is wrapped to another wrapping key")
        if not isinstance(nonce, bytes) or not hmac.compare_digest(released.nonce, nonce):
            raise StaleNonce("the release answers another nonce", code="nonce-mismatch")
        if kid is not None and released.kid != kid:
            raise KeyBindingMismatch(
                f"the release is of key {released.kid!r}, not {kid!r}", code="other-key"
            )
        if released.alg != wrap_algorithm(self.kind):
            raise MalformedInput(f"{released.alg} is not the wrap algorithm of a {self.kind} key")
        opened = verify_release_statement(
            released.statement,
            roots=hsm_roots,
            now=now if now is not None else dt.datetime.now(dt.UTC),
            wrapped=released.wrapped,
            recipient=self.public.digest,
            nonce=nonce,
            key_type=released.key_type,
        )
        if handle is not None and opened.handle != handle:
            raise KeyBindingMismatch(
                f"the HSM released key {opened.handle[:64]}, not {handle!s:.64}", code="other-key"
            )
        private = self._private
        if isinstance(private, rsa.RSAPrivateKey):
            material = unwrap_key_rsa_aes(private, released.wrapped)
        else:
            key_type, material = unwrap_key_kem(private, released.wrapped)
            if key_type is not released.key_type:
                raise MalformedInput(
                    f"the wrapped key is {key_type.value}, the response says "
                    f"{released.key_type.value}"
                )
        try:
            # The material must be a key of the type the response names: the RSA format does
            # not carry the type, and the ML-KEM format's code was checked against it above.
            check_wrapped_material(released.key_type, bytes(material))
            return UnwrappedKey(released.kid, released.key_type, bytes(material))
        finally:
            material[:] = bytes(len(material))
