"""The built-in RIM trust anchor: NVIDIA's CoRIM signing Root CA, pinned.

The certificate ships as PEM beside this module (``roots/``, see its README for its origin) and
is pinned here by the SHA-256 of its DER encoding, so swapping the file in an installed package
cannot add trust: a file that does not match its pin, or a root that is not self-signed, makes
loading fail loudly (``ConfigError``). Loading reads package data once per process.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes

from ironroot.crypto import load_certificates
from ironroot.errors import ConfigError

__all__ = ["NVIDIA_RIM_ROOT_FINGERPRINT", "builtin_rim_roots"]

NVIDIA_RIM_ROOT_FINGERPRINT: Final = (
    "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1"
)
"""SHA-256 over the DER of NVIDIA's "NVIDIA CoRIM signing Root CA", lower-case hex."""


@functools.cache
def builtin_rim_roots() -> tuple[x509.Certificate, ...]:
    """NVIDIA's RIM root, checked against its pin and its own signature."""
    data = resources.files("ironroot.rim").joinpath("roots", "nvidia_rim_root.pem").read_bytes()
    certs = load_certificates(data, what="built-in RIM root")
    if len(certs) != 1 or certs[0].fingerprint(hashes.SHA256()).hex() != (
        NVIDIA_RIM_ROOT_FINGERPRINT
    ):
        raise ConfigError("built-in RIM root does not match its pinned fingerprint")
    try:
        certs[0].verify_directly_issued_by(certs[0])
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise ConfigError("built-in RIM root is not self-signed") from exc
    return (certs[0],)
