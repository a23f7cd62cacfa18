"""LMS leaves on the log: each LMS signature's key and leaf in the manifest statement (its
protected header ``ironroot-lms-leaves``), so a second release reusing a one-time key is found
from the logged statements alone (``find_lms_leaf_reuse``), and publication refuses it
(``publish_bundle(..., logged=)``, ``firmware publish --logged STATEMENT``)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from _fw_helpers import (
    LMS_TEST_LIMITS,
    NOW,
    Recording,
    RestoredLms,
    Vendor,
    lms_vendor,
    mldsa_vendor,
)

from ironroot.cli import main
from ironroot.cose import (
    HASH_SHA384,
    SignedStatement,
    create_statement,
    verify_transparent_statement,
)
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedStatement, StateReuse
from ironroot.firmware import (
    LMS_LEAVES_HEADER,
    MANIFEST_CONTENT_TYPE,
    FirmwareBundle,
    LoggedLmsLeaf,
    PqcKeyType,
    entry_lms_leaves,
    find_lms_leaf_reuse,
    lms_leaves,
    logged_lms_leaves,
    manifest_statement,
    publish_bundle,
    reference_statement,
)
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)
from logged_elsewhere import OneEntryLogs

ISS = "https://vendor.example"
SUB = "pkg:firmware/acme/roadrunner-bmc"
KEY = PrivateKey.generate(Algorithm.ES384)
LOGS = OneEntryLogs("https://ts.example")  # the product's transparency service


def _restored_vendor() -> Vendor:
    """A vendor whose LMS signer state is restored before each signature: leaf 0 each time."""
    return Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[RestoredLms()],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )


def _statement(bundle: bytes) -> bytes:
    return manifest_statement(bundle, KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS)


def _reuse_detail(first: bytes, second: bytes, leaf: int = 0) -> str:
    key = lms_leaves(first, LMS_TEST_LIMITS)[0].key_hash
    a, b = (FirmwareBundle.parse(x, LMS_TEST_LIMITS).manifest_digest() for x in (first, second))
    return (
        f"LMS key {key.hex()[:16]}… signed with leaf {leaf} twice: as vendor of manifest"
        f" {a.hex()[:16]}… and as vendor of manifest {b.hex()[:16]}… (a restored or copied"
        " signer state); that leaf's signatures can be forged"
    )


def test_the_manifest_statement_logs_each_lms_signature_s_key_and_leaf(tmp_path: Path) -> None:
    """The statement stays a SHA-384 hash envelope of the manifest (its payload, which the
    platform's update check and every reader compare, is unchanged); the leaves are a signed
    protected header beside it."""
    vendor = lms_vendor(tmp_path, pqc_count=1)
    owner = (PrivateKey.generate(Algorithm.ES384), vendor.pqc[0])
    vendor.sign(vendor.build(svn=4))  # leaf 0 spent: the release below uses 1 and 2
    bundle = vendor.sign(vendor.build(svn=5), owner_signers=owner)
    parsed = FirmwareBundle.parse(bundle, LMS_TEST_LIMITS)
    statement = SignedStatement.parse(_statement(bundle))
    assert statement.payload == parsed.manifest_digest()
    assert statement.hash_envelope is not None
    assert statement.hash_envelope.hash_alg == HASH_SHA384
    assert statement.hash_envelope.preimage_content_type == MANIFEST_CONTENT_TYPE
    expected = tuple(
        LoggedLmsLeaf(
            role=leaf.role,
            key_hash=leaf.key_hash,
            leaf=leaf.leaf,
            message=parsed.header_digest(),
            signature_hash=hashlib.sha384(leaf.signature).digest(),
            manifest_digest=parsed.manifest_digest(),
        )
        for leaf in lms_leaves(bundle, LMS_TEST_LIMITS)
    )
    assert [x.role for x in expected] == ["vendor", "owner"]
    assert sorted(x.leaf for x in expected) == [1, 2]
    assert logged_lms_leaves(_statement(bundle)) == expected
    assert statement.sign1.protected[LMS_LEAVES_HEADER] == [
        {
            "role": x.role,
            "key-hash": x.key_hash,
            "leaf": x.leaf,
            "message": x.message,
            "signature-hash": x.signature_hash,
        }
        for x in expected
    ]


def test_an_ml_dsa_release_s_statement_carries_no_leaves() -> None:
    vendor = mldsa_vendor()
    bundle = vendor.sign(vendor.build())
    data = manifest_statement(bundle, KEY, iss=ISS, sub=SUB)
    assert LMS_LEAVES_HEADER not in SignedStatement.parse(data).sign1.protected
    assert logged_lms_leaves(data) == ()


def test_a_second_release_reusing_a_leaf_is_found_from_the_statements_alone() -> None:
    """Two releases signed with one LMS one-time key both verify and no device can tell; the
    log showed only manifest digests. From the two logged statements alone (no bundle), the
    monitor finds the leaf used over two headers."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    s1, s2 = _statement(first), _statement(second)
    ((a, b),) = find_lms_leaf_reuse([s1, s2])
    assert (a.leaf, b.leaf, a.key_hash) == (0, 0, b.key_hash)
    assert a.message != b.message
    assert a.manifest_digest == FirmwareBundle.parse(first, LMS_TEST_LIMITS).manifest_digest()
    assert b.manifest_digest == FirmwareBundle.parse(second, LMS_TEST_LIMITS).manifest_digest()
    # one release logged twice (a retry, a statement signed again) is one use, no reuse
    again = manifest_statement(first, PrivateKey.generate(Algorithm.ES384), iss=ISS, sub=SUB,
                               limits=LMS_TEST_LIMITS)  # fmt: skip
    assert find_lms_leaf_reuse([s1, s1, again]) == ()
    third = vendor.sign(vendor.build(svn=7))
    assert len(find_lms_leaf_reuse([s1, s2, _statement(third)])) == 2  # each later use


def test_one_statement_whose_vendor_and_owner_signatures_share_a_leaf_is_reuse() -> None:
    restored = RestoredLms()
    vendor = Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[restored],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )
    bundle = vendor.sign(
        vendor.build(), owner_signers=(PrivateKey.generate(Algorithm.ES384), restored)
    )
    ((a, b),) = find_lms_leaf_reuse([_statement(bundle)])
    assert (a.role, b.role, a.message) == ("vendor", "owner", b.message)


