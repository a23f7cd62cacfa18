"""A self-signed device identity for HSMs in tests that do not care which device certifies the
HSM's attestation key (the HSM tests build real chains in ``tests/hsm/_hsm_helpers.py``)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.hsm import DeviceIdentity


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
