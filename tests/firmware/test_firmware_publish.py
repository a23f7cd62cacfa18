"""Publication: manifest and reference-value statements, registered with a live service."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from _fw_helpers import (
    FMC,
    LMS_TEST_LIMITS,
    NOT_AFTER,
    NOT_BEFORE,
    NOW,
    RUNTIME,
    Recording,
    RestoredLms,
    Vendor,
    flip,
    lms_vendor,
    mldsa_vendor,
)

from ironroot.corim import Corim, Digest, Svn
from ironroot.cose import SignedStatement, verify_transparent_statement
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    ConfigError,
    DigestMismatch,
    KeyDescriptorMismatch,
    ManifestExpired,
    StateReuse,
)
from ironroot.firmware import (
    MANIFEST_CONTENT_TYPE,
    BundlePolicy,
    FirmwareBundle,
    PqcKeyType,
    check_lms_leaf_reuse,
    lms_leaves,
    manifest_statement,
    publish_bundle,
    reference_corim,
    reference_statement,
    verify_bundle,
    write_published,
)
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)

ISS = "https://vendor.example"
SUB = "pkg:firmware/acme/roadrunner-bmc"


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return mldsa_vendor()


@pytest.fixture(scope="module")
def bundle(vendor: Vendor) -> bytes:
    return vendor.sign(vendor.build(svn=9))


@pytest.fixture(scope="module")
def statement_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES384)


def test_manifest_statement_is_a_sha384_hash_envelope(
    bundle: bytes, statement_key: PrivateKey
) -> None:
    statement = SignedStatement.parse(manifest_statement(bundle, statement_key, iss=ISS, sub=SUB))
    assert statement.claims.iss == ISS
    assert statement.claims.sub == SUB
    assert statement.hash_envelope is not None
    assert statement.hash_envelope.hash_alg == -43
    assert statement.hash_envelope.preimage_content_type == MANIFEST_CONTENT_TYPE
    assert statement.sign1.protected[258] == -43
    size = FirmwareBundle.parse(bundle).manifest.size
    assert statement.payload == hashlib.sha384(bundle[:size]).digest()
    statement.sign1.verify(statement_key.public_key)


def test_reference_corim_lists_the_expected_measurements(bundle: bytes) -> None:
    corim = reference_corim(bundle, vendor=ISS, model=SUB)
    assert Corim.parse(corim.encode()) == corim
    (comid,) = corim.comids
    by_key = {t.measurements[0].mkey: t for t in comid.triples.reference}
    assert set(by_key) == {"fmc", "runtime", "component-3"}
    fmc = by_key["fmc"]
    assert fmc.environment.class_map is not None
    assert (fmc.environment.class_map.vendor, fmc.environment.class_map.model) == (ISS, SUB)
    assert fmc.environment.class_map.layer == 0
    assert by_key["runtime"].environment.class_map.layer == 1  # type: ignore[union-attr]
    assert fmc.measurements[0].mval.digests == (Digest(7, hashlib.sha384(FMC).digest()),)
    assert by_key["runtime"].measurements[0].mval.digests == (
        Digest(7, hashlib.sha384(RUNTIME).digest()),
    )
    # the release's exact SVN (tag 552), not a minimum (553): evidence of these digests
    # claiming another SVN is of a header nobody logged
    for triple in comid.triples.reference:
        assert triple.measurements[0].mval.svn == Svn(9)
    assert corim.encode().count(bytes.fromhex("d9022809")) == 3  # 552(9) for each component
    assert bytes.fromhex("d90229") not in corim.encode()
    assert comid.entities[0].name == ISS
    assert comid.entities[0].reg_id == ISS
    assert corim.rim_validity is not None
    assert corim.rim_validity.not_before is not None
    assert corim.rim_validity.not_after > corim.rim_validity.not_before
    # deterministic: the same bundle always gives the same CoRIM bytes
    assert reference_corim(bundle, vendor=ISS, model=SUB).encode() == corim.encode()


def test_reference_statement_carries_the_corim(bundle: bytes, statement_key: PrivateKey) -> None:
    statement = SignedStatement.parse(
        reference_statement(bundle, statement_key, iss=ISS, sub=SUB, vendor="ACME", model="RR")
    )
    assert statement.content_type == "application/rim+cbor"
    corim = Corim.parse(statement.payload)
    assert corim == reference_corim(bundle, vendor="ACME", model="RR")


# --- against the transparency service, served from this process ----------------------------


@pytest.fixture
def service_client(tmp_path: Path, statement_key: PrivateKey) -> Iterator[TransparencyClient]:
    data = tmp_path / "data"
    init_data_dir(data)
    (data / "vendor.pub.pem").write_bytes(statement_key.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text() + f'\n[[transparency.issuers]]\niss = "{ISS}"\nkey = "vendor.pub.pem"\n'
    )
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as server, TransparencyClient(server.url) as client:
        yield client


def test_publish_registers_both_statements_and_writes_them(
    tmp_path: Path,
    bundle: bytes,
    statement_key: PrivateKey,
    service_client: TransparencyClient,
) -> None:
    published = publish_bundle(bundle, service_client, statement_key, iss=ISS, sub=SUB)
    keys = service_client.service_keys()
    manifest_ts = verify_transparent_statement(published.manifest_statement, keys)
    corim_ts = verify_transparent_statement(published.corim_statement, keys)
    assert manifest_ts.statement.payload == published.manifest_digest
    assert manifest_ts.statement.claims.sub == SUB
    corim = Corim.parse(corim_ts.statement.payload)
    assert corim == reference_corim(bundle, vendor=ISS, model=SUB)
    assert published.manifest_entry_id != published.corim_entry_id
    out = tmp_path / "release"
    paths = write_published(published, out, "roadrunner-1.2")
    assert [p.name for p in paths] == ["roadrunner-1.2.manifest.ts", "roadrunner-1.2.corim.ts"]
    assert paths[0].read_bytes() == published.manifest_statement
    assert paths[1].read_bytes() == published.corim_statement


def test_publish_refuses_a_broken_bundle(
    bundle: bytes, statement_key: PrivateKey, service_client: TransparencyClient
) -> None:
    entry = FirmwareBundle.parse(bundle).manifest.toc[0]
    with pytest.raises(DigestMismatch):
        publish_bundle(flip(bundle, entry.offset), service_client, statement_key, iss=ISS, sub=SUB)
    offset = entry.offset - 1  # last byte of the TOC: digest of the last component
    with pytest.raises(DigestMismatch):
        publish_bundle(flip(bundle, offset), service_client, statement_key, iss=ISS, sub=SUB)


class _Refusing:
    """A registrar that records what reaches it: a refused bundle must register nothing."""

    def __init__(self) -> None:
        self.registered: list[bytes] = []

    def register(self, statement: bytes) -> object:
        self.registered.append(statement)
        raise AssertionError("nothing may be registered")


def test_publish_refuses_a_manifest_whose_validity_has_ended(
    vendor: Vendor, statement_key: PrivateKey
) -> None:
    """Publication verified at the manifest's own not-before, so a release that had expired
    (which no device installs) was published as current."""
    expired = vendor.sign(
        vendor.build(not_before=NOW - dt.timedelta(days=90), not_after=NOW - dt.timedelta(days=1))
    )
    registrar = _Refusing()
    with pytest.raises(ManifestExpired, match=r"the manifest expired at .* \(vendor\)"):
        publish_bundle(expired, registrar, statement_key, iss=ISS, sub=SUB, now=NOW)
    assert registrar.registered == []


def test_publish_refuses_validity_windows_that_never_overlap(
    vendor: Vendor, statement_key: PrivateKey
) -> None:
    never = vendor.sign(
        vendor.build(
            owner_not_before=NOT_AFTER + dt.timedelta(days=1),
            owner_not_after=NOT_AFTER + dt.timedelta(days=2),
        )
    )
    registrar = _Refusing()
    with pytest.raises(ManifestExpired, match=r"the manifest expired at .* \(vendor\)"):
        publish_bundle(never, registrar, statement_key, iss=ISS, sub=SUB)
    assert registrar.registered == []


@pytest.mark.parametrize("now", [None, NOW, NOT_BEFORE - dt.timedelta(days=7)])
def test_publish_accepts_an_owner_window_that_opens_after_the_vendors(
    vendor: Vendor,
    statement_key: PrivateKey,
    service_client: TransparencyClient,
    now: dt.datetime | None,
) -> None:
    """Publication verified at the vendor not-before, before the owner window opened: a
    bundle every device accepts from then on was refused (ManifestExpired) and could not be
    published at all. A release published ahead of its dates is still published."""
    later = vendor.sign(
        vendor.build(owner_not_before=NOT_BEFORE + dt.timedelta(days=1), owner_not_after=NOT_AFTER)
    )
    published = publish_bundle(later, service_client, statement_key, iss=ISS, sub=SUB, now=now)
    assert published.manifest_digest == FirmwareBundle.parse(later).manifest_digest()


def test_publish_needs_an_aware_now(bundle: bytes, statement_key: PrivateKey) -> None:
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        publish_bundle(
            bundle, _Refusing(), statement_key, iss=ISS, sub=SUB, now=NOW.replace(tzinfo=None)
        )


def test_publish_refuses_a_bundle_signed_with_other_firmware_keys(
    vendor: Vendor, statement_key: PrivateKey
) -> None:
    """Publication checked a bundle only against the descriptors it carries itself: a bundle
    signed with anyone's firmware keys (a build altered on its way to publication) was
    registered under the vendor's statement key, with reference values for its images."""
    impostor = mldsa_vendor()
    foreign = impostor.sign(impostor.build())
    registrar = _Refusing()
    with pytest.raises(KeyDescriptorMismatch, match="not the fused value"):
        publish_bundle(
            foreign,
            registrar,
            statement_key,
            iss=ISS,
            sub=SUB,
            vendor_key_descriptor_hash=vendor.descriptor_hash,
        )
    assert registrar.registered == []


