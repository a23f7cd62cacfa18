"""RFC 9942 receipts signed once per batch, and Transparent Statements."""

from __future__ import annotations

import dataclasses

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import (
    InclusionProof,
    Limits,
    Receipt,
    SignedStatement,
    TransparentStatement,
    build_receipt,
    create_statement,
    decode_cbor,
    encode_cbor,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey, Verifier
from ironroot.errors import (
    AlgorithmNotAccepted,
    BadSignature,
    InvalidProof,
    LimitExceeded,
    MalformedReceipt,
    MalformedStatement,
    UnknownIssuer,
)
from ironroot.merkle import MemoryTree, leaf_hash, node_hash

ISSUER = PrivateKey.generate(Algorithm.ES384)
SERVICE = PrivateKey.generate(Algorithm.ES384)
SERVICE_PQ = PrivateKey.generate(Algorithm.ML_DSA_87)
KEYS: dict[bytes, Verifier] = {
    SERVICE.kid: SERVICE.verifier(),
    SERVICE_PQ.kid: SERVICE_PQ.verifier(),
}


@dataclasses.dataclass
class Batch:
    statements: list[bytes]
    entries: list[bytes]
    tree: MemoryTree
    protected: bytes
    signature: bytes
    signer: PrivateKey

    def receipt(self, index: int, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        proof = InclusionProof(size, index, tuple(self.tree.inclusion_proof(index, size)))
        return build_receipt(self.protected, self.signature, proof)


def make_batch(count: int = 7, signer: PrivateKey = SERVICE) -> Batch:
    statements = [
        create_statement(ISSUER, f"release {i}".encode(), iss="vendor", sub=f"fw/{i}")
        for i in range(count)
    ]
    entries = [SignedStatement.parse(s).log_entry() for s in statements]
    tree = MemoryTree()
    for entry in entries:
        tree.append(entry)
    protected = receipt_protected_header(signer.algorithm, signer.kid, "ironroot.test", 1_750_000)
    signature = signer.sign(receipt_to_be_signed(protected, tree.root()))  # one signature
    return Batch(statements, entries, tree, protected, signature, signer)


@pytest.fixture(scope="module")
def batch() -> Batch:
    return make_batch()


def test_protected_header_bytes() -> None:
    kid = bytes(range(32))
    protected = receipt_protected_header(Algorithm.ES384, kid, "svc", 1000)
    assert protected == encode_cbor({1: -35, 4: kid, 15: {1: "svc", 6: 1000}, 395: 1})
    # deterministic order: 1, 4, 15, 395
    assert protected[:4] == bytes.fromhex("a4013822")
    assert receipt_to_be_signed(protected, b"r" * 32) == encode_cbor(
        ["Signature1", protected, b"", b"r" * 32]
    )


def test_receipt_layout(batch: Batch) -> None:
    receipt = batch.receipt(3)
    decoded = decode_cbor(receipt)
    assert isinstance(decoded, cbor2.CBORTag)
    assert decoded.tag == 18
    protected, unprotected, payload, signature = decoded.value
    assert protected == batch.protected
    assert payload is None
    assert signature == batch.signature
    assert list(unprotected) == [396]
    (proof,) = unprotected[396][-1]
    assert decode_cbor(proof) == [7, 3, batch.tree.inclusion_proof(3)]


def test_every_entry_of_a_batch_verifies_under_one_signature(batch: Batch) -> None:
    for index, entry in enumerate(batch.entries):
        parsed = verify_receipt(batch.receipt(index), entry, KEYS)
        assert parsed.kid == SERVICE.kid
        assert parsed.issuer == "ironroot.test"
        assert parsed.iat == 1_750_000
        assert parsed.algorithm is Algorithm.ES384
        assert parsed.inclusion_proofs[0].leaf_index == index
        assert parsed.sign1.signature == batch.signature


def test_single_entry_tree_has_empty_path() -> None:
    one = make_batch(1)
    receipt = one.receipt(0)
    assert Receipt.parse(receipt).inclusion_proofs[0].path == ()
    verify_receipt(receipt, one.entries[0], KEYS)


def test_ml_dsa_receipt() -> None:
    pq = make_batch(3, SERVICE_PQ)
    verify_receipt(pq.receipt(2), pq.entries[2], KEYS)


def test_receipt_for_another_statement(batch: Batch) -> None:
    with pytest.raises(BadSignature):
        verify_receipt(batch.receipt(2), batch.entries[3], KEYS)
    other = SignedStatement.parse(
        create_statement(ISSUER, b"not logged", iss="vendor", sub="x")
    ).log_entry()
    with pytest.raises(BadSignature):
        verify_receipt(batch.receipt(2), other, KEYS)
    # a statement carrying an unprotected header is not its log entry
    transparent = make_transparent(batch.statements[2], [batch.receipt(2)])
    with pytest.raises(BadSignature):
        verify_receipt(batch.receipt(2), transparent, KEYS)


def test_receipt_for_another_tree_size(batch: Batch) -> None:
    # a valid proof for an older tree leads to an older root, which was not signed
    with pytest.raises(BadSignature):
        verify_receipt(batch.receipt(2, size=5), batch.entries[2], KEYS)
    # a proof relabelled with a tree size whose path length differs does not fit
    proof = InclusionProof(2, 1, tuple(batch.tree.inclusion_proof(1)))
    with pytest.raises(InvalidProof):
        verify_receipt(
            build_receipt(batch.protected, batch.signature, proof), batch.entries[1], KEYS
        )


def test_tampered_proof(batch: Batch) -> None:
    path = list(batch.tree.inclusion_proof(4))
    path[0] = bytes(a ^ 1 for a in path[0][:1]) + path[0][1:]
    proof = InclusionProof(7, 4, tuple(path))
    with pytest.raises(BadSignature):
        verify_receipt(
            build_receipt(batch.protected, batch.signature, proof), batch.entries[4], KEYS
        )
    # another index with the same path
    moved = InclusionProof(7, 5, tuple(batch.tree.inclusion_proof(4)))
    with pytest.raises(BadSignature):
        verify_receipt(
            build_receipt(batch.protected, batch.signature, moved), batch.entries[4], KEYS
        )
    # a path with a hash dropped
    short = InclusionProof(7, 4, tuple(batch.tree.inclusion_proof(4))[:-1])
    with pytest.raises(InvalidProof):
        verify_receipt(
            build_receipt(batch.protected, batch.signature, short), batch.entries[4], KEYS
        )


def test_an_unchecked_consistency_proof_beside_a_valid_inclusion_proof_is_refused(
    batch: Batch,
) -> None:
    # the service's receipt, with a consistency proof added to its unprotected header: the
    # signature still verifies, but nothing can check the added proof without the old root
    receipt = decode_cbor(batch.receipt(2))
    protected, unprotected, _, signature = receipt.value
    forged = encode_cbor([1, 7, [b"\x07" * 32]])
    vdp = {-1: unprotected[396][-1], -2: [forged]}
    data = encode_cbor(cbor2.CBORTag(18, [protected, {396: vdp}, None, signature]))
    assert Receipt.parse(data).consistency_proofs[0].tree_size_1 == 1
    with pytest.raises(MalformedReceipt, match="carries consistency proofs") as info:
        verify_receipt(data, batch.entries[2], KEYS)
    assert type(info.value) is MalformedReceipt


def test_unknown_kid(batch: Batch) -> None:
    # signed by a service the verifier does not trust: untrusted-service, as every relying
    # party names it (unknown-issuer is a signed statement's issuer)
    other = {SERVICE_PQ.kid: SERVICE_PQ.verifier()}
    for keys in (other, {}):
        with pytest.raises(UnknownIssuer) as caught:
            verify_receipt(batch.receipt(0), batch.entries[0], keys)
        assert type(caught.value) is UnknownIssuer
        assert caught.value.code == "untrusted-service"
        assert caught.value.detail == "the receipt's kid is not a trusted service key"


def test_key_for_another_algorithm_under_the_kid(batch: Batch) -> None:
    with pytest.raises(AlgorithmNotAccepted):
        verify_receipt(batch.receipt(0), batch.entries[0], {SERVICE.kid: SERVICE_PQ.verifier()})


@settings(max_examples=examples(40), deadline=None)
@given(bit=st.integers(min_value=0, max_value=96 * 8 - 1), index=st.integers(0, 6))
def test_flipped_signature_bit(bit: int, index: int) -> None:
    b = _BATCH
    signature = bytearray(b.signature)
    signature[bit // 8] ^= 1 << (bit % 8)
    proof = InclusionProof(7, index, tuple(b.tree.inclusion_proof(index)))
    receipt = build_receipt(b.protected, bytes(signature), proof)
    with pytest.raises(BadSignature):
        verify_receipt(receipt, b.entries[index], KEYS)


_BATCH = make_batch()


def test_multiple_proofs_must_agree(batch: Batch) -> None:
    good = InclusionProof(7, 2, tuple(batch.tree.inclusion_proof(2))).encode()
    same = encode_cbor(
        cbor2.CBORTag(18, [batch.protected, {396: {-1: [good, good]}}, None, batch.signature])
    )
    verify_receipt(same, batch.entries[2], KEYS)
    older = InclusionProof(5, 2, tuple(batch.tree.inclusion_proof(2, 5))).encode()
    mixed = encode_cbor(
        cbor2.CBORTag(18, [batch.protected, {396: {-1: [good, older]}}, None, batch.signature])
    )
    with pytest.raises(InvalidProof):
        verify_receipt(mixed, batch.entries[2], KEYS)


# --- malformed receipts --------------------------------------------------------------------

P = receipt_protected_header(Algorithm.ES384, b"k" * 32, "svc", 1)
PROOF = InclusionProof(2, 0, (b"\x00" * 32,)).encode()
VDP = {396: {-1: [PROOF]}}


def receipt_from(protected: object, unprotected: object, payload: object = None) -> bytes:
    return encode_cbor(cbor2.CBORTag(18, [protected, unprotected, payload, b"sig"]))


BAD_RECEIPTS = {
    "not cbor": b"\x18",
    "untagged": encode_cbor([P, VDP, None, b"sig"]),
    "attached payload": receipt_from(P, VDP, b"root"),
    "no alg": receipt_from(encode_cbor({4: b"k", 395: 1}), VDP),
    "unknown alg": receipt_from(encode_cbor({1: 0, 4: b"k", 395: 1}), VDP),
    "no vds": receipt_from(encode_cbor({1: -35, 4: b"k"}), VDP),
    "vds 2": receipt_from(encode_cbor({1: -35, 4: b"k", 395: 2}), VDP),
    "vds text": receipt_from(encode_cbor({1: -35, 4: b"k", 395: "RFC9162_SHA256"}), VDP),
    "vds float": receipt_from(encode_cbor({1: -35, 4: b"k", 395: 1.0}), VDP),
    "vds true": receipt_from(encode_cbor({1: -35, 4: b"k", 395: True}), VDP),
    "vds unprotected": receipt_from(encode_cbor({1: -35, 4: b"k"}), {**VDP, 395: 1}),
    "no kid": receipt_from(encode_cbor({1: -35, 395: 1}), VDP),
    "kid text": receipt_from(encode_cbor({1: -35, 4: "k", 395: 1}), VDP),
    "claims not map": receipt_from(encode_cbor({1: -35, 4: b"k", 15: [], 395: 1}), VDP),
    "iss bytes": receipt_from(encode_cbor({1: -35, 4: b"k", 15: {1: b"x"}, 395: 1}), VDP),
    "iat negative": receipt_from(encode_cbor({1: -35, 4: b"k", 15: {6: -1}, 395: 1}), VDP),
    # null is not an absent claim or proof list: the service signed a value that is no value
    "claims null": receipt_from(encode_cbor({1: -35, 4: b"k", 15: None, 395: 1}), VDP),
    "iss null": receipt_from(encode_cbor({1: -35, 4: b"k", 15: {1: None}, 395: 1}), VDP),
    "iat null": receipt_from(encode_cbor({1: -35, 4: b"k", 15: {6: None}, 395: 1}), VDP),
    "consistency proofs null": receipt_from(P, {396: {-1: [PROOF], -2: None}}),
    "no vdp": receipt_from(P, {}),
    "vdp not map": receipt_from(P, {396: [PROOF]}),
    "vdp empty": receipt_from(P, {396: {}}),
    "no proofs": receipt_from(P, {396: {-1: []}}),
    "proof not bstr": receipt_from(P, {396: {-1: [[2, 0, [b"\x00" * 32]]]}}),
    "proof not cbor": receipt_from(P, {396: {-1: [b"\xff"]}}),
    "proof two items": receipt_from(P, {396: {-1: [encode_cbor([2, 0])]}}),
    "proof negative size": receipt_from(P, {396: {-1: [encode_cbor([-2, 0, [b"\x00" * 32]])]}}),
    "proof bool index": receipt_from(P, {396: {-1: [encode_cbor([2, False, [b"\x00" * 32]])]}}),
    "index not below size": receipt_from(P, {396: {-1: [encode_cbor([2, 2, [b"\x00" * 32]])]}}),
    "short hash": receipt_from(P, {396: {-1: [encode_cbor([2, 0, [b"\x00" * 31]])]}}),
    "path not array": receipt_from(P, {396: {-1: [encode_cbor([2, 0, b"\x00" * 32])]}}),
    "consistency out of order": receipt_from(P, {396: {-2: [encode_cbor([3, 2, [b"\x00" * 32]])]}}),
    "proof trailing bytes": receipt_from(P, {396: {-1: [PROOF + b"\x00"]}}),
}


@pytest.mark.parametrize("case", sorted(BAD_RECEIPTS))
def test_malformed_receipts(case: str) -> None:
    with pytest.raises(MalformedReceipt) as info:
        Receipt.parse(BAD_RECEIPTS[case])
    assert type(info.value) is MalformedReceipt
    with pytest.raises(MalformedReceipt):
        verify_receipt(BAD_RECEIPTS[case], b"entry", KEYS)


def test_receipt_limits() -> None:
    many = receipt_from(P, {396: {-1: [PROOF] * 9}})
    with pytest.raises(LimitExceeded):
        Receipt.parse(many)
    long_path = receipt_from(P, {396: {-1: [encode_cbor([2, 0, [b"\x00" * 32] * 65])]}})
    with pytest.raises(LimitExceeded):
        Receipt.parse(long_path)


def test_consistency_only_receipt_parses_but_is_no_inclusion_receipt() -> None:
    data = receipt_from(P, {396: {-2: [encode_cbor([2, 3, [b"\x00" * 32]])]}})
    parsed = Receipt.parse(data)
    assert parsed.inclusion_proofs == ()
    assert parsed.consistency_proofs[0].tree_size_2 == 3
    with pytest.raises(MalformedReceipt):
        verify_receipt(parsed, b"entry", KEYS)


# --- transparent statements ----------------------------------------------------------------


def test_transparent_round_trip(batch: Batch) -> None:
    # the same entries integrated by a second service signing with ML-DSA-87
    pq = Batch(
        batch.statements,
        batch.entries,
        batch.tree,
        receipt_protected_header(SERVICE_PQ.algorithm, SERVICE_PQ.kid, "pq.test", 5),
        b"",
        SERVICE_PQ,
    )
    pq.signature = SERVICE_PQ.sign(receipt_to_be_signed(pq.protected, batch.tree.root()))
    for i in range(len(batch.entries)):
        receipts = [batch.receipt(i), pq.receipt(i)]
        data = make_transparent(batch.statements[i], receipts)
        parsed = verify_transparent_statement(data, KEYS)
        assert parsed.receipts == tuple(receipts)
        # adding receipts changes neither the signed bytes nor the log entry
        assert parsed.statement.log_entry() == batch.entries[i]
        parsed.statement.sign1.verify(ISSUER.verifier())


def test_make_transparent_merges_and_deduplicates(batch: Batch) -> None:
    first = make_transparent(batch.statements[1], [batch.receipt(1)])
    second = make_transparent(first, [batch.receipt(1), batch.receipt(1, size=7)])
    assert TransparentStatement.parse(second).receipts == (batch.receipt(1),)


def test_transparent_with_a_bad_receipt(batch: Batch) -> None:
    wrong = make_transparent(batch.statements[1], [batch.receipt(1), batch.receipt(2)])
    with pytest.raises(BadSignature):
        verify_transparent_statement(wrong, KEYS)
    assert verify_transparent_statement(wrong, KEYS, require_all=False).receipts[0] == (
        batch.receipt(1)
    )
    only_wrong = make_transparent(batch.statements[1], [batch.receipt(2)])
    with pytest.raises(BadSignature):
        verify_transparent_statement(only_wrong, KEYS, require_all=False)
    unknown = make_transparent(batch.statements[1], [batch.receipt(1)])
    with pytest.raises(UnknownIssuer) as caught:
        verify_transparent_statement(unknown, {})
    assert caught.value.code == "untrusted-service"


def test_transparent_statement_errors(batch: Batch) -> None:
    with pytest.raises(MalformedStatement):
        TransparentStatement.parse(batch.statements[0])  # no receipts
    with pytest.raises(MalformedReceipt):
        make_transparent(batch.statements[0], [])
    with pytest.raises(MalformedReceipt):
        make_transparent(batch.statements[0], [b"\xa0"])
    with pytest.raises(MalformedStatement):
        make_transparent(b"\xa0", [batch.receipt(0)])
    st = SignedStatement.parse(batch.statements[0]).sign1
    for bad in ([], [b"r", 5], b"r", {1: b"r"}):
        data = dataclasses.replace(st, unprotected={394: bad}).encode()
        with pytest.raises(MalformedStatement):
            TransparentStatement.parse(data)
    too_many = dataclasses.replace(st, unprotected={394: [b"r"] * 9}).encode()
    with pytest.raises(LimitExceeded):
        TransparentStatement.parse(too_many)
    with pytest.raises(LimitExceeded):
        make_transparent(
            batch.statements[0], [batch.receipt(i) for i in range(3)], Limits(max_receipts=2)
        )


def _signed_receipt(protected: bytes, batch: Batch, index: int = 0) -> bytes:
    signature = SERVICE.sign(receipt_to_be_signed(protected, batch.tree.root()))
    proof = InclusionProof(batch.tree.size, index, tuple(batch.tree.inclusion_proof(index)))
    return build_receipt(protected, signature, proof)


def test_a_critical_header_the_verifier_does_not_understand_rejects_the_receipt(
    batch: Batch,
) -> None:
    # RFC 9052 §3.1: a recipient that does not understand a label crit names must reject the
    # message, even when its signature verifies (here the service signed it).
    known = {1: SERVICE.algorithm.cose_id, 2: [395], 4: SERVICE.kid, 395: 1}
    verify_receipt(_signed_receipt(encode_cbor(known), batch), batch.entries[0], KEYS)
    for label in (-70000, "x-policy", 33):
        unknown = {**known, 2: [395, label], label: 1}
        receipt = _signed_receipt(encode_cbor(unknown), batch)
        with pytest.raises(MalformedReceipt, match="not understood"):
            Receipt.parse(receipt)
        with pytest.raises(MalformedReceipt, match="not understood"):
            verify_receipt(receipt, batch.entries[0], KEYS)


# --- attacks on the verifier that hold --------------------------------------------------------


def test_an_inner_node_passed_off_as_an_entry_does_not_verify(batch: Batch) -> None:
    # Second preimage: the 64 bytes of the two leaf hashes under node (1, 0), given as an
    # "entry" at index 0 of a tree of size 4 with the path of that node. Without the
    # 0x00/0x01 domain separation it would hash to the node and lead to a signed root.
    l0, l1 = leaf_hash(batch.entries[0]), leaf_hash(batch.entries[1])
    path = tuple(batch.tree.inclusion_proof(0, 4))[1:]  # the path of node (1, 0)
    four = InclusionProof(4, 0, (l1, *path))
    assert leaf_hash(l0 + l1) != node_hash(l0, l1)
    protected = batch.protected
    signature = SERVICE.sign(receipt_to_be_signed(protected, batch.tree.root_at(4)))
    verify_receipt(build_receipt(protected, signature, four), batch.entries[0], KEYS)
    fake = InclusionProof(2, 0, path)  # entry l0 || l1 as a leaf of a tree of two
    with pytest.raises(BadSignature):
        verify_receipt(build_receipt(protected, signature, fake), l0 + l1, KEYS)


def test_proofs_of_the_wrong_shape_are_invalid(batch: Batch) -> None:
    path = tuple(batch.tree.inclusion_proof(3))
    for proof in (
        InclusionProof(7, 3, (*path, path[0])),  # a hash too many
        InclusionProof(7, 3, path[:-1]),  # a hash too few
        InclusionProof(7, 3, ()),
    ):
        with pytest.raises(InvalidProof):
            verify_receipt(
                build_receipt(batch.protected, batch.signature, proof), batch.entries[3], KEYS
            )
    for size, index in ((0, 0), (7, 7), (7, 8)):
        raw = encode_cbor([size, index, list(path)])
        receipt = receipt_from(batch.protected, {396: {-1: [raw]}})
        with pytest.raises(MalformedReceipt, match="not below tree size"):
            verify_receipt(receipt, batch.entries[3], KEYS)


def test_the_statement_s_unprotected_header_is_not_what_the_receipt_covers(batch: Batch) -> None:
    # RFC 9943: receipts travel in the unprotected header, which no signature covers; the log
    # entry is the statement with that header emptied. Extra unprotected labels change neither
    # the entry nor the verdict — and a changed protected header or payload is another entry.
    transparent = make_transparent(batch.statements[1], [batch.receipt(1)])
    protected, unprotected, payload, signature = cbor2.loads(transparent).value
    extra = {**unprotected, -99: "unsigned note"}
    verify_transparent_statement(
        encode_cbor(cbor2.CBORTag(18, [protected, extra, payload, signature])), KEYS
    )
    changed = cbor2.CBORTag(18, [protected, extra, payload + b" ", signature])
    with pytest.raises(BadSignature):
        verify_transparent_statement(encode_cbor(changed), KEYS)
