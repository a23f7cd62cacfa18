"""Generate ``tests/vectors/``: known-good vectors of Ironroot's own wire formats.

``python scripts/gen_vectors.py`` writes, through the production code (each package's public
API), one small file per format into ``tests/vectors/`` and ``tests/vectors/index.json``,
which names each file, its format and specification, the keys that verify it (public keys
under ``tests/vectors/keys/``) and what a parser must find in it. ``tests/test_vectors.py``
parses and verifies every file with code that does not share the production path (``cbor2``,
``cryptography`` and ``hashlib`` directly), so the committed files freeze the wire formats: a
change to one is a visible diff and a failing test until the vectors are regenerated and the
diff reviewed.

``python scripts/gen_vectors.py --check`` regenerates into a temporary directory and compares
with the committed files (exit 1 and a description of each difference when they differ).

Determinism. Every key comes from fixed bytes (:func:`_seed`: SHAKE-256 of a label), every
clock is :data:`NOW`, every "random" input of the SPDM peers is a fixed stream. Signatures:

* ECDSA is signed here with RFC 6979 deterministic nonces (``cryptography``'s
  ``deterministic_signing``), low-S like :class:`ironroot.crypto.PrivateKey`; Ed25519 is
  deterministic by design. Both go through the product's ``Signer`` seam (:class:`_Signer`).
* ML-DSA signing in ``cryptography`` is hedged (randomized) with no deterministic option. An
  ML-DSA signature made through the ``Signer`` seam is kept in ``pq-signatures.json`` (key id,
  SHA-256 of the message, signature) and reused, after verifying it, when the same key signs
  the same bytes again. So the firmware bundle, and everything that hashes it (the manifest
  statement, the log, its checkpoints and the RoT's PCRs), reproduce byte for byte; a change
  to what is signed signs afresh, and the diff shows it. ``--fresh`` ignores the store.
* What is signed or drawn inside code that takes no ``Signer`` cannot be made deterministic
  from outside: the RoT's DICE certificates and quote (``cryptography``'s X.509 builder and
  the RT alias keys: ECDSA and ML-DSA-87 both randomized), the ML-DSA-87 vendor CA root, the
  HSM audit MACs (keyed by an audit key the HSM draws at initialization) and the ML-KEM
  encapsulation of a released key. For those files ``--check`` compares everything except
  those bytes (:data:`_NORMALIZERS`): the certificates' TBSCertificate, the quote's headers,
  payload and chain TBS, the audit records without ``mac``, the released key without the KEM
  ciphertext and wrapped key (whose unwrapped value the test checks instead). ``index.json``
  says, under ``varies``, what changes.

Run it from the repository root with the checkout's sources first on the path (the script puts
``src/`` there itself). It takes about a second.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import difflib
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import cbor2  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ironroot.cose import InclusionProof, Receipt, SignedStatement, create_statement  # noqa: E402
from ironroot.crypto import Algorithm, PrivateKey, PublicKey, ecdsa_low_s  # noqa: E402
from ironroot.ear import Appraisal, AttestationResult, VerifierId, sign_ear_cwt, sign_ear_jwt  # noqa: E402
from ironroot.firmware import (  # noqa: E402
    BundlePolicy,
    Component,
    FirmwareBundle,
    build_bundle,
    key_descriptor_hash,
    manifest_statement,
    sign_bundle,
    verify_bundle,
)
from ironroot.fleet import FLEET_CREDENTIAL_OID, FLEET_OPERATOR_OID, FleetCA, ear_id_of  # noqa: E402
from ironroot.hsm import (  # noqa: E402
    DeviceIdentity,
    Hsm,
    HsmConfig,
    KeyType,
    MemoryStorage,
    Role,
    parse_audit_log,
    verify_audit,
    wrap_key_kem,
)
from ironroot.hsm._release_statement import (  # noqa: E402
    RELEASE_STATEMENT_CONTENT_TYPE,
    sign_release_statement,
)
from ironroot.keyrelease import WRAP_ALGORITHMS, ReleasedKey  # noqa: E402
from ironroot.keyrelease.tee import TeeKeyPair  # noqa: E402
from ironroot.log import Checkpoint, Note, NoteSigner  # noqa: E402
from ironroot.rot import (  # noqa: E402
    Fuses,
    Lifecycle,
    VendorCA,
    cold_boot,
    create_quote,
    derive_layers,
    verify_quote,
)

# The one private import: the IDevID CSR is made inside Device.provision, which draws a random
# UDS; the vectors need a fixed one, so they make the CSR from the fixed UDS's IDevID keys with
# the same function provision uses.
from ironroot.rot._layers import IDEVID, build_csr  # noqa: E402
from ironroot.spdm import (  # noqa: E402
    MeasurementBlock,
    MeasurementValueType,
    Requester,
    Responder,
    SpdmEvidence,
    verify_spdm_evidence,
)
from ironroot.transparency import TransparencyService  # noqa: E402
from ironroot.witness import Cosigner, MemoryWitnessStore, Witness, WitnessedLog  # noqa: E402

VECTORS: Final = ROOT / "tests" / "vectors"
INDEX: Final = "index.json"
PQ_SIGNATURES: Final = "pq-signatures.json"

NOW: Final = dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
"""The one clock of every vector: a verifier pins "now" to this instant."""
T: Final = int(NOW.timestamp())
VALID_FROM: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
VALID_TO: Final = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)

VENDOR_ISS: Final = "https://vendor.example"
FIRMWARE_SUB: Final = "pkg:firmware/acme/bmc@2.1.0"
SERVICE_ISS: Final = "https://transparency.example"
ORIGIN: Final = "transparency.example"
WITNESS_NAME: Final = "witness.example/w1"
QUOTE_NONCE: Final = bytes(range(0x10, 0x30))
SPDM_NONCE: Final = bytes(range(0x40, 0x60))
EAR_NONCE: Final = bytes(range(0x60, 0x80))
RELEASE_NONCE: Final = bytes(range(0x80, 0xA0))
RELEASED_KEY: Final = bytes(range(0xA0, 0xC0))  # the AES-256 key the released-key vector wraps
RELEASE_EAR: Final = b"the EAR the vector release was decided on"
HSM_ID: Final = bytes(range(0x10, 0x20))


# --- fixed keys -------------------------------------------------------------------------------


def _seed(label: str, size: int = 64) -> bytes:
    """The fixed bytes every key and "random" input of the vectors comes from."""
    return hashlib.shake_256(b"ironroot/test-vectors/v1/" + label.encode()).digest(size)


def _ec_key(label: str, algorithm: Algorithm) -> PrivateKey:
    curve = {Algorithm.ES256: ec.SECP256R1(), Algorithm.ES384: ec.SECP384R1()}[algorithm]
    # A scalar one byte shorter than the group order, plus one: always in [1, n − 1].
    size = curve.key_size // 8 - 1
    scalar = int.from_bytes(_seed(label, size), "big") + 1
    return PrivateKey(ec.derive_private_key(scalar, curve), algorithm)


def _ed25519_key(label: str) -> PrivateKey:
    return PrivateKey(ed25519.Ed25519PrivateKey.from_private_bytes(_seed(label, 32)))


def _mldsa_key(label: str, algorithm: Algorithm) -> PrivateKey:
    return PrivateKey.from_mldsa_seed(algorithm, _seed(label, 32))


class _Stream:
    """A fixed byte stream standing in for ``os.urandom`` (SPDM nonces, requester context)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._counter = 0

    def __call__(self, size: int) -> bytes:
        self._counter += 1
        return _seed(f"{self._label}/{self._counter}", size)


