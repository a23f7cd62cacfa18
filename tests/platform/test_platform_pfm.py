"""The Platform Firmware Manifest: built, signed by both vendor keys, verified against the
fused key descriptor; each refusal asserted with its exact error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import http_calls
from hypothesis_budget import examples
from ironroot.cose import CONTENT_TYPE, KID, CoseSign, cose_sign, decode_cbor, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    FirmwareRejected,
    KeyDescriptorMismatch,
    KeyRevoked,
    MalformedInput,
    MissingSignature,
    SvnRollback,
)
from ironroot.firmware import key_descriptor_hash
from ironroot.platform import (
    PFM_CONTENT_TYPE,
    Pfm,
    PfmComponent,
    PfmVersion,
    sign_pfm,
    verify_pfm,
)

BMC_1 = b"bmc firmware 1.0" * 64
BMC_2 = b"bmc firmware 2.0" * 64


class Vendor:
    def __init__(self) -> None:
        self.ecc = PrivateKey.generate(Algorithm.ES384)
        self.pqc = PrivateKey.generate(Algorithm.ML_DSA_87)
        self.fused = key_descriptor_hash([self.ecc.public_key], [self.pqc.public_key], "mldsa")

    def verify(self, data: bytes, **kwargs: object) -> Pfm:
        return verify_pfm(
            data,
            ecc_keys=[self.ecc.public_key],
            pqc_keys=[self.pqc.public_key],
            vendor_key_hash=self.fused,
            **kwargs,  # type: ignore[arg-type]
        )


def _pfm(svn: int = 2) -> Pfm:
    return Pfm(
        platform="pkg:platform/acme/node-1",
        svn=svn,
        components=(
            PfmComponent(
                "bmc",
                (
                    PfmVersion("1.0", 1, hashlib.sha384(BMC_1).digest()),
                    PfmVersion("2.0", 2, hashlib.sha384(BMC_2).digest()),
                ),
                read_only=((0, 0x100000),),
                read_write=((0x100000, 0x10000),),
            ),
        ),
    )


@pytest.fixture(scope="module")
def vendor() -> Vendor:
    return Vendor()


def test_a_signed_pfm_verifies_and_allows_its_images(vendor: Vendor) -> None:
    signed = sign_pfm(_pfm(), vendor.ecc, vendor.pqc)
    pfm = vendor.verify(signed, min_svn=2)
    assert pfm == _pfm()
    assert pfm.allows("bmc", BMC_2).version == "2.0"
    assert len(CoseSign.decode(signed).signatures) == 2


def test_an_image_the_pfm_does_not_list_is_refused(vendor: Vendor) -> None:
    pfm = vendor.verify(sign_pfm(_pfm(), vendor.ecc, vendor.pqc))
    with pytest.raises(FirmwareRejected) as info:
        pfm.allows("bmc", b"modified firmware")
    assert info.value.code == "not-in-pfm"
    with pytest.raises(FirmwareRejected) as info:
        pfm.allows("gpu", BMC_1)
    assert info.value.code == "not-in-pfm"


def test_a_pfm_signed_by_another_vendor_is_refused(vendor: Vendor) -> None:
    other = Vendor()
    signed = sign_pfm(_pfm(), other.ecc, other.pqc)
    with pytest.raises(BadSignature) as info:
        vendor.verify(signed)
    assert info.type is BadSignature
    with pytest.raises(KeyDescriptorMismatch):  # the other keys are not the fused descriptor
        verify_pfm(
            signed,
            ecc_keys=[other.ecc.public_key],
            pqc_keys=[other.pqc.public_key],
            vendor_key_hash=vendor.fused,
        )


@pytest.mark.parametrize(("ecc_revocation", "pqc_revocation"), [(1, 0), (0, 1)])
def test_a_pfm_signed_by_a_revoked_key_is_refused(
    vendor: Vendor, ecc_revocation: int, pqc_revocation: int
) -> None:
    signed = sign_pfm(_pfm(), vendor.ecc, vendor.pqc)
    with pytest.raises(KeyRevoked) as info:
        vendor.verify(signed, ecc_revocation=ecc_revocation, pqc_revocation=pqc_revocation)
    assert info.type is KeyRevoked
    assert info.value.code == "key-revoked"
    assert vendor.verify(signed, ecc_revocation=2, pqc_revocation=2).svn == 2  # other slots


def test_a_pfm_with_one_signature_is_refused(vendor: Vendor) -> None:
    signed = CoseSign.decode(sign_pfm(_pfm(), vendor.ecc, vendor.pqc))
    from dataclasses import replace

    only_ecc = replace(signed, signatures=signed.signatures[:1]).encode()
    with pytest.raises(MissingSignature):
        vendor.verify(only_ecc)


def test_a_flipped_bit_is_a_bad_signature(vendor: Vendor) -> None:
    signed = bytearray(sign_pfm(_pfm(), vendor.ecc, vendor.pqc))
    signed[-10] ^= 1  # inside the ML-DSA signature
    with pytest.raises(BadSignature):
        vendor.verify(bytes(signed))


def test_a_lower_svn_is_a_rollback(vendor: Vendor) -> None:
    with pytest.raises(SvnRollback):
        vendor.verify(sign_pfm(_pfm(svn=1), vendor.ecc, vendor.pqc), min_svn=2)


def test_a_changed_pfm_at_the_active_svn_is_refused(vendor: Vendor) -> None:
    """At the active PFM's SVN only the active PFM verifies (module docs: one SVN, one PFM);
    a higher SVN is needed for other contents, and ``active`` is also an SVN floor."""
    active = _pfm(svn=2)
    narrower = Pfm(active.platform, 2, (PfmComponent("bmc", active.components[0].versions[1:]),))
    with pytest.raises(SvnRollback) as info:
        vendor.verify(sign_pfm(narrower, vendor.ecc, vendor.pqc), active=active)
    assert info.type is SvnRollback
    assert info.value.code == "pfm-svn-reused"
    assert vendor.verify(sign_pfm(active, vendor.ecc, vendor.pqc), active=active) == active
    newer = Pfm(active.platform, 3, narrower.components)
    assert vendor.verify(sign_pfm(newer, vendor.ecc, vendor.pqc), active=active) == newer
    with pytest.raises(SvnRollback) as info:
        vendor.verify(sign_pfm(_pfm(svn=1), vendor.ecc, vendor.pqc), active=active)
    assert info.value.code == "svn-rollback"


def test_malformed_pfms_are_refused(vendor: Vendor) -> None:
    with pytest.raises(MalformedInput):
        PfmComponent("bmc", ())
    with pytest.raises(MalformedInput):
        PfmComponent(
            "bmc", (PfmVersion("1.0", 1, bytes(48)),), read_only=((0, 10),), read_write=((5, 10),)
        )
    with pytest.raises(MalformedInput):
        PfmVersion("1.0", 1, bytes(32))
    with pytest.raises(MalformedInput):
        Pfm.decode(b"\xa0")
    good = decode_cbor(_pfm().encode())
    for fake in (True, 1.0, "1"):  # each compares equal to 1 in Python or is its text
        with pytest.raises(MalformedInput) as info:
            Pfm.decode(encode_cbor({**good, "pfm": fake}))
        assert info.value.detail == f"unknown PFM format {fake!r}"
    with pytest.raises(MalformedInput):
        vendor.verify(b"not a PFM")


def test_one_image_under_two_versions_is_refused(vendor: Vendor) -> None:
    """A PFM that lists one SHA-384 twice for a component says two things of one image (which
    version it is, which SVN): the entry an update or a boot would take is the first that
    matches, so another entry's SVN or version could be what the RoT records. Refused at
    construction and, signed by the vendor, at verification."""
    digest = hashlib.sha384(BMC_1).digest()
    twice = (PfmVersion("1.0", 1, digest), PfmVersion("2.0", 2, digest))
    with pytest.raises(MalformedInput) as info:
        PfmComponent("bmc", twice)
    assert info.value.detail == "component 'bmc' lists one image (SHA-384) under two versions"
    payload = decode_cbor(_pfm().encode())
    payload["components"][0]["versions"] = [
        {"version": v.version, "svn": v.svn, "sha384": v.sha384} for v in twice
    ]
    signed = cose_sign(
        [vendor.ecc, vendor.pqc],
        encode_cbor(payload),
        {CONTENT_TYPE: PFM_CONTENT_TYPE},
        signer_headers=[({KID: vendor.ecc.kid}, {}), ({KID: vendor.pqc.kid}, {})],
    ).encode()
    with pytest.raises(MalformedInput) as info:
        vendor.verify(signed)
    assert info.value.detail == "component 'bmc' lists one image (SHA-384) under two versions"
    # the same image for two components is another matter: each component's list is its own
    other = PfmComponent("bios", (PfmVersion("1.0", 1, digest),))
    Pfm("pkg:platform/acme/node-1", 1, (PfmComponent("bmc", twice[:1]), other))


def test_cli_build_and_verify(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ironroot.cli import main

    base = tmp_path
    (base / "bmc-2.0.bin").write_bytes(BMC_2)
    (base / "other.bin").write_bytes(b"an image no PFM lists")
    (base / "ecc.key").write_bytes(vendor.ecc.to_pem())
    (base / "pqc.key").write_bytes(vendor.pqc.to_pem())
    (base / "ecc.pub").write_bytes(vendor.ecc.public_key.to_pem())
    (base / "pqc.pub").write_bytes(vendor.pqc.public_key.to_pem())
    out = base / "node.pfm"
    build = ["platform", "pfm", "build", "--platform", "pkg:platform/acme/node", "--svn", "3",
             "--image", f"bmc=2.0:2:{base / 'bmc-2.0.bin'}", "--read-only", "bmc=0:0x100000",
             "--ecc-key", str(base / "ecc.key"), "--pqc-key", str(base / "pqc.key"),
             "--out", str(out)]  # fmt: skip
    assert main(build) == 0
    verify = ["platform", "pfm", "verify", str(out), "--vendor-key-hash", vendor.fused.hex(),
              "--ecc", str(base / "ecc.pub"), "--pqc", str(base / "pqc.pub")]  # fmt: skip
    capsys.readouterr()
    assert main([*verify, "--image", f"bmc={base / 'bmc-2.0.bin'}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["allowed"] == {"bmc": "2.0"}
    assert main([*verify, "--image", f"bmc={base / 'other.bin'}"]) == 1
    assert "not-in-pfm" in capsys.readouterr().err
    assert main([*verify, "--min-svn", "4"]) == 1
    assert "svn-rollback" in capsys.readouterr().err
    assert main([*verify[:4], "--vendor-key-hash", "00" * 48, *verify[6:]]) == 1
    assert "key-descriptor-mismatch" in capsys.readouterr().err
    # a PFM the right keys signed for another platform: refused as the RoT refuses it
    assert main([*verify, "--platform", "pkg:platform/acme/node"]) == 0
    capsys.readouterr()
    assert main([*verify, "--platform", "pkg:platform/acme/other-node"]) == 1
    assert capsys.readouterr().err == (
        "ironroot: pfm-platform-mismatch: the PFM is for platform 'pkg:platform/acme/node', "
        "not 'pkg:platform/acme/other-node'\n"
    )


def test_a_pfm_is_published_on_the_transparency_service(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pfm publish` registers the signed PFM; the transparent statement's payload is the PFM,
    which still verifies, and the receipt verifies under the service's keys."""
    import json

    from ironroot.cli import main
    from ironroot.cose import TransparentStatement, decode_key_set, verify_transparent_statement
    from ironroot.transparency import ServiceThread, TransparencyService, init_data_dir

    issuer = PrivateKey.generate(Algorithm.ES256)
    data = tmp_path / "ts"
    init_data_dir(data)
    (data / "vendor.pub.pem").write_bytes(issuer.public_key.to_pem())
    with (data / "ironroot.toml").open("a") as config:
        config.write('[[transparency.issuers]]\niss = "https://vendor.example"\n')
        config.write('key = "vendor.pub.pem"\n')
    (tmp_path / "issuer.key").write_bytes(issuer.to_pem())
    pfm_file = tmp_path / "node.pfm"
    pfm_file.write_bytes(sign_pfm(_pfm(), vendor.ecc, vendor.pqc))
    with TransparencyService.open(data) as service, ServiceThread(service) as server:
        argv = ["platform", "pfm", "publish", str(pfm_file), "--url", server.url,
                "--key", str(tmp_path / "issuer.key"), "--iss", "https://vendor.example",
                "--sub", "pkg:platform/acme/node-1", "--json"]  # fmt: skip
        capsys.readouterr()
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["ok"] is True
        keys = decode_key_set(http_calls.get(f"{server.url}/.well-known/scitt-keys").content)
        pfm_file.with_name("bad.pfm").write_bytes(b"not a PFM")
        bad = [a if a != str(pfm_file) else str(tmp_path / "bad.pfm") for a in argv]
        assert main(bad) == 2  # nothing malformed is published
    ts = (tmp_path / "node.pfm.ts").read_bytes()
    verify_transparent_statement(ts, keys)
    assert vendor.verify(TransparentStatement.parse(ts).statement.payload) == _pfm()


