"""The fuzz targets: one per parser that takes untrusted bytes, each with valid seed inputs
(built with Ironroot's own APIs, plus the interop vectors when they are present) and the call
that parses or verifies them. The contract every target checks: whatever the bytes, only
Ironroot's typed errors (:class:`ironroot.errors.IronrootError`) escape.

Used by the hypothesis tests in this folder (a CI-sized budget) and by ``atheris_main.py``
(``make fuzz``, long coverage-guided runs).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import datetime as dt
import functools
import hashlib
import io
import itertools
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_TESTS = Path(__file__).resolve().parents[1]
for _folder in (_TESTS.parent, _TESTS, _TESTS / "spdm", _TESTS / "fuzz"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

from _fleet_seeds import (  # noqa: E402
    LMS_LOG_URL,
    LOG_ORIGIN,
    LOG_URL,
    WITNESS_TIME,
    LogFetcher,
    fleet_seeds,
    lms_check,
    log_seeds,
    monitor_check_seeds,
    scratch,
    witness_state_seeds,
)
from _wire_seeds import (  # noqa: E402
    MULTIPART_BOUNDARY,
    REDFISH_ADMIN,
    REDFISH_KDF,
    SPDM_NONCE,
    SPDM_NOW,
    pfm_seeds,
    redfish_seeds,
    run_spdm_session,
    spdm_device,
    spdm_messages,
    spdm_request_seeds,
    spdm_requester,
    spdm_responder,
    spdm_response_seeds,
)

from ironroot import corim, cose, crypto, log, rot, safe  # noqa: E402
from ironroot.attestation import (  # noqa: E402
    Appraisal,
    AttestationResult,
    TrustTier,
    VerifierId,
    sign_ear_cwt,
    sign_ear_jwt,
    verify_ear,
)
from ironroot.attestation import evidence as ev  # noqa: E402
from ironroot.crypto import Algorithm, PrivateKey  # noqa: E402
from ironroot.errors import IronrootError  # noqa: E402
from ironroot.firmware import (  # noqa: E402
    BundlePolicy,
    Component,
    FirmwareBundle,
    build_bundle,
    check_bundle,
    sign_bundle,
    verify_bundle,
)
from ironroot.keyrelease import (  # noqa: E402
    TeeKeyPair,
    parse_release_policy,
    parse_release_request,
)
from ironroot.log import NoteSigner, NoteVerifier  # noqa: E402
from ironroot.merkle import leaf_hash, node_hash  # noqa: E402
from ironroot_vectors import vectors_dir  # noqa: E402

__all__ = ["TARGETS", "Target", "redfish_answers"]

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
_ORIGIN = "fuzz.example/log"


@dataclass(frozen=True, slots=True)
class Target:
    """A parser under test: ``seeds()`` gives valid inputs, ``run(data)`` parses one;
    ``examples``: how many mutated inputs the test suite draws (its CI-sized budget; targets
    whose one input costs milliseconds — a bundle sealed and audited — draw fewer)."""

    name: str
    seeds: Callable[[], list[bytes]]
    run: Callable[[bytes], object]
    examples: int = 250


def _vector_files(*parts: str, pattern: str = "*") -> list[bytes]:
    root = vectors_dir()
    if root is None:
        return []
    return list(_read_vector_files(root, parts, pattern))


@functools.cache
def _read_vector_files(root: Path, parts: tuple[str, ...], pattern: str) -> tuple[bytes, ...]:
    """The files are read once per process: a property test asks its target for seeds on
    every example, and walking the vector folders again each time cost more than fuzzing."""
    folder = root.joinpath(*parts)
    if not folder.is_dir():
        return ()
    files = sorted(p for p in folder.rglob(pattern) if p.is_file())
    return tuple([p.read_bytes() for p in files if p.stat().st_size <= 256 * 1024][:24])


# --- keys and certificates ------------------------------------------------------------------


@functools.cache
def _key(alg: Algorithm = Algorithm.ES256) -> PrivateKey:
    return PrivateKey.generate(alg)


@functools.cache
def _certificate() -> tuple[bytes, bytes, bytes]:
    """A self-signed certificate, a CSR and a CRL (DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(name)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    return cert.public_bytes(der), csr.public_bytes(der), crl.public_bytes(der)


def _x509_seeds() -> list[bytes]:
    cert, _, _ = _certificate()
    pem = x509.load_der_x509_certificate(cert).public_bytes(serialization.Encoding.PEM)
    return [cert, pem, *_vector_files("caliptra", pattern="*cert*.der")]


def _x509_run(data: bytes) -> None:
    crypto.load_certificates(data)


def _csr_crl_seeds() -> list[bytes]:
    _, csr, crl = _certificate()
    return [csr, crl, *_vector_files("caliptra", pattern="*csr*.der")]


def _csr_crl_run(data: bytes) -> None:
    for load in (crypto.load_csr, crypto.load_crl):
        with contextlib.suppress(IronrootError):
            load(data)


def _dice_seeds() -> list[bytes]:
    return [
        *_vector_files("caliptra", pattern="*.der"),
        *_vector_files("dice-open", pattern="_X509_*"),
        *_vector_files("dice-open", pattern="riot-ext.der"),
        _certificate()[0],
    ]


def _dice_run(data: bytes) -> None:
    for parse in (rot.parse_tcb_info, rot.parse_multi_tcb_info, rot.load_dice_objects):
        with contextlib.suppress(IronrootError):
            parse(data)
    rot.parse_certificate(data)


def _open_dice_seeds() -> list[bytes]:
    return _vector_files("dice-open", pattern="_CBOR_*")


@functools.cache
def _open_dice_issuers() -> tuple[crypto.Verifier, ...]:
    """The subject keys of the vector chain: every certificate's possible issuer."""
    return tuple(rot.parse_open_dice_cbor(seed).public_key() for seed in _open_dice_seeds())


def _open_dice_run(data: bytes) -> None:
    """An Open DICE CBOR certificate as ``rot inspect`` reads it: parsed, shown as JSON,
    its signature checked with each key of the chain (its issuer's among them)."""
    certificate = rot.parse_open_dice_cbor(data)
    json.dumps(certificate.to_json())
    for issuer in _open_dice_issuers():
        with contextlib.suppress(IronrootError):
            certificate.verify(issuer)


def _key_file_seeds() -> list[bytes]:
    key = _key().public_key
    return [
        key.to_pem(),
        key.to_der(),
        cbor2.dumps(key.to_cose_key()),
        json.dumps(key.to_jwk()).encode(),
        json.dumps(_key(Algorithm.ML_DSA_44).public_key.to_jwk()).encode(),
    ]


def _key_file_run(data: bytes) -> None:
    crypto.load_verifier(data)


# --- COSE, receipts, the log ----------------------------------------------------------------


@functools.cache
def _statement() -> bytes:
    return cose.create_statement(
        _key(), b'{"release": "1.2.3"}', iss="https://vendor.example", sub="pkg:x/y",
        content_type="application/json",
    )  # fmt: skip


@functools.cache
def _receipt() -> tuple[bytes, bytes, dict[bytes, crypto.Verifier]]:
    """A statement (its log entry), a receipt for it in a tree of two, the service keys."""
    service = _key(Algorithm.ES384)
    entry = cose.SignedStatement.parse(_statement()).log_entry()
    other = leaf_hash(b"other entry")
    root = node_hash(leaf_hash(entry), other)
    protected = cose.receipt_protected_header(Algorithm.ES384, service.kid, "https://ts.example", 1)
    signature = service.sign(cose.receipt_to_be_signed(protected, root))
    receipt = cose.build_receipt(protected, signature, cose.InclusionProof(2, 0, (other,)))
    return entry, receipt, {service.kid: service.public_key}


def _statement_seeds() -> list[bytes]:
    return [_statement(), cose.make_transparent(_statement(), [_receipt()[1]])]


def _statement_run(data: bytes) -> None:
    statement = cose.SignedStatement.parse(data)
    statement.sign1.verify(_key().public_key)
    statement.log_entry()


def _receipt_seeds() -> list[bytes]:
    return [_receipt()[1]]


def _receipt_run(data: bytes) -> None:
    entry, _, keys = _receipt()
    cose.verify_receipt(data, entry, keys)


def _transparent_seeds() -> list[bytes]:
    return [cose.make_transparent(_statement(), [_receipt()[1]])]


def _transparent_run(data: bytes) -> None:
    cose.verify_transparent_statement(data, _receipt()[2])


_WITNESSED_TIME = 1_780_000_000


@functools.cache
def _witnessed_parts() -> tuple[tuple[bytes, ...], dict[str, object]]:
    """Witnessed statements of ``_receipt()``'s statement (its tree of two: in a checkpoint at
    size 2 without a proof, at size 3 with one) and what a relying party checks them with."""
    from ironroot.witness import Cosigner, WitnessPolicy

    entry, receipt, keys = _receipt()
    statement = cose.make_transparent(_statement(), [receipt])
    signer = log.NoteSigner("fuzz.example/log", _key(Algorithm.ED25519))
    cosigners = (
        Cosigner("fuzz.example/w1", _key(Algorithm.ED25519)),
        Cosigner("fuzz.example/w2", _key(Algorithm.ML_DSA_44)),
    )
    two = node_hash(leaf_hash(entry), leaf_hash(b"other entry"))
    third = leaf_hash(b"third entry")
    wrapped = []
    for size, root, proof in ((2, two, []), (3, node_hash(two, third), [third])):
        note = log.sign_checkpoint(log.Checkpoint("fuzz.example/log", size, root), [signer])
        parsed = log.Note.parse(note)
        lines = tuple(c.cosign(parsed.body, _WITNESSED_TIME) for c in cosigners)
        cosigned = log.Note(parsed.body, parsed.signatures + lines).encode()
        wrapped.append(
            cose.encode_cbor(
                {
                    "format": "ironroot-witnessed-statement/1",
                    "statement": statement,
                    "checkpoint": cosigned,
                    "proof": proof,
                }
            )
        )
    verifiers = tuple(c.verifier() for c in cosigners)
    return tuple(wrapped), {
        "service_keys": keys,
        "log_verifiers": (signer.verifier(),),
        "policy": WitnessPolicy(verifiers, 2),
        "now": _WITNESSED_TIME + 60,
        "origin": "fuzz.example/log",
    }


def _witnessed_seeds() -> list[bytes]:
    return list(_witnessed_parts()[0])


def _witnessed_run(data: bytes) -> None:
    """A witnessed statement as a relying party offline reads and checks it, and as the
    platform's update checks take it apart."""
    from ironroot.platform._checks import unwrap_witnessed
    from ironroot.transparency import verify_witnessed

    unwrap_witnessed(data)
    verify_witnessed(data, **_witnessed_parts()[1])  # type: ignore[arg-type]


def _key_set_seeds() -> list[bytes]:
    return [cose.encode_key_set([_key().public_key, _key(Algorithm.ES384).public_key])]


def _key_set_run(data: bytes) -> None:
    cose.decode_key_set(data)


def _cbor_seeds() -> list[bytes]:
    return [
        cbor2.dumps({1: -7, 4: b"kid", 15: {1: "iss", 2: "sub"}, 395: 1}),
        cbor2.dumps([1, [2, [3, b"x" * 40]], {"a": None}, 1.5, True]),
        cbor2.dumps(cbor2.CBORTag(18, [b"\xa1\x01\x26", {}, b"payload", b"s" * 64])),
    ]


def _cbor_run(data: bytes) -> None:
    cose.decode_cbor(data)


@functools.cache
def _note_signer() -> NoteSigner:
    return NoteSigner(_ORIGIN, _key(Algorithm.ED25519))


def _checkpoint_seeds() -> list[bytes]:
    signer = _note_signer()
    return [
        log.sign_checkpoint(log.Checkpoint(_ORIGIN, 2, bytes(range(32))), [signer]),
        log.sign_checkpoint(log.Checkpoint(_ORIGIN, 0, leaf_hash(b"")), [signer]),
    ]


def _checkpoint_run(data: bytes) -> None:
    verifier: NoteVerifier = _note_signer().verifier()
    log.open_checkpoint(data, [verifier], origin=_ORIGIN)


def _tile_seeds() -> list[bytes]:
    return [bytes(range(32)) * 3, log.encode_entry_bundle([b"a", b"bc" * 40, b""])]


def _tile_run(data: bytes) -> None:
    with contextlib.suppress(IronrootError):
        log.parse_tile(data)
    log.parse_entry_bundle(data)


# --- endorsements ------------------------------------------------------------------------------


def _corim_seeds() -> list[bytes]:
    return [*_vector_files("corim", "corim", pattern="*.cbor"), _firmware_corim()]


@functools.cache
def _firmware() -> bytes:
    ecc, pqc = _key(Algorithm.ES384), _key(Algorithm.ML_DSA_87)
    unsigned = build_bundle(
        [Component(1, b"fmc" * 50, version=1), Component(2, b"runtime" * 50, version=2)],
        svn=3,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
        vendor_ecc_keys=[ecc.public_key],
        vendor_pqc_keys=[pqc.public_key],
        pqc_type="mldsa",
    )
    return sign_bundle(unsigned, ecc, pqc)


@functools.cache
def _firmware_corim() -> bytes:
    from ironroot.firmware import reference_corim

    return reference_corim(_firmware(), vendor="https://vendor.example", model="m").encode()


def _corim_run(data: bytes) -> None:
    if data[:1] == b"\xd2":
        corim.SignedCorim.parse(data)
    else:
        corim.Corim.parse(data)


def _firmware_seeds() -> list[bytes]:
    return [_firmware()]


@functools.cache
def _firmware_policy() -> BundlePolicy:
    """The seed's own fused values, so that a mutated bundle that keeps its descriptors goes
    on to the signature, digest, SVN and validity checks."""
    descriptors = FirmwareBundle.parse(_firmware()).manifest.preamble.descriptors_bytes()
    return BundlePolicy(now=NOW, vendor_key_descriptor_hash=hashlib.sha384(descriptors).digest())


def _firmware_run(data: bytes) -> None:
    FirmwareBundle.parse(data)
    # every check runs, even after a failure: what parses must not break a later check
    check_bundle(data, _firmware_policy())
    verify_bundle(data, _firmware_policy())


def _safe_seeds() -> list[bytes]:
    return (
        _vector_files("ocp-safe", "Reports", pattern="*.json")[:6]
        + _vector_files("ocp-safe", "Reports", pattern="*.jws")[:6]
    )


def _safe_run(data: bytes) -> None:
    if data[:1] in (b"{", b" ", b"\n"):
        safe.parse_report_json(data)
    else:
        safe.parse_compact_jws(data)


_SFR_KID = "Fuzz Review Provider"


@functools.cache
def _sfr_report() -> bytes:
    """A small SFR of the review provider ``_SFR_KID``, with one open issue."""
    report = {
        "review_framework_version": "1.1",
        "device": {
            "vendor": "ACME Inc",
            "product": "Trap",
            "fw_version": "1.2.3",
            "fw_hash_sha2_384": "a1" * 48,
            "fw_hash_sha2_512": "b2" * 64,
        },
        "audit": {
            "srp": _SFR_KID,
            "methodology": "whitebox",
            "completion_date": "2023-06-25",
            "report_version": "1.2",
            "scope_number": 1,
            "cvss_version": "3.1",
            "issues": [
                {
                    "title": "Issue",
                    "cvss_score": "7.9",
                    "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                    "cwe": "CWE-123",
                    "description": "d",
                }
            ],
        },
        "exp": int(NOW.timestamp()) + 86400,
    }
    return json.dumps(report).encode()


@functools.cache
def _sfr_providers() -> safe.ProviderKeys:
    key = _key(Algorithm.ES384).public_key
    return safe.ProviderKeys([safe.ProviderKey(key, frozenset((_SFR_KID,)))])


def _sfr_corim_seeds() -> list[bytes]:
    key = _key(Algorithm.ES384)
    return [
        safe.sign_report(_sfr_report(), key, _SFR_KID, format="cose"),
        safe.build_sfr_corim(safe.parse_report_json(_sfr_report())),
        *_vector_files("ocp-safe", "Reports", pattern="*_signed.cbor"),
    ]


def _sfr_corim_run(data: bytes) -> None:
    """An SFR in the CoRIM profile, signed (COSE_Sign) or not: read without its signature
    (``safe inspect``), verified with the provider's key, its CoRIM parsed alone; what is
    read is asked what a query asks (scope, scores)."""
    with contextlib.suppress(IronrootError):
        safe.parse_sfr_corim(data).audit.scope_number  # noqa: B018
    with contextlib.suppress(IronrootError):
        safe.inspect_report(data)
    verified = safe.verify_report(data, _sfr_providers(), now=NOW)
    for issue in verified.report.audit.issues:
        _ = issue.effective_score
    _ = verified.report.audit.scope_number


# --- evidence --------------------------------------------------------------------------------


def _tdx_seeds() -> list[bytes]:
    return _vector_files("tee", "tdx", pattern="*quote*.dat") + _vector_files(
        "tee", "tdx", pattern="*prod_quote*"
    )


def _tdx_run(data: bytes) -> None:
    ev.parse_tdx_quote(data)
    ev.verify_evidence(data, ev.VerifyOptions(now=NOW), format="tdx")


def _snp_seeds() -> list[bytes]:
    return _vector_files("tee", "snp", pattern="*report*.bin") + _vector_files(
        "tee", "snp", pattern="*attestation.bin"
    )


def _snp_run(data: bytes) -> None:
    with contextlib.suppress(IronrootError):
        ev.parse_azure_hcl_report(data)
    ev.parse_snp_report(data)


def _evidence_seeds() -> list[bytes]:
    return _tdx_seeds()[:2] + _snp_seeds()[:2]


def _evidence_run(data: bytes) -> None:
    ev.parse_evidence(data)
    ev.verify_evidence(data, ev.VerifyOptions(now=NOW, nonce=bytes(32)))


_ROT_QUOTE_DIR = _TESTS / "vectors"


@functools.cache
def _rot_quote_parts() -> tuple[bytes, bytes, tuple[bytes, ...], dt.datetime]:
    """Ironroot's own RoT quote vector, its nonce, its vendor CA roots and its time."""
    index = json.loads((_ROT_QUOTE_DIR / "index.json").read_bytes())
    expect = next(v["expect"] for v in index["vectors"] if v["file"] == "rot-quote.cbor")
    roots = tuple(
        x509.load_pem_x509_certificate(
            (_ROT_QUOTE_DIR / "keys" / f"{name}.cert.pem").read_bytes()
        ).public_bytes(serialization.Encoding.DER)
        for name in ("vendor-ca-es384", "vendor-ca-mldsa87")
    )
    now = dt.datetime.fromisoformat(index["now"].replace("Z", "+00:00"))
    quote = (_ROT_QUOTE_DIR / "rot-quote.cbor").read_bytes()
    return quote, bytes.fromhex(expect["nonce"]), roots, now


@functools.cache
def _rot_quote_cache() -> ev.RotChainCache:
    return ev.RotChainCache()


def _rot_quote_seeds() -> list[bytes]:
    return [_rot_quote_parts()[0]]


def _rot_quote_run(data: bytes) -> None:
    """A RoT quote parsed (``evidence show``) and verified against the vendor roots, with
    and without the chain cache (one cache for the run, as a verifier keeps one: a mutated
    quote must not be taken for the cached honest one)."""
    _, nonce, roots, now = _rot_quote_parts()
    with contextlib.suppress(IronrootError):
        ev.parse_evidence(data, format=ev.ROT_QUOTE_FORMAT)
    with contextlib.suppress(IronrootError):
        ev.verify_rot_quote(data, nonce=nonce, trust_anchors=roots, now=now)
    claims = ev.verify_rot_quote(
        data, nonce=nonce, trust_anchors=roots, now=now, cache=_rot_quote_cache()
    )
    if data != _rot_quote_parts()[0]:
        uncached = ev.verify_rot_quote(data, nonce=nonce, trust_anchors=roots, now=now)
        if uncached != claims:
            raise AssertionError("the chain cache gave other claims than a full check")


def _collateral_seeds() -> list[bytes]:
    return _vector_files("tee", "tdx", pattern="*_response")


def _collateral_run(data: bytes) -> None:
    with contextlib.suppress(IronrootError):
        ev.parse_tcb_info(data)
    ev.parse_qe_identity(data)


# --- results and requests -----------------------------------------------------------------------


@functools.cache
def _ear() -> AttestationResult:
    appraisal = Appraisal(status=TrustTier.AFFIRMING, trust_vector={"configuration": 2})
    return AttestationResult(
        iat=int(NOW.timestamp()),
        exp=int(NOW.timestamp()) + 600,
        verifier_id=VerifierId(developer="https://ironroot.example", build="fuzz"),
        submods={"ironroot": appraisal},
        nonce=bytes(32),
    )


def _ear_claims_seeds() -> list[bytes]:
    return [json.dumps(_ear().to_json_claims()).encode(), cbor2.dumps(_ear().to_cbor_claims())]


def _ear_claims_run(data: bytes) -> None:
    if data[:1] == b"{":
        try:
            value = json.loads(data)
        except ValueError:
            return  # not JSON: nothing for the claims parser to see
        AttestationResult.from_json_claims(value)
    else:
        AttestationResult.from_cbor_claims(cose.decode_cbor(data))


def _ear_token_seeds() -> list[bytes]:
    key = _key(Algorithm.ES384)
    return [sign_ear_jwt(_ear(), key), sign_ear_cwt(_ear(), key)]


def _ear_token_run(data: bytes) -> None:
    verify_ear(data, [_key(Algorithm.ES384).public_key], now=NOW)


def _release_request_seeds() -> list[bytes]:
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    body = {
        "ear": "eyJ0eXAiOiJKV1QifQ.e30.c2ln",
        "wrapping_key": base64.urlsafe_b64encode(spki).decode().rstrip("="),
        "nonce": base64.urlsafe_b64encode(bytes(32)).decode().rstrip("="),
    }
    return [
        json.dumps(body).encode(),
        cbor2.dumps({"ear": b"\xd2\x84", "wrapping_key": spki, "nonce": bytes(32)}),
    ]


def _release_request_run(data: bytes) -> None:
    if data[:1] == b"{":
        parse_release_request(data, "application/json")
    else:
        parse_release_request(data, "application/cbor")


def _release_policy_seeds() -> list[bytes]:
    azure = {
        "version": "1.0.0",
        "anyOf": [
            {
                "authority": "https://verifier.example",
                "allOf": [
                    {"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"}
                ],
            }
        ],
    }  # fmt: skip
    return [json.dumps(azure).encode(), b'status == "affirming"']


def _release_policy_run(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    parse_release_policy(text)


# --- SPDM --------------------------------------------------------------------------------------


@functools.cache
def _spdm_evidence() -> bytes:
    from _spdm_helpers import Device, make_pair

    from ironroot.spdm import SpdmVersion

    _, requester = make_pair(
        Device(Algorithm.ES384),
        versions=(SpdmVersion.V1_2,),
        requester_versions=(SpdmVersion.V1_2,),
    )
    return requester.evidence(bytes(32))


def _spdm_seeds() -> list[bytes]:
    return [_spdm_evidence()]


def _spdm_run(data: bytes) -> None:
    from ironroot.spdm import SpdmEvidence

    SpdmEvidence.decode(data)
    ev.parse_spdm_record(data)


def _gpu_seeds() -> list[bytes]:
    from ironroot.spdm import (
        GetMeasurements,
        MeasurementBlock,
        Measurements,
        MeasurementValueType,
        SpdmVersion,
    )

    request = GetMeasurements(SpdmVersion.V1_1, 0xFF, True, bytes(32), 0).encode()
    blocks = tuple(
        MeasurementBlock(i, MeasurementValueType.MUTABLE_FIRMWARE, bytes([i]) * 48)
        for i in range(1, 4)
    )
    opaque = b"\x03\x00\x04\x001.0\x00\x06\x00\x08\x00" + bytes(8) + b"\x0c\x00\x04\x00" + bytes(4)
    response = Measurements(SpdmVersion.V1_1, blocks, bytes(32), opaque).encode_unsigned()
    made = request + response + _key(Algorithm.ES384).sign(request + response)
    vectors = [
        bytes.fromhex(text.decode())
        for text in _vector_files("gpu", "nvidia", pattern="hopperAttestationReport.txt")
    ]
    return [made, *vectors]


def _gpu_run(data: bytes) -> None:
    from ironroot.spdm import MeasurementReport

    with contextlib.suppress(IronrootError):
        MeasurementReport.decode(data, signature_size=96)
    with contextlib.suppress(IronrootError):
        ev.parse_nvidia_opaque_data(data)
    ev.parse_evidence(data, format="nvidia-gpu")


def _rim_seeds() -> list[bytes]:
    return _vector_files("gpu", "nvidia", "rims", pattern="*.swidtag")[:3]


def _rim_run(data: bytes) -> None:
    from ironroot.rim import verify_rim

    verify_rim(data, now=dt.datetime(2024, 6, 1, tzinfo=dt.UTC))  # inside the vectors' chains


# --- the fleet: audit bundles, admission, credentials, desired state -----------------------
#
# Seeds from one world built per process (tests/fuzz/_fleet_seeds.py): a fleet node admitted
# by the fleet's own admission, its audit bundle, the requests and documents the fleet parses.


def _audit_bundle_seeds() -> list[bytes]:
    return [fleet_seeds().bundle]


def _audited(bundle: bytes) -> None:
    """What ``audit verify`` does: every step, the report on a terminal, as JSON and as an
    HTML file (each written as UTF-8); the first break's error raised."""
    from rich.console import Console

    from ironroot.audit import check_bundle, render_console, render_html

    report = check_bundle(bundle, fleet_seeds().trust)
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False, width=100))
    shown = terminal.getvalue() + render_html(report) + json.dumps(report.to_json())
    shown.encode("utf-8")
    if "\x1b" in terminal.getvalue():  # no style without a terminal: the bundle's own
        raise AssertionError("the bundle's text reached the terminal as an escape sequence")
    if report.failure is not None and report.failure.error is not None:
        raise report.failure.error


