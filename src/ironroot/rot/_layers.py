"""DICE layers IDevID → LDevID → FMC alias → RT alias: CDIs, key pairs and X.509 certificates.

CDI chain (SP 800-108 HMAC-SHA-384, :func:`ironroot.rot._kdf.kdf`; labels as Caliptra's ROM
and FMC name them)::

    CDI_IDevID = KDF(UDS seed,    "idevid_cdi")
    CDI_LDevID = KDF(CDI_IDevID,  "ldevid_cdi",    field entropy)
    CDI_FMC    = KDF(CDI_LDevID,  "fmc_alias_cdi", PCR0)   # device status, key hashes, FMC
    CDI_RT     = KDF(CDI_FMC,     "rt_alias_cdi",  PCR1)   # runtime digest, manifest digest

Like Caliptra's ROM, the FMC CDI takes the ROM's PCR (every measurement the ROM extended) as
its context, and the RT CDI the FMC's PCR. Each layer's key pairs come from its CDI under two
more labels, ``<layer>_ecc_key`` (P-384, FIPS 186-5 A.2.1) and ``<layer>_mldsa_key``
(ML-DSA-87 seed). Same inputs, same keys; any changed measurement, different keys.

Certificates follow the Caliptra 2.x templates (``x509/`` in chipsalliance/caliptra-sw), read
from its real certificates in ``../shared/vectors/caliptra``:

* key id = SHA-256 of the raw public key (uncompressed point, or FIPS 204 public key);
* subject = ``CN=<product> <alg> <layer>, serialNumber=<key id, upper-case hex>``, the issuer is
  the issuing layer's subject;
* serial number = the first 20 bytes of the key id, top bit cleared and bit 2 set (positive,
  and always 20 octets);
* SKI = the first 20 bytes of the key id, AKI = the issuer's;
* validity 2023-01-01T00:00:00Z to 9999-12-31T23:59:59Z (RFC 5280 §4.1.2.5: no expiry);
* extensions in Caliptra's order: basicConstraints (critical), keyUsage (critical),
  tcg-dice-Ueid, extendedKeyUsage with tcg-dice-kp-*, TcbInfo or MultiTcbInfo, SKI, AKI.

The Ueid is the device's: ``0x01`` (EAT UEID type RAND) ‖ the first 16 bytes of the ECC IDevID
key id (17 bytes, Caliptra's size); the ML-DSA chain carries the same Ueid. ECC certificates
are signed ECDSA P-384/SHA-384, ML-DSA certificates ML-DSA-87; ``cryptography`` builds both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import ConfigError, MalformedCertificate
from ironroot.rot._kdf import (
    CDI_SIZE,
    derive_ecc_p384,
    derive_ecc_p384_as,
    derive_mldsa87,
    kdf,
)
from ironroot.rot.dice import (
    Fwid,
    OperationalFlag,
    OperationalFlags,
    TcbInfo,
    build_key_purpose_extension,
    build_multi_tcb_info_extension,
    build_tcb_info_extension,
    build_ueid_extension,
)

__all__ = [
    "CERT_NOT_AFTER",
    "CERT_NOT_BEFORE",
    "FMC_ALIAS",
    "IDEVID",
    "LDEVID",
    "PRODUCT",
    "RT_ALIAS",
    "SHA384_OID",
    "DiceLayer",
    "LayerProfile",
    "build_csr",
    "cert_serial",
    "derive_fmc_alias",
    "derive_idevid",
    "derive_ldevid",
    "derive_rt_alias",
    "device_flags",
    "device_ueid",
    "fmc_alias_tcb_infos",
    "issue_certificate",
    "key_id",
    "layer_name",
    "rt_alias_tcb_info",
    "signature_hash",
]

PRODUCT: Final = "Ironroot"
SHA384_OID: Final = "2.16.840.1.101.3.4.2.2"
CERT_NOT_BEFORE: Final = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
CERT_NOT_AFTER: Final = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
UEID_TYPE_RAND: Final = 0x01
_ALG_NAMES: Final = {Algorithm.ES384: "Ecc384", Algorithm.ML_DSA_87: "MlDsa87"}
_FLAGS_MASK: Final = OperationalFlags.of(
    OperationalFlag.notConfigured,
    OperationalFlag.notSecure,
    OperationalFlag.debug,
    OperationalFlag.fixedWidth,
    width=32,
)


@dataclass(frozen=True, slots=True)
class LayerProfile:
    """What a layer's certificate says about its key."""

    layer: str  # "IDevID", "LDevID", "FMC Alias", "Rt Alias", or a DPE label
    ca: bool
    path_length: int | None
    digital_signature: bool
    key_purposes: tuple[str, ...]


IDEVID: Final = LayerProfile("IDevID", True, 7, False, ("identityInit", "eca"))
LDEVID: Final = LayerProfile("LDevID", True, 6, False, ("identityLoc", "eca"))
FMC_ALIAS: Final = LayerProfile("FMC Alias", True, 5, False, ("eca",))
RT_ALIAS: Final = LayerProfile("Rt Alias", True, 4, True, ("attestLoc", "eca"))