@pytest.mark.parametrize(
    ("region", "detail"),
    [
        ((-5, 10), "read_only offset is an unsigned integer"),
        ((0, 0), "read_only: a region is non-empty and within 4 GiB"),
        ((0xFFFF_F000, 0x2000), "read_only: a region is non-empty and within 4 GiB"),
        ((2**64, 1), "read_only offset is an unsigned integer"),
        ((True, 1), "read_only offset is an unsigned integer"),
        ((0, 1, 2), "read_only is a list of [offset, length]"),
    ],
)
def test_a_region_no_verifier_accepts_is_refused_when_built(
    region: tuple[int, ...], detail: str
) -> None:
    """Construction checks a region as decoding does: before, ``PfmComponent`` took any pair,
    and ``sign_pfm`` signed a PFM that ``verify_pfm`` then refused on every RoT."""
    version = PfmVersion("1.0", 1, hashlib.sha384(BMC_1).digest())
    with pytest.raises(MalformedInput) as info:
        PfmComponent("bmc", (version,), read_only=(region,))  # type: ignore[arg-type]
    assert info.type is MalformedInput
    assert info.value.detail == detail
    with pytest.raises(MalformedInput) as info:
        PfmComponent("bmc", (version,), read_write=(region,))  # type: ignore[arg-type]
    assert info.value.detail == detail.replace("read_only", "read_write")


