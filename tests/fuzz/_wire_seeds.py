"""Seeds for the wire-protocol fuzz targets (SPDM, the PFM, Redfish request bodies), made by the
project's own code paths.

:func:`spdm_sessions` records whole SPDM sessions between Ironroot's :class:`Requester` and
:class:`Responder` (VCA, DIGESTS, CERTIFICATE in portions, CHALLENGE, signed MEASUREMENTS) for
a few configurations (:data:`SPDM_SESSIONS`: P-256 / P-384 / P-521, SPDM 1.2 and 1.3, a PCI
DOE-style padded transport, a small DataTransferSize). Both ends draw their "random" bytes
(nonces, RequesterContext) from :class:`Drbg`, so a requester made again with the same
configuration sends the very requests of the recording, and the recorded answers verify when
they are played back to it (:func:`spdm_requester`). The device's keys and certificates are
the same in every process (fixed keys, RFC 6979 certificate signatures); the responder's own
signatures are ECDSA with a random k, so the answers differ per process but always verify.

:func:`pfm_seeds` signs PFMs with fixed vendor keys (ECDSA P-384 and ML-DSA-87), shaped as
the demo and the node tests build them (every component, its ``rw`` region from the flash
layout, two releases each), plus the unsigned PFM ``ironroot platform pfm sign`` reads and a
Signed Statement carrying a signed PFM (what ``pfm_statement`` registers and the update checks
take the PFM from).

:func:`redfish_seeds` builds the node tests' world once per process (``tests/platform/
node_world.py``: a vendor, two transparency services in this process, releases v1 and v2 of
every component, a logged PFM; its keys are random per process) and its template node,
booted once; it records the account store of a Redfish service with an Administrator, an
Operator and a ReadOnly account (a cheap scrypt), the JSON bodies of the service's actions and
multipart pushes of real releases (one carrying a newer logged PFM). The transparency services
run only while this is built; the nodes live in the fuzz scratch directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from _fleet_seeds import fixed_key, scratch
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey

if TYPE_CHECKING:
    from tests.platform.node_world import World

    from ironroot.platform import Platform
    from ironroot.spdm import Requester, Responder, SpdmVersion

__all__ = [
    "MULTIPART_BOUNDARY",
    "PFM_PLATFORM",
    "REDFISH_ADMIN",
    "REDFISH_KDF",
    "SPDM_NONCE",
    "SPDM_NOW",
    "SPDM_SEPARATOR",
    "SPDM_SESSIONS",
    "Drbg",
    "PfmSeeds",
    "RedfishSeeds",
    "SpdmDevice",
    "SpdmSession",
    "pfm_seeds",
    "redfish_seeds",
    "run_spdm_session",
    "spdm_device",
    "spdm_input",
    "spdm_messages",
    "spdm_request_seeds",
    "spdm_requester",
    "spdm_responder",
    "spdm_response_seeds",
    "spdm_sessions",
]

# --- SPDM ------------------------------------------------------------------------------------

SPDM_NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
SPDM_NONCE = hashlib.sha256(b"ironroot fuzz spdm nonce").digest()
"""The verifier's nonce the evidence sessions answer."""
_CERT_HASHES: dict[Algorithm, hashes.HashAlgorithm] = {
    Algorithm.ES256: hashes.SHA256(),
    Algorithm.ES384: hashes.SHA384(),
    Algorithm.ES512: hashes.SHA512(),
}


class Drbg:
    """``random(n)`` for an SPDM end: the same bytes, call after call, in every process."""

    def __init__(self, label: str) -> None:
        self._label = label.encode()
        self._calls = 0

    def __call__(self, size: int) -> bytes:
        self._calls += 1
        return hashlib.shake_256(b"%s\x00%d" % (self._label, self._calls)).digest(size)


@dataclasses.dataclass(frozen=True)
class SpdmDevice:
    """A device's leaf key and chain (root first, leaf last), all from fixed seeds."""

    leaf_key: PrivateKey
    root: bytes
    chain: tuple[bytes, ...]