def test_statements_logged_before_the_leaves_read_as_none() -> None:
    """Backward compatibility: a manifest statement registered before this header (the hash
    envelope alone) has no leaves to compare; it is read, not refused."""
    vendor = _restored_vendor()
    bundle = vendor.sign(vendor.build())
    manifest = FirmwareBundle.parse(bundle, LMS_TEST_LIMITS).manifest.encode()
    older = create_statement(
        KEY,
        manifest,
        iss=ISS,
        sub=SUB,
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
    )
    assert logged_lms_leaves(older) == ()
    assert find_lms_leaf_reuse([older, _statement(bundle)]) == ()


def _with_leaves(value: object, **kw: object) -> bytes:
    args: dict[str, object] = {"hash_envelope": True, "hash_alg": HASH_SHA384}
    args["preimage_content_type"] = MANIFEST_CONTENT_TYPE
    args.update(kw)
    headers = {LMS_LEAVES_HEADER: value}
    return create_statement(KEY, b"manifest", iss=ISS, sub=SUB, headers=headers, **args)  # type: ignore[arg-type]


_LEAF = {
    "role": "vendor",
    "key-hash": bytes(range(48)),
    "leaf": 3,
    "message": b"\1" * 48,
    "signature-hash": b"\2" * 48,
}
_ARRAY = "ironroot-lms-leaves must be an array of one or two LMS leaf maps"
_ROLE = 'an LMS leaf\'s role must be "vendor" or "owner", each once'
_DIGEST = "an LMS leaf's {} must be a 48-byte SHA-384"
_MAP = (
    "an LMS leaf of ironroot-lms-leaves must be a map of exactly role, key-hash, leaf,"
    " message and signature-hash"
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, _ARRAY),
        ([], _ARRAY),
        ([_LEAF, {**_LEAF, "role": "owner"}, {**_LEAF, "role": "owner"}], _ARRAY),
        ([[1, 2]], _MAP),
        ([{**_LEAF, "extra": 1}], _MAP),
        ([{k: v for k, v in _LEAF.items() if k != "leaf"}], _MAP),
        ([{**_LEAF, "role": "admin"}], _ROLE),
        ([_LEAF, _LEAF], _ROLE),
        ([{**_LEAF, "key-hash": b"\0" * 47}], _DIGEST.format("key-hash")),
        ([{**_LEAF, "message": "00" * 48}], _DIGEST.format("message")),
        ([{**_LEAF, "signature-hash": None}], _DIGEST.format("signature-hash")),
        ([{**_LEAF, "leaf": -1}], "an LMS leaf's leaf must be an integer 0–4294967295"),
        ([{**_LEAF, "leaf": 1 << 32}], "an LMS leaf's leaf must be an integer 0–4294967295"),
        ([{**_LEAF, "leaf": True}], "an LMS leaf's leaf must be an integer 0–4294967295"),
    ],
)  # fmt: skip
def test_a_malformed_leaves_header_is_refused(value: object, message: str) -> None:
    """A statement that claims leaves must claim them exactly: a monitor that skipped what it
    cannot read would miss the reuse it is there to see."""
    with pytest.raises(MalformedStatement) as exc:
        logged_lms_leaves(_with_leaves(value))
    assert (exc.value.code, exc.value.detail) == ("malformed-statement", message)
    with pytest.raises(MalformedStatement):
        find_lms_leaf_reuse([_with_leaves([_LEAF]), _with_leaves(value)])
    assert logged_lms_leaves(_with_leaves([_LEAF]))[0].leaf == 3


