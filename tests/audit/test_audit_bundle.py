"""Export and offline verification of a real node's audit bundle, and what it must reject.

The fleet is one node on the platform tests' world (tests/audit/audit_world.py). A bundle
changed after the seal fails integrity (``AuditBundleRejected``); a bundle that says
something false, sealed anyway by the node's own RoT (the worst case: whoever exported it
holds the node), fails at the step whose evidence is false.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import random
import re
from collections.abc import Iterator
from collections.abc import Set as AbstractSet

import cbor2
import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world
from tests.platform.node_world import NOW, SLOT

from ironroot.attestation import ReferenceValues
from ironroot.audit import (
    AuditBundle,
    AuditExport,
    AuditIndex,
    AuditTrust,
    LogProofs,
    check_bundle,
    spdm_nonce,
    verify_bundle,
)
from ironroot.audit._proofs import verify_log_proofs
from ironroot.audit._verify import NOT_PRESENT
from ironroot.cose import encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    AuditBundleRejected,
    ChainNotTrusted,
    EndorsementMismatch,
    InconsistentCheckpoint,
    InvalidProof,
    IronrootError,
    KeyDescriptorMismatch,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.firmware import Component, FirmwareBundle
from ironroot.log import (
    Checkpoint,
    HttpLogFetcher,
    Note,
    NoteSigner,
    TileTree,
    open_note,
    sign_checkpoint,
)
from ironroot.log.layout import load_checkpoint_signer
from ironroot.platform import IMAGE_HEADER_SIZE, PlatformDevice, chip_layout, measure_device
from ironroot.rot import VendorCA

STEPS = (
    "format",
    "seal",
    "members",
    "node",
    "fuses",
    "dice",
    "pfm",
    "firmware:bmc",
    "firmware:host",
    "firmware:nic",
    "firmware:gpu",
    "firmware:nvme",
    "measured-boot",
    "spdm:nic",
    "spdm:gpu",
    "spdm:nvme",
    "reviews",
    "transparency",
    "attestation",
    "identity",
    "hsm",
    "releases",
)


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def bundle(aw: AuditWorld) -> bytes:
    return aw.export()


@pytest.fixture(scope="module")
def collected(aw: AuditWorld) -> AuditExport:
    return aw.collect()


def _reseal(aw: AuditWorld, export: AuditExport, **changes: object) -> bytes:
    return export.replace(**changes).seal(aw.fleet.rot(NODE))  # type: ignore[arg-type]


def _refused(data: bytes, aw: AuditWorld, **trust: object) -> IronrootError:
    with pytest.raises(IronrootError) as info:
        verify_bundle(data, aw.trust(**trust))
    return info.value


# --- a real node ---------------------------------------------------------------------------


def test_export_and_verify_of_a_real_node_holds_at_every_step(
    aw: AuditWorld, bundle: bytes
) -> None:
    report = verify_bundle(bundle, aw.trust())
    assert tuple(s.name for s in report.steps) == STEPS
    assert {s.name: s.status for s in report.steps} == {
        **dict.fromkeys(STEPS, "ok"),
        "hsm": "skipped",
        "releases": "skipped",
    }
    assert report.ok
    assert report.failure is None
    assert (report.node, report.node_class) == (NODE, "node-7")
    assert report.exported_at == report.judged_at == "2026-06-01T12:10:00Z"
    assert report.bundle_sha384 == hashlib.sha384(bundle).hexdigest()
    assert "the node has no HSM" in report.step("hsm").lines[0]
    assert "the node has no HSM" in report.step("releases").lines[0]
    assert any("review by Example Review Provider" in line for line in report.step("reviews").lines)
    assert any("status affirming" in line for line in report.step("attestation").lines)
    index = AuditIndex.decode(AuditBundle.parse(bundle).index)
    assert index.node == NODE
    assert index.exported_at == EXPORTED
    assert set(index.absent) == {"hsm"}
    assert {
        "node/record.json",
        "rot/fuses.json",
        "rot/dice-chain.cbor",
        "pfm/pfm.cose",
        "pfm/statement.cose",
        "firmware/bmc/bundle.bin",
        "firmware/bmc/statement-0.cose",
        "firmware/bmc/statement-1.cose",  # the SAFE review
        "firmware/nic/statement-1.cose",  # the CoRIM
        "spdm/nic.cbor",
        "transparency/0/checkpoint",
        "transparency/0/proofs.cbor",
        "attestation/ear.jwt",
    } <= set(index.members)


def test_each_export_is_fresh_and_judged_as_of_its_own_time(aw: AuditWorld) -> None:
    later = EXPORTED + dt.timedelta(hours=1)
    one, two = aw.export(), aw.export(now=later)
    first = AuditIndex.decode(AuditBundle.parse(one).index)
    second = AuditIndex.decode(AuditBundle.parse(two).index)
    assert first.nonce != second.nonce  # a new seal, new SPDM challenges
    assert (
        AuditBundle.parse(one).members["spdm/nic.cbor"]
        != (AuditBundle.parse(two).members["spdm/nic.cbor"])
    )
    # an hour on, the node's one-hour fleet credential has expired (it did not attest again)
    assert verify_bundle(two, aw.trust(fleet_ca=None)).judged_at == "2026-06-01T13:10:00Z"
    # judged a year after its export, the BMC firmware's validity has ended
    report = check_bundle(one, aw.trust(), at=EXPORTED + dt.timedelta(days=400))
    assert report.step("firmware:bmc").status == "failed"
    assert report.step("firmware:bmc").error.code == "manifest-expired"  # type: ignore[union-attr]


# --- any byte changed ----------------------------------------------------------------------


def _span(data: bytes, key: str, value: bytes) -> tuple[int, int]:
    """Where ``value`` (the bytes of map member ``key``) lies in the encoded file."""
    pair = encode_cbor(key) + encode_cbor(value)
    at = data.find(pair)
    assert at >= 0
    assert data.find(pair, at + 1) < 0
    start = at + len(pair) - len(value)
    return start, start + len(value)


_CHECKS = {"seal-invalid": "seal", "index-not-sealed": "seal", "member-changed": "members"}


def _expected_codes(
    bundle: bytes,
) -> tuple[dict[int, AbstractSet[str]], dict[str, tuple[int, int, set[str]]]]:
    """For each byte of ``bundle``, the codes a change there may be refused with, and the
    regions (seal, index, each member's bytes and name) that set them; the rest is framing."""
    parsed = AuditBundle.parse(bundle)
    # one set for all the framing: not one per byte of the file
    framing = frozenset({"bundle-malformed"})
    expected: dict[int, AbstractSet[str]] = dict.fromkeys(range(len(bundle)), framing)
    regions: dict[str, tuple[int, int, set[str]]] = {}
    for key, value, codes in (
        ("seal", parsed.seal, {"seal-invalid"}),
        ("index", parsed.index, {"index-not-sealed"}),
    ):
        start, end = _span(bundle, key, value)
        regions[key] = (start, end, codes)
    for name, value in parsed.members.items():
        start, end = _span(bundle, name, value)
        regions[f"member {name}"] = (start, end, {"member-changed"})
        head = len(encode_cbor(name)) - len(name.encode())
        name_at = start - (len(encode_cbor(value)) - len(value)) - len(name.encode())
        regions[f"name {name}"] = (
            name_at,
            name_at + len(name),
            {"bundle-malformed", "member-missing"},
        )
        assert bundle[name_at - head : name_at] == encode_cbor(name)[:head]
    for start, end, codes in regions.values():
        for position in range(start, end):
            expected[position] = codes
    return expected, regions


def _refused_as_expected(
    bundle: bytes, trust: AuditTrust, position: int, flip: int, codes: AbstractSet[str]
) -> None:
    changed = bytearray(bundle)
    changed[position] ^= flip
    with pytest.raises(AuditBundleRejected) as info:
        verify_bundle(bytes(changed), trust)
    error = info.value
    where = f"byte {position} ^ {flip:#04x} ({error.code}: {error.detail})"
    assert error.code in codes, where
    assert error.check == _CHECKS.get(
        error.code, "format" if error.code == "bundle-malformed" else "members"
    ), where


def test_any_byte_changed_is_caught_with_the_exact_error(aw: AuditWorld, bundle: bytes) -> None:
    expected, regions = _expected_codes(bundle)
    rng = random.Random(20260601)
    framing = [p for p, codes in expected.items() if codes == {"bundle-malformed"}]
    positions = set(rng.sample(framing, 40))
    for start, end, _codes in regions.values():
        positions |= {start, end - 1, rng.randrange(start, end)}
    trust = aw.trust()
    for position in sorted(positions):
        _refused_as_expected(bundle, trust, position, rng.randrange(1, 256), expected[position])
    assert len(positions) > 150


def test_every_byte_of_the_framing_the_index_and_the_names_changed_is_caught(
    aw: AuditWorld, bundle: bytes
) -> None:
    """Not a sample: every byte that is not a member's or the seal's content — each CBOR
    head, length, key and member name of the file, and every byte of the sealed index —
    flipped (its lowest bit, its highest, or all of them, by turns), is refused with its
    exact code."""
    expected, regions = _expected_codes(bundle)
    contents = {
        position
        for region, (start, end, _codes) in regions.items()
        if region == "seal" or region.startswith("member ")
        for position in range(start, end)
    }
    positions = [p for p in range(len(bundle)) if p not in contents]
    assert len(positions) > 4000
    trust = aw.trust()
    for position in positions:
        flip = (0x01, 0x80, 0xFF)[position % 3]
        _refused_as_expected(bundle, trust, position, flip, expected[position])


# --- members swapped, missing, added -------------------------------------------------------


def test_a_swapped_member_is_caught(aw: AuditWorld, bundle: bytes) -> None:
    parsed = AuditBundle.parse(bundle)
    members = dict(parsed.members)
    members["firmware/gpu/bundle.bin"], members["firmware/nic/bundle.bin"] = (
        members["firmware/nic/bundle.bin"],
        members["firmware/gpu/bundle.bin"],
    )
    swapped = AuditBundle(parsed.index, members, parsed.seal).encode()
    error = _refused(swapped, aw)
    assert isinstance(error, AuditBundleRejected)
    assert (error.code, error.check) == ("member-changed", "members")
    assert "firmware/gpu/bundle.bin" in error.detail


def test_a_member_from_another_export_is_caught(aw: AuditWorld, bundle: bytes) -> None:
    other = AuditBundle.parse(aw.export(now=EXPORTED + dt.timedelta(minutes=1)))
    parsed = AuditBundle.parse(bundle)
    members = dict(parsed.members)
    members["spdm/nic.cbor"] = other.members["spdm/nic.cbor"]  # a valid session, another nonce
    error = _refused(AuditBundle(parsed.index, members, parsed.seal).encode(), aw)
    assert (type(error), error.code) == (AuditBundleRejected, "member-changed")
    # nor does the other export's seal fit this index
    error = _refused(AuditBundle(parsed.index, parsed.members, other.seal).encode(), aw)
    assert (type(error), error.code, error.check) == (
        AuditBundleRejected,
        "index-not-sealed",
        "seal",
    )


def test_a_missing_member_is_caught(aw: AuditWorld, bundle: bytes) -> None:
    parsed = AuditBundle.parse(bundle)
    members = {n: d for n, d in parsed.members.items() if n != "rot/fuses.json"}
    error = _refused(AuditBundle(parsed.index, members, parsed.seal).encode(), aw)
    assert (type(error), error.code, error.check) == (
        AuditBundleRejected,
        "member-missing",
        "members",
    )
    assert "rot/fuses.json" in error.detail


def test_an_added_member_is_caught(aw: AuditWorld, bundle: bytes) -> None:
    parsed = AuditBundle.parse(bundle)
    members = {**parsed.members, "firmware/bmc/statement-9.cose": b"\xd2\x84"}
    error = _refused(AuditBundle(parsed.index, members, parsed.seal).encode(), aw)
    assert (type(error), error.code) == (AuditBundleRejected, "member-unexpected")


# --- the framing of named members: given twice, named out of the bundle, lengths that lie -----


def _members_replaced(bundle: bytes, members: bytes) -> bytes:
    """``bundle`` with its members map (its encoded bytes) replaced by ``members``."""
    old = encode_cbor(dict(AuditBundle.parse(bundle).members))
    assert bundle.count(old) == 1
    return bundle.replace(old, members)


def _head(major: int, value: int) -> bytes:
    """A CBOR head with an 8-byte argument (any value, however large)."""
    return bytes(((major << 5) | 27,)) + value.to_bytes(8, "big")


def _map(pairs: list[tuple[str, bytes]]) -> bytes:
    return (
        bytes((0xB9,))
        + len(pairs).to_bytes(2, "big")
        + b"".join(encode_cbor(name) + value for name, value in pairs)
    )


def _pairs(bundle: bytes) -> list[tuple[str, bytes]]:
    return [(n, encode_cbor(d)) for n, d in sorted(AuditBundle.parse(bundle).members.items())]


def _malformed(data: bytes, aw: AuditWorld) -> str:
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        AuditBundleRejected,
        "bundle-malformed",
        "format",
    )
    return error.detail