def test_cli_build_writes_no_pfm_with_a_bad_region(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import main

    (tmp_path / "bmc.bin").write_bytes(BMC_1)
    (tmp_path / "ecc.key").write_bytes(vendor.ecc.to_pem())
    (tmp_path / "pqc.key").write_bytes(vendor.pqc.to_pem())
    out = tmp_path / "node.pfm"
    for region in ("bmc=-4096:4096", "bmc=0:0", "bmc=0xfffff000:0x2000"):
        build = ["platform", "pfm", "build", "--platform", "pkg:platform/acme/node",
                 "--svn", "3", "--image", f"bmc=1.0:1:{tmp_path / 'bmc.bin'}",
                 "--read-write", region, "--ecc-key", str(tmp_path / "ecc.key"),
                 "--pqc-key", str(tmp_path / "pqc.key"), "--out", str(out)]  # fmt: skip
        capsys.readouterr()
        assert main(build) == 2
        assert "ironroot: malformed: read_write" in capsys.readouterr().err
        assert not out.exists()


# Mostly valid values with the edges and the invalid ones mixed in, so that most examples
# construct and the round trip is what is tested.
_INTS = st.one_of(
    st.integers(min_value=0, max_value=2**32),
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**64 - 1, 2**64, -1, True]),
)
_TEXTS = st.sampled_from(["bmc", "bmc", "1.0", "é" * 256, "", "x" * 257, 7])
_REGIONS = st.lists(st.tuples(_INTS, _INTS), max_size=3).map(tuple)