def test_a_statement_that_is_no_manifest_statement_is_refused() -> None:
    vendor = mldsa_vendor()
    bundle = vendor.sign(vendor.build())
    not_manifest = (
        "not a firmware manifest statement (a SHA-384 hash envelope of"
        " application/vnd.ironroot.firmware-manifest)"
    )
    for data in (
        reference_statement(bundle, KEY, iss=ISS, sub=SUB),
        _with_leaves([_LEAF], preimage_content_type="application/octet-stream"),
        _with_leaves([_LEAF], hash_alg=-16),
    ):
        with pytest.raises(MalformedStatement) as exc:
            logged_lms_leaves(data)
        assert exc.value.detail == not_manifest
    with pytest.raises(MalformedStatement):
        logged_lms_leaves(b"\xd2\x84")


def test_publish_refuses_a_release_reusing_a_leaf_a_logged_statement_shows() -> None:
    """``logged=``: the product's earlier manifest statements (the ``.manifest.ts`` files of
    earlier releases, or as read from the log), no bundle needed. The second release is
    refused before anything is registered; the first published again is no reuse."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    registrar = Recording(LOGS)
    publish = functools.partial(
        publish_bundle, client=registrar, signer=KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS,
        service_keys=LOGS.keys,
    )  # fmt: skip
    earlier = publish(first).manifest_statement
    assert len(registrar.registered) == 2
    with pytest.raises(StateReuse) as exc:
        publish(second, logged=[earlier])
    assert (exc.value.code, exc.value.detail) == ("state-reuse", _reuse_detail(first, second))
    assert len(registrar.registered) == 2
    publish(first, logged=[earlier])
    assert len(registrar.registered) == 4


def test_publish_refuses_a_release_of_a_key_whose_leaf_the_log_shows_reused(
    tmp_path: Path,
) -> None:
    """A leaf used twice lets anyone forge that key's signatures (a device takes any leaf):
    a new release signed by that key, even on a fresh leaf, is refused too; another key's
    release is not."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    logged = [LOGS.transparent(_statement(first)), LOGS.transparent(_statement(second))]
    later = vendor.sign(vendor.build(svn=7))  # leaf 0 once more: a third use
    with pytest.raises(StateReuse) as exc:
        publish_bundle(later, Recording(), KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS,
                       logged=logged, service_keys=LOGS.keys)  # fmt: skip
    assert exc.value.detail == _reuse_detail(first, second)
    other = lms_vendor(tmp_path, pqc_count=1)
    fresh = other.sign(other.build())
    registrar = Recording()
    publish_bundle(fresh, registrar, KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS,
                   logged=logged, service_keys=LOGS.keys)  # fmt: skip
    assert len(registrar.registered) == 2


