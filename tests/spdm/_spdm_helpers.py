"""Shared fixtures for the SPDM tests: a small X.509 chain, measurements, a device pair."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.spdm import (
    BaseAsymAlgo,
    BaseHashAlgo,
    MeasurementBlock,
    MeasurementValueType,
    OpaqueElement,
    Requester,
    Responder,
    SpdmVersion,
    Transport,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
ALL_ASYM = BaseAsymAlgo.ECDSA_P256 | BaseAsymAlgo.ECDSA_P384 | BaseAsymAlgo.ECDSA_P521
ALL_HASH = BaseHashAlgo.SHA_256 | BaseHashAlgo.SHA_384 | BaseHashAlgo.SHA_512
BOTH = (SpdmVersion.V1_2, SpdmVersion.V1_3)
_HASHES: dict[Algorithm, hashes.HashAlgorithm] = {
    Algorithm.ES256: hashes.SHA256(),
    Algorithm.ES384: hashes.SHA384(),
    Algorithm.ES512: hashes.SHA512(),
}


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_cert(
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    *,
    ca: bool,
    not_before: dt.datetime = NOW - dt.timedelta(days=365),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    key_usage: bool = True,
    key_cert_sign: bool | None = None,
) -> bytes:
    """A DER certificate for ``key`` signed by ``issuer_key`` (built with pyca, test-only).

    Its KeyUsage signs certificates (keyCertSign, cRLSign) or messages (digitalSignature):
    certificates when it is a CA, unless ``key_cert_sign`` says otherwise."""
    signs_certificates = ca if key_cert_sign is None else key_cert_sign
    signing_key = issuer_key.raw
    public = key.public_key.raw
    assert isinstance(signing_key, ec.EllipticCurvePrivateKey)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if key_usage:  # what libspdm requires of a device leaf
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=not signs_certificates,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=signs_certificates,
                crl_sign=signs_certificates,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    cert = builder.sign(signing_key, _HASHES[issuer_key.algorithm])
    return cert.public_bytes(serialization.Encoding.DER)


class Device:
    """A root CA, an intermediate CA and a leaf: the chain is root first, leaf last."""

    def __init__(self, algorithm: Algorithm = Algorithm.ES384, *, leaf_days: int = 365) -> None:
        self.root_key = PrivateKey.generate(algorithm)
        self.ca_key = PrivateKey.generate(algorithm)
        self.leaf_key = PrivateKey.generate(algorithm)
        root_name, ca_name = "Ironroot Test Root", "Ironroot Test Device CA"
        self.root = make_cert(root_name, self.root_key, root_name, self.root_key, ca=True)
        self.intermediate = make_cert(ca_name, self.ca_key, root_name, self.root_key, ca=True)
        self.leaf = make_cert(
            "Ironroot Test Device",
            self.leaf_key,
            ca_name,
            self.ca_key,
            ca=False,
            not_after=NOW + dt.timedelta(days=leaf_days),
        )
        self.chain = [self.root, self.intermediate, self.leaf]


DEVICE_MODE = bytes.fromhex("04000000040000000000000000000000")
BLOCKS = (
    MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, b"rom image bytes", raw=True),
    MeasurementBlock(2, MeasurementValueType.MUTABLE_FIRMWARE, b"firmware v1.2.3", raw=True),
    MeasurementBlock(3, MeasurementValueType.HARDWARE_CONFIG, bytes(range(48))),
    MeasurementBlock(4, MeasurementValueType.VERSION, b"1.2.3", raw=True),
    MeasurementBlock(
        5, MeasurementValueType.SECURE_VERSION_NUMBER, (7).to_bytes(8, "little"), raw=True
    ),
    MeasurementBlock(0xFE, MeasurementValueType.DEVICE_MODE, DEVICE_MODE, raw=True),
)
OPAQUE = (OpaqueElement(0, b"", b"ironroot"),)

Wrap = Callable[[Transport], Transport]


def make_responder(
    device: Device, versions: tuple[SpdmVersion, ...] = BOTH, **kwargs: object
) -> Responder:
    kwargs.setdefault("opaque_elements", OPAQUE)
    return Responder(device.leaf_key, device.chain, BLOCKS, versions=versions, **kwargs)  # type: ignore[arg-type]


def make_requester(
    transport: Transport, device: Device, versions: tuple[SpdmVersion, ...] = BOTH, **kwargs: object
) -> Requester:
    kwargs.setdefault("base_asym_algo", ALL_ASYM)
    kwargs.setdefault("base_hash_algo", ALL_HASH)
    kwargs.setdefault("now", NOW)
    return Requester(transport, root_certificate=device.root, versions=versions, **kwargs)  # type: ignore[arg-type]


def make_pair(
    device: Device,
    *,
    versions: tuple[SpdmVersion, ...] = BOTH,
    requester_versions: tuple[SpdmVersion, ...] = BOTH,
    wrap: Wrap | None = None,
) -> tuple[Responder, Requester]:
    responder = make_responder(device, versions)
    transport: Transport = wrap(responder) if wrap is not None else responder
    return responder, make_requester(transport, device, requester_versions)


class Recorder:
    """A transport that passes messages through and keeps every (request, response)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.log: list[tuple[bytes, bytes]] = []

    def __call__(self, request: bytes) -> bytes:
        response = self.inner(request)
        self.log.append((request, response))
        return response