def _certificate(
    subject: str, key: PrivateKey, issuer: str, issuer_key: PrivateKey, serial: int, *, ca: bool
) -> bytes:
    public, signing = key.public_key.raw, issuer_key.raw
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(signing, ec.EllipticCurvePrivateKey)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    usage = dict.fromkeys(
        ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(SPDM_NOW - dt.timedelta(days=365))
        .not_valid_after(SPDM_NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
                **usage,
            ),
            critical=True,
        )
    )
    cert = builder.sign(signing, _CERT_HASHES[issuer_key.algorithm], ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.DER)


@functools.cache
def spdm_device(algorithm: Algorithm) -> SpdmDevice:
    """A root CA, a device CA and a device leaf of ``algorithm``, the same in every process."""
    label = algorithm.label
    root_key = fixed_key(algorithm, f"spdm root {label}")
    ca_key = fixed_key(algorithm, f"spdm device ca {label}")
    leaf_key = fixed_key(algorithm, f"spdm leaf {label}")
    root_name, ca_name = "Ironroot Fuzz Root", "Ironroot Fuzz Device CA"
    root = _certificate(root_name, root_key, root_name, root_key, 1, ca=True)
    ca = _certificate(ca_name, ca_key, root_name, root_key, 2, ca=True)
    leaf = _certificate("Ironroot Fuzz Device", leaf_key, ca_name, ca_key, 3, ca=False)
    return SpdmDevice(leaf_key, root, (root, ca, leaf))


@dataclasses.dataclass(frozen=True)
class SpdmSession:
    """One recorded configuration: the device's algorithm, the versions the responder
    speaks (the requester offers 1.2 and 1.3), the transport's padding unit, the
    requester's DataTransferSize and what the requester runs (``attest``: CHALLENGE and all
    measurements; ``one-raw``: CHALLENGE and one raw measurement; ``evidence``: the signed
    measurements a verifier records, checked offline too)."""

    algorithm: Algorithm
    versions: tuple[int, ...]
    alignment: int
    data_transfer_size: int
    run: str


SPDM_SESSIONS: tuple[SpdmSession, ...] = (
    SpdmSession(Algorithm.ES384, (0x12,), 1, 4096, "attest"),
    SpdmSession(Algorithm.ES256, (0x13,), 1, 4096, "attest"),
    SpdmSession(Algorithm.ES512, (0x12, 0x13), 1, 512, "one-raw"),
    SpdmSession(Algorithm.ES384, (0x13,), 4, 4096, "evidence"),
    SpdmSession(Algorithm.ES256, (0x12,), 1, 4096, "evidence"),
)
"""Indexed by the first item of a target's input: the configuration the bytes are for."""


def _versions(session: SpdmSession) -> tuple[SpdmVersion, ...]:
    from ironroot.spdm import SpdmVersion

    return tuple(SpdmVersion(v) for v in session.versions)


def spdm_responder(session: SpdmSession) -> Responder:
    """A fresh responder of ``session``'s device (its own measurements, one opaque element)."""
    from tests.spdm._spdm_helpers import BLOCKS, OPAQUE

    from ironroot.spdm import MeasurementHashAlgo, Responder

    device = spdm_device(session.algorithm)
    hash_algo = {
        Algorithm.ES256: MeasurementHashAlgo.SHA_256,
        Algorithm.ES384: MeasurementHashAlgo.SHA_384,
        Algorithm.ES512: MeasurementHashAlgo.SHA_512,
    }[session.algorithm]
    size = {Algorithm.ES256: 32, Algorithm.ES384: 48, Algorithm.ES512: 64}[session.algorithm]
    blocks = tuple(  # a digest block's value sized for the measurement hash
        b if b.raw else dataclasses.replace(b, value=bytes(range(size))) for b in BLOCKS
    )
    return Responder(
        device.leaf_key,
        device.chain,
        blocks,
        versions=_versions(session),
        measurement_hash_algo=hash_algo,
        opaque_elements=OPAQUE,
        random=Drbg("responder"),
        alignment=session.alignment,
    )