def _audit_bundle_run(data: bytes) -> None:
    _audited(data)


_MEMBER_LIMITS = cose.Limits(max_bytes=64 * 1024 * 1024, max_depth=3, max_items=1024)


def _audit_members_seeds() -> list[bytes]:
    members = fleet_seeds().members
    return [cose.encode_cbor({name: data for name, (data, _media) in members.items()})]


def _audit_members_run(data: bytes) -> None:
    """The members (a CBOR map of name to bytes) sealed by the node's own RoT, then audited:
    whoever holds a node can seal anything, so every later step must hold its own."""
    try:
        members = cose.decode_cbor(data, _MEMBER_LIMITS)
    except IronrootError:
        return  # not a map of members: nothing to seal (the audit-bundle target's framing)
    if not isinstance(members, dict):
        return
    members = {n: d for n, d in members.items() if isinstance(n, str) and isinstance(d, bytes)}
    seeds = fleet_seeds()
    media = seeds.members
    sealed = {
        n: (d, media[n][1] if n in media else "application/octet-stream")
        for n, d in members.items()
    }
    export = seeds.export.replace(members={**dict.fromkeys(media), **sealed})
    _audited(export.seal(seeds.fleet.rot(seeds.node)))


def _audit_trust_seeds() -> list[bytes]:
    return [fleet_seeds().trust_file.read_bytes()]