@dataclass(frozen=True, slots=True)
class DiceLayer:
    """One DICE layer: its CDI (secret) and its two key pairs.

    The key pairs are derived from the CDI when first asked for (and then kept by this
    object): a quote needs the runtime alias keys only, so the other layers' keys — ECDSA
    point multiplications and ML-DSA-87 key expansions — are not derived for it."""

    profile: LayerProfile
    cdi: bytes = field(repr=False)
    prefix: bytes = field(repr=False)
    _keys: dict[Algorithm, PrivateKey] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def ecc(self) -> PrivateKey:
        return self.key(Algorithm.ES384)

    @property
    def mldsa(self) -> PrivateKey:
        return self.key(Algorithm.ML_DSA_87)

    def key(self, algorithm: Algorithm) -> PrivateKey:
        found = self._keys.get(algorithm)
        if found is None:
            if algorithm is Algorithm.ES384:
                found = derive_ecc_p384(self.cdi, self.prefix + b"_ecc_key")
            elif algorithm is Algorithm.ML_DSA_87:
                found = derive_mldsa87(self.cdi, self.prefix + b"_mldsa_key")
            else:
                raise ConfigError(
                    f"DICE layers have ES384 and ML-DSA-87 keys, not {algorithm.label}"
                )
            self._keys[algorithm] = found
        return found

    def certified(self, public: PublicKey) -> bool:
        """Whether ``public`` (a certificate's key) is this layer's ECDSA P-384 key. The key
        pair, when it is, is kept as derived: the comparison itself makes it (one point
        multiplication, :func:`~ironroot.rot._kdf.derive_ecc_p384_as`)."""
        found = self._keys.get(Algorithm.ES384)
        if found is not None:
            return found.public_key == public
        found = derive_ecc_p384_as(self.cdi, self.prefix + b"_ecc_key", public)
        if found is None:
            return False
        self._keys[Algorithm.ES384] = found
        return True

    def name(self, algorithm: Algorithm) -> x509.Name:
        """The X.509 subject of this layer's certificate for ``algorithm``."""
        return layer_name(self.profile.layer, self.key(algorithm).public_key)


def _layer(profile: LayerProfile, cdi: bytes, prefix: bytes) -> DiceLayer:
    return DiceLayer(profile=profile, cdi=cdi, prefix=prefix)


def _check(value: bytes, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise ConfigError(f"{what} must be {size} bytes")
    return value


def derive_idevid(uds_seed: bytes) -> DiceLayer:
    if not uds_seed:
        raise ConfigError("the UDS is not programmed")
    return _layer(IDEVID, kdf(uds_seed, b"idevid_cdi"), b"idevid")


def derive_ldevid(idevid: DiceLayer, field_entropy: bytes) -> DiceLayer:
    return _layer(LDEVID, kdf(idevid.cdi, b"ldevid_cdi", field_entropy), b"ldevid")


def derive_fmc_alias(ldevid: DiceLayer, pcr0: bytes) -> DiceLayer:
    cdi = kdf(ldevid.cdi, b"fmc_alias_cdi", _check(pcr0, CDI_SIZE, "PCR0"))
    return _layer(FMC_ALIAS, cdi, b"fmc_alias")


def derive_rt_alias(fmc: DiceLayer, pcr1: bytes) -> DiceLayer:
    cdi = kdf(fmc.cdi, b"rt_alias_cdi", _check(pcr1, CDI_SIZE, "PCR1"))
    return _layer(RT_ALIAS, cdi, b"rt_alias")


# --- names, ids and extension values -------------------------------------------------------


def key_id(public: PublicKey) -> bytes:
    """Caliptra's key id: SHA-256 of the raw public key (32 bytes)."""
    return hashlib.sha256(public.raw_bytes()).digest()


def layer_name(layer: str, public: PublicKey) -> x509.Name:
    alg = _ALG_NAMES.get(public.algorithm)
    if alg is None:
        raise ConfigError(f"DICE certificates use ES384 or ML-DSA-87 keys, not {public.algorithm}")
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{PRODUCT} {alg} {layer}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, key_id(public).hex().upper()),
        ]
    )


def cert_serial(public: PublicKey) -> int:
    """20 octets of the key id, made positive (bit 7 clear) and full-length (bit 2 set)."""
    prefix = bytearray(key_id(public)[:20])
    prefix[0] = (prefix[0] & 0x7F) | 0x04
    return int.from_bytes(prefix, "big")


def device_ueid(idevid_ecc: PublicKey) -> bytes:
    """The device's 17-byte Ueid: type RAND ‖ 16 bytes of the ECC IDevID key id."""
    return bytes([UEID_TYPE_RAND]) + key_id(idevid_ecc)[:16]


def device_flags(*, not_configured: bool, not_secure: bool, debug: bool) -> OperationalFlags:
    """DEVICE_INFO flags the Caliptra way: fixed width (32 bits, ``fixedWidth`` set)."""
    flags: list[OperationalFlag] = [OperationalFlag.fixedWidth]
    if not_configured:
        flags.append(OperationalFlag.notConfigured)
    if not_secure:
        flags.append(OperationalFlag.notSecure)
    if debug:
        flags.append(OperationalFlag.debug)
    return OperationalFlags.of(*flags, width=32)