@settings(max_examples=examples(300), deadline=None)
@given(
    platform=_TEXTS,
    svn=_INTS,
    name=_TEXTS,
    version=_TEXTS,
    version_svn=_INTS,
    digest=st.sampled_from([bytes(range(48)), bytes(range(48)), bytes(47)]),
    read_only=_REGIONS,
    read_write=_REGIONS,
)
def test_every_pfm_that_constructs_decodes_to_itself(
    platform: object,
    svn: object,
    name: object,
    version: object,
    version_svn: object,
    digest: bytes,
    read_only: tuple[tuple[object, object], ...],
    read_write: tuple[tuple[object, object], ...],
) -> None:
    """Construction refuses with ``MalformedInput`` whatever decoding would refuse: a value
    built in Python (``pfm build``) is one a verifier accepts, never a signed dead letter."""
    try:
        pfm = Pfm(
            platform,  # type: ignore[arg-type]
            svn,  # type: ignore[arg-type]
            (
                PfmComponent(
                    name,  # type: ignore[arg-type]
                    (PfmVersion(version, version_svn, digest),),  # type: ignore[arg-type]
                    read_only=read_only,  # type: ignore[arg-type]
                    read_write=read_write,  # type: ignore[arg-type]
                ),
            ),
        )
    except MalformedInput:
        return
    assert Pfm.decode(pfm.encode()) == pfm