def spdm_requester(session: SpdmSession, send: Callable[[bytes], bytes]) -> Requester:
    """A fresh requester of ``session`` over ``send``: it sends the recording's requests."""
    from ironroot.spdm import BaseAsymAlgo, BaseHashAlgo, Requester, SpdmVersion

    return Requester(
        send,
        root_certificate=spdm_device(session.algorithm).root,
        now=SPDM_NOW,
        versions=(SpdmVersion.V1_2, SpdmVersion.V1_3),
        base_asym_algo=BaseAsymAlgo.ECDSA_P256 | BaseAsymAlgo.ECDSA_P384 | BaseAsymAlgo.ECDSA_P521,
        base_hash_algo=BaseHashAlgo.SHA_256 | BaseHashAlgo.SHA_384 | BaseHashAlgo.SHA_512,
        data_transfer_size=session.data_transfer_size,
        max_spdm_msg_size=max(session.data_transfer_size, 4096),
        random=Drbg("requester"),
        alignment=session.alignment,
    )


def _pad(message: bytes, alignment: int) -> bytes:
    return message + bytes(-len(message) % alignment)


def _record(session: SpdmSession) -> tuple[tuple[bytes, bytes], ...]:
    """One session of ``session``'s requester and responder: its (request, response)
    messages as the transport carried them (padded on a padded transport); the evidence
    run's record verified offline."""
    from ironroot.spdm import verify_spdm_evidence

    responder = spdm_responder(session)
    log: list[tuple[bytes, bytes]] = []

    def send(request: bytes) -> bytes:
        padded = _pad(request, session.alignment)
        response = _pad(responder.handle(padded), session.alignment)
        log.append((padded, response))
        return response

    record = run_spdm_session(session, spdm_requester(session, send))
    if record is not None:
        root = spdm_device(session.algorithm).root
        verify_spdm_evidence(record, nonce=SPDM_NONCE, root_certificate=root, now=SPDM_NOW)
    return tuple(log)


@functools.cache
def spdm_sessions() -> tuple[tuple[tuple[bytes, bytes], ...], ...]:
    """The recorded sessions, one per :data:`SPDM_SESSIONS` entry, made once per process."""
    return tuple(_record(session) for session in SPDM_SESSIONS)


def run_spdm_session(session: SpdmSession, requester: Requester) -> bytes | None:
    """What the requester of ``session`` does (:class:`SpdmSession`); the evidence run
    returns the record it took (``None`` for the others)."""
    if session.run == "attest":
        requester.attest()
    elif session.run == "one-raw":
        requester.attest(2, raw_bit_stream=True)
    else:
        return requester.evidence(SPDM_NONCE)
    return None


SPDM_SEPARATOR = b"\xf5spdm\xf5"
"""Between the messages of an SPDM target's input: ``bytes([session index]) + SEPARATOR +
message + SEPARATOR + message ...``. A plain separator rather than a length-prefixed framing,
so a mutation that makes a message longer or shorter (a DER certificate grown inside a
CERTIFICATE portion, bytes inserted or cut) changes that message and nothing else."""


def spdm_input(index: int, messages: Sequence[bytes]) -> bytes:
    return SPDM_SEPARATOR.join([bytes([index]), *messages])


def spdm_messages(data: bytes) -> tuple[SpdmSession, list[bytes]]:
    """The session an SPDM target's input is for and its messages (:data:`SPDM_SEPARATOR`);
    any bytes are one (the first byte picks the session, modulo their number)."""
    index, *messages = data.split(SPDM_SEPARATOR)
    return SPDM_SESSIONS[index[0] % len(SPDM_SESSIONS) if index else 0], messages


def spdm_response_seeds() -> list[bytes]:
    """Each recorded session's answers, in turn."""
    return [spdm_input(i, [r for _, r in log]) for i, log in enumerate(spdm_sessions())]


def spdm_request_seeds() -> list[bytes]:
    """Each recorded session's requests, in turn."""
    return [spdm_input(i, [r for r, _ in log]) for i, log in enumerate(spdm_sessions())]