def test_a_member_given_twice_is_refused(aw: AuditWorld, bundle: bytes) -> None:
    pairs = _pairs(bundle)
    name, _ = pairs[0]
    for second in (pairs[0][1], encode_cbor(b"other bytes")):  # the same bytes, or others
        data = _members_replaced(bundle, _map([*pairs, (name, second)]))
        assert "Duplicate map key" in _malformed(data, aw)


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "firmware/bmc/../../../x",
        "./node/record.json",
        "node//record.json",
        "node/record.json/",
        "Node/record.json",
        "node\\record.json",
        "node/record.json\x00.png",
        "a/b/c/d/e",
        "x" * 65,
        "",
    ],
)
def test_a_member_named_out_of_the_bundle_is_refused(
    aw: AuditWorld, bundle: bytes, name: str
) -> None:
    """Every member name is safe to unpack anywhere: no way out of a directory, no absolute
    path, no second spelling of a name (upper case, ``./``, ``//``), no NUL."""
    pairs = [(name if n == "node/record.json" else n, value) for n, value in _pairs(bundle)]
    assert "is not a member name" in _malformed(_members_replaced(bundle, _map(pairs)), aw)


@pytest.mark.parametrize("claimed", [2**31, 2**32 + 7, 2**40, 2**63 - 1, 2**64 - 1])
def test_a_member_claiming_gigabytes_in_a_small_file_is_refused(
    aw: AuditWorld, bundle: bytes, claimed: int
) -> None:
    """The bundle's "decompression bomb": a length that claims far more than the file holds
    is refused as the file ends, before anything of that size is allocated."""
    pairs = _pairs(bundle)
    name, value = pairs[-1]
    pairs[-1] = (name, _head(2, claimed) + value[len(encode_cbor(value)) - len(value) :][:64])
    data = _members_replaced(bundle, _map(pairs))
    assert len(data) < len(bundle)
    assert "premature end of stream" in _malformed(data, aw)