def test_publish_takes_the_product_key_descriptor_hash(
    vendor: Vendor, bundle: bytes, statement_key: PrivateKey, service_client: TransparencyClient
) -> None:
    published = publish_bundle(
        bundle,
        service_client,
        statement_key,
        iss=ISS,
        sub=SUB,
        vendor_key_descriptor_hash=vendor.descriptor_hash,
    )
    assert published.manifest_digest == FirmwareBundle.parse(bundle).manifest_digest()
    with pytest.raises(ConfigError, match="48-byte SHA-384"):
        publish_bundle(
            bundle, _Refusing(), statement_key, iss=ISS, sub=SUB, vendor_key_descriptor_hash=b"x"
        )


def test_publish_refuses_a_release_whose_lms_leaf_an_earlier_release_used(
    statement_key: PrivateKey,
) -> None:
    """Two releases signed with one LMS one-time key (a restored signer state) both verify:
    no device can tell. Publication, given the product's earlier release bundles, finds two
    signatures by one LMS key with one leaf over different headers and refuses the second
    (``StateReuse``) before anything is registered: the second signature, which with the
    first lets anyone forge that leaf's signatures, is not made public by the vendor."""
    vendor = Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[RestoredLms()],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )
    first, second = (vendor.sign(vendor.build(svn=svn)) for svn in (5, 6))
    policy = BundlePolicy(
        now=NOW, vendor_key_descriptor_hash=vendor.descriptor_hash, limits=LMS_TEST_LIMITS
    )
    assert verify_bundle(first, policy).svn == 5  # the verifier accepts both: the gap
    assert verify_bundle(second, policy).svn == 6
    ((leaf,),) = (lms_leaves(first, LMS_TEST_LIMITS),)
    assert (leaf.role, leaf.leaf) == ("vendor", 0)
    registrar = Recording()
    publish = functools.partial(
        publish_bundle,
        client=registrar,
        signer=statement_key,
        iss=ISS,
        sub=SUB,
        limits=LMS_TEST_LIMITS,
    )
    publish(first)
    assert len(registrar.registered) == 2
    with pytest.raises(StateReuse, match="leaf 0") as exc:
        publish(second, published=[first])
    assert exc.value.code == "state-reuse"
    assert len(registrar.registered) == 2  # nothing more registered
    publish(first, published=[first])  # the same release again: the same signature, no reuse
    assert len(registrar.registered) == 4