def fmc_alias_tcb_infos(
    *,
    device_info_hash: bytes,
    fuse_svn: int,
    flags: OperationalFlags,
    fmc_digest: bytes,
    fmc_svn: int,
) -> tuple[TcbInfo, TcbInfo]:
    """The FMC alias MultiTcbInfo: ``DEVICE_INFO`` then ``FMC_INFO`` (Caliptra's layout)."""
    device = TcbInfo.with_svn(
        fuse_svn,
        caliptra=True,
        fwids=(Fwid(SHA384_OID, _check(device_info_hash, 48, "device info hash")),),
        flags=flags,
        type=b"DEVICE_INFO",
        flags_mask=_FLAGS_MASK,
    )
    fmc = TcbInfo.with_svn(
        fmc_svn,
        caliptra=True,
        fwids=(Fwid(SHA384_OID, _check(fmc_digest, 48, "FMC digest")),),
        type=b"FMC_INFO",
    )
    return device, fmc


def rt_alias_tcb_info(*, runtime_digest: bytes, svn: int) -> TcbInfo:
    """The RT alias TcbInfo: runtime FWID, SVN (``0x100|svn``), layer 2 (ROM 0, FMC 1)."""
    return TcbInfo.with_svn(
        svn,
        caliptra=True,
        fwids=(Fwid(SHA384_OID, _check(runtime_digest, 48, "runtime digest")),),
        layer=2,
        type=b"RT_INFO",
    )


# --- certificates and CSRs -----------------------------------------------------------------


def signature_hash(key: PrivateKey) -> hashes.SHA384 | None:
    """The hash ``cryptography`` signs with: SHA-384 for ES384, none for ML-DSA-87."""
    if key.algorithm is Algorithm.ES384:
        return hashes.SHA384()
    if key.algorithm is Algorithm.ML_DSA_87:
        return None
    raise ConfigError(f"DICE certificates are signed ES384 or ML-DSA-87, not {key.algorithm}")


def _key_usage(profile: LayerProfile) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=profile.digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=profile.ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _ski(public: PublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier(key_id(public)[:20])


def issue_certificate(
    *,
    profile: LayerProfile,
    subject: PublicKey,
    issuer_key: PrivateKey,
    issuer_name: x509.Name,
    ueid: bytes,
    tcb_infos: Sequence[TcbInfo] = (),
    multi: bool = False,
    not_before: dt.datetime = CERT_NOT_BEFORE,
    not_after: dt.datetime = CERT_NOT_AFTER,
) -> bytes:
    """A DER X.509 v3 certificate for ``subject`` in the layer ``profile``, signed by
    ``issuer_key`` (whose subject is ``issuer_name``). One TcbInfo is written as tcg-dice-TcbInfo
    unless ``multi``; several (or ``multi``) as MultiTcbInfo."""
    if subject.algorithm is not issuer_key.algorithm:
        raise ConfigError("a DICE chain stays in one algorithm: issuer and subject differ")
    builder = (
        x509.CertificateBuilder()
        .subject_name(layer_name(profile.layer, subject))
        .issuer_name(issuer_name)
        .public_key(subject.raw)
        .serial_number(cert_serial(subject))
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True
        )
        .add_extension(_key_usage(profile), critical=True)
        .add_extension(build_ueid_extension(ueid), critical=False)
    )
    if profile.key_purposes:
        builder = builder.add_extension(
            build_key_purpose_extension(*profile.key_purposes), critical=False
        )
    if multi or len(tcb_infos) > 1:
        builder = builder.add_extension(build_multi_tcb_info_extension(tcb_infos), critical=False)
    elif tcb_infos:
        builder = builder.add_extension(build_tcb_info_extension(tcb_infos[0]), critical=False)
    builder = builder.add_extension(_ski(subject), critical=False).add_extension(
        x509.AuthorityKeyIdentifier(key_id(issuer_key.public_key)[:20], None, None),
        critical=False,
    )
    try:
        cert = builder.sign(issuer_key.raw, signature_hash(issuer_key))
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate(f"certificate cannot be built: {exc}") from exc
    return cert.public_bytes(Encoding.DER)


def build_csr(key: PrivateKey, *, profile: LayerProfile, ueid: bytes) -> bytes:
    """A DER PKCS#10 CSR for a layer key (Caliptra's IDevID CSR: BC, KU, Ueid, EKU)."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(layer_name(profile.layer, key.public_key))
        .add_extension(
            x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True
        )
        .add_extension(_key_usage(profile), critical=True)
        .add_extension(build_ueid_extension(ueid), critical=False)
        .add_extension(build_key_purpose_extension(*profile.key_purposes), critical=False)
    )
    try:
        csr = builder.sign(key.raw, signature_hash(key))
    except (ValueError, TypeError) as exc:
        raise MalformedCertificate(f"CSR cannot be built: {exc}") from exc
    return csr.public_bytes(Encoding.DER)
