"""Builders shared by the transparency tests: a configured data directory, statements, certs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot_pg import TestStore

VENDOR_ISS = "https://vendor.example"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CURRENT_STORE: TestStore | None = None
"""The running test's log store (set by conftest.py's ``log_store``)."""


def write_config(
    data: Path,
    *,
    issuers: Sequence[tuple[str, PrivateKey]] = (),
    roots: Sequence[x509.Certificate] = (),
    receipt_algorithms: Sequence[str] = ("ES384",),
    accepted: Sequence[str] | None = None,
    policy: str = "",
    tokens: Sequence[str] = (),
    max_statement_bytes: int = 65535,
    registration_wait: float = 5.0,
    checkpoint_algorithm: str = "Ed25519",
    store: TestStore | None = None,
) -> Path:
    data.mkdir(parents=True, exist_ok=True)
    lines = [
        "[transparency]",
        'service_issuer = "https://transparency.example"',
        f"receipt_algorithms = {list(receipt_algorithms)!r}".replace("'", '"'),
        f"max_statement_bytes = {max_statement_bytes}",
        f"policy = {policy!r}".replace("'", '"') if '"' not in policy else f"policy = '{policy}'",
        f"registration_wait = {registration_wait}",
    ]
    if accepted is not None:
        lines.append(f"accepted_algorithms = {list(accepted)!r}".replace("'", '"'))
    if roots:
        pem = b"".join(r.public_bytes(serialization.Encoding.PEM) for r in roots)
        (data / "roots.pem").write_bytes(pem)
        lines.append('x509_roots = ["roots.pem"]')
    for i, (iss, key) in enumerate(issuers):
        (data / f"issuer{i}.pub.pem").write_bytes(key.public_key.to_pem())
        lines += ["[[transparency.issuers]]", f'iss = "{iss}"', f'key = "issuer{i}.pub.pem"']
    lines += ["[log]", f'checkpoint_algorithm = "{checkpoint_algorithm}"']
    store = store if store is not None else CURRENT_STORE
    if store is not None:
        lines += store.toml_lines()
    lines.append("[auth]")
    lines.append(f"write_tokens = {list(tokens)!r}".replace("'", '"'))
    (data / "ironroot.toml").write_text("\n".join(lines) + "\n")
    return data


def make_root() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed P-384 root CA valid ten years either side of NOW."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vendor Root CA")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=3650))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(root_key, hashes.SHA384())
    )
    return root, root_key


def make_ca_chain(
    *,
    leaf_alg: Algorithm = Algorithm.ES256,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    cn: str = "Vendor Release Signing",
    root: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[x509.Certificate, x509.Certificate, PrivateKey]:
    """A leaf code-signing certificate under ``root`` (a new root if None): (root, leaf, key)."""
    root_cert, root_key = root if root is not None else make_root()
    root_name = root_cert.subject
    leaf_key = PrivateKey.generate(leaf_alg)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vendor"),
                ]
            )
        )
        .issuer_name(root_name)
        .public_key(leaf_key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA384())
    )
    return root_cert, leaf, leaf_key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