def test_one_lms_leaf_as_vendor_and_owner_signature_is_reuse() -> None:
    """One LMS key may sign as vendor and owner, with two leaves: one leaf for both is reuse,
    found within the one bundle."""
    restored = RestoredLms()
    vendor = Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[restored],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )
    owner = (PrivateKey.generate(Algorithm.ES384), restored)
    bundle = vendor.sign(vendor.build(), owner_signers=owner)
    assert [leaf.role for leaf in lms_leaves(bundle, LMS_TEST_LIMITS)] == ["vendor", "owner"]
    with pytest.raises(StateReuse):
        check_lms_leaf_reuse([bundle], limits=LMS_TEST_LIMITS)


def test_cli_publish_refuses_a_release_reusing_an_earlier_release_s_lms_leaf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``firmware publish --published EARLIER``: exit 1, ``state-reuse``, nothing written and
    nothing registered (no service is listening: the refusal comes first)."""
    from ironroot.cli import main

    statement_key = PrivateKey.generate(Algorithm.ES384)
    key_file = tmp_path / "statement.key"
    key_file.write_bytes(statement_key.to_pem())
    vendor = Vendor(
        ecc=[PrivateKey.generate(Algorithm.ES384)],
        pqc=[RestoredLms()],
        pqc_type=PqcKeyType.LMS,
        limits=LMS_TEST_LIMITS,
    )
    first, second = tmp_path / "first.bin", tmp_path / "second.bin"
    first.write_bytes(vendor.sign(vendor.build(svn=5)))
    second.write_bytes(vendor.sign(vendor.build(svn=6)))
    out = tmp_path / "release"
    argv = ["firmware", "publish", str(second), "--url", "http://127.0.0.1:9"]
    argv += ["--key", str(key_file), "--iss", ISS, "--sub", SUB, "--out-dir", str(out)]
    argv += ["--at", NOW.isoformat(), "--vendor-key-hash", vendor.descriptor_hash.hex()]
    argv += ["--lms-params", "SHA256-N24-H5-W4", "--published", str(first)]
    assert main(argv) == 1
    assert "state-reuse" in capsys.readouterr().err
    assert not any(out.iterdir()) if out.exists() else True


def test_releases_of_one_lms_key_on_distinct_leaves_are_no_reuse(tmp_path: Path) -> None:
    """The check is not a false alarm: a key whose state advanced signs each release with a
    new leaf, vendor and owner included; an ML-DSA-87 bundle has no LMS leaves."""
    vendor = lms_vendor(tmp_path, pqc_count=1)
    owner = (PrivateKey.generate(Algorithm.ES384), vendor.pqc[0])
    first = vendor.sign(vendor.build(svn=5))
    second = vendor.sign(vendor.build(svn=6), owner_signers=owner)
    leaves = [(x.role, x.leaf) for b in (first, second) for x in lms_leaves(b, LMS_TEST_LIMITS)]
    assert [role for role, _ in leaves] == ["vendor", "vendor", "owner"]
    assert sorted(leaf for _, leaf in leaves) == [0, 1, 2]
    check_lms_leaf_reuse([first, second, first], limits=LMS_TEST_LIMITS)
    plain = mldsa_vendor()
    assert lms_leaves(plain.sign(plain.build())) == ()
