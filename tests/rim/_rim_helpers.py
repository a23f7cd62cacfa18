"""Shared by the RIM tests: NVIDIA's real RIMs (read in place from the vectors), a test RIM
signing chain, and SWID tags signed with it by signxml (enveloped, ECDSA-SHA384, C14N 1.1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from ironroot.attestation import VerifyOptions, verify_evidence
from ironroot.attestation.evidence import GpuEvidence
from ironroot.crypto import PrivateKey, PublicKey
from ironroot.rim import rim_statement
from ironroot.transparency import TransparencyClient
from ironroot_vectors import vectors_dir, vectors_missing

# Inside every vector RIM's chain validity (2023-09-06 .. 2025-06-22).
NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
AFTER = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)  # every vector RIM has expired by then

VBIOS_FILE = "1010_0200_882_96005E0001_PROD.swidtag"
VBIOS_TEST_FILE = "1010_0200_882_96005E0001_test_no_gpu.swidtag"
DRIVER_FILE = "Driver_RIM_test_no_gpu.swidtag"
VBIOS_ID = "NV_GPU_VBIOS_1010_0200_882_96005E0001"
DRIVER_ID = "NV_GPU_DRIVER_GH100_545.00"

SWID = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
SHA384_NS = "http://www.w3.org/2001/04/xmlenc#sha384"


def nvidia_dir() -> Path:
    base = vectors_dir()
    if base is None or not (base / "gpu" / "nvidia" / "rims").is_dir():
        vectors_missing("the NVIDIA GPU vectors (gpu/nvidia/) are not present")
    return base / "gpu" / "nvidia"


def vector_rim(name: str) -> bytes:
    return (nvidia_dir() / "rims" / name).read_bytes()


def vector_rims() -> list[Path]:
    """The vector RIMs, or none when the vectors are absent (safe at collection time: a test
    that needs them calls :func:`nvidia_dir`, which skips or fails as configured)."""
    base = vectors_dir()
    if base is None:
        return []
    return sorted((base / "gpu" / "nvidia" / "rims").glob("*.swidtag"))


H100_NONCE = bytes.fromhex("931d8dd0add203ac3d8b4fbde75e115278eefcdceac5b87671a748f32364dfcb")


def vector_evidence() -> GpuEvidence:
    """The H100 report of the vectors, verified as ``nvidia-gpu`` evidence (chain to NVIDIA's
    Device Identity CA, signature, nonce) and typed."""
    base = nvidia_dir()
    options = VerifyOptions(
        now=NOW,
        nonce=H100_NONCE,
        certificates=((base / "hopperCertChain.txt").read_bytes(),),
    )
    data = (base / "hopperAttestationReport.txt").read_bytes()
    return GpuEvidence.from_claims(verify_evidence(data, options, format="nvidia-gpu"))


def vector_blocks() -> dict[int, bytes]:
    """The 64 measurement blocks of the H100 report (SPDM index -> value)."""
    blocks = dict(vector_evidence().measurements)
    assert sorted(blocks) == list(range(1, 65))
    return blocks


def golden_blocks(*rims: bytes, alternative: int = 0) -> dict[int, bytes]:
    """Blocks that every active measurement of ``rims`` allows (its ``alternative``-th value,
    or the first when it has fewer)."""
    blocks: dict[int, bytes] = {}
    for data in rims:
        root = etree.fromstring(data)
        for resource in root.iter(f"{{{SWID}}}Resource"):
            if resource.get("active") != "True":
                continue
            count = int(resource.get("alternatives"))
            pick = alternative if alternative < count else 0
            value = resource.get(f"{{{SHA384_NS}}}Hash{pick}")
            blocks[int(resource.get("index")) + 1] = bytes.fromhex(value)
    return blocks


def strip_signature(data: bytes) -> bytes:
    """The SWID tag without its ds:Signature (what a signer signs)."""
    root = etree.fromstring(data)
    for signature in root.findall(f"{{{DSIG}}}Signature"):
        root.remove(signature)
    return etree.tostring(root)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test RIM Authority"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA384())


def issue_certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    not_before: dt.datetime = NOW - dt.timedelta(days=365),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
) -> x509.Certificate:
    """One certificate of a test RIM chain (for chains shaped unlike :class:`RimPki`)."""
    return _cert(
        subject,
        key,
        issuer,
        issuer_key,
        ca=ca,
        path_length=path_length,
        not_before=not_before,
        not_after=not_after,
    )


@dataclasses.dataclass
class RimPki:
    """A RIM signing chain shaped like NVIDIA's: root -> CA (path length 0) -> signer."""

    root: x509.Certificate
    ca: x509.Certificate
    leaf: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(
        cls,
        *,
        root_name: str = "Test RIM Root CA",
        not_before: dt.datetime = NOW - dt.timedelta(days=365),
        not_after: dt.datetime = NOW + dt.timedelta(days=365),
    ) -> RimPki:
        root_key = ec.generate_private_key(ec.SECP384R1())
        ca_key = ec.generate_private_key(ec.SECP384R1())
        leaf_key = ec.generate_private_key(ec.SECP384R1())
        window = {"not_before": not_before, "not_after": not_after}
        root = _cert(root_name, root_key, root_name, root_key, ca=True, **window)
        ca = _cert("Test RIM CA", ca_key, root_name, root_key, ca=True, path_length=0, **window)
        leaf = _cert("Test RIM Signer", leaf_key, "Test RIM CA", ca_key, ca=False, **window)
        return cls(root=root, ca=ca, leaf=leaf, leaf_key=leaf_key)

    def sign(
        self,
        unsigned: bytes,
        *,
        certs: list[x509.Certificate] | None = None,
        signature_algorithm: SignatureMethod = SignatureMethod.ECDSA_SHA384,
        digest_algorithm: DigestAlgorithm = DigestAlgorithm.SHA384,
    ) -> bytes:
        """``unsigned`` (a SWID tag) with an enveloped signature, KeyInfo leaf first."""
        signer = XMLSigner(
            signature_algorithm=signature_algorithm,
            digest_algorithm=digest_algorithm,
            c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1,
        )
        chain = certs if certs is not None else [self.leaf, self.ca, self.root]
        signed = signer.sign(etree.fromstring(unsigned), key=self.leaf_key, cert=chain)
        return etree.tostring(signed)