class _SignatureStore:
    """ML-DSA signatures kept between runs (see the module documentation)."""

    def __init__(self, known: dict[str, str]) -> None:
        self._known = known
        self.used: dict[str, str] = {}

    @classmethod
    def load(cls, path: Path | None) -> _SignatureStore:
        if path is None or not path.is_file():
            return cls({})
        entries = json.loads(path.read_text())["signatures"]
        return cls({e["id"]: e["signature"] for e in entries})

    def sign(self, key: PrivateKey, data: bytes) -> bytes:
        ident = f"{key.algorithm.label}:{key.kid.hex()}:{hashlib.sha256(data).hexdigest()}"
        kept = self._known.get(ident)
        if kept is None:
            signature = key.sign(data)
        else:
            signature = base64.b64decode(kept)
            key.public_key.verify(signature, data)  # a kept signature must still verify
        self.used[ident] = base64.b64encode(signature).decode()
        return signature

    def encode(self) -> bytes:
        doc = {
            "about": "ML-DSA signatures of the vectors, reused when the same key signs the same "
            "bytes again (scripts/gen_vectors.py); id = alg:kid:SHA-256(message)",
            "signatures": [{"id": k, "signature": v} for k, v in sorted(self.used.items())],
        }
        return (json.dumps(doc, indent=1) + "\n").encode()


class _Signer:
    """An :class:`ironroot.crypto.Signer` over a fixed key whose signatures reproduce: ECDSA
    with RFC 6979 nonces (low-S), Ed25519 as is, ML-DSA through the signature store."""

    def __init__(self, key: PrivateKey, store: _SignatureStore) -> None:
        self.key = key
        self._store = store

    @property
    def algorithm(self) -> Algorithm:
        return self.key.algorithm

    @property
    def kid(self) -> bytes:
        return self.key.kid

    def verifier(self) -> PublicKey:
        return self.key.public_key

    def sign(self, data: bytes) -> bytes:
        raw = self.key.raw
        if isinstance(raw, ec.EllipticCurvePrivateKey):
            digest = {256: hashes.SHA256(), 384: hashes.SHA384()}[raw.curve.key_size]
            r, s = decode_dss_signature(
                raw.sign(data, ec.ECDSA(digest, deterministic_signing=True))
            )
            size = raw.curve.key_size // 8
            return ecdsa_low_s(self.algorithm, r.to_bytes(size, "big") + s.to_bytes(size, "big"))
        if self.algorithm in (Algorithm.ML_DSA_44, Algorithm.ML_DSA_65, Algorithm.ML_DSA_87):
            return self._store.sign(self.key, data)
        return self.key.sign(data)


# --- small X.509 PKIs (test CAs: the vendor's root, the SPDM and HSM devices' chains) ----------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(sign, False, False, False, False, ca, ca, False, False)


def _certificate(
    *,
    subject: str,
    key: PrivateKey,
    issuer: str,
    issuer_key: PrivateKey,
    serial: int,
    ca: bool,
    path_length: int | None = None,
) -> bytes:
    """An ECDSA certificate signed with RFC 6979 nonces (reproducible byte for byte)."""
    public = key.public_key.raw
    signing = issuer_key.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_TO)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(sign=not ca, ca=ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing.public_key()),
            critical=False,
        )
    )
    digest = {256: hashes.SHA256(), 384: hashes.SHA384()}[signing.curve.key_size]
    cert = builder.sign(signing, digest, ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.DER)


def _vendor_root(key: PrivateKey) -> bytes:
    """The RoT vendor CA's self-signed root (the profile of ``ironroot rot ca-init``)."""
    name = x509.Name(
        [
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"Ironroot Vector Vendor CA {key.algorithm.label}"
            ),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, key.kid.hex().upper()),
        ]
    )
    ski = hashlib.sha256(key.public_key.raw_bytes()).digest()[:20]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(int.from_bytes(ski, "big") >> 1 | 1)
        .not_valid_before(VALID_FROM)
        .not_valid_after(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier(ski, None, None), critical=False)
    )
    raw = key.raw
    if isinstance(raw, ec.EllipticCurvePrivateKey):
        cert = builder.sign(raw, hashes.SHA384(), ecdsa_deterministic=True)
    else:
        cert = builder.sign(raw, None)  # type: ignore[arg-type]  # ML-DSA: randomized
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(ders: list[bytes] | tuple[bytes, ...]) -> bytes:
    return b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders
    )


# --- the generator ----------------------------------------------------------------------------


@dataclass
class _Out:
    """What one run writes: files (relative path → bytes) and the index entries."""

    files: dict[str, bytes] = field(default_factory=dict)
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    vectors: list[dict[str, Any]] = field(default_factory=list)

    def key(self, name: str, path: str, data: bytes, **about: Any) -> None:
        self.files[path] = data
        self.keys[name] = {"file": path, **about}

    def vector(self, path: str, data: bytes, **about: Any) -> None:
        self.files[path] = data
        self.vectors.append({"file": path, **about})


def _public_key_entry(out: _Out, name: str, key: PrivateKey, purpose: str) -> None:
    out.key(
        name,
        f"keys/{name}.pub.pem",
        key.public_key.to_pem(),
        alg=key.algorithm.label,
        kid=key.kid.hex(),
        purpose=purpose,
    )