def test_a_member_of_indefinite_length_is_refused(aw: AuditWorld, bundle: bytes) -> None:
    pairs = _pairs(bundle)
    name = pairs[0][0]
    raw = AuditBundle.parse(bundle).members[name]
    chunks = encode_cbor(raw[:10]) + encode_cbor(raw[10:])
    pairs[0] = (name, b"\x5f" + chunks + b"\xff")
    assert "indefinite" in _malformed(_members_replaced(bundle, _map(pairs)), aw)


def _item_boundaries(data: bytes) -> list[int]:
    """Every offset where a CBOR item, or its head, starts or ends in ``data`` (definite
    lengths only, as a deterministic encoding has)."""
    found: set[int] = set()

    def walk(at: int) -> int:
        found.add(at)
        major, info = data[at] >> 5, data[at] & 31
        at += 1
        if info < 24:
            argument = info
        else:
            width = {24: 1, 25: 2, 26: 4, 27: 8}[info]
            argument = int.from_bytes(data[at : at + width], "big")
            at += width
        found.add(at)
        if major in (2, 3):
            at += argument
        elif major in (4, 5):
            for _ in range(argument * (2 if major == 5 else 1)):
                at = walk(at)
        found.add(at)
        return at

    assert walk(0) == len(data)
    return sorted(found)


