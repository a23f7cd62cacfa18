"""DPE-style child identities: the runtime certifies a key for the layer above it.

Modelled on the DICE Protection Environment that Caliptra's runtime runs (TCG DPE, iRoT
profile): the layer above (a BMC, host firmware, a confidential VM) hands its measurement to
the runtime, which derives a child CDI and key pairs from its own CDI and that measurement,
and issues a leaf certificate signed by the RT alias key:

    CDI_child = KDF(CDI_RT, "dpe_child_cdi", measurement ‖ label)

with key labels ``dpe_child_ecc_key`` and ``dpe_child_mldsa_key``. The measurement is a
SHA-384 digest (48 bytes, DPE's TCI size in Caliptra), so the context is unambiguous. The
certificate (ECC signed ES384 by the ECC RT alias, ML-DSA-87 by the ML-DSA RT alias) is an
end-entity certificate (CA false, digitalSignature, tcg-dice-kp-attestLoc) with a TcbInfo:
the measurement as a SHA-384 FWID, ``layer`` 3 and ``type`` = the label.

Deterministic: the same runtime (CDI) and the same (measurement, label) give the same keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.rot._kdf import derive_ecc_p384, derive_mldsa87, kdf
from ironroot.rot._layers import SHA384_OID, DiceLayer, LayerProfile, issue_certificate
from ironroot.rot.dice import Fwid, TcbInfo

__all__ = ["ChildIdentity", "derive_child_identity"]

_LABEL: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,31}")
MEASUREMENT_SIZE: Final = 48
CHILD_LAYER: Final = 3


@dataclass(frozen=True, slots=True)
class ChildIdentity:
    """A child layer's identity: its keys (for the child) and certificates (DER)."""

    label: str
    measurement: bytes
    ecc_certificate: bytes = field(repr=False)
    mldsa_certificate: bytes = field(repr=False)
    ecc_key: PrivateKey = field(repr=False)
    mldsa_key: PrivateKey = field(repr=False)


def _check_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise ConfigError("a child label is 1–32 letters, digits, space, '.', '_' or '-'")
    return label


def derive_child_identity(
    rt_alias: DiceLayer, measurement: bytes, *, label: str, ueid: bytes
) -> ChildIdentity:
    """Derive and certify the child of ``rt_alias`` that measured ``measurement``."""
    label = _check_label(label)
    if not isinstance(measurement, bytes) or len(measurement) != MEASUREMENT_SIZE:
        raise ConfigError(f"a child measurement is a {MEASUREMENT_SIZE}-byte SHA-384 digest")
    cdi = kdf(rt_alias.cdi, b"dpe_child_cdi", measurement + label.encode())
    keys = {
        Algorithm.ES384: derive_ecc_p384(cdi, b"dpe_child_ecc_key"),
        Algorithm.ML_DSA_87: derive_mldsa87(cdi, b"dpe_child_mldsa_key"),
    }
    profile = LayerProfile(label, False, None, True, ("attestLoc",))
    tcb = TcbInfo(fwids=(Fwid(SHA384_OID, measurement),), layer=CHILD_LAYER, type=label.encode())
    certs = {
        alg: issue_certificate(
            profile=profile,
            subject=key.public_key,
            issuer_key=rt_alias.key(alg),
            issuer_name=rt_alias.name(alg),
            ueid=ueid,
            tcb_infos=(tcb,),
        )
        for alg, key in keys.items()
    }
    return ChildIdentity(
        label=label,
        measurement=measurement,
        ecc_certificate=certs[Algorithm.ES384],
        mldsa_certificate=certs[Algorithm.ML_DSA_87],
        ecc_key=keys[Algorithm.ES384],
        mldsa_key=keys[Algorithm.ML_DSA_87],
    )