_TRANSPARENCY_TOML: Final = f"""\
[transparency]
service_issuer = "{SERVICE_ISS}"
receipt_algorithms = ["ES384"]

[[transparency.issuers]]
iss = "{VENDOR_ISS}"
key = "vendor.pub.pem"

[log]
origin = "{ORIGIN}"
checkpoint_algorithm = "Ed25519"
"""


def _register(service: TransparencyService, statements: list[bytes]) -> list[bytes]:
    """Register one statement at a time (one batch each, so the receipts are reproducible)."""
    ids = []
    for statement in statements:
        ticket = service.submit(statement)
        ticket.integrated.result(timeout=30)
        ids.append(ticket.entry_id)
    return ids


class _Keys:
    """Every key of the vector set, from fixed bytes (labels are part of the format: changing
    one changes the vectors)."""

    def __init__(self) -> None:
        self.vendor_ecc = _ec_key("vendor-es384", Algorithm.ES384)
        self.vendor_pqc = _mldsa_key("vendor-mldsa87", Algorithm.ML_DSA_87)
        self.receipt = _ec_key("receipt-es384", Algorithm.ES384)
        self.log = _ed25519_key("log-ed25519")
        self.witness_ed = _ed25519_key("witness-ed25519")
        self.witness_pq = _mldsa_key("witness-mldsa44", Algorithm.ML_DSA_44)
        self.ear = _ec_key("ear-verifier-es384", Algorithm.ES384)
        self.ca_ecc = _ec_key("vendor-ca-es384", Algorithm.ES384)
        self.ca_pqc = _mldsa_key("vendor-ca-mldsa87", Algorithm.ML_DSA_87)
        self.spdm_root = _ec_key("spdm-root-es384", Algorithm.ES384)
        self.spdm_ca = _ec_key("spdm-device-ca-es384", Algorithm.ES384)
        self.spdm_device = _ec_key("spdm-device-es384", Algorithm.ES384)
        self.hsm_root = _ec_key("hsm-device-root-es384", Algorithm.ES384)
        self.hsm_device = _ec_key("hsm-device-es384", Algorithm.ES384)
        self.hsm_attestation = _ec_key("hsm-attestation-es384", Algorithm.ES384)
        self.fleet_node = _ec_key("fleet-node-es384", Algorithm.ES384)
        self.tee = TeeKeyPair(mlkem.MLKEM768PrivateKey.from_seed_bytes(_seed("tee-mlkem768", 64)))


_Sign = Callable[[PrivateKey], _Signer]


def generate(store: _SignatureStore, work: Path) -> _Out:
    """The whole vector set; ``work`` is scratch space (the transparency service's data)."""
    out, keys = _Out(), _Keys()

    def signer(key: PrivateKey) -> _Signer:
        return _Signer(key, store)

    bundle, fused, statement = _firmware(out, keys, signer)
    _transparency(out, keys, signer, statement, work)
    _root_of_trust(out, keys, bundle, fused)
    _spdm(out, keys, signer)
    _ear(out, keys, signer)
    _released_key(out, keys, signer)
    _hsm_audit(out, keys, signer)
    _fleet_credential_extensions(out, keys, work)
    return out


def _firmware(out: _Out, keys: _Keys, signer: _Sign) -> tuple[bytes, bytes, bytes]:
    """The firmware bundle and its manifest statement; returns them and the fused key hash."""
    vendor_ecc, vendor_pqc = keys.vendor_ecc, keys.vendor_pqc
    _public_key_entry(
        out, "vendor-es384", vendor_ecc, "firmware vendor ECC key; issuer key of " + VENDOR_ISS
    )
    _public_key_entry(out, "vendor-mldsa87", vendor_pqc, "firmware vendor PQC key")
    components = [
        Component(1, b"ironroot test vector: first mutable code (FMC)\n" * 2, version=0x0201),
        Component(2, b"ironroot test vector: runtime\n" * 3, version=0x0201),
    ]
    unsigned = build_bundle(
        components,
        svn=3,
        not_before=VALID_FROM,
        not_after=VALID_TO,
        vendor_ecc_keys=[vendor_ecc.public_key],
        vendor_pqc_keys=[vendor_pqc.public_key],
        pqc_type="mldsa",
        revision=7,
    )
    bundle = sign_bundle(unsigned, signer(vendor_ecc), signer(vendor_pqc))
    fused = key_descriptor_hash([vendor_ecc.public_key], [vendor_pqc.public_key], "mldsa")
    verified = verify_bundle(
        bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=fused, min_svn=3)
    )
    parsed = FirmwareBundle.parse(bundle)
    manifest_digest = parsed.manifest_digest()
    manifest_size = len(parsed.manifest.encode())
    out.vector(
        "firmware-bundle.bin",
        bundle,
        format="Ironroot firmware bundle (manifest ‖ FMC ‖ runtime)",
        spec="docs/firmware.md#bundle-layout (Caliptra 2.0 image manifest layout)",
        produced_by="ironroot.firmware.build_bundle + sign_bundle",
        keys=["vendor-es384", "vendor-mldsa87"],
        reproducible="exact",
        expect={
            "marker": "IRMN",
            "manifest_size": manifest_size,
            "pqc_key_type": 1,
            "vendor_key_descriptor_hash": fused.hex(),
            "header_digest": verified.header_digest.hex(),
            "manifest_digest": manifest_digest.hex(),
            "svn": verified.svn,
            "revision": 7,
            "toc": [
                {
                    "id": c.component_id,
                    "size": len(c.data),
                    "sha384": hashlib.sha384(c.data).hexdigest(),
                }
                for c in components
            ],
            "not_before": "20260101000000Z",
            "not_after": "20360101000000Z",
        },
    )

    statement = manifest_statement(bundle, signer(vendor_ecc), iss=VENDOR_ISS, sub=FIRMWARE_SUB)
    out.vector(
        "firmware-manifest-statement.cose",
        statement,
        format="SCITT Signed Statement (COSE_Sign1, RFC 9995 hash envelope)",
        spec="RFC 9052, RFC 9943, RFC 9995; docs/firmware.md#publication",
        produced_by="ironroot.firmware.manifest_statement",
        keys=["vendor-es384"],
        reproducible="exact",
        expect={
            "alg": -35,
            "kid": vendor_ecc.kid.hex(),
            "iss": VENDOR_ISS,
            "sub": FIRMWARE_SUB,
            "payload_hash_alg": -43,
            "preimage_content_type": "application/vnd.ironroot.firmware-manifest",
            "payload": manifest_digest.hex(),
            "preimage": "firmware-bundle.bin bytes [0, manifest_size)",
        },
    )
    return bundle, fused, statement