def swid(
    *,
    version: str = "96.00.5E.00.01",
    product: str = "GH100",
    resources: str | None = None,
    meta_extra: str = "",
) -> bytes:
    """A small SWID-tag RIM in NVIDIA's shape (unsigned)."""
    if resources is None:
        resources = (
            f'<Resource type="Measurement" index="0" active="True" alternatives="1" '
            f'ns2:Hash0="{"11" * 48}" name="Measurement_0" size="48"/>'
            f'<Resource type="Measurement" index="1" active="True" alternatives="2" '
            f'ns2:Hash0="{"22" * 48}" ns2:Hash1="{"33" * 48}" name="Measurement_1" size="48"/>'
            f'<Resource type="Measurement" index="2" active="False" alternatives="1" '
            f'ns2:Hash0="{"00" * 48}" name="Measurement_2" size="48"/>'
        )
    return (
        f'<SoftwareIdentity xmlns="{SWID}" xmlns:ns2="{SHA384_NS}" '
        'xmlns:rim="https://trustedcomputinggroup.org/resource/'
        'tcg-reference-integrity-manifest-rim-information-model/" '
        'name="GH100" tagId="test-tag" version="1.0" tagVersion="0">'
        '<Entity name="NVIDIA Corporation" role="softwareCreator tagCreator"/>'
        f'<Meta colloquialVersion="{version}" product="{product}" edition="GPU" revision="r1" '
        'rim:PlatformManufacturerStr="NVIDIA Corporation" rim:PlatformModel="GH100" '
        f"{meta_extra}/>"
        f"<Payload>{resources}</Payload>"
        "</SoftwareIdentity>"
    ).encode()


REGISTRANT = "https://rims.example"


@dataclasses.dataclass
class RimLog:
    """A live transparency service that admits the RIM registrant's statements."""

    client: TransparencyClient
    service_keys: dict[bytes, PublicKey]
    key: PrivateKey
    url: str

    def register(self, data: bytes, rim_id: str, *, iss: str = REGISTRANT) -> bytes:
        statement = rim_statement(data, self.key, iss=iss, rim_id=rim_id, now=NOW)
        return self.client.register(statement).transparent_statement
