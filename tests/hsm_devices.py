"""A self-signed device identity for HSMs in tests that do not care which device certifies the
HSM's attestation key (the HSM tests build real chains in ``tests/hsm/_hsm_helpers.py``)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.hsm import DeviceIdentity, KeyType
from ironroot.hsm._certs import issue_attestation_certificate
from ironroot.hsm._release_statement import sign_release_statement


def self_signed_device(now: dt.datetime | None = None, cn: str = "test device") -> DeviceIdentity:
    """An ES384 key and a self-signed CA certificate for it, valid around ``now``."""
    now = now or dt.datetime.now(dt.UTC)
    key = PrivateKey.generate(Algorithm.ES384)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key.raw, hashes.SHA384())  # type: ignore[arg-type]
    )
    return DeviceIdentity(key, (cert.public_bytes(Encoding.DER),))


class ReleaseSigner:
    """Signs HSM release statements as an HSM would (its attestation key, certified by a
    self-signed device identity): for tests of what receives a release, without an HSM."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC)
        device = self_signed_device(self.now, cn="test HSM device")
        self.key = PrivateKey.generate(Algorithm.ES384)
        self.hsm_id = bytes(range(16))
        certificate = issue_attestation_certificate(
            subject_key=self.key.public_key,
            hsm_id=self.hsm_id,
            issuer=device.signer,
            issuer_chain=device.chain,
            now=self.now - dt.timedelta(hours=1),
        )
        self.chain = (certificate, *device.chain)
        self.roots = [x509.load_der_x509_certificate(device.chain[-1])]

    def sign(
        self,
        *,
        key_type: KeyType,
        recipient: bytes,
        nonce: bytes,
        wrapped: bytes,
        handle: str = "k1",
        ear: bytes = b"an EAR",
    ) -> bytes:
        return sign_release_statement(
            self.key,
            self.chain,
            hsm_id=self.hsm_id,
            handle=handle,
            key_type=key_type,
            recipient=recipient,
            nonce=nonce,
            ear=ear,
            wrapped=wrapped,
            now=int(self.now.timestamp()),
        )