def _transparency(out: _Out, keys: _Keys, signer: _Sign, statement: bytes, work: Path) -> None:
    """Three earlier statements, then the manifest statement: receipt, transparent statement,
    checkpoint, and the checkpoint cosigned by a witness."""
    vendor_ecc, receipt_key, log_key = keys.vendor_ecc, keys.receipt, keys.log
    witness_ed, witness_pq = keys.witness_ed, keys.witness_pq
    log_vkey = NoteSigner(ORIGIN, signer(log_key)).verifier().vkey
    out.key(
        "log-ed25519",
        "keys/log-ed25519.vkey",
        (log_vkey + "\n").encode(),
        alg="Ed25519",
        purpose="checkpoint signer (C2SP signed-note vkey)",
    )
    _public_key_entry(out, "receipt-es384", receipt_key, "transparency service receipt key")
    data = work / "transparency"
    data.mkdir(parents=True)
    (data / "ironroot.toml").write_text(_TRANSPARENCY_TOML)
    (data / "ironroot.toml").chmod(0o600)
    (data / "vendor.pub.pem").write_bytes(vendor_ecc.public_key.to_pem())
    earlier = [
        _statement(signer(vendor_ecc), f"pkg:firmware/acme/bmc@2.0.{i}", i) for i in range(3)
    ]
    service = TransparencyService.open(
        data,
        clock=lambda: NOW,
        receipt_signers=[signer(receipt_key)],
        checkpoint_signers=[signer(log_key)],
    )
    with service:
        ids = _register(service, [*earlier, statement])
        (receipt,) = service.receipts(ids[-1]) or ()
        transparent = service.transparent_statement(ids[-1])
        checkpoint = service.log.checkpoint()
    parsed_receipt = Receipt.parse(receipt)
    proof: InclusionProof = parsed_receipt.inclusion_proofs[0]
    note = Note.parse(checkpoint)
    body = Checkpoint.parse(note.body)
    entry = SignedStatement.parse(statement).log_entry()
    out.vector(
        "receipt.cose",
        receipt,
        format="SCITT Receipt (COSE_Sign1, detached payload = RFC 9162 tree root)",
        spec="RFC 9942 (vds 1 = RFC9162_SHA256), RFC 9052 §4.4",
        produced_by="ironroot.transparency.TransparencyService.receipts",
        keys=["receipt-es384"],
        reproducible="exact",
        expect={
            "alg": -35,
            "vds": 1,
            "kid": receipt_key.kid.hex(),
            "iss": SERVICE_ISS,
            "iat": T,
            "tree_size": proof.tree_size,
            "leaf_index": proof.leaf_index,
            "path": [h.hex() for h in proof.path],
            "root": body.root.hex(),
            "proves": "the log entry of firmware-manifest-statement.cose",
            "leaf_hash": hashlib.sha256(b"\x00" + entry).hexdigest(),
        },
    )
    out.vector(
        "transparent-statement.cose",
        transparent,
        format="SCITT Transparent Statement (the Signed Statement, receipts in header 394)",
        spec="RFC 9943 §4.4, RFC 9942",
        produced_by="ironroot.transparency.TransparencyService.transparent_statement",
        keys=["vendor-es384", "receipt-es384"],
        reproducible="exact",
        expect={
            "statement": "firmware-manifest-statement.cose with header 394 added",
            "receipts": [hashlib.sha256(receipt).hexdigest()],
            "iss": VENDOR_ISS,
            "sub": FIRMWARE_SUB,
        },
    )
    out.vector(
        "checkpoint.txt",
        checkpoint,
        format="C2SP tlog-checkpoint as a C2SP signed note (Ed25519)",
        spec="c2sp.org/tlog-checkpoint, c2sp.org/signed-note",
        produced_by="ironroot.log.Log.checkpoint (the transparency service's log)",
        keys=["log-ed25519"],
        reproducible="exact",
        expect={
            "origin": ORIGIN,
            "size": body.size,
            "root": body.root.hex(),
            "signatures": [{"name": ORIGIN, "key_id": s.key_id.hex()} for s in note.signatures],
        },
    )
    witness = Witness(
        WITNESS_NAME,
        [Cosigner(WITNESS_NAME, signer(witness_ed)), Cosigner(WITNESS_NAME, signer(witness_pq))],
        [WitnessedLog.from_vkeys(ORIGIN, [log_vkey])],
        MemoryWitnessStore(),
        clock=lambda: T,
    )
    out.key(
        "witness",
        "keys/witness.vkeys",
        "".join(v.vkey + "\n" for v in witness.verifiers).encode(),
        alg=["Ed25519", "ML-DSA-44"],
        purpose="witness cosigner vkeys (C2SP tlog-cosignature), one a line",
    )
    witness.add_checkpoint(b"old 0\n\n" + checkpoint)
    latest = witness.latest(ORIGIN)
    assert latest is not None
    cosigned = latest.note
    out.vector(
        "checkpoint-cosigned.txt",
        cosigned,
        format="checkpoint.txt with witness cosignatures (Ed25519 cosignature/v1, "
        "ML-DSA-44 subtree/v1)",
        spec="c2sp.org/tlog-cosignature, c2sp.org/tlog-witness",
        produced_by="ironroot.witness.Witness.add_checkpoint",
        keys=["log-ed25519", "witness"],
        reproducible="exact",
        expect={
            "checkpoint": "checkpoint.txt's body and signature line",
            "cosigner": WITNESS_NAME,
            "timestamp": T,
            "cosignature_types": [4, 6],
        },
    )