# --- the PFM ---------------------------------------------------------------------------------

PFM_PLATFORM = "pkg:platform/acme/fuzz-node"
_PFM_SLOT = 64 * 1024


@dataclasses.dataclass(frozen=True)
class PfmSeeds:
    """The vendor's keys and their fused descriptor hash, the PFMs they signed, an unsigned
    PFM and a Signed Statement carrying the first signed one."""

    ecc: PrivateKey
    pqc: PrivateKey
    statement_key: PrivateKey
    vendor_key_hash: bytes
    signed: tuple[bytes, ...]
    unsigned: bytes
    statement: bytes


@functools.cache
def pfm_seeds() -> PfmSeeds:
    """The PFM seeds (module docs), made once per process."""
    from ironroot.firmware import key_descriptor_hash
    from ironroot.platform import (
        COMPONENTS,
        Pfm,
        PfmComponent,
        PfmVersion,
        chip_layout,
        pfm_statement,
        sign_pfm,
    )

    ecc = fixed_key(Algorithm.ES384, "pfm vendor ecc")
    pqc = fixed_key(Algorithm.ML_DSA_87, "pfm vendor pqc")
    statement_key = fixed_key(Algorithm.ES384, "pfm vendor statements")

    def regions(name: str) -> dict[str, tuple[int, int]]:
        return {r.name: (r.offset, r.size) for r in chip_layout(name, _PFM_SLOT)}

    def release(name: str, version: str, svn: int) -> PfmVersion:
        image = f"{name} firmware {version}".encode() * 64
        return PfmVersion(version, svn, hashlib.sha384(image).digest())

    demo = Pfm(  # the demo's and the node tests' shape: each component writable in its rw
        PFM_PLATFORM,
        1,
        tuple(
            PfmComponent(
                name,
                (release(name, "1.0", 3), release(name, "2.0", 4)),
                read_write=(regions(name)["rw"],),
            )
            for name in COMPONENTS
        ),
    )
    layout = regions("bmc")
    locked = Pfm(  # read-only regions too, and a version of the longest text allowed
        PFM_PLATFORM,
        7,
        (
            PfmComponent(
                "bmc",
                (release("bmc", "9" * 256, 2**63),),
                read_only=(layout["slot0"], layout["recovery"]),
                read_write=(layout["rw"],),
            ),
        ),
    )
    signed = (sign_pfm(demo, ecc, pqc), sign_pfm(locked, ecc, pqc))
    statement = pfm_statement(
        signed[0], statement_key, iss="https://vendor.example", sub=PFM_PLATFORM
    )
    fused = key_descriptor_hash([ecc.public_key], [pqc.public_key], "mldsa")
    return PfmSeeds(ecc, pqc, statement_key, fused, signed, demo.encode(), statement)


# --- Redfish ---------------------------------------------------------------------------------

REDFISH_KDF = (2**10, 8, 1)
REDFISH_ADMIN = ("admin", "admin password 1")
_REDFISH_ACCOUNTS = (
    ("operator", "operator password", "Operator"),
    ("viewer", "viewer password!", "ReadOnly"),
)
MULTIPART_BOUNDARY = "ironroot-fuzz-boundary-7f3a"


@dataclasses.dataclass(frozen=True)
class RedfishSeeds:
    """The node tests' world (its template node makes a fresh node per push), a node the
    JSON actions are sent to (never updated), the account store's file, and the bodies."""

    world: World
    node: Platform
    accounts: bytes
    json_bodies: tuple[bytes, ...]
    multipart_bodies: tuple[bytes, ...]


def _multipart(parts: list[tuple[str, str | None, bytes, str]]) -> bytes:
    """A ``multipart/form-data`` body (boundary :data:`MULTIPART_BOUNDARY`) of (name,
    filename, content, content type) parts."""
    out = b""
    for name, filename, content, kind in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        head = f"Content-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n"
        out += f"--{MULTIPART_BOUNDARY}\r\n{head}".encode() + content + b"\r\n"
    return out + f"--{MULTIPART_BOUNDARY}--\r\n".encode()