_TRUST_FILES = itertools.count()


def _audit_trust_run(data: bytes) -> None:
    """The auditor's trust file as ``audit verify --trust FILE`` reads it (beside the key
    files it names, which are the world's)."""
    from ironroot.audit import AuditTrust

    folder = fleet_seeds().trust_file.parent
    path = folder / f"trust-{os.getpid()}-{next(_TRUST_FILES)}.toml"
    path.write_bytes(data)
    try:
        AuditTrust.load_toml(path)
    finally:
        path.unlink()


def _admission_seeds() -> list[bytes]:
    return [fleet_seeds().request]


def _admission_run(data: bytes) -> None:
    """What the admission endpoint does with a request body before it changes anything: the
    request, each CSR, the evidence, and the verifier's appraisal of it (the nonce is taken
    as issued: redeeming it is the nonce store's, and fuzzed with its own tests)."""
    from ironroot.errors import MalformedEvidence
    from ironroot.fleet import AdmissionRequest, NodeEvidence, csr_public_key

    seeds = fleet_seeds()
    request = AdmissionRequest.decode(data)
    keys = {plane: csr_public_key(csr) for plane, csr in request.csrs.items()}
    evidence = NodeEvidence.decode(request.evidence)
    if evidence.node != request.node:
        raise MalformedEvidence("the evidence is another node's")
    appraisal = seeds.authority.verifier.appraise(
        request.node, evidence, nonce=request.nonce, keys=keys, now=seeds.attested
    )
    appraisal.to_json()