def _root_of_trust(out: _Out, keys: _Keys, bundle: bytes, fused: bytes) -> None:
    """Vendor CA, provisioning from a fixed UDS, cold boot of the bundle, quote, DICE chain."""
    ca_ecc, ca_pqc = keys.ca_ecc, keys.ca_pqc
    vendor_ca = VendorCA(ca_ecc, ca_pqc, _vendor_root(ca_ecc), _vendor_root(ca_pqc))
    out.key(
        "vendor-ca-es384",
        "keys/vendor-ca-es384.cert.pem",
        _pem([vendor_ca.ecc_certificate]),
        alg="ES384",
        purpose="RoT vendor CA root (ECC): trust anchor of the quote and DICE chain",
    )
    out.key(
        "vendor-ca-mldsa87",
        "keys/vendor-ca-mldsa87.cert.pem",
        _pem([vendor_ca.mldsa_certificate]),
        alg="ML-DSA-87",
        purpose="RoT vendor CA root (ML-DSA-87): trust anchor of the quote's PQC chain",
        varies="the self-signature (ML-DSA inside cryptography's X.509 builder)",
    )
    fuses = (
        Fuses()
        .program_uds(_seed("rot-uds", 64))
        .program_field_entropy(_seed("rot-field-entropy", 32))
        .advance_lifecycle(Lifecycle.MANUFACTURING)
    )
    idevid = derive_layers(fuses, [bytes(48)] * 3)
    idevid_certs = {
        alg: vendor_ca.issue_idevid(
            build_csr(idevid.idevid.key(alg), profile=IDEVID, ueid=idevid.ueid), now=VALID_FROM
        )
        for alg in (Algorithm.ES384, Algorithm.ML_DSA_87)
    }
    fuses = (
        fuses.program_vendor_key_hash(fused).lock_debug().advance_lifecycle(Lifecycle.PRODUCTION)
    )
    booted = cold_boot(fuses, bundle, now=NOW)
    quote = create_quote(
        nonce=QUOTE_NONCE,
        rt_alias=booted.layers.rt_alias,
        ueid=booted.layers.ueid,
        state=booted.state,
        idevid_certificates=idevid_certs,
        lifecycle=booted.fuses.lifecycle,
        debug_locked=booted.fuses.debug_locked,
    )
    claims = verify_quote(quote, nonce=QUOTE_NONCE, trust_anchors=vendor_ca.trust_anchors, now=NOW)
    out.vector(
        "rot-quote.cbor",
        quote,
        format="Ironroot RoT quote (ironroot-quote/1): two COSE_Sign1 over one claims map",
        spec="docs/rot.md#quotes; RFC 9052, RFC 9360 (x5chain)",
        produced_by="ironroot.rot.cold_boot + create_quote",
        keys=["vendor-ca-es384", "vendor-ca-mldsa87"],
        reproducible="structure",
        varies="both COSE signatures and the certificate signatures in x5chain (ECDSA and "
        "ML-DSA-87 inside the product, randomized); headers, claims and every TBSCertificate "
        "are fixed",
        expect={
            "format": "ironroot-quote/1",
            "nonce": QUOTE_NONCE.hex(),
            "ueid": claims.ueid.hex(),
            "pcrs": [p.hex() for p in claims.pcrs],
            "pcr_log": [[e.pcr, e.name, e.data.hex()] for e in claims.log],
            "fwids": {
                "fmc": claims.fmc_digest.hex(),
                "runtime": claims.runtime_digest.hex(),
                "header": claims.header_digest.hex(),
                "manifest": claims.manifest_digest.hex(),
            },
            "svn": claims.svn,
            "lifecycle": claims.lifecycle.label,
            "debug_locked": claims.debug_locked,
            "content_type": "application/vnd.ironroot.rot-quote+cbor",
            "x5chain": ["Rt Alias", "FMC Alias", "LDevID", "IDevID"],
        },
    )
    ecc_chain = [*reversed(booted.state.ecc_chain), idevid_certs[Algorithm.ES384]]
    out.vector(
        "dice-chain-es384.pem",
        _pem(ecc_chain),
        format="DICE certificate chain, X.509 PEM, leaf first: RT alias, FMC alias, LDevID, IDevID",
        spec="TCG DICE Attestation Architecture; docs/rot.md#dice-layers (Caliptra templates)",
        produced_by="ironroot.rot.VendorCA.issue_idevid + cold_boot",
        keys=["vendor-ca-es384"],
        reproducible="structure",
        varies="the four ECDSA signatures (made inside cryptography's X.509 builder)",
        expect={
            "subjects": [
                f"Ironroot Ecc384 {layer}"
                for layer in ("Rt Alias", "FMC Alias", "LDevID", "IDevID")
            ],
            "ueid": booted.layers.ueid.hex(),
            "rt_alias_fwid": claims.runtime_digest.hex(),
            "fmc_alias_fwids": [claims.fmc_digest.hex()],
            "issuer_of_idevid": f"Ironroot Vector Vendor CA {Algorithm.ES384.label}",
        },
    )


def _spdm(out: _Out, keys: _Keys, signer: _Sign) -> None:
    """A measured SPDM session recorded as evidence."""
    spdm_root_key, spdm_ca_key = keys.spdm_root, keys.spdm_ca
    spdm_device_key = keys.spdm_device
    spdm_chain = (
        _certificate(
            subject="Vector SPDM Root CA",
            key=spdm_root_key,
            issuer="Vector SPDM Root CA",
            issuer_key=spdm_root_key,
            serial=1,
            ca=True,
        ),
        _certificate(
            subject="Vector SPDM Device CA",
            key=spdm_ca_key,
            issuer="Vector SPDM Root CA",
            issuer_key=spdm_root_key,
            serial=2,
            ca=True,
            path_length=0,
        ),
        _certificate(
            subject="Vector SPDM Device",
            key=spdm_device_key,
            issuer="Vector SPDM Device CA",
            issuer_key=spdm_ca_key,
            serial=3,
            ca=False,
        ),
    )
    out.key(
        "spdm-root",
        "keys/spdm-root.cert.pem",
        _pem([spdm_chain[0]]),
        alg="ES384",
        purpose="the SPDM device's root CA (the verifier's --cert)",
    )
    blocks = [
        MeasurementBlock(1, MeasurementValueType.IMMUTABLE_ROM, hashlib.sha384(b"rom").digest()),
        MeasurementBlock(
            2, MeasurementValueType.MUTABLE_FIRMWARE, hashlib.sha384(b"firmware").digest()
        ),
        MeasurementBlock(3, MeasurementValueType.VERSION, b"2.1.0", raw=True),
    ]
    responder = Responder(
        signer(spdm_device_key), spdm_chain, blocks, random=_Stream("spdm-responder")
    )
    requester = Requester(
        responder, root_certificate=spdm_chain[0], now=NOW, random=_Stream("spdm-requester")
    )
    evidence = requester.evidence(SPDM_NONCE)
    verified_spdm = verify_spdm_evidence(
        evidence, nonce=SPDM_NONCE, root_certificate=spdm_chain[0], now=NOW
    )
    record = SpdmEvidence.decode(evidence)
    out.vector(
        "spdm-evidence.cbor",
        evidence,
        format="Ironroot SPDM evidence (ironroot-spdm-evidence/1): VCA, chain, signed "
        "GET_MEASUREMENTS and MEASUREMENTS",
        spec="DMTF DSP0274 1.2/1.3 (messages, certificate chain format, signing §15); "
        "docs/spdm.md#spdm-evidence-for-a-remote-verifier",
        produced_by="ironroot.spdm.Requester.evidence against ironroot.spdm.Responder",
        keys=["spdm-root"],
        reproducible="exact",
        expect={
            "format": "ironroot-spdm-evidence/1",
            "version": f"{record.request[0] >> 4}.{record.request[0] & 0xF}",
            "nonce": SPDM_NONCE.hex(),
            "base_asym": "ECDSA P-384",
            "base_hash": "SHA-384",
            "measurements": [
                {"index": b.index, "type": int(b.value_type), "raw": b.raw, "value": b.value.hex()}
                for b in blocks
            ],
            "verified_blocks": len(verified_spdm.blocks),
        },
    )