def test_a_bundle_cut_at_any_item_boundary_or_extended_is_a_format_failure(
    aw: AuditWorld, bundle: bytes
) -> None:
    """Truncated at the start or end of every CBOR item and head (the framing, the index,
    the seal, every member's name and bytes), or with bytes after the map: each is
    ``bundle-malformed`` at the format step — never a traceback, never a later step."""
    trust = aw.trust()
    cuts = [at for at in _item_boundaries(bundle) if at < len(bundle)]
    assert len(cuts) > 100
    for data in [bundle[:at] for at in cuts] + [bundle + b"\x00", bundle + bundle[:1]]:
        report = check_bundle(data, trust)
        failure = report.failure
        assert failure is not None, len(data)
        assert failure.error is not None, len(data)
        assert (failure.name, type(failure.error), failure.error.code) == (
            "format",
            AuditBundleRejected,
            "bundle-malformed",
        ), len(data)


def test_members_or_parts_in_another_order_are_a_format_failure(
    aw: AuditWorld, bundle: bytes
) -> None:
    """The same members and parts, each byte intact, in an order that is not the
    deterministic one: refused as framing, so no two files verify as one bundle."""
    reordered = _members_replaced(bundle, _map(list(reversed(_pairs(bundle)))))
    assert "deterministic encoding" in _malformed(reordered, aw)
    parsed = AuditBundle.parse(bundle)
    parts = [
        ("seal", parsed.seal),
        ("index", parsed.index),
        ("members", dict(parsed.members)),
        ("format", "ironroot-audit-bundle/1"),
    ]
    swapped = bytes((0xA4,)) + b"".join(encode_cbor(k) + encode_cbor(v) for k, v in parts)
    assert len(swapped) == len(bundle)
    assert "deterministic encoding" in _malformed(swapped, aw)


def test_a_member_left_out_before_the_seal_breaks_the_steps_that_need_it(
    aw: AuditWorld, collected: AuditExport
) -> None:
    data = _reseal(aw, collected, members={"firmware/nic/bundle.bin": None})
    report = check_bundle(data, aw.trust())
    failed = {s.name: s.error for s in report.steps if s.status == "failed"}
    assert set(failed) == {"firmware:nic", "spdm:nic"}
    error = failed["firmware:nic"]
    assert (type(error), error.code, error.check) == (  # type: ignore[union-attr]
        VerificationFailed,
        "member-absent",
        "firmware:nic",
    )
    assert report.failure is not None
    assert report.failure.name == "firmware:nic"


def test_verify_raises_the_first_break_the_report_names_and_returns_the_same_report(
    aw: AuditWorld, bundle: bytes, collected: AuditExport
) -> None:
    """``verify_bundle`` stops at the first step that fails: what it raises is that step's
    error as ``check_bundle`` reports it (type, code, check and detail), for a break at the
    format, the seal, the members and at the first of two later steps that fail; and a bundle
    that verifies gives the report ``check_bundle`` gives, with the file's SHA-384."""
    parsed = AuditBundle.parse(bundle)

    def flipped(at: int) -> bytes:
        changed = bytearray(bundle)
        changed[at] ^= 0x01
        return bytes(changed)

    index_at = _span(bundle, "index", parsed.index)[0]
    member_at = _span(bundle, "rot/fuses.json", parsed.members["rot/fuses.json"])[0]
    left_out = _reseal(aw, collected, members={"firmware/nic/bundle.bin": None})
    trust = aw.trust()
    for step, data in (
        ("format", bundle[:-1]),
        ("seal", flipped(index_at + 3)),
        ("members", flipped(member_at + 3)),
        ("firmware:nic", left_out),
    ):
        report = check_bundle(data, trust)
        failure = report.failure
        assert failure is not None, step
        assert failure.error is not None, step
        assert failure.name == step
        with pytest.raises(IronrootError) as info:
            verify_bundle(data, trust)
        raised, reported = info.value, failure.error
        assert (type(raised), raised.code, raised.check, raised.detail) == (
            type(reported),
            reported.code,
            reported.check,
            reported.detail,
        ), step
    failed = [s.name for s in check_bundle(left_out, trust).steps if s.status == "failed"]
    assert failed == ["firmware:nic", "spdm:nic"]
    report = verify_bundle(bundle, trust)
    assert report == check_bundle(bundle, trust)
    assert report.bundle_sha384 == hashlib.sha384(bundle).hexdigest()


# --- false evidence, sealed by the node itself ------------------------------------------------


def test_a_receipt_from_an_untrusted_service_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    release = aw.world.release("bmc", "1.0")
    untrusted = aw.world.publish("bmc", release.bundle, client=aw.world.untrusted)[0]
    data = _reseal(
        aw, collected, members={"firmware/bmc/statement-0.cose": (untrusted, "application/cose")}
    )
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        UnknownIssuer,
        "untrusted-service",
        "firmware:bmc:receipt",
    )