def _credential_seeds() -> list[bytes]:
    return list(fleet_seeds().credentials)


def _credential_run(data: bytes) -> None:
    from ironroot.fleet import check_credential, parse_credential

    seeds = fleet_seeds()
    with contextlib.suppress(IronrootError):
        parse_credential(data).to_json()
    check_credential(
        data,
        plane="control",
        ca=seeds.authority.ca,
        store=seeds.authority.credentials,
        fleet=seeds.fleet,
        now=seeds.attested + dt.timedelta(minutes=1),
    )


def _desired_document_seeds() -> list[bytes]:
    return [fleet_seeds().desired_document]


def _desired_document_run(data: bytes) -> None:
    from ironroot.fleet import DesiredState

    state = DesiredState.decode(data)
    state.to_json()
    state.check_policy("appraisal", b"status == affirming")


def _desired_store_seeds() -> list[bytes]:
    return [fleet_seeds().desired_stored, fleet_seeds().governance]


def _desired_store_run(data: bytes) -> None:
    """The desired state in force, read back from its files as ``fleet reconcile`` does: the
    stored version (document and approvals) or the governance, the other as published."""
    from ironroot.fleet import DesiredStore

    seeds = fleet_seeds()
    store = DesiredStore(seeds.fleet)
    directory = store.directory / seeds.desired_class
    governance = data if data[:1] == b"{" else seeds.governance
    stored = seeds.desired_stored if data[:1] == b"{" else data
    (directory / "governance.json").write_bytes(governance)
    (directory / "v1.cbor").write_bytes(stored)
    store.current(seeds.desired_class).to_json()


