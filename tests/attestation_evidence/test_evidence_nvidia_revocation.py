"""``nvidia-gpu`` revocation: NVIDIA publishes CRLs for its CA levels (each CA certificate's
CRL distribution point names one), and a GPU chain is checked against the CRLs given, as SNP
and TDX chains are; before, the check was never run and a revoked GPU identity CA passed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from test_evidence_nvidia import FWID, NONCE, NOW, _cert, _tlv

from ironroot.attestation.evidence import (
    NVIDIA_GPU_FORMAT,
    CheckLog,
    EvidenceCaches,
    EvidenceClaims,
    VerifyOptions,
    verify_evidence,
    verify_nvidia_gpu,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import CertificateRevoked, ChainNotTrusted, CollateralExpired
from ironroot.spdm import (
    GetMeasurements,
    MeasurementBlock,
    Measurements,
    MeasurementValueType,
    SpdmVersion,
)
from tee_fakes import make_crl


@dataclasses.dataclass
class Gpu:
    """A self-made GPU chain (root → GH100-like identity CA → attestation leaf) with its keys."""

    root: x509.Certificate
    root_key: PrivateKey
    ica: x509.Certificate
    ica_key: PrivateKey
    leaf: x509.Certificate
    leaf_key: PrivateKey

    @property
    def chain_pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in (self.leaf, self.ica, self.root)
        )

    def report(self) -> bytes:
        request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, NONCE, 0).encode()
        blocks = [
            MeasurementBlock(i, MeasurementValueType.MUTABLE_FIRMWARE, bytes([i]) * 48)
            for i in range(1, 3)
        ]
        opaque = _tlv(17, b"1010\x00") + _tlv(20, FWID)
        response = Measurements(
            SpdmVersion.V1_1, tuple(blocks), hashlib.sha256(NONCE).digest(), opaque
        ).encode_unsigned()
        return request + response + self.leaf_key.sign(request + response)

    def crl(
        self,
        revoked: list[int],
        *,
        by_ica: bool = False,
        key: PrivateKey | None = None,
        next_update: dt.datetime | None = None,
    ) -> x509.CertificateRevocationList:
        issuer = self.ica if by_ica else self.root
        signer = key or (self.ica_key if by_ica else self.root_key)
        return make_crl(
            issuer.subject,
            signer.raw,  # type: ignore[arg-type]
            revoked,
            last_update=NOW - dt.timedelta(days=1),
            next_update=next_update or NOW + dt.timedelta(days=6),
        )


@pytest.fixture(scope="module")
def gpu() -> Gpu:
    root_key, ica_key, leaf_key = (PrivateKey.generate(Algorithm.ES384) for _ in range(3))
    root = _cert("Fake Device Identity CA", root_key, "Fake Device Identity CA", root_key, ca=True)
    ica = _cert("Fake GH100 Identity", ica_key, "Fake Device Identity CA", root_key, ca=True)
    leaf = _cert("Fake FMC LF", leaf_key, "Fake GH100 Identity", ica_key, ca=False, fwid=FWID)
    return Gpu(root, root_key, ica, ica_key, leaf, leaf_key)


def _verify(
    gpu: Gpu,
    crls: list[x509.CertificateRevocationList],
    *,
    log: CheckLog | None = None,
    allow_stale: bool = False,
    caches: EvidenceCaches | None = None,
) -> EvidenceClaims:
    return verify_nvidia_gpu(
        gpu.report(),
        [gpu.chain_pem],
        now=NOW,
        root=gpu.root,
        crls=crls,
        allow_stale_collateral=allow_stale,
        checks=log,
        cache=None if caches is None else caches.get(NVIDIA_GPU_FORMAT),  # type: ignore[arg-type]
    )


def test_a_revoked_identity_ca_is_refused(gpu: Gpu) -> None:
    with pytest.raises(CertificateRevoked) as caught:
        _verify(gpu, [gpu.crl([gpu.ica.serial_number])])
    assert caught.value.check == "revocation"
    assert caught.value.code == "certificate-revoked"
    assert "'Fake GH100 Identity'" in caught.value.detail


def test_a_revoked_attestation_key_is_refused_by_its_issuers_crl(gpu: Gpu) -> None:
    with pytest.raises(CertificateRevoked) as caught:
        _verify(gpu, [gpu.crl([gpu.leaf.serial_number], by_ica=True)])
    assert "'Fake FMC LF'" in caught.value.detail


def test_a_crl_that_lists_nothing_of_the_chain_passes_and_says_what_it_covered(gpu: Gpu) -> None:
    log = CheckLog()
    claims = _verify(gpu, [gpu.crl([12345])], log=log)
    revocation = next(c for c in log.checks if c.name == "revocation")
    assert revocation.ok
    assert revocation.detail == (
        "not revoked: Fake GH100 Identity, Fake Device Identity CA; no CRL given for: Fake FMC LF"
    )
    assert "stale_collateral" not in claims.raw
    assert "revocation" not in [c.name for c in log.not_checked]


def test_without_a_crl_of_the_chain_revocation_is_listed_as_not_checked(gpu: Gpu) -> None:
    log = CheckLog()
    _verify(gpu, [], log=log)
    assert [(c.name, c.reason) for c in log.not_checked if c.name != "debug-mode"] == [
        ("revocation", "no CRL given (NVIDIA's OCSP service is not consulted offline)")
    ]
    other = PrivateKey.generate(Algorithm.ES384)
    unrelated = make_crl(
        x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Someone else")]),
        other.raw,  # type: ignore[arg-type]
        [gpu.ica.serial_number],
        last_update=NOW - dt.timedelta(days=1),
    )
    log = CheckLog()
    _verify(gpu, [unrelated], log=log)
    assert [(c.name, c.reason) for c in log.not_checked if c.name != "debug-mode"] == [
        ("revocation", "none of the 1 CRL(s) given is of this chain's CAs")
    ]


def test_a_crl_in_the_roots_name_signed_by_another_key_is_refused(gpu: Gpu) -> None:
    forged = gpu.crl([], key=PrivateKey.generate(Algorithm.ES384))
    with pytest.raises(ChainNotTrusted) as caught:
        _verify(gpu, [forged])
    assert caught.value.check == "revocation"
    assert caught.value.detail == "CRL of 'Fake Device Identity CA' has an invalid signature"


def test_a_stale_crl_is_refused_unless_stale_collateral_is_allowed(gpu: Gpu) -> None:
    stale = gpu.crl([], next_update=NOW - dt.timedelta(hours=1))
    with pytest.raises(CollateralExpired) as caught:
        _verify(gpu, [stale])
    assert caught.value.check == "revocation"
    claims = _verify(gpu, [stale], allow_stale=True)
    assert [item["name"] for item in claims.raw["stale_collateral"]] == [
        "CRL of Fake Device Identity CA"
    ]


def test_revocation_is_checked_on_a_chain_cache_hit(gpu: Gpu) -> None:
    caches = EvidenceCaches()
    _verify(gpu, [], caches=caches)  # the chain is now cached
    with pytest.raises(CertificateRevoked):
        _verify(gpu, [gpu.crl([gpu.ica.serial_number])], caches=caches)


def test_the_real_h100_chain_names_nvidias_crls_and_a_forged_one_is_refused(
    vectors: Path,
) -> None:
    text = (vectors / "gpu/nvidia/hopperCertChain.txt").read_bytes()
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)
    certs = [x509.load_pem_x509_certificate(p) for p in pems]
    points = {
        c.subject.rfc4514_string(): [
            p.full_name[0].value
            for p in c.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        ]
        for c in certs
        if any(e.oid == x509.oid.ExtensionOID.CRL_DISTRIBUTION_POINTS for e in c.extensions)
    }
    assert sorted(url for urls in points.values() for url in urls) == [
        "http://crl.ndis.nvidia.com/crl/l1-root.crl",
        "http://crl.ndis.nvidia.com/crl/l2-gh100.crl",
    ]
    report = bytes.fromhex((vectors / "gpu/nvidia/hopperAttestationReport.txt").read_text().strip())
    identity = next(c for c in certs if "GH100 Identity" in c.subject.rfc4514_string())
    forged = make_crl(
        identity.issuer,
        PrivateKey.generate(Algorithm.ES384).raw,  # type: ignore[arg-type]
        [],
        last_update=NOW - dt.timedelta(days=1),
    )
    with pytest.raises(ChainNotTrusted) as caught:
        verify_nvidia_gpu(report, [text], now=NOW, crls=[forged])
    assert caught.value.check == "revocation"
    # the format table hands the CRLs (DER here) to the GPU row too
    with pytest.raises(ChainNotTrusted) as through_table:
        verify_evidence(
            report,
            VerifyOptions(
                now=NOW,
                nonce=NONCE,
                certificates=(text,),
                crls=(forged.public_bytes(serialization.Encoding.DER),),
            ),
            format=NVIDIA_GPU_FORMAT,
        )
    assert through_table.value.check == "revocation"


def test_the_claims_hold_until_the_first_certificate_or_fresh_crl_ends(gpu: Gpu) -> None:
    chain_end = min(c.not_valid_after_utc for c in (gpu.root, gpu.ica, gpu.leaf))
    assert _verify(gpu, []).valid_until == chain_end
    soon = NOW + dt.timedelta(days=2)
    assert _verify(gpu, [gpu.crl([], next_update=soon)]).valid_until == min(soon, chain_end)