def _forged_checkpoint(aw: AuditWorld, note: bytes) -> bytes:
    """A checkpoint of the trusted log's origin and size, signed with its own key, over
    another root: what a log that shows one party another view signs."""
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", "transparency.example")
    real = Checkpoint.parse(open_note(note, [signer.verifier()]))
    fork = Checkpoint(real.origin, real.size, hashlib.sha256(b"another view").digest())
    return sign_checkpoint(fork, [signer])


def test_an_inconsistent_checkpoint_is_refused(aw: AuditWorld, collected: AuditExport) -> None:
    note = collected.members["transparency/0/checkpoint"][0]
    forged = _forged_checkpoint(aw, note)
    data = _reseal(aw, collected, members={"transparency/0/checkpoint": (forged, "text/plain")})
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "transparency",
    )


def test_a_checkpoint_older_than_a_receipt_s_tree_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """A genuine checkpoint of the trusted log, signed with its key, from before the tree a
    receipt signs (its proofs renamed to that size): the receipt's tree cannot be a prefix
    of it."""
    note = collected.members["transparency/0/checkpoint"][0]
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", "transparency.example")
    real = Checkpoint.parse(open_note(note, [signer.verifier()]))
    proofs = LogProofs.decode(collected.members["transparency/0/proofs.cbor"][0])
    size = max(e.receipt_tree_size for e in proofs.entries) - 1
    with HttpLogFetcher(aw.world.urls["trusted"]) as fetcher:
        older = sign_checkpoint(
            Checkpoint(real.origin, size, TileTree(fetcher, size).root()), [signer]
        )
    latest = sorted(proofs.entries, key=lambda e: -e.receipt_tree_size)  # checked first
    renamed = dataclasses.replace(proofs, tree_size=size, entries=tuple(latest))
    data = _reseal(
        aw,
        collected,
        members={
            "transparency/0/checkpoint": (older, "text/plain"),
            "transparency/0/proofs.cbor": (renamed.encode(), "application/cbor"),
        },
    )
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "transparency",
    )
    assert f"is larger than tree size {size}" in error.detail


@pytest.mark.parametrize("field", ["leaf_index", "receipt_tree_size", "receipt"])
def test_a_proof_for_another_leaf_or_receipt_is_refused(
    aw: AuditWorld, collected: AuditExport, field: str
) -> None:
    """Each proof entry names the receipt it covers: another leaf index, another tree size
    or another receipt number than the receipt's own is refused, not taken at its word."""
    proofs = LogProofs.decode(collected.members["transparency/0/proofs.cbor"][0])
    first = proofs.entries[0]
    moved = dataclasses.replace(first, **{field: getattr(first, field) + 1})
    changed = dataclasses.replace(proofs, entries=(moved, *proofs.entries[1:]))
    data = _reseal(
        aw,
        collected,
        members={"transparency/0/proofs.cbor": (changed.encode(), "application/cbor")},
    )
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        InvalidProof,
        "invalid-proof",
        "transparency",
    )


def test_a_checkpoint_no_trusted_key_signed_is_refused(aw: AuditWorld, bundle: bytes) -> None:
    other = NoteSigner("transparency.example", PrivateKey.generate(Algorithm.ED25519))
    error = _refused(bundle, aw, checkpoint_keys=(other.verifier(),))
    assert (type(error), error.code, error.check) == (
        UnknownIssuer,
        "untrusted-log",
        "transparency",
    )


def test_a_trusted_receipt_without_a_checkpoint_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    data = _reseal(
        aw,
        collected,
        members={"transparency/0/checkpoint": None, "transparency/0/proofs.cbor": None},
    )
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "no-checkpoint",
        "transparency",
    )


def test_a_bundle_sealed_by_a_rot_of_another_vendor_is_refused(
    aw: AuditWorld, bundle: bytes
) -> None:
    other = VendorCA.generate(now=EXPORTED - dt.timedelta(days=3))
    error = _refused(bundle, aw, vendor_roots=other.trust_anchors)
    assert (type(error), error.code, error.check) == (AuditBundleRejected, "seal-invalid", "seal")
    assert "chain-not-trusted" in error.detail


def test_fuses_of_another_vendor_key_are_refused(aw: AuditWorld, bundle: bytes) -> None:
    error = _refused(bundle, aw, fused_vendor_key_hash=bytes(range(48)))
    assert (type(error), error.check) == (KeyDescriptorMismatch, "fuses")


@pytest.mark.parametrize(
    "lie",
    [
        {"anti_rollback_disabled": True},  # the RoT signed: enabled
        {"svn": 1},  # the RoT signed fuse SVN 3 at boot: a lower floor for the firmware steps
        {"owner_key_hash": "ab" * 48},  # the RoT signed: no owner key fused
    ],
    ids=["anti-rollback", "svn", "owner-key"],
)
def test_a_fuse_view_the_rot_did_not_sign_is_refused(
    aw: AuditWorld, collected: AuditExport, lie: dict[str, object]
) -> None:
    """The node seals a fuse view that disagrees with the device status its RoT's ROM
    measured into PCR0 (signed in the quote): refused at the fuses step."""
    import json

    view = json.loads(collected.members["rot/fuses.json"][0])
    assert (view["anti_rollback_disabled"], view["svn"], view["owner_key_hash"]) == (False, 3, None)
    data = json.dumps({**view, **lie}).encode()
    sealed = _reseal(aw, collected, members={"rot/fuses.json": (data, "application/json")})
    error = _refused(sealed, aw)
    assert (type(error), error.code, error.check) == (
        VerificationFailed,
        "fuses-not-quoted",
        "fuses",
    )