def _push(
    world: World,
    component: str,
    version: str,
    extra: list[tuple[str, str | None, bytes, str]] | None = None,
) -> bytes:
    from ironroot.platform._redfish_http import INVENTORY

    release = world.release(component, version)
    params = {
        "Targets": [f"{INVENTORY}/{component}-active"],
        "@Redfish.OperationApplyTime": "Immediate",
    }
    parts: list[tuple[str, str | None, bytes, str]] = [
        ("UpdateParameters", None, json.dumps(params).encode(), "application/json"),
        ("UpdateFile", f"{component}-{version}.bin", release.bundle, "application/octet-stream"),
    ]
    parts += [
        ("OemIronrootStatement", f"s{n}.cose", s, "application/cose")
        for n, s in enumerate(release.statements)
    ]
    return _multipart(parts + (extra or []))


def _json_bodies() -> tuple[bytes, ...]:
    from ironroot.platform._redfish_http import INVENTORY, MANAGER

    bodies: list[object] = [
        {"UserName": REDFISH_ADMIN[0], "Password": REDFISH_ADMIN[1]},  # a login
        {
            "UserName": "fuzzer",
            "Password": "a fuzzer's password",
            "RoleId": "Operator",
            "Enabled": True,
        },
        {"Password": "another password 2", "RoleId": "ReadOnly", "Enabled": True, "Locked": False},
        {"NewPassword": "a fuzzer's new password", "SessionAccountPassword": REDFISH_ADMIN[1]},
        {"RequireChangePasswordAction": False, "MinPasswordLength": 12},
        {
            "MinPasswordLength": 10,
            "MaxPasswordLength": 64,
            "AccountLockoutThreshold": 5,
            "AccountLockoutDuration": 60,
            "AccountLockoutCounterResetAfter": 30,
        },
        {"SessionTimeout": 600, "ServiceEnabled": True},
        {
            "ImageURI": "https://images.fuzz.invalid/bmc-2.0.bin",
            "TransferProtocol": "HTTPS",
            "Targets": [f"{INVENTORY}/bmc-active"],
            "Username": "fetcher",
            "Password": "fetch password",
            "ForceUpdate": False,
            "Oem": {
                "Ironroot": {
                    "StatementURIs": ["https://images.fuzz.invalid/bmc-2.0.statement"],
                    "PfmURI": "https://images.fuzz.invalid/pfm.cose",
                    "PfmStatementURI": "https://images.fuzz.invalid/pfm.statement",
                }
            },
        },
        {
            "ImageURI": "images.fuzz.invalid/nic.bin",
            "TransferProtocol": "HTTP",
            "Targets": [MANAGER],
        },
    ]
    return tuple(json.dumps(b).encode() for b in bodies)


@functools.cache
def redfish_seeds() -> RedfishSeeds:
    """The world, the template node, the accounts and the bodies (module docs); once per
    process."""
    from tests.platform.node_world import COMPONENTS, make_world

    from ironroot.platform._redfish_accounts import AccountStore

    root = scratch() / "redfish-world"
    with make_world(root / "world") as world:
        node = world.node(root / "json-node")
        releases = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
        pfm = world.make_pfm(2, releases)  # a newer PFM, still allowing the active images
        pfm_ts = world.log_pfm(pfm)
    accounts_dir = root / "accounts"
    accounts_dir.mkdir()
    store = AccountStore.create_with(accounts_dir, *REDFISH_ADMIN, kdf=REDFISH_KDF)
    for user, password, role in _REDFISH_ACCOUNTS:
        store.add(user, password, role)
    pushes = (
        _push(world, "bmc", "2.0"),
        _push(world, "nic", "2.0"),
        _push(
            world,
            "bmc",
            "2.0",
            [
                ("OemIronrootPfm", "pfm.cose", pfm, "application/cose"),
                ("OemIronrootPfmStatement", "pfm.statement", pfm_ts, "application/cose"),
            ],
        ),
    )
    return RedfishSeeds(world, node, store.path.read_bytes(), _json_bodies(), pushes)
