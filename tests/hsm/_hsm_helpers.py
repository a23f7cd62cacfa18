"""Builders for the HSM tests: a self-made device identity (root CA → device certificate) and
an HSM in memory with a fixed clock and a cheap credential hash."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.hsm import DeviceIdentity, Hsm, HsmConfig, MemoryStorage, Role, Session
from ironroot.rot import MemoryCounter

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
NOW_TS = NOW.timestamp()
SECRET = bytes(range(48))
OTHER_SECRET = bytes(range(1, 49))
OFFICER, OFFICER_PASS = "officer", b"officer-credential"
USER, USER_PASS = "service", b"user-credential"
AUDITOR, AUDITOR_PASS = "auditor", b"auditor-credential"
FAST = HsmConfig(scrypt_n=2**10)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sign_hash(key: PrivateKey) -> hashes.SHA384 | hashes.SHA256 | None:
    if key.algorithm is Algorithm.ES384:
        return hashes.SHA384()
    if key.algorithm is Algorithm.ES256:
        return hashes.SHA256()
    return None


@dataclass(frozen=True)
class DeviceChain:
    """A root CA and a device end-entity certificate under it."""

    identity: DeviceIdentity
    root: x509.Certificate
    root_key: PrivateKey


def make_device(
    algorithm: Algorithm = Algorithm.ES384, *, ca: bool = False, cn: str = "Test device"
) -> DeviceChain:
    root_key = PrivateKey.generate(Algorithm.ES384)
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=3650)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Test device vendor root"))
        .issuer_name(_name("Test device vendor root"))
        .public_key(root_key.public_key.raw)
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key.raw),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(root_key.raw, hashes.SHA384())
    )
    device_key = PrivateKey.generate(algorithm)
    device = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(root.subject)
        .public_key(device_key.public_key.raw)
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, ca, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key.raw),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(root_key.raw, _sign_hash(root_key))
    )
    identity = DeviceIdentity(
        device_key, (device.public_bytes(Encoding.DER), root.public_bytes(Encoding.DER))
    )
    return DeviceChain(identity, root, root_key)


def new_hsm(device: DeviceIdentity, storage: MemoryStorage | None = None, **kwargs: object) -> Hsm:
    options: dict[str, object] = {"config": FAST, "clock": lambda: NOW_TS}
    options.update(kwargs)
    return Hsm.initialize(
        storage if storage is not None else MemoryStorage(),
        SECRET,
        officer=OFFICER,
        credential=OFFICER_PASS,
        device=device,
        **options,  # type: ignore[arg-type]
    )


def sessions(hsm: Hsm) -> tuple[Session, Session, Session]:
    """(officer, user, auditor) sessions; adds the user and auditor identities."""
    officer = hsm.login(OFFICER, OFFICER_PASS)
    hsm.add_identity(officer, USER, Role.USER, USER_PASS)
    hsm.add_identity(officer, AUDITOR, Role.AUDITOR, AUDITOR_PASS)
    return officer, hsm.login(USER, USER_PASS), hsm.login(AUDITOR, AUDITOR_PASS)


class CrashingStorage(MemoryStorage):
    """Raises once at the named step of the next commit, like a power cut there."""

    __slots__ = ("crash_at",)

    def __init__(self, counter: MemoryCounter | None = None) -> None:
        super().__init__(counter)
        self.crash_at = ""

    def _maybe(self, step: str) -> None:
        if self.crash_at == step:
            self.crash_at = ""
            raise StorageError(f"power cut at {step}")

    def write_store(self, data: bytes) -> None:
        super().write_store(data)
        self._maybe("after-store")

    def write_anchor(self, data: bytes) -> None:
        super().write_anchor(data)
        self._maybe("after-anchor")

    def append_audit(self, data: bytes) -> None:
        super().append_audit(data)
        self._maybe("after-append")
        if b'"operation":"audit-rotate"' in data:
            self._maybe("after-rotation-record")

    def archive_audit(self, name: str) -> None:
        super().archive_audit(name)
        self._maybe("after-archive")

    def reset_audit(self, data: bytes = b"") -> None:
        self._maybe("before-reset")
        super().reset_audit(data)

    def remove_audit_segment(self, name: str) -> None:
        self._maybe("before-remove")
        super().remove_audit_segment(name)