# --- witness and monitor ----------------------------------------------------------------------


def _witness_seeds() -> list[bytes]:
    return list(log_seeds().requests)


def _witness_run(data: bytes) -> None:
    """An add-checkpoint request body, to a witness that has cosigned nothing and to one
    holding the log's checkpoint at a smaller size."""
    from ironroot.witness import MemoryWitnessStore

    seeds = log_seeds()
    holding = MemoryWitnessStore()
    holding.advance(None, seeds.stored)
    for store in (MemoryWitnessStore(), holding):
        witness = seeds.witness(store)
        with contextlib.suppress(IronrootError):
            witness.add_checkpoint(data)
    witness.add_checkpoint(data)


def _cosignature_seeds() -> list[bytes]:
    return [*log_seeds().answers, log_seeds().cosigned]


def _cosignature_run(data: bytes) -> None:
    """A witness's answer as the log's witness client reads it (cosignature lines checked
    against the witness's keys, a 409's size, a problem, what it says of itself), or a
    cosigned checkpoint as a relying party's witness policy checks it."""
    import httpx

    from ironroot.witness import WitnessClient, WitnessPolicy

    seeds = log_seeds()
    verifiers = tuple(c.verifier() for c in seeds.cosigners)
    if data.startswith(LOG_ORIGIN.encode()):
        policy = WitnessPolicy(verifiers, 1)  # one witness, two keys
        policy.check(data, seeds.verifiers, now=WITNESS_TIME + 60)
        return
    if data.startswith("\u2014".encode()):
        status, media = 200, "text/plain; charset=utf-8"
    elif data[:1].isdigit():
        status, media = 409, "text/x.tlog.size"
    elif data[:1] == b"{":
        status, media = 422, "application/problem+json"
    else:
        status, media = 422, "application/concise-problem-details+cbor"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=data, headers={"content-type": media})

    note = seeds.cosigned  # the checkpoint the answer is about (its body)
    with WitnessClient(
        "https://witness.fuzz.example", verifiers=verifiers, transport=httpx.MockTransport(answer)
    ) as client:
        if status == 422 and media.endswith("json"):
            with contextlib.suppress(IronrootError):
                client.add_checkpoint(note, seeds.old_size, ())
            status = 200  # the same JSON as what a witness says of itself
            client.about()
        else:
            client.add_checkpoint(note, seeds.old_size, ())