def test_publish_refuses_a_logged_statement_it_cannot_read() -> None:
    vendor = mldsa_vendor()
    bundle = vendor.sign(vendor.build())
    registrar = Recording()
    logged = [LOGS.transparent(_with_leaves([]))]
    with pytest.raises(MalformedStatement) as exc:
        publish_bundle(
            bundle, registrar, KEY, iss=ISS, sub=SUB, logged=logged, service_keys=LOGS.keys
        )
    assert exc.value.detail == _ARRAY
    assert registrar.registered == []


def test_cli_publish_refuses_a_release_reusing_a_logged_leaf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``firmware publish --logged EARLIER.manifest.ts``: exit 1 and the reason; nothing
    registered (no service listens: the refusal comes first) and nothing written. A file
    that is no manifest statement is a usage error (exit 2, malformed-statement)."""
    key_file = tmp_path / "statement.key"
    key_file.write_bytes(KEY.to_pem())
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    earlier = tmp_path / "first.manifest.ts"
    earlier.write_bytes(LOGS.transparent(_statement(first)))
    service = tmp_path / "service.pub.pem"
    service.write_bytes(LOGS.key.public_key.to_pem())
    bundle = tmp_path / "second.bin"
    bundle.write_bytes(second)
    out = tmp_path / "release"
    argv = ["firmware", "publish", str(bundle), "--url", "http://127.0.0.1:9"]
    argv += ["--key", str(key_file), "--iss", ISS, "--sub", SUB, "--out-dir", str(out)]
    argv += ["--at", NOW.isoformat(), "--vendor-key-hash", vendor.descriptor_hash.hex()]
    argv += ["--lms-params", "SHA256-N24-H5-W4", "--service-keys", str(service)]
    argv += ["--revoked-ecc", "0", "--revoked-pqc", "0"]  # none revoked: no warning
    assert main([*argv, "--logged", str(earlier)]) == 1
    assert capsys.readouterr().err == f"ironroot: state-reuse: {_reuse_detail(first, second)}\n"
    corim = tmp_path / "first.corim.ts"
    corim.write_bytes(
        LOGS.transparent(reference_statement(first, KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS))
    )
    assert main([*argv, "--logged", str(corim)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: malformed-statement: {corim}: not a firmware manifest statement (a SHA-384"
        " hash envelope of application/vnd.ironroot.firmware-manifest)\n"
    )
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture
def service_client(tmp_path: Path) -> Iterator[TransparencyClient]:
    data = tmp_path / "data"
    init_data_dir(data)
    (data / "vendor.pub.pem").write_bytes(KEY.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text() + f'\n[[transparency.issuers]]\niss = "{ISS}"\nkey = "vendor.pub.pem"\n'
    )
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as server, TransparencyClient(server.url) as client:
        yield client


def test_a_transparency_service_logs_the_leaves_and_publication_reads_them_back(
    service_client: TransparencyClient,
) -> None:
    """Registered for real: the service takes the header (signed, in the log entry), the
    Transparent Statement it returns verifies, and a second release reusing the leaf is
    refused from that Transparent Statement alone, nothing more registered."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    publish = functools.partial(
        publish_bundle, client=service_client, signer=KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS
    )
    earlier = publish(first).manifest_statement
    logged = verify_transparent_statement(earlier, service_client.service_keys())
    assert logged.statement.sign1.protected[LMS_LEAVES_HEADER][0]["leaf"] == 0
    ((leaf,),) = (logged_lms_leaves(earlier),)
    assert leaf.manifest_digest == FirmwareBundle.parse(first, LMS_TEST_LIMITS).manifest_digest()
    with pytest.raises(StateReuse) as exc:
        publish(second, logged=[earlier], service_keys=service_client.service_keys())
    assert exc.value.detail == _reuse_detail(first, second)


