"""Built-in hardware trust anchors: AMD ARK/ASK/ASVK per product, the Intel SGX Root CA and
NVIDIA's Device Identity CA.

The certificates ship as PEM files beside this module (``roots/``, see its README for their
origin). Each is pinned here by the SHA-256 of its DER encoding, so swapping a file in an
installed package cannot add trust: a file that does not match its pin, an ARK that is not
self-signed, or an ASK/ASVK not signed by its ARK makes loading fail loudly.

Loading reads package data (constants shipped with the code), once per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Final

from cryptography import x509

from ironroot.attestation.evidence._certs import fingerprint, load_certificates, verify_issued_by
from ironroot.attestation.evidence._snp import SnpProduct
from ironroot.errors import ConfigError

__all__ = [
    "AMD_ROOT_FINGERPRINTS",
    "INTEL_SGX_ROOT_FINGERPRINT",
    "NVIDIA_DEVICE_ROOT_FINGERPRINT",
    "SnpTrustAnchor",
    "builtin_intel_root",
    "builtin_nvidia_root",
    "builtin_snp_anchors",
]

# SHA-256 over DER, lower-case hex: (ARK, ASK, ASVK) per product.
AMD_ROOT_FINGERPRINTS: Final[dict[SnpProduct, tuple[str, str, str]]] = {
    SnpProduct.MILAN: (
        "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
        "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
    ),
    SnpProduct.GENOA: (
        "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
        "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
    ),
    SnpProduct.TURIN: (
        "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
        "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
    ),
}
INTEL_SGX_ROOT_FINGERPRINT: Final = (
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
)
NVIDIA_DEVICE_ROOT_FINGERPRINT: Final = (
    "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48"
)


@dataclass(frozen=True, slots=True)
class SnpTrustAnchor:
    """One AMD product's root (ARK) and its two intermediates (ASK for VCEK, ASVK for VLEK)."""

    product: SnpProduct
    ark: x509.Certificate
    ask: x509.Certificate
    asvk: x509.Certificate


def _load_pinned(name: str, pin: str) -> x509.Certificate:
    data = resources.files("ironroot.attestation.evidence").joinpath("roots", name).read_bytes()
    certs = load_certificates(data)
    if len(certs) != 1 or fingerprint(certs[0]).hex() != pin:
        raise ConfigError(f"built-in trust anchor {name} does not match its pinned fingerprint")
    return certs[0]


@functools.cache
def builtin_snp_anchors() -> tuple[SnpTrustAnchor, ...]:
    """The AMD ARK/ASK/ASVK of Milan, Genoa and Turin, checked against their pins."""
    anchors = []
    for product, (ark_pin, ask_pin, asvk_pin) in AMD_ROOT_FINGERPRINTS.items():
        stem = f"amd_{product.value.lower()}"
        ark = _load_pinned(f"{stem}_ark.pem", ark_pin)
        ask = _load_pinned(f"{stem}_ask.pem", ask_pin)
        asvk = _load_pinned(f"{stem}_asvk.pem", asvk_pin)
        # Pinned anchors, checked for integrity only: their extensions are not path input.
        verify_issued_by(ark, ark, profile=None)
        verify_issued_by(ask, ark, profile=None)
        verify_issued_by(asvk, ark, profile=None)
        anchors.append(SnpTrustAnchor(product, ark, ask, asvk))
    return tuple(anchors)


@functools.cache
def builtin_intel_root() -> x509.Certificate:
    """The Intel SGX Root CA, checked against its pin and self-signed."""
    root = _load_pinned("intel_sgx_root_ca.pem", INTEL_SGX_ROOT_FINGERPRINT)
    verify_issued_by(root, root, profile=None)  # a pinned anchor (see above)
    return root


@functools.cache
def builtin_nvidia_root() -> x509.Certificate:
    """NVIDIA's Device Identity CA (the root of every GPU's attestation chain), checked against
    its pin and self-signed."""
    root = _load_pinned("nvidia_device_identity_ca.pem", NVIDIA_DEVICE_ROOT_FINGERPRINT)
    verify_issued_by(root, root, profile=None)  # a pinned anchor (see above)
    return root