def _ear(out: _Out, keys: _Keys, signer: _Sign) -> None:
    """One attestation result, as JWT and as CWT."""
    ear_key = keys.ear
    _public_key_entry(out, "ear-verifier-es384", ear_key, "attestation verifier EAR key")
    result = AttestationResult(
        iat=T,
        exp=T + 3600,
        verifier_id=VerifierId("https://ironroot.example", "ironroot test vectors"),
        nonce=EAR_NONCE,
        submods={
            "rot": Appraisal.from_vector(
                {
                    "instance-identity": 2,
                    "configuration": 2,
                    "executables": 3,
                    "hardware": 2,
                },
                policy_id="policy:rot/vector",
            )
        },
    )
    ear_expect = {
        "eat_profile": "tag:github.com,2023:veraison/ear",
        "iat": T,
        "exp": T + 3600,
        "nonce": EAR_NONCE.hex(),
        "verifier_id": {"developer": "https://ironroot.example", "build": "ironroot test vectors"},
        "submods": {
            "rot": {
                "status": "affirming",
                "trust_vector": {
                    "instance-identity": 2,
                    "configuration": 2,
                    "executables": 3,
                    "hardware": 2,
                },
                "policy_id": "policy:rot/vector",
            }
        },
        "kid": ear_key.kid.hex(),
    }
    out.vector(
        "ear.jwt",
        sign_ear_jwt(result, signer(ear_key)),
        format="EAR (EAT Attestation Result) as a JWT: compact JWS, ES384",
        spec="draft-ietf-rats-ear, draft-ietf-rats-ar4si, RFC 7515, RFC 7519",
        produced_by="ironroot.ear.sign_ear_jwt",
        keys=["ear-verifier-es384"],
        reproducible="exact",
        expect=ear_expect,
    )
    out.vector(
        "ear.cwt",
        sign_ear_cwt(result, signer(ear_key)),
        format="EAR as a CWT: COSE_Sign1 (tag 18) over the CBOR claims, ES384",
        spec="draft-ietf-rats-ear, RFC 8392, RFC 9052",
        produced_by="ironroot.ear.sign_ear_cwt",
        keys=["ear-verifier-es384"],
        reproducible="exact",
        expect=ear_expect,
    )


def _hsm_attestation_certificate(keys: _Keys) -> bytes:
    """The attestation certificate of the vectors' HSM (the profile of
    ``ironroot.hsm._certs.issue_attestation_certificate``), issued by its device key."""
    public, signing = keys.hsm_attestation.public_key.raw, keys.hsm_device.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Ironroot HSM attestation"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, HSM_ID.hex()),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(_name("Vector HSM Device"))
        .public_key(public)
        .serial_number(3)
        .not_valid_before(VALID_FROM)
        .not_valid_after(VALID_TO)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(signing, hashes.SHA384(), ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.DER)


def _released_key(out: _Out, keys: _Keys, signer: _Sign) -> None:
    """A released-key response: a fixed AES-256 key wrapped to the TEE's ML-KEM-768 key, with
    the release statement of an HSM whose device chain ends in the vectors' HSM root."""
    tee = keys.tee
    mlkem_public = mlkem.MLKEM768PublicKey.from_public_bytes(
        tee.public_spki[-1184:]  # SPKI DER ends with the raw encapsulation key
    )
    wrapped = wrap_key_kem(mlkem_public, KeyType.AES_256, RELEASED_KEY)
    chain = (_hsm_attestation_certificate(keys), *_hsm_chain(keys))
    statement = sign_release_statement(
        signer(keys.hsm_attestation),
        chain,
        hsm_id=HSM_ID,
        handle="k1",
        key_type=KeyType.AES_256,
        recipient=tee.public.digest,
        nonce=RELEASE_NONCE,
        ear=RELEASE_EAR,
        wrapped=wrapped,
        now=T,
    )
    released = ReleasedKey(
        kid="db-key",
        key_type=KeyType.AES_256,
        alg=WRAP_ALGORITHMS[tee.kind],
        recipient=tee.public.digest,
        nonce=RELEASE_NONCE,
        wrapped=wrapped,
        statement=statement,
    ).to_cbor()
    root = x509.load_der_x509_certificate(chain[-1])
    unwrapped = tee.unwrap(released, nonce=RELEASE_NONCE, hsm_roots=[root], now=NOW)
    assert unwrapped.material == RELEASED_KEY
    out.vector(
        "released-key.cbor",
        released,
        format="released-key response (application/vnd.ironroot.released-key+cbor), "
        "AES-256 key wrapped to an ML-KEM-768 TEE key, with the HSM's release statement",
        spec="docs/keyrelease.md#the-released-key-byte-by-byte; FIPS 203, RFC 5869, RFC 5649; "
        "RFC 9052 (the statement)",
        produced_by="ironroot.keyrelease.ReleasedKey + ironroot.hsm.wrap_key_kem + "
        "ironroot.hsm._release_statement.sign_release_statement "
        "(what KeyReleaseService.release returns)",
        keys=[],
        reproducible="structure",
        varies="the ML-KEM ciphertext and the AES-KWP output in wrapped[8:] (FIPS 203 "
        "encapsulation is randomized), so the statement's wrapped digest and signature; the "
        "unwrapped key is fixed",
        expect={
            "v": 2,
            "kid": "db-key",
            "key_type": "AES-256",
            "alg": "ML-KEM-768+A256KWP",
            "recipient": tee.public.digest.hex(),
            "nonce": RELEASE_NONCE.hex(),
            "wrapped_header": _released_header(KeyType.AES_256),
            "wrapped_size": 8 + 1088 + len(RELEASED_KEY) + 8,
            "tee_mlkem768_seed": _seed("tee-mlkem768", 64).hex(),
            "unwrapped_key": RELEASED_KEY.hex(),
            "statement_content_type": RELEASE_STATEMENT_CONTENT_TYPE,
            "statement_hsm": HSM_ID.hex(),
            "statement_handle": "k1",
            "statement_ear_sha256": hashlib.sha256(RELEASE_EAR).hexdigest(),
            "statement_iat": T,
            "hsm_root": chain[-1].hex(),
        },
    )