def test_an_ear_from_an_untrusted_verifier_is_refused(aw: AuditWorld, bundle: bytes) -> None:
    stranger = PrivateKey.generate(Algorithm.ES384)
    error = _refused(bundle, aw, verifier_keys={stranger.kid: stranger.public_key})
    assert (type(error), error.code, error.check) == (
        UnknownIssuer,
        "unknown-issuer",
        "attestation",
    )


def test_an_absent_ear_is_skipped_with_its_reason(aw: AuditWorld, collected: AuditExport) -> None:
    reason = "the registry holds no EAR for the node: it was never admitted"
    data = _reseal(
        aw,
        collected,
        members={"attestation/ear.jwt": None, "attestation/evidence.cbor": None},
        absent={"attestation/ear": reason},
    )
    report = check_bundle(data, aw.trust())
    step = report.step("attestation")
    assert (step.status, step.lines) == ("skipped", (NOT_PRESENT + reason,))
    # without the EAR nothing ties the credential to the RoT that sealed
    error = report.step("identity").error
    assert (type(error), error.code) == (ChainNotTrusted, "node-identity")  # type: ignore[union-attr]


def test_a_damaged_node_still_exports_and_verify_names_each_break(aw: AuditWorld) -> None:
    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=EXPORTED)  # pending: never admitted
    slot = {r.name: r for r in chip_layout("nic", SLOT)}["slot0"]
    chip = aw.fleet.directory / "nodes" / node / "flash" / "nic.bin"
    with chip.open("r+b") as f:  # flash damaged under the RoT (boot would restore it)
        f.seek(slot.offset + IMAGE_HEADER_SIZE + 1000)
        f.write(b"\xff" * 16)
    data = aw.export(node)
    index = AuditIndex.decode(AuditBundle.parse(data).index)
    assert index.absent["firmware/nic/bundle.bin"].startswith(
        "nic's active image cannot be read: flash-check:"
    )
    report = check_bundle(data, aw.trust())
    statuses = {s.name: s.status for s in report.steps}
    assert statuses["firmware:nic"] == statuses["spdm:nic"] == "failed"
    assert statuses["firmware:bmc"] == statuses["measured-boot"] == "ok"
    assert report.step("attestation").status == "skipped"
    assert report.step("attestation").lines == (
        NOT_PRESENT + "the registry holds no EAR for the node: it was never admitted",
    )
    error = report.step("firmware:nic").error
    assert error is not None
    assert (error.code, error.check) == ("member-absent", "firmware:nic")
    assert "flash-check" in error.detail