def test_cli_leaves_lists_the_logged_leaves_and_fails_on_reuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``firmware leaves STATEMENT...``: an auditor's check over manifest statements (the
    ``.manifest.ts`` files that ship with updates): each LMS leaf listed; exit 1 with
    ``state-reuse`` when one key's leaf signed twice, 0 otherwise."""
    vendor = _restored_vendor()
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    files = []
    for name, bundle in (("a", first), ("b", second)):
        path = tmp_path / f"{name}.manifest.ts"
        path.write_bytes(_statement(bundle))
        files.append(str(path))
    assert main(["firmware", "leaves", files[0], files[0]]) == 0
    (leaf,) = logged_lms_leaves(_statement(first))
    line = (
        f"{files[0]}: vendor LMS key {leaf.key_hash.hex()} leaf 0 manifest"
        f" {leaf.manifest_digest.hex()}"
    )
    assert capsys.readouterr().out == f"{line}\n{line}\n"
    assert main(["firmware", "leaves", *files]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"ironroot: state-reuse: {_reuse_detail(first, second)}\n"
    assert captured.out.splitlines()[0] == line
    assert main(["firmware", "leaves", *files, "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"ironroot: state-reuse: {_reuse_detail(first, second)}\n"
    doc = json.loads(captured.out)
    assert doc["ok"] is False
    assert [x["leaf"] for x in doc["leaves"]] == [0, 0]
    assert doc["leaves"][1]["statement"] == files[1]
    ((a, b),) = doc["reuse"]
    assert (a["statement"], b["statement"]) == tuple(files)
    assert a["message"] == FirmwareBundle.parse(first, LMS_TEST_LIMITS).header_digest().hex()
    plain = mldsa_vendor()
    ml = tmp_path / "ml.manifest.ts"
    ml.write_bytes(manifest_statement(plain.sign(plain.build()), KEY, iss=ISS, sub=SUB))
    assert main(["firmware", "leaves", str(ml)]) == 0
    assert capsys.readouterr().out == f"{ml}: no LMS leaves logged\n"
    corim = tmp_path / "c.corim.ts"
    corim.write_bytes(
        LOGS.transparent(reference_statement(first, KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS))
    )
    assert main(["firmware", "leaves", str(corim)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: malformed-statement: {corim}: not a firmware manifest statement (a SHA-384"
        " hash envelope of application/vnd.ironroot.firmware-manifest)\n"
    )


def test_a_log_entry_s_leaves_are_read_only_from_a_statement_that_names_them() -> None:
    """``entry_lms_leaves``, what ``ironroot monitor`` reads of every entry: an entry with no
    leaves header (any statement, a CoRIM statement, bytes that are no statement) names none;
    one with the header is read as ``logged_lms_leaves`` reads it, and one that has it and
    is not a manifest statement, or whose COSE does not parse, is refused, not skipped."""
    vendor = _restored_vendor()
    bundle = vendor.sign(vendor.build())
    assert entry_lms_leaves(_statement(bundle)) == logged_lms_leaves(_statement(bundle))
    corim = reference_statement(bundle, KEY, iss=ISS, sub=SUB, limits=LMS_TEST_LIMITS)
    plain = create_statement(KEY, b"{}", iss=ISS, sub=SUB)
    for entry in (corim, plain, b"", b"\xff", cbor2.dumps([1, 2, 3, 4])):
        assert entry_lms_leaves(entry) == ()
    with pytest.raises(MalformedStatement) as exc:
        entry_lms_leaves(_with_leaves([_LEAF], preimage_content_type="application/json"))
    assert exc.value.detail == (
        f"not a firmware manifest statement (a SHA-384 hash envelope of {MANIFEST_CONTENT_TYPE})"
    )
    unparsed = cbor2.dumps(
        cbor2.CBORTag(18, [cbor2.dumps({1: -35, LMS_LEAVES_HEADER: [_LEAF]}), {}, b"m", b"s"])
    )
    with pytest.raises(MalformedStatement) as exc:
        entry_lms_leaves(unparsed)
    assert exc.value.detail == (
        f"a statement naming {LMS_LEAVES_HEADER} does not parse: protected header lacks CWT"
        " claims (15)"
    )