def _hsm_chain(keys: _Keys) -> tuple[bytes, bytes]:
    """The vectors' HSM device chain (DER): the device certificate, then its root."""
    hsm_root_key, hsm_device_key = keys.hsm_root, keys.hsm_device
    return (
        _certificate(
            subject="Vector HSM Device",
            key=hsm_device_key,
            issuer="Vector HSM Device Root",
            issuer_key=hsm_root_key,
            serial=2,
            ca=True,
        ),
        _certificate(
            subject="Vector HSM Device Root",
            key=hsm_root_key,
            issuer="Vector HSM Device Root",
            issuer_key=hsm_root_key,
            serial=1,
            ca=True,
        ),
    )


def _hsm_audit(out: _Out, keys: _Keys, signer: _Sign) -> None:
    """An HSM's audit log: initialize, logins (one refused), identities."""
    hsm_chain = _hsm_chain(keys)
    storage = MemoryStorage()
    hsm = Hsm.initialize(
        storage,
        _seed("hsm-sealing-secret", 48),
        officer="officer",
        credential=b"officer-credential",
        device=DeviceIdentity(signer(keys.hsm_device), hsm_chain),
        config=HsmConfig(scrypt_n=2**10),
        clock=lambda: T,
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "service", Role.USER, b"service-credential")
    hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
    try:
        hsm.login("service", b"wrong credential")
    except Exception as exc:
        refused = type(exc).__name__
    else:
        raise AssertionError("a wrong credential logged in")
    hsm.login("service", b"service-credential")
    hsm.close()
    audit = storage.read_audit()
    records = parse_audit_log(audit)
    verify_audit(records)
    out.vector(
        "hsm-audit.jsonl",
        audit,
        format="HSM audit log: JSON Lines, hash-chained records (seq, time, identity, "
        "operation, key, result, prev, mac)",
        spec="docs/hsm.md#audit-log (record hash = SHA-256 of the deterministic CBOR array "
        "of the first seven fields)",
        produced_by="ironroot.hsm.Hsm (initialize, login, add_identity, a refused login)",
        keys=[],
        reproducible="structure",
        varies="mac (HMAC under the audit key the HSM draws at initialize, sealed inside it)",
        expect={
            "records": [
                {
                    "seq": r.seq,
                    "time": r.time,
                    "identity": r.identity,
                    "operation": r.operation,
                    "key": r.key,
                    "result": r.result,
                }
                for r in records
            ],
            "head": records[-1].digest().hex(),
            "refused_login": refused,
        },
    )


# (node, node class, plane, what its EAR id hashes): the shortest names, 64-character ones,
# both planes, and the two sizes either side of DER's long-form length (127 and 128 bytes).
_FLEET_CREDENTIALS: Final = (
    ("node-0001", "gpu", "control", b"ear 1"),
    ("n", "c", "data", b"ear 2"),
    ("rack7_node-12", "node-7", "data", b"ear 3"),
    ("node-000000001", "class-0000001", "control", b"ear 4"),
    ("node-000000001", "class-00000001", "control", b"ear 5"),
    ("N" + "o_de-" * 12 + "123", "C" + "l4ss-" * 12 + "xyz", "data", b"ear 6"),
)
_FLEET_OPERATORS: Final = ("a", "alice", "Operator_" + "ab-" * 18 + "x")


def _extension_value(der: bytes, oid: str) -> str:
    cert = x509.load_der_x509_certificate(der)
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value.hex()


def _fleet_credential_extensions(out: _Out, keys: _Keys, work: Path) -> None:
    """The values of the fleet credential and fleet operator extensions of credentials the
    fleet CA issues (the certificates themselves carry a random serial and signature)."""
    ca = FleetCA.create(work / "fleet-ca", now=NOW)
    spki = keys.fleet_node.public_key.to_der()
    credentials, operators = [], []
    expect: dict[str, list[dict[str, str]]] = {"fleet-credential": [], "fleet-operator": []}
    for node, node_class, plane, ear in _FLEET_CREDENTIALS:
        ear_id = ear_id_of(ear)
        issued = ca.issue(
            spki, node=node, node_class=node_class, plane=plane, ear_id=ear_id, now=NOW
        )
        credentials.append(_extension_value(issued.der, FLEET_CREDENTIAL_OID))
        expect["fleet-credential"].append(
            {"node": node, "class": node_class, "plane": plane, "ear_id": ear_id}
        )
    for operator in _FLEET_OPERATORS:
        issued_operator = ca.issue_operator(spki, operator=operator, now=NOW)
        operators.append(_extension_value(issued_operator.der, FLEET_OPERATOR_OID))
        expect["fleet-operator"].append({"operator": operator})
    document = {
        "fleet-credential": {"oid": FLEET_CREDENTIAL_OID, "values": credentials},
        "fleet-operator": {"oid": FLEET_OPERATOR_OID, "values": operators},
    }
    out.vector(
        "fleet-credential-extensions.json",
        (json.dumps(document, indent=1) + "\n").encode(),
        format="the DER values (hex) of the fleet credential and fleet operator X.509 "
        "extensions of credentials the fleet CA issued",
        spec="docs/fleet.md (FleetCredential, FleetOperator), X.690 DER",
        produced_by="ironroot.fleet.FleetCA.issue, FleetCA.issue_operator",
        keys=[],
        reproducible="exact",
        expect=expect,
    )


def _released_header(key_type: KeyType) -> str:
    """The 8-byte header of the ML-KEM-768 wrap format for ``key_type`` (docs/keyrelease.md)."""
    codes = {KeyType.AES_256: 10}
    return (b"IRKW" + bytes((1, 1, codes[key_type], 0))).hex()