def _monitor_seeds() -> list[bytes]:
    return list(log_seeds().monitor_files)


_STATE_FILES = itertools.count()


@contextlib.contextmanager
def _state_file(data: bytes, stem: str) -> Iterator[Path]:
    """``data`` as a fresh SQLite state file of this process, removed afterwards with its
    journal, WAL and shared-memory files."""
    path = scratch() / f"{stem}-{os.getpid()}-{next(_STATE_FILES)}.sqlite3"
    path.write_bytes(data)
    try:
        yield path
    finally:
        for suffix in (
            *("", "-wal", "-shm", "-journal"),
            *(".verified", ".verified.lock", ".cosigned", ".cosigned.lock"),
        ):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{path}{suffix}").unlink()


def _monitor_run(data: bytes) -> None:
    """A monitor state file (SQLite) as ``ironroot monitor status``, ``forks``,
    ``verify-fork`` and the next ``once`` read it: its logs, pins and fork proofs, then one
    round against the log, grown since."""
    from ironroot.monitor import Monitor, MonitorStore
    from ironroot.witness import ForkProof

    seeds = log_seeds()
    with _state_file(data, "monitor") as path:
        store = MonitorStore(path, create=False)
        try:
            for state in store.states():
                _ = (state.origin, state.size, state.root.hex(), state.updated)
            store.pin(LOG_URL)
            for _id, _origin, proof, _at in store.forks():
                with contextlib.suppress(IronrootError):
                    ForkProof.parse(proof).verify(seeds.verifiers)
            for event in Monitor(store, clock=lambda: WITNESS_TIME).check(
                LOG_URL,
                LogFetcher(seeds.log),
                seeds.verifiers,
            ):
                event.to_json()
                event.line()
        finally:
            store.close()


def _monitor_check_seeds() -> list[bytes]:
    return list(monitor_check_seeds().files)


def _bindable(value: object) -> object:
    """``value`` as SQLite stores it, or its ``repr`` (text) when it cannot be bound."""
    if value is None or isinstance(value, bytes | float):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else repr(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return repr(value)
        return value
    return repr(value)


def _write_key_uses(path: Path, rows: list[object]) -> None:
    """Replace the ``key_uses`` rows of the state file at ``path`` by ``rows`` (each a list
    of its six columns, as CBOR gave them): the harness's way to put any value in any column.
    A row the schema refuses (a ``NULL``, a primary key twice) is left out; a file that is
    no SQLite database is left as it is."""
    import sqlite3

    try:
        db = sqlite3.connect(path)
    except sqlite3.Error:
        return
    try:
        db.execute("DELETE FROM key_uses")
        for row in rows:
            if isinstance(row, list) and len(row) == 6:
                with contextlib.suppress(sqlite3.IntegrityError):
                    db.execute(
                        "INSERT INTO key_uses VALUES (?, ?, ?, ?, ?, ?)",
                        [_bindable(value) for value in row],
                    )
        db.commit()
    except (sqlite3.Error, ValueError):  # a corrupt file (its text not UTF-8): left as it is
        pass
    finally:
        db.close()


_USES_TALLY = "\x00one-time key uses\x00"


def _retally_key_uses(path: Path) -> None:
    """Tally the ``key_uses`` rows of the state file at ``path`` into its high-water file, as
    the monitor would have (someone who edits both files): the rows are then read, not
    refused for their tally. A high-water file that is no JSON object is left as it is."""
    import base64
    import sqlite3

    from ironroot._statedb import Kept, row_digest

    water = Path(f"{path}.verified")
    try:
        doc = json.loads(water.read_bytes())
        db = sqlite3.connect(path)
        try:
            rows = db.execute(
                "SELECT kind, key_hash, leaf, signature, origin, idx FROM key_uses "
                "ORDER BY origin, idx, kind, key_hash, leaf, signature"
            ).fetchall()
        finally:
            db.close()
    except (sqlite3.Error, ValueError, RecursionError):
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("kept"), dict):
        return
    digests: dict[str, list[bytes]] = {}
    for row in rows:
        if isinstance(row[4], str):
            digests.setdefault(_USES_TALLY + row[4], []).append(row_digest(row))
    kept = {k: v for k, v in doc["kept"].items() if not k.startswith(_USES_TALLY)}
    for key, found in digests.items():
        tally = Kept.of(found)
        kept[key] = {"count": tally.count, "digest": base64.b64encode(tally.digest).decode()}
    water.write_text(json.dumps({**doc, "kept": kept}))


def _monitor_check_run(data: bytes) -> None:
    """A monitor's state file and its high-water file (``<state>.verified``), both holding
    one-time key uses (``key_uses`` rows, their tally), as ``ironroot monitor status`` and the
    next ``once`` read them: its logs, then one round against the log, grown since, with the
    LMS leaf check the CLI wires in. An input that is no ``{"state", "verified"}`` map is a
    state file with no high-water file."""
    from ironroot.monitor import Monitor, MonitorStore

    seeds = monitor_check_seeds()
    try:
        files = cbor2.loads(data)
    except Exception:  # the harness's own framing: anything else is a bare state file
        files = None
    if isinstance(files, dict) and isinstance(files.get("state"), bytes):
        state, verified = files["state"], files.get("verified")
    else:
        state, verified = data, None
    rows = files.get("rows") if isinstance(files, dict) else None
    with _state_file(state, "monitor-check") as path:
        if isinstance(verified, bytes):
            Path(f"{path}.verified").write_bytes(verified)
        if isinstance(rows, list):
            _write_key_uses(path, rows)
            if isinstance(verified, bytes):
                _retally_key_uses(path)
        store = MonitorStore(path, create=False)
        try:
            for log_state in store.states():
                _ = (log_state.origin, log_state.size, log_state.root.hex(), log_state.updated)
            store.pin(LMS_LOG_URL)
            monitor = Monitor(store, checks=(lms_check(),), clock=lambda: WITNESS_TIME)
            for event in monitor.check(LMS_LOG_URL, LogFetcher(seeds.log), seeds.verifiers):
                json.dumps(event.to_json())
                event.line()
        finally:
            store.close()


def _witness_state_seeds() -> list[bytes]:
    return list(witness_state_seeds())