def test_garbage_sealed_in_place_of_any_member_is_a_typed_failure(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Whoever holds the node can seal anything: each member replaced by bytes that are not
    what it should be fails a step with a typed error, never a crash, never a pass."""
    rot = aw.fleet.rot(NODE)
    trust = aw.trust()
    for name, (_data, media) in sorted(collected.members.items()):
        for garbage in (b"\xa0", b'[{"id": "node-0001"}]'):
            data = collected.replace(members={name: (garbage, media)}).seal(rot)
            report = check_bundle(data, trust)  # raises nothing
            failed = [s for s in report.steps if s.status == "failed"]
            assert failed, f"{name} = {garbage!r} passed"
            assert all(isinstance(s.error, IronrootError) for s in failed)


def test_text_a_node_sealed_is_shown_safely(aw: AuditWorld, collected: AuditExport) -> None:
    """A node that seals its own bundle writes what the report quotes: a lone surrogate (JSON
    can spell it) made `audit verify --html` raise UnicodeEncodeError, and a terminal's
    escape sequence reached the auditor's terminal. Both are shown as code points now."""
    import io
    import json

    from rich.console import Console

    from ironroot.audit import render_console, render_html

    record = json.loads(collected.members["node/record.json"][0])
    record["reason"] = "\ud800 \x1b[1A\x1b[2K✓ every step holds"
    data = json.dumps(record).encode()
    sealed = _reseal(aw, collected, members={"node/record.json": (data, "application/json")})
    report = verify_bundle(sealed, aw.trust())
    shown = "([U+D800] [U+001B][1A[U+001B][2K✓ every step holds)"
    assert any(shown in line for line in report.step("node").lines)
    render_html(report).encode("utf-8")
    terminal = io.StringIO()
    render_console(report, Console(file=terminal, force_terminal=False))
    assert "\x1b" not in terminal.getvalue()


def test_a_node_whose_pfm_dropped_a_recovery_image_is_reported(aw: AuditWorld) -> None:
    """The update path refuses a PFM that no longer lists a component's recovery image unless
    the operator names the component; the audit re-verified each active image without the
    recovery images and passed such a node at every step, though boot could no longer
    restore that component. Now the component's firmware step fails for it, the others
    hold."""
    from ironroot.errors import PolicyRejected
    from ironroot.platform import COMPONENTS

    world = aw.world
    (node,) = aw.fleet.add_nodes(1, vendor_ca=aw.ca, now=EXPORTED)
    listed = {c: [world.release(c, "1.0"), world.release(c, "2.0")] for c in COMPONENTS}
    listed["host"] = [world.release("host", "2.0")]
    pfm = world.make_pfm(2, listed)
    host = world.release("host", "2.0")
    result = aw.fleet.node(node).update(
        "host",
        host.bundle,
        host.statements,
        now=EXPORTED,
        pfm=pfm,
        pfm_statement=world.log_pfm(pfm),
        allow_recovery_removal=["host"],
    )
    assert result.outcome == "committed"
    report = check_bundle(aw.export(node), aw.trust())
    statuses = {s.name: s.status for s in report.steps}
    assert statuses["pfm"] == "ok"
    assert {c: statuses[f"firmware:{c}"] for c in COMPONENTS} == {
        **dict.fromkeys(COMPONENTS, "ok"),
        "host": "failed",
    }
    error = report.step("firmware:host").error
    assert type(error) is PolicyRejected
    assert (error.code, error.check) == ("pfm-drops-recovery-image", "firmware:host:pfm")
    assert error.detail == (
        "the active PFM no longer allows the host recovery image: host could not be recovered "
        "(allow_recovery_removal must name it to accept that)"
    )
    assert any(
        "recovery image SHA-384" in line and "still allowed by the PFM" in line
        for line in report.step("firmware:nic").lines
    )


def test_receipts_from_after_the_time_judged_at_are_refused(aw: AuditWorld, bundle: bytes) -> None:
    # the statements were logged at NOW: a log-proof check judged a day before that is shown
    # receipts from its future (an audit's own seal stops earlier, its certificates not valid)
    members = AuditBundle.parse(bundle).members
    statements = {
        name: data
        for name, data in members.items()
        if re.fullmatch(r"(firmware/[a-z]+/statement-\d+|pfm/statement(-\d+)?)\.cose", name)
    }
    logs = [(members["transparency/0/checkpoint"], members["transparency/0/proofs.cbor"])]
    trust = aw.trust()
    args = {"service_keys": trust.platform.service_keys, "checkpoint_keys": trust.checkpoint_keys}
    assert verify_log_proofs(statements, logs, now=int(EXPORTED.timestamp()), **args)
    with pytest.raises(VerificationFailed) as caught:
        verify_log_proofs(statements, logs, now=int(NOW.timestamp()) - 86_400, **args)
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "receipt-from-the-future"


def test_a_proven_receipt_of_a_service_the_auditor_does_not_trust_is_untrusted_service(
    aw: AuditWorld, bundle: bytes
) -> None:
    # no service_issuer pinned: the keys alone decide, and a receipt signed by a key of no
    # trusted service is named as the other steps name it, by cose, not re-coded here
    members = AuditBundle.parse(bundle).members
    statements = {
        name: data
        for name, data in members.items()
        if re.fullmatch(r"(firmware/[a-z]+/statement-\d+|pfm/statement(-\d+)?)\.cose", name)
    }
    logs = [(members["transparency/0/checkpoint"], members["transparency/0/proofs.cbor"])]
    with pytest.raises(UnknownIssuer) as caught:
        verify_log_proofs(
            statements,
            logs,
            service_keys=aw.world.untrusted.service_keys(),
            checkpoint_keys=aw.trust().checkpoint_keys,
            now=int(EXPORTED.timestamp()),
        )
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert re.fullmatch(
        r"receipt \d+ of \S+ is not by the trusted transparency service \(the receipt's kid "
        r"is not a trusted service key\)",
        caught.value.detail,
    ), caught.value.detail


def test_a_device_mixing_the_components_of_two_logged_releases_fails_its_spdm_step(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The NIC's releases A and B are both logged, at one SVN, and exported as the statements
    its image was accepted with; the NIC runs A's FMC with B's runtime and its session
    answers the export's challenge with those measurements. Each block is on the log, the
    SVN is both releases', but no one released that combination: the offline re-check of
    the device refuses it, as the platform and the fleet do."""
    world = aw.world
    nic = PlatformDevice.open(aw.fleet.node(NODE).directory / "devices", "nic")
    svn = FirmwareBundle.parse(collected.members["firmware/nic/bundle.bin"][0]).manifest.header.svn

    def image(fmc: bytes, runtime: bytes) -> bytes:
        components = [Component(1, fmc * 64, version=1), Component(2, runtime * 64, version=2)]
        return world.signed(components, svn=svn)

    statements = [
        s
        for release in (image(b"nic fmc a", b"nic rt a"), image(b"nic fmc b", b"nic rt b"))
        for s in world.publish("nic", release)
    ]
    mixed = image(b"nic fmc a", b"nic rt b")
    measured = measure_device(
        nic,
        mixed,
        root=aw.fleet.node(NODE).config.devices["nic"].root,
        references=ReferenceValues(),
        now=EXPORTED,
        nonce=spdm_nonce(collected.nonce, "nic"),
    )
    assert measured.evidence is not None
    pattern = re.compile(r"firmware/nic/statement-\d+\.cose")
    members: dict[str, object] = dict.fromkeys(filter(pattern.fullmatch, collected.members))
    members.update(
        {
            f"firmware/nic/statement-{n}.cose": (s, "application/cose")
            for n, s in enumerate(statements)
        }
    )
    members["firmware/nic/bundle.bin"] = (mixed, collected.members["firmware/nic/bundle.bin"][1])
    members["spdm/nic.cbor"] = (measured.evidence, collected.members["spdm/nic.cbor"][1])
    data = _reseal(aw, collected, members=members)
    report = check_bundle(data, aw.trust())
    error = report.step("spdm:nic").error
    assert (type(error), error.code, error.check) == (  # type: ignore[union-attr]
        EndorsementMismatch,
        "mixed-releases",
        "spdm:nic",
    )
    assert not report.ok
    with pytest.raises(IronrootError):
        verify_bundle(data, aw.trust())


def _second_log(
    aw: AuditWorld, collected: AuditExport, checkpoint: bytes, proofs: LogProofs
) -> bytes:
    """The bundle with ``checkpoint`` and ``proofs`` as a second transparency service."""
    return _reseal(
        aw,
        collected,
        members={
            "transparency/1/checkpoint": (checkpoint, "text/plain"),
            "transparency/1/proofs.cbor": (proofs.encode(), "application/cbor"),
        },
    )


def test_two_views_of_one_log_in_one_bundle_are_inconsistent(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Each checkpoint was checked alone: a bundle that held the log's checkpoint and a second
    one of the same origin and size over another root (the log's key showing this node another
    view) passed, each receipt proven under the view that holds it, though the two signed notes
    are themselves a fork of the log."""
    note = collected.members["transparency/0/checkpoint"][0]
    forged = _forged_checkpoint(aw, note)
    real = Checkpoint.parse(Note.parse(note).body)
    data = _second_log(aw, collected, forged, LogProofs(real.origin, real.size, ()))
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        InconsistentCheckpoint,
        "inconsistent-checkpoint",
        "transparency",
    )
    assert error.detail == (
        f"the bundle holds two checkpoints of {real.origin} at size {real.size} with different "
        "roots: the log signed two views"
    )


def test_a_log_checkpointed_twice_in_one_bundle_is_refused(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """An export writes one checkpoint per log; two of one origin at different sizes are
    two views no proof in the bundle shows consistent (a receipt of a split view proven under
    the one that holds it, the others under the log's): refused, not taken one by one."""
    note = collected.members["transparency/0/checkpoint"][0]
    signer = load_checkpoint_signer(aw.world.root / "trusted-log", "transparency.example")
    real = Checkpoint.parse(open_note(note, [signer.verifier()]))
    with HttpLogFetcher(aw.world.urls["trusted"]) as fetcher:
        older = sign_checkpoint(
            Checkpoint(real.origin, real.size - 1, TileTree(fetcher, real.size - 1).root()),
            [signer],
        )
    data = _second_log(aw, collected, older, LogProofs(real.origin, real.size - 1, ()))
    error = _refused(data, aw)
    assert (type(error), error.code, error.check) == (
        InvalidProof,
        "checkpoint-twice",
        "transparency",
    )
    assert error.detail == (
        f"the bundle holds two checkpoints of {real.origin} (at sizes {real.size} and "
        f"{real.size - 1}): an export holds one view of each log, and no proof in it shows them "
        "consistent"
    )


def test_one_log_checkpointed_twice_at_one_tree_is_one_view(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The same checkpoint again (one log given twice at export, its receipt keys split
    between the two answers) is one view of the log: not refused."""
    note = collected.members["transparency/0/checkpoint"][0]
    real = Checkpoint.parse(Note.parse(note).body)
    data = _second_log(aw, collected, note, LogProofs(real.origin, real.size, ()))
    assert verify_bundle(data, aw.trust()).ok


def test_a_malformed_index_entry_under_a_huge_name_is_refused_without_quoting_it(
    aw: AuditWorld, bundle: bytes
) -> None:
    doc = cbor2.loads(AuditBundle.parse(bundle).index)
    name = "x" * 100_000
    doc["members"][name] = {"sha384": b"", "size": 0, "type": "text/plain"}
    with pytest.raises(AuditBundleRejected) as caught:
        AuditIndex.decode(cbor2.dumps(doc))
    assert caught.value.code == "bundle-malformed"
    assert caught.value.detail == f"{name[:80]!r} is not a member name"


def test_a_review_is_named_by_its_own_member_not_by_its_place_in_the_list(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """The reviews step names the member it read: with statements 0, 1, 2 and 6 in the
    bundle, the fourth is ``statement-6``, not ``statement-3`` (no member at all)."""
    from tests.audit.audit_world import PROVIDER
    from tests.platform.node_world import VENDOR, sfr_report

    from ironroot.safe import sfr_statement, sign_report

    other = aw.world.trusted.register(
        sfr_statement(
            sign_report(sfr_report(b"\x42" * 48, (3.1,)), aw.provider, PROVIDER),
            aw.world.statement_key,
            iss=VENDOR,
        )
    ).transparent_statement
    data = _reseal(
        aw,
        collected,
        members={"firmware/bmc/statement-6.cose": (other, "application/cose")},
    )
    step = check_bundle(data, aw.trust()).step("reviews")
    assert step.status == "failed"
    assert step.error is not None
    assert step.error.code == "subject-mismatch"
    assert step.error.detail.startswith(f"firmware/bmc/statement-6.cose reviews sha384:{'42' * 48}")


def test_a_statement_number_with_a_leading_zero_is_no_statement(
    aw: AuditWorld, collected: AuditExport
) -> None:
    """Export writes ``statement-1``, never ``statement-01``: a member under the second
    spelling is not read as a second statement number 1 (both sorted on one number), and
    a member no step reads is refused (``member-unread``), not carried along unchecked."""
    review = collected.members["firmware/bmc/statement-1.cose"]
    data = _reseal(aw, collected, members={"firmware/bmc/statement-01.cose": review})
    report = check_bundle(data, aw.trust())
    error = report.step("members").error
    assert error is not None
    assert (error.code, error.check) == ("member-unread", "members")
    assert "firmware/bmc/statement-01.cose" in error.detail