def _statement(signer: _Signer, sub: str, i: int) -> bytes:
    payload = json.dumps({"release": sub, "build": i}, sort_keys=True).encode()
    return create_statement(
        signer, payload, iss=VENDOR_ISS, sub=sub, content_type="application/json", iat=T
    )


def _index(out: _Out) -> bytes:
    doc = {
        "about": "Known-good vectors of Ironroot's own wire formats, written by "
        "scripts/gen_vectors.py through the production code; tests/test_vectors.py parses "
        "each without it. docs/vectors.md is the catalogue.",
        "now": NOW.isoformat().replace("+00:00", "Z"),
        "keys": dict(sorted(out.keys.items())),
        "vectors": out.vectors,
    }
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode()


def build(directory: Path, *, signatures: Path | None) -> dict[str, bytes]:
    """Every file of the vector set (relative path → bytes), made in ``directory``'s scratch."""
    store = _SignatureStore.load(signatures)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        out = generate(store, Path(scratch))
    files = dict(out.files)
    files[INDEX] = _index(out)
    files[PQ_SIGNATURES] = store.encode()
    return files


# --- comparison (--check) ---------------------------------------------------------------------


def _certs_tbs(pem_or_der: bytes) -> list[bytes]:
    if pem_or_der.lstrip().startswith(b"-----"):
        certs = x509.load_pem_x509_certificates(pem_or_der)
    else:
        certs = [x509.load_der_x509_certificate(pem_or_der)]
    return [c.tbs_certificate_bytes for c in certs]


def _quote_parts(data: bytes) -> Any:
    container = cbor2.loads(data)
    parts: dict[str, Any] = {}
    for name, message in sorted(container.items()):
        if not isinstance(message, bytes):
            parts[name] = message
            continue
        protected, unprotected, payload, _signature = cbor2.loads(message).value
        parts[name] = [protected, payload, [_certs_tbs(c) for c in unprotected[33]]]
    return parts


def _audit_parts(data: bytes) -> Any:
    return [{k: v for k, v in json.loads(line).items() if k != "mac"} for line in data.splitlines()]


def _released_parts(data: bytes) -> Any:
    value = cbor2.loads(data)
    wrapped = value.pop("wrapped")
    statement = cbor2.loads(value.pop("statement")).value  # [protected, {}, payload, signature]
    payload = cbor2.loads(statement[2])
    payload.pop("wrapped")
    return [value, wrapped[:8], len(wrapped), statement[0], payload]


_NORMALIZERS: Final[dict[str, Callable[[bytes], Any]]] = {
    "rot-quote.cbor": _quote_parts,
    "dice-chain-es384.pem": _certs_tbs,
    "keys/vendor-ca-mldsa87.cert.pem": _certs_tbs,
    "hsm-audit.jsonl": _audit_parts,
    "released-key.cbor": _released_parts,
}


def _same(name: str, old: bytes, new: bytes) -> bool:
    """Equal bytes, or equal but for the randomized bytes :data:`_NORMALIZERS` leave out."""
    if old == new:
        return True
    normalize = _NORMALIZERS.get(name)
    return normalize is not None and normalize(old) == normalize(new)


def _describe(name: str, old: bytes, new: bytes) -> str:
    try:
        a, b = old.decode().splitlines(), new.decode().splitlines()
    except UnicodeDecodeError:
        at = next((i for i, (x, y) in enumerate(zip(old, new, strict=False)) if x != y), None)
        at = min(len(old), len(new)) if at is None else at
        return (
            f"{name}: {len(old)} bytes committed, {len(new)} regenerated; first difference at "
            f"offset {at}: {old[at : at + 16].hex()} != {new[at : at + 16].hex()}"
        )
    diff = difflib.unified_diff(a, b, f"committed/{name}", f"regenerated/{name}", lineterm="")
    return "\n".join(list(diff)[:60])


def compare(committed: Path, fresh: dict[str, bytes]) -> list[str]:
    """The differences between the committed vector set and a fresh one (empty: none)."""
    problems = []
    present = {p.relative_to(committed).as_posix() for p in committed.rglob("*") if p.is_file()}
    for name in sorted(present - set(fresh)):
        problems.append(f"{name}: committed but no longer generated")
    for name, new in sorted(fresh.items()):
        path = committed / name
        if not path.is_file():
            problems.append(f"{name}: generated but not committed")
            continue
        old = path.read_bytes()
        if not _same(name, old, new):
            problems.append(_describe(name, old, new))
    return problems


def _write(directory: Path, files: dict[str, bytes]) -> list[str]:
    """Write ``files`` into ``directory`` (a file whose only difference is its randomized bytes
    is kept as committed); remove what the previous index listed and this run no longer makes
    (nothing else there is touched). Returns the names written or removed."""
    previous: set[str] = set()
    changed: list[str] = []
    index = directory / INDEX
    if index.is_file():
        doc = json.loads(index.read_text())
        previous = {v["file"] for v in doc["vectors"]} | {k["file"] for k in doc["keys"].values()}
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and _same(name, path.read_bytes(), data):
            continue  # unchanged, or only its randomized signature bytes: keep the committed file
        path.write_bytes(data)
        changed.append(name)
    for name in sorted(previous - set(files)):
        (directory / name).unlink(missing_ok=True)
        changed.append(name)
    return changed


def check(directory: Path = VECTORS) -> list[str]:
    """Regenerate (reusing the committed ML-DSA signatures) and compare with ``directory``."""
    with tempfile.TemporaryDirectory() as scratch:
        fresh = build(Path(scratch), signatures=directory / PQ_SIGNATURES)
    return compare(directory, fresh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=VECTORS, help="the vector directory")
    parser.add_argument(
        "--check", action="store_true", help="regenerate and compare; exit 1 on a difference"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="sign ML-DSA afresh (ignore pq-signatures.json)"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem)
        if problems:
            print(f"{len(problems)} vector file(s) differ: regenerate with scripts/gen_vectors.py")
            return 1
        print(f"the vectors in {args.out} match a fresh generation")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        files = build(Path(scratch), signatures=None if args.fresh else args.out / PQ_SIGNATURES)
    changed = _write(args.out, files)
    for name in changed:
        print(f"changed: {name}")
    print(f"{len(changed)} of the {len(files)} files in {args.out} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