def _witness_state_run(data: bytes) -> None:
    """The witness's state file (SQLite) as ``ironroot witness show`` and ``evidence`` read
    it and ``GET /<origin hash>/checkpoint`` serves it, then the next add-checkpoint requests
    checked against it (from size 0, from the cosigned size, a stale one)."""
    from ironroot.witness import ForkProof, SqliteWitnessStore

    seeds = log_seeds()
    with _state_file(data, "witness") as path:
        store = SqliteWitnessStore(path)
        try:
            witness = seeds.witness(store)
            for stored in store.all_latest():
                _ = (stored.origin, stored.size, stored.root.hex(), stored.updated)
                stored.note.decode("utf-8")  # served as text/plain; charset=utf-8
            for item in witness.evidence():
                row = {"id": item.id, "origin": item.origin, "kind": item.kind}
                json.dumps({**row, "detail": item.detail, "at": item.at})
                _ = (item.first.hex(), item.second.hex(), memoryview(item.data))
                if item.kind == "fork":
                    with contextlib.suppress(IronrootError):
                        ForkProof.parse(item.data).verify(seeds.verifiers)
            for request in seeds.requests[:-1]:
                with contextlib.suppress(IronrootError):
                    witness.add_checkpoint(request)
            witness.add_checkpoint(seeds.requests[-1])
        finally:
            store.close()


# --- wire protocols: SPDM, the PFM, Redfish request bodies ------------------------------------
#
# Seeds from tests/fuzz/_wire_seeds.py: SPDM sessions recorded between Ironroot's requester and
# responder, PFMs signed with fixed vendor keys, and the bodies a Redfish client sends.


def _spdm_responses_run(data: bytes) -> None:
    """A recorded session's requester answered by the input's messages in turn: each answer
    checked against its request and decoded (VERSION, CAPABILITIES, ALGORITHMS, DIGESTS,
    CERTIFICATE portions, CHALLENGE_AUTH, MEASUREMENTS, ERROR), the chain and signatures
    verified. Evidence the requester accepts must verify offline too (the verifier repeats
    its checks on the record)."""
    from ironroot.errors import SpdmTransportError
    from ironroot.spdm import verify_spdm_evidence

    session, answers = spdm_messages(data)
    replay = iter(answers)

    def send(request: bytes) -> bytes:
        answer = next(replay, None)
        if answer is None:
            raise SpdmTransportError("the recorded session has no more answers")
        return answer

    record = run_spdm_session(session, spdm_requester(session, send))
    if record is None:
        return
    root = spdm_device(session.algorithm).root
    try:
        verify_spdm_evidence(record, nonce=SPDM_NONCE, root_certificate=root, now=SPDM_NOW)
    except IronrootError as exc:
        raise AssertionError(f"the requester took evidence the verifier refuses: {exc!r}") from exc


def _spdm_requests_run(data: bytes) -> None:
    """A fresh responder of a recorded session answers the input's requests in turn. It
    promises never to raise for bad input (a device answers ERROR), so even a typed error
    escaping ``handle`` is a defect here; an ERROR it sends must decode."""
    from ironroot.spdm import ErrorResponse, RequestResponseCode

    session, requests = spdm_messages(data)
    responder = spdm_responder(session)
    for request in requests:
        try:
            response = responder.handle(request)
        except IronrootError as exc:
            raise AssertionError(f"Responder.handle raised {exc!r} instead of an ERROR") from exc
        if len(response) < 4:
            raise AssertionError(f"the responder answered {response.hex()}")
        if response[1] == RequestResponseCode.ERROR:
            ErrorResponse.decode(response)


def _pfm_seeds() -> list[bytes]:
    seeds = pfm_seeds()
    return [*seeds.signed, seeds.unsigned, seeds.statement]


def _pfm_run(data: bytes) -> None:
    """A PFM as each of its readers takes it: unsigned (``platform pfm sign``), inside a
    Signed Statement (the update checks take the PFM from the statement's payload;
    ``pfm_statement`` parses it before registration), and signed (``verify_pfm`` with the
    fused vendor keys, then the image decisions). A PFM that parses encodes to one that
    parses the same."""
    from ironroot.platform import Pfm, pfm_statement, verify_pfm

    seeds = pfm_seeds()

    def verified(signed: bytes) -> Pfm:
        return verify_pfm(
            signed,
            ecc_keys=[seeds.ecc.public_key],
            pqc_keys=[seeds.pqc.public_key],
            vendor_key_hash=seeds.vendor_key_hash,
            min_svn=1,
        )

    def decided(pfm: Pfm) -> None:
        if Pfm.decode(pfm.encode()) != pfm:
            raise AssertionError("a PFM does not decode to itself once encoded")
        for component in pfm.components:
            for version in component.versions:
                pfm.allows_digest(component.name, version.sha384)
        with contextlib.suppress(IronrootError):
            pfm.allows("bmc", b"an image no PFM lists")

    with contextlib.suppress(IronrootError):
        decided(Pfm.decode(data))
    with contextlib.suppress(IronrootError):
        statement = cose.SignedStatement.parse(data)
        decided(verified(statement.payload))
    with contextlib.suppress(IronrootError):
        pfm_statement(data, seeds.statement_key, iss="https://vendor.example", sub="pkg:p/q")
    decided(verified(data))


def _redfish_seeds() -> list[bytes]:
    seeds = redfish_seeds()
    return [*seeds.json_bodies, *seeds.multipart_bodies]


_REDFISH_LOG = "ironroot.platform.redfish"
_REDFISH_SCRATCH = itertools.count()


@contextlib.contextmanager
def _unexpected_errors() -> Iterator[list[BaseException]]:
    """The exceptions the Redfish service logs as unexpected while the block runs (a
    ``500 InternalError``, an update task that failed unexpectedly), even when the harness
    has disabled logging below CRITICAL (``mutate_main.py``): the service answers them, so
    the log is where the defect shows."""
    found: list[BaseException] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info and record.exc_info[1] is not None:
                found.append(record.exc_info[1])

    handler = Keep(logging.ERROR)
    logger = logging.getLogger(_REDFISH_LOG)
    disabled = logging.root.manager.disable
    logger.addHandler(handler)
    if disabled >= logging.ERROR:
        logging.disable(logging.WARNING)
    try:
        yield found
    finally:
        logging.disable(disabled)
        logger.removeHandler(handler)