@pytest.mark.parametrize("verb", ["verify", "publish"])
def test_cli_refuses_a_pfm_file_over_the_limit_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str
) -> None:
    """A 200 MiB file (sparse) given as a PFM is refused from its size, beyond the largest
    PFM (1 MiB): it was read whole (some 240 MB of memory) before the decoder refused it."""
    from ironroot.cli import main

    big = tmp_path / "big.pfm"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    key = tmp_path / "k.pem"
    if verb == "verify":
        argv = ["platform", "pfm", "verify", str(big), "--vendor-key-hash", "11" * 48,
                "--ecc", str(key), "--pqc", str(key)]  # fmt: skip
    else:
        argv = ["platform", "pfm", "publish", str(big), "--url", "http://127.0.0.1:9",
                "--key", str(key), "--iss", "i", "--sub", "s"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"ironroot: limit-exceeded: {big} is larger than 1048576 bytes\n"
    )


def test_cli_verify_shows_the_pfm_s_platform_and_versions_as_written(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PFM's platform and image versions are text its builder chose (1 to 256 characters,
    any): ``pfm verify`` printed them raw, an escape sequence reaching the terminal."""
    from ironroot.cli import main

    base = tmp_path
    (base / "bmc.bin").write_bytes(BMC_2)
    (base / "ecc.key").write_bytes(vendor.ecc.to_pem())
    (base / "pqc.key").write_bytes(vendor.pqc.to_pem())
    (base / "ecc.pub").write_bytes(vendor.ecc.public_key.to_pem())
    (base / "pqc.pub").write_bytes(vendor.pqc.public_key.to_pem())
    out = base / "node.pfm"
    build = ["platform", "pfm", "build", "--platform", "node\x1b[2J\u202e", "--svn", "3",
             "--image", f"bmc=2.0\x1b]0;x\x07:2:{base / 'bmc.bin'}",
             "--ecc-key", str(base / "ecc.key"), "--pqc-key", str(base / "pqc.key"),
             "--out", str(out)]  # fmt: skip
    assert main(build) == 0
    assert capsys.readouterr().out == (
        f"wrote {out}: PFM svn 3 for node[U+001B][2J[U+202E], 1 image(s)\n"
    )
    verify = ["platform", "pfm", "verify", str(out), "--vendor-key-hash", vendor.fused.hex(),
              "--ecc", str(base / "ecc.pub"), "--pqc", str(base / "pqc.pub"),
              "--image", f"bmc={base / 'bmc.bin'}"]  # fmt: skip
    assert main(verify) == 0
    assert capsys.readouterr().out == (
        "PFM verifies: node[U+001B][2J[U+202E], svn 3\n"
        "  bmc: the image is version 2.0[U+001B]]0;x[U+0007], allowed\n"
    )
