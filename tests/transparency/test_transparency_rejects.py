"""Every 'must reject' of the transparency service over HTTP: exact status and problem title.

One running service (module scope) answers every case; each case builds its bad request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2
import httpx
import pytest
from _tx_helpers import VENDOR_ISS, der, make_ca_chain, make_root, write_config

from ironroot.cose import (
    InclusionProof,
    Problem,
    Receipt,
    SignedStatement,
    build_receipt,
    create_statement,
    decode_key_set,
    verify_receipt,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, InconsistentCheckpoint, InvalidProof
from ironroot.log import Checkpoint, sign_checkpoint, verify_log_dir
from ironroot.log.layout import load_checkpoint_signer
from ironroot.transparency import ServiceThread, TransparencyService
from ironroot_pg import TestStore

COSE = "application/cose"


@dataclass
class World:
    url: str
    client: httpx.Client
    vendor: PrivateKey
    es512: PrivateKey
    root_der: bytes
    leaf_der: bytes
    leaf_key: PrivateKey
    expired_leaf_der: bytes
    expired_key: PrivateKey
    stranger_root_der: bytes
    stranger_leaf_der: bytes
    stranger_key: PrivateKey
    service: TransparencyService
    data: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, module_store: TestStore) -> Iterator[World]:
    data = tmp_path_factory.mktemp("rejects") / "data"
    vendor = PrivateKey.generate(Algorithm.ES256)
    es512 = PrivateKey.generate(Algorithm.ES512)
    now = dt.datetime.now(dt.UTC)  # the service checks validity at the real time
    root_pair = make_root()
    root, leaf, leaf_key = make_ca_chain(
        root=root_pair, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30)
    )
    _, expired, expired_key = make_ca_chain(
        root=root_pair, not_before=now - dt.timedelta(days=60), not_after=now - dt.timedelta(days=1)
    )
    stranger_root, stranger_leaf, stranger_key = make_ca_chain(
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=30)
    )
    write_config(
        data,
        issuers=[(VENDOR_ISS, vendor), (VENDOR_ISS, es512)],
        roots=[root],
        accepted=["ES256", "ES384", "ML-DSA-65"],
        policy='!sub.startsWith("pkg:forbidden/")',
        tokens=["t0ken"],
        max_statement_bytes=4096,
        store=module_store,
    )
    service = TransparencyService.open(data)
    with (
        service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url, headers={"Authorization": "Bearer t0ken"}) as client,
    ):
        yield World(
            server.url,
            client,
            vendor,
            es512,
            der(root),
            der(leaf),
            leaf_key,
            der(expired),
            expired_key,
            der(stranger_root),
            der(stranger_leaf),
            stranger_key,
            service,
            data,
        )


def _did(root_der: bytes, policy: str = "eku:1.3.6.1.5.5.7.3.3") -> str:
    fp = base64.urlsafe_b64encode(hashlib.sha256(root_der).digest()).rstrip(b"=").decode()
    return f"did:x509:0:sha256:{fp}::{policy}"


def _stmt(key: PrivateKey, **kw: object) -> bytes:
    args: dict[str, object] = {"iss": VENDOR_ISS, "sub": "pkg:fw/ok"}
    args.update(kw)
    payload = args.pop("payload", b"{}")
    return create_statement(key, payload, **args)  # type: ignore[arg-type]


def _raw(
    protected: dict[int, object], payload: bytes | None = b"p", sig: bytes = b"s" * 64
) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(18, [cbor2.dumps(protected), {}, payload, sig]))


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _deep() -> bytes:
    deep: object = 0
    for _ in range(64):
        deep = [deep]
    return _raw({1: -7, 15: {1: VENDOR_ISS, 2: "s"}, 100: deep})


def _hash_envelope_with_content_type(w: World) -> bytes:
    digest = hashlib.sha256(b"fw").digest()
    protected = cbor2.dumps(
        {1: -7, 3: "text/plain", 4: w.vendor.kid, 15: {1: VENDOR_ISS, 2: "s"}, 258: -16}
    )
    sig = w.vendor.sign(cbor2.dumps(["Signature1", protected, b"", digest]))
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, digest, sig]))


Case = tuple[str, Callable[[World], bytes], int, str]
CASES: list[Case] = [
    ("bad-signature", lambda w: _flip_last(_stmt(w.vendor)), 400, "Invalid Signature"),
    (
        "unknown-issuer",
        lambda w: _stmt(w.vendor, iss="https://evil.example"),
        400,
        "Unknown Issuer",
    ),
    (
        "unknown-kid",
        lambda w: _stmt(PrivateKey.generate(Algorithm.ES256)),
        400,
        "Unknown Issuer",
    ),
    ("alg-not-accepted", lambda w: _stmt(w.es512), 400, "Bad Signature Algorithm"),
    ("too-large", lambda w: _stmt(w.vendor, payload=b"x" * 5000), 413, "Payload Too Large"),
    ("malformed-cbor", lambda w: b"\xa1\x01", 400, "Invalid Statement"),
    (
        "wrong-tag",
        lambda w: cbor2.dumps(cbor2.CBORTag(98, [b"", {}, b"", []])),
        400,
        "Invalid Statement",
    ),
    ("trailing-bytes", lambda w: _stmt(w.vendor) + b"\x00", 400, "Invalid Statement"),
    ("deep-nesting", lambda w: _deep(), 400, "Limit Exceeded"),
    ("missing-cwt", lambda w: _raw({1: -7, 4: w.vendor.kid}), 400, "Invalid Statement"),
    (
        "crit-null",  # d28446a201382202f6a04040: crit (2) = null crashed parsing once
        lambda w: bytes.fromhex("d28446a201382202f6a04040"),
        400,
        "Invalid Statement",
    ),
    (
        "crit-empty",
        lambda w: _raw({1: -7, 2: [], 15: {1: VENDOR_ISS, 2: "s"}}),
        400,
        "Invalid Statement",
    ),
    (
        "crit-map",
        lambda w: _raw({1: -7, 2: {1: 1}, 15: {1: VENDOR_ISS, 2: "s"}}),
        400,
        "Invalid Statement",
    ),
    (
        "crit-names-absent-label",
        lambda w: _raw({1: -7, 2: [99], 15: {1: VENDOR_ISS, 2: "s"}}),
        400,
        "Invalid Statement",
    ),
    (
        "cwt-without-sub",
        lambda w: _raw({1: -7, 4: w.vendor.kid, 15: {1: VENDOR_ISS}}),
        400,
        "Invalid Statement",
    ),
    (
        "detached-payload",
        lambda w: _raw({1: -7, 4: w.vendor.kid, 15: {1: VENDOR_ISS, 2: "s"}}, payload=None),
        400,
        "Payload Missing",
    ),
    (
        "hash-envelope-with-3",
        _hash_envelope_with_content_type,
        400,
        "Invalid Statement",
    ),
    (
        "did-x509-mismatch",
        lambda w: _stmt(
            w.leaf_key,
            iss=_did(w.root_der, "eku:1.3.6.1.5.5.7.3.1"),
            x5chain=[w.leaf_der, w.root_der],
            include_kid=False,
        ),
        400,
        "Untrusted Certificate Chain",
    ),
    (
        "chain-not-to-root",
        lambda w: _stmt(
            w.stranger_key,
            iss=_did(w.stranger_root_der),
            x5chain=[w.stranger_leaf_der, w.stranger_root_der],
            include_kid=False,
        ),
        400,
        "Untrusted Certificate Chain",
    ),
    (
        "expired-certificate",
        lambda w: _stmt(
            w.expired_key,
            iss=_did(w.root_der),
            x5chain=[w.expired_leaf_der, w.root_der],
            include_kid=False,
        ),
        400,
        "Certificate Expired",
    ),
    (
        "cel-rejected",
        lambda w: _stmt(w.vendor, sub="pkg:forbidden/x"),
        400,
        "Rejected",
    ),
]


@pytest.mark.parametrize(("name", "build", "status", "title"), CASES, ids=[c[0] for c in CASES])
def test_rejects(
    world: World, name: str, build: Callable[[World], bytes], status: int, title: str
) -> None:
    size_before = world.service.log.tree_size
    r = world.client.post("/entries", content=build(world), headers={"Content-Type": COSE})
    assert r.status_code == status, r.content
    assert r.headers["content-type"] == "application/concise-problem-details+cbor"
    problem = Problem.from_cbor(r.content)
    assert problem.title == title, problem.detail
    assert world.service.log.tree_size == size_before  # nothing was written


def test_valid_did_x509_statement_is_accepted(world: World) -> None:
    body = _stmt(
        world.leaf_key, iss=_did(world.root_der), x5chain=[world.leaf_der, world.root_der],
        include_kid=False,
    )  # fmt: skip
    r = world.client.post("/entries", content=body, headers={"Content-Type": COSE})
    assert r.status_code == 201


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dDBrZW4=", "Bearer"])
def test_missing_or_wrong_token_is_401(world: World, header: str | None) -> None:
    headers = {"Content-Type": COSE}
    if header is not None:
        headers["Authorization"] = header
    with httpx.Client(base_url=world.url) as anonymous:
        r = anonymous.post("/entries", content=_stmt(world.vendor), headers=headers)
    assert r.status_code == 401
    assert Problem.from_cbor(r.content).title == "Unauthorized"


def test_receipt_for_another_tree_size_or_tampered_proof(world: World) -> None:
    statements = [_stmt(world.vendor, sub=f"pkg:fw/r{i}") for i in range(3)]
    receipts = []
    for s in statements:
        r = world.client.post("/entries", content=s, headers={"Content-Type": COSE})
        assert r.status_code == 201
        receipts.append(r.content)
    keys = decode_key_set(world.client.get("/.well-known/scitt-keys").content)
    entry = SignedStatement.parse(statements[0]).log_entry()
    parsed = Receipt.parse(receipts[0])
    proof = parsed.inclusion_proofs[0]
    verify_receipt(receipts[0], entry, keys)
    protected = parsed.sign1.protected_bytes
    signature = parsed.sign1.signature
    # Another tree size whose proof shape differs: rejected by the proof check.
    bigger = build_receipt(
        protected, signature, InclusionProof(proof.tree_size * 2 + 3, proof.leaf_index, proof.path)
    )
    with pytest.raises((InvalidProof, BadSignature)):
        verify_receipt(bigger, entry, keys)
    # A tampered path element: the implied root changes, so the signature fails.
    if proof.path:
        tampered_path = (bytes([proof.path[0][0] ^ 1]) + proof.path[0][1:], *proof.path[1:])
        tampered = build_receipt(
            protected, signature, InclusionProof(proof.tree_size, proof.leaf_index, tampered_path)
        )
        with pytest.raises(BadSignature):
            verify_receipt(tampered, entry, keys)
    # Another statement's entry under this receipt.
    other = SignedStatement.parse(statements[1]).log_entry()
    with pytest.raises((BadSignature, InvalidProof)):
        verify_receipt(receipts[0], other, keys)


def test_checkpoint_inconsistent_with_an_earlier_one_is_rejected(world: World) -> None:
    # A checkpoint from a forked log (another tree at the same origin and key) must be refused.
    early = world.client.get("/checkpoint").content
    verify_log_dir(world.data, earlier_checkpoint=early)  # consistent: passes
    lines = early.decode().split("\n")
    forged_root = base64.b64encode(hashlib.sha256(b"fork").digest()).decode()
    body = "\n".join([lines[0], lines[1], forged_root]) + "\n"
    # Re-signed with the real key: a split view presented by the service itself.
    note_signer = load_checkpoint_signer(world.data, world.service.config.origin)
    cp = Checkpoint.parse(body.encode())
    forged = sign_checkpoint(cp, [note_signer])
    with pytest.raises(InconsistentCheckpoint):
        verify_log_dir(world.data, earlier_checkpoint=forged)