@functools.cache
def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop for the process's Redfish requests (the app's worker threads stay with
    it), closed at exit."""
    loop = asyncio.new_event_loop()
    atexit.register(loop.close)
    return loop


def _redfish_requests(
    app: object, requests: list[tuple[str, str, bytes, str]]
) -> list[tuple[int, bytes]]:
    """``requests`` (method, path, body, content type) sent in turn to the ASGI ``app`` in
    this process as the Administrator (HTTP Basic); each answer's status and body."""
    import httpx

    credential = base64.b64encode(":".join(REDFISH_ADMIN).encode()).decode()

    async def send() -> list[tuple[int, bytes]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bmc") as client:
            answers = []
            for method, path, body, kind in requests:
                headers = {"Content-Type": kind, "Authorization": f"Basic {credential}"}
                answer = await client.request(method, path, content=body, headers=headers)
                answers.append((answer.status_code, answer.content))
            return answers

    return _event_loop().run_until_complete(send())


def redfish_answers(data: bytes) -> list[tuple[int, bytes]]:
    """A request body as the node's Redfish app (ASGI, in this process) takes it, and its
    answers (status, body): a multipart push (the input starts with its boundary) runs the
    update on a fresh copy of the template node, to its end; any other body goes to every
    JSON action (log in, create an account, change one, change its password, the account
    and session services, SimpleUpdate). SimpleUpdate would fetch the URIs it names, so its
    service is kept busy (it stops at ``409`` once the body is checked). The service answers
    every failure; one it logs as unexpected (a ``500 InternalError``, a task that failed
    unexpectedly) is the defect, raised here as it was raised there."""
    from tests.platform.node_world import NOW

    from ironroot.platform._redfish import RedfishService, create_redfish_app
    from ironroot.platform._redfish_accounts import AccountStore
    from ironroot.platform._redfish_http import (
        ACCOUNTS,
        MULTIPART_URI,
        ROOT,
        SESSIONS,
        SIMPLE_UPDATE,
        RedfishLimits,
    )

    seeds = redfish_seeds()
    folder = scratch() / f"redfish-{os.getpid()}-{next(_REDFISH_SCRATCH)}"
    folder.mkdir()
    try:
        (folder / "accounts.json").write_bytes(seeds.accounts)
        accounts = AccountStore(
            folder / "accounts.json", kdf=REDFISH_KDF, clock=lambda: NOW.timestamp()
        )
        push = data.startswith(f"--{MULTIPART_BOUNDARY}".encode())
        node = seeds.world.node(folder) if push else seeds.node
        limits = RedfishLimits(256 * 1024, 64 * 1024, verify_wait=120)
        service = RedfishService(
            node, accounts, limits=limits, clock=lambda: NOW, basic_over_http=True
        )
        app = create_redfish_app(service)
        with _unexpected_errors() as unexpected:
            if push:
                kind = f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
                answers = _redfish_requests(app, [("POST", MULTIPART_URI, data, kind)])
                if not service.updating.acquire(timeout=120):  # the update's worker ended
                    raise AssertionError("the update task did not end in 120 s")
            else:
                service.updating.acquire()
                actions = [
                    ("POST", SESSIONS),
                    ("POST", ACCOUNTS),
                    ("PATCH", f"{ACCOUNTS}/2"),
                    ("POST", f"{ACCOUNTS}/2/Actions/ManagerAccount.ChangePassword"),
                    ("PATCH", f"{ROOT}/AccountService"),
                    ("PATCH", f"{ROOT}/SessionService"),
                    ("POST", SIMPLE_UPDATE),
                ]
                requests = [(m, p, data, "application/json") for m, p in actions]
                answers = _redfish_requests(app, requests)
        if unexpected:
            raise unexpected[0]
        return answers
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _redfish_run(data: bytes) -> None:
    redfish_answers(data)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("x509", _x509_seeds, _x509_run),
        Target("csr-crl", _csr_crl_seeds, _csr_crl_run),
        Target("dice", _dice_seeds, _dice_run),
        Target("open-dice-cbor", _open_dice_seeds, _open_dice_run),
        Target("key-file", _key_file_seeds, _key_file_run),
        Target("cbor", _cbor_seeds, _cbor_run),
        Target("statement", _statement_seeds, _statement_run),
        Target("receipt", _receipt_seeds, _receipt_run),
        Target("transparent-statement", _transparent_seeds, _transparent_run),
        Target("key-set", _key_set_seeds, _key_set_run),
        Target("checkpoint", _checkpoint_seeds, _checkpoint_run),
        Target("tiles", _tile_seeds, _tile_run),
        Target("corim", _corim_seeds, _corim_run),
        Target("firmware", _firmware_seeds, _firmware_run),
        Target("safe", _safe_seeds, _safe_run),
        Target("sfr-corim", _sfr_corim_seeds, _sfr_corim_run),
        Target("tdx", _tdx_seeds, _tdx_run),
        Target("snp", _snp_seeds, _snp_run),
        Target("evidence", _evidence_seeds, _evidence_run),
        Target("rot-quote", _rot_quote_seeds, _rot_quote_run),
        Target("tdx-collateral", _collateral_seeds, _collateral_run),
        Target("ear-claims", _ear_claims_seeds, _ear_claims_run),
        Target("ear-token", _ear_token_seeds, _ear_token_run),
        Target("release-request", _release_request_seeds, _release_request_run),
        Target("release-policy", _release_policy_seeds, _release_policy_run),
        Target("spdm-evidence", _spdm_seeds, _spdm_run),
        Target("nvidia-gpu", _gpu_seeds, _gpu_run),
        Target("rim", _rim_seeds, _rim_run),
        Target("audit-bundle", _audit_bundle_seeds, _audit_bundle_run, examples=40),
        Target("audit-members", _audit_members_seeds, _audit_members_run, examples=12),
        Target("audit-trust", _audit_trust_seeds, _audit_trust_run, examples=60),
        Target("admission-request", _admission_seeds, _admission_run, examples=60),
        Target("fleet-credential", _credential_seeds, _credential_run, examples=80),
        Target("desired-document", _desired_document_seeds, _desired_document_run, examples=80),
        Target("desired-store", _desired_store_seeds, _desired_store_run, examples=60),
        Target("witness-add-checkpoint", _witness_seeds, _witness_run, examples=100),
        Target("witness-answer", _cosignature_seeds, _cosignature_run, examples=80),
        Target("witnessed-statement", _witnessed_seeds, _witnessed_run, examples=100),
        Target("monitor-state", _monitor_seeds, _monitor_run, examples=60),
        Target("monitor-checks", _monitor_check_seeds, _monitor_check_run, examples=60),
        Target("witness-state", _witness_state_seeds, _witness_state_run, examples=40),
        Target("spdm-responses", spdm_response_seeds, _spdm_responses_run, examples=150),
        Target("spdm-requests", spdm_request_seeds, _spdm_requests_run, examples=150),
        Target("pfm", _pfm_seeds, _pfm_run, examples=100),
        Target("redfish-body", _redfish_seeds, _redfish_run, examples=30),
    )
}
