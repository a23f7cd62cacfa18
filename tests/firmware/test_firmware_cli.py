"""``ironroot firmware``: build, sign, verify, inspect, key-descriptor, publish."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cbor2
import pytest
from _fw_helpers import FMC, NOW, RUNTIME, flip

from ironroot.cli import main
from ironroot.cose import verify_transparent_statement
from ironroot.crypto import Algorithm, LmsPrivateKey, PrivateKey
from ironroot.firmware import BundlePolicy, FirmwareBundle, field_offsets, verify_bundle
from ironroot.transparency import (
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    init_data_dir,
)

AT = NOW.isoformat()
NB = "2026-01-01T00:00:00+00:00"
NA = "2027-01-01T00:00:00Z"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Vendor keys (2 ECC, 2 ML-DSA-87) as PEM, an owner pair, and component images."""
    out: dict[str, Path] = {}
    for name, alg in [
        ("ecc0", Algorithm.ES384),
        ("ecc1", Algorithm.ES384),
        ("pqc0", Algorithm.ML_DSA_87),
        ("pqc1", Algorithm.ML_DSA_87),
        ("owner_ecc", Algorithm.ES384),
        ("owner_pqc", Algorithm.ML_DSA_87),
    ]:
        key = PrivateKey.generate(alg)
        (tmp_path / f"{name}.key").write_bytes(key.to_pem())
        (tmp_path / f"{name}.pub").write_bytes(key.public_key.to_pem())
        out[name] = tmp_path / f"{name}.key"
        out[f"{name}.pub"] = tmp_path / f"{name}.pub"
    for name, data in [("fmc", FMC), ("rt", RUNTIME), ("extra", b"extra image")]:
        (tmp_path / f"{name}.bin").write_bytes(data)
        out[name] = tmp_path / f"{name}.bin"
    out["dir"] = tmp_path
    return out


def _build_args(f: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "firmware",
        "build",
        "--fmc",
        str(f["fmc"]),
        "--runtime",
        str(f["rt"]),
        "--component",
        f"7={f['extra']}",
        "--svn",
        "4",
        "--vendor-ecc-key",
        str(f["ecc0.pub"]),
        str(f["ecc1.pub"]),
        "--vendor-pqc-key",
        str(f["pqc0.pub"]),
        str(f["pqc1.pub"]),
        "--ecc-index",
        "1",
        "--pqc-type",
        "mldsa",
        "--not-before",
        NB,
        "--not-after",
        NA,
        "--fmc-version",
        "3",
        "--out",
        str(out),
        *extra,
    ]


def _descriptor(f: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> str:
    assert (
        main(
            [
                "firmware",
                "key-descriptor",
                "--ecc",
                str(f["ecc0.pub"]),
                str(f["ecc1.pub"]),
                "--pqc",
                str(f["pqc0.pub"]),
                str(f["pqc1.pub"]),
            ]
        )
        == 0
    )
    return capsys.readouterr().out.strip()


@pytest.fixture
def signed(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Path:
    unsigned = files["dir"] / "fw.unsigned"
    bundle = files["dir"] / "fw.bin"
    assert main(_build_args(files, unsigned)) == 0
    assert (
        main(
            [
                "firmware",
                "sign",
                str(unsigned),
                "--ecc-key",
                str(files["ecc1"]),
                "--pqc-key",
                str(files["pqc0"]),
                "--out",
                str(bundle),
            ]
        )
        == 0
    )
    capsys.readouterr()
    return bundle


def test_build_sign_verify(
    files: dict[str, Path], signed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _descriptor(files, capsys)
    assert len(bytes.fromhex(digest)) == 48
    verified = verify_bundle(
        signed.read_bytes(), BundlePolicy(now=NOW, vendor_key_descriptor_hash=bytes.fromhex(digest))
    )
    assert verified.vendor_ecc_key_index == 1
    assert verified.component(7).data == b"extra image"
    assert verified.fmc.version == 3
    code = main(["firmware", "verify", str(signed), "--vendor-key-hash", digest, "--at", AT])
    out = capsys.readouterr().out
    assert code == 0
    assert "ok   vendor-pqc-signature" in out
    assert "FAIL" not in out


def test_verify_json_report_and_failure_exit_code(
    files: dict[str, Path], signed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _descriptor(files, capsys)
    args = ["firmware", "verify", str(signed), "--vendor-key-hash", digest, "--at", AT, "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["measurements"]["svn"] == "04000000"
    names = [c["name"] for c in report["checks"]]
    assert names[:3] == ["parse", "key-descriptor", "ecc-key"]
    assert "component:7" in names
    assert main([*args, "--min-svn", "5"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is False
    assert {c["name"]: c["code"] for c in report["checks"]}["svn"] == "svn-rollback"
    assert "svn-rollback" in captured.err
    assert main([*args, "--revoked-ecc", "0x2"]) == 1
    assert "key-revoked" in capsys.readouterr().err
    assert main([*args[:-1], "--at", "2030-01-01T00:00:00Z"]) == 1
    assert "manifest-expired" in capsys.readouterr().err


def test_verify_tampered_bundle_fails_with_reason(
    files: dict[str, Path], signed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = _descriptor(files, capsys)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(flip(signed.read_bytes(), field_offsets(3)["header.svn"][0]))
    assert main(["firmware", "verify", str(bad), "--vendor-key-hash", digest, "--at", AT]) == 1
    captured = capsys.readouterr()
    assert "FAIL vendor-ecc-signature" in captured.out
    assert "bad-signature" in captured.err
    other = "11" * 48
    assert main(["firmware", "verify", str(signed), "--vendor-key-hash", other, "--at", AT]) == 1
    assert "key-descriptor-mismatch" in capsys.readouterr().err
    unfused = "00" * 48  # a fuse never programmed is no hash: bad input, not a mismatch
    assert main(["firmware", "verify", str(signed), "--vendor-key-hash", unfused, "--at", AT]) == 2
    assert capsys.readouterr().err == (
        "ironroot: config: an all-zero vendor key hash is no vendor key hash (unfused)\n"
    )


def test_verify_usage_errors(signed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "verify", str(signed), "--vendor-key-hash", "zz"]) == 2
    assert (
        main(["firmware", "verify", str(signed), "--vendor-key-hash", "00" * 48, "--at", "x"]) == 2
    )
    assert (
        main(
            [
                "firmware",
                "verify",
                str(signed),
                "--vendor-key-hash",
                "00" * 48,
                "--revoked-pqc",
                "q",
            ]
        )
        == 2
    )
    capsys.readouterr()


def test_inspect(signed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["firmware", "inspect", str(signed), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["svn"] == 4
    assert doc["pqc_key_type"] == "mldsa"
    assert doc["vendor_ecc_key_index"] == 1
    assert doc["signed"] == {
        "vendor_ecc": True,
        "vendor_pqc": True,
        "owner_ecc": False,
        "owner_pqc": False,
    }
    assert [c["id"] for c in doc["components"]] == [1, 2, 7]
    assert doc["components"][0]["version"] == 3
    assert (
        doc["manifest_digest"] == FirmwareBundle.parse(signed.read_bytes()).manifest_digest().hex()
    )
    assert main(["firmware", "inspect", str(signed)]) == 0
    text = capsys.readouterr().out
    assert "svn: 4" in text
    assert "component 7:" in text


def test_inspect_malformed_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"IRMN" + bytes(100))
    assert main(["firmware", "inspect", str(junk)]) == 2
    assert "malformed-firmware" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["firmware", "inspect", "{big}"],
        ["firmware", "verify", "{big}", "--vendor-key-hash", "11" * 48],
        ["firmware", "sign", "{big}", "--ecc-key", "k", "--pqc-key", "k", "--out", "o"],
        ["firmware", "build", "--fmc", "{big}", "--runtime", "{big}", "--svn", "1",
         "--vendor-ecc-key", "k", "--vendor-pqc-key", "k", "--pqc-type", "lms",
         "--not-before", "2026-01-01", "--not-after", "2027-01-01", "--out", "o"],
    ],
)  # fmt: skip
def test_a_file_over_the_bundle_limit_is_refused_by_its_size_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A 200 MiB file (sparse: it costs no disk) where a bundle or a component belongs is
    refused from its size, before a byte is read: a bundle is at most 128 MiB and a component
    32 MiB. It was read whole (some 240 MB of memory) and then refused."""
    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)
    limit = 32 * 1024 * 1024 if argv[1] == "build" else 128 * 1024 * 1024
    assert main([word.replace("{big}", str(big)) for word in argv]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: limit-exceeded: {big} is larger than {limit} bytes\n"
    )


def test_owner_signing(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = tmp_path / "u"
    bundle = tmp_path / "owned.bin"
    assert main(_build_args(files, unsigned)) == 0
    base = [
        "firmware",
        "sign",
        str(unsigned),
        "--ecc-key",
        str(files["ecc1"]),
        "--pqc-key",
        str(files["pqc0"]),
    ]
    assert main([*base, "--owner-ecc-key", str(files["owner_ecc"]), "--out", str(bundle)]) == 2
    owner = ["--owner-ecc-key", str(files["owner_ecc"]), "--owner-pqc-key", str(files["owner_pqc"])]
    assert main([*base, *owner, "--out", str(bundle)]) == 0
    capsys.readouterr()
    assert main(["firmware", "inspect", str(bundle), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["signed"]["owner_pqc"] is True
    digest = _descriptor(files, capsys)
    args = ["firmware", "verify", str(bundle), "--vendor-key-hash", digest, "--at", AT]
    assert main([*args, "--owner-key-hash", doc["owner_key_hash"]]) == 0
    assert main([*args, "--owner-key-hash", "11" * 48]) == 1
    assert "owner-key-mismatch" in capsys.readouterr().err


def test_sign_with_a_key_not_in_the_manifest(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsigned = tmp_path / "u"
    assert main(_build_args(files, unsigned)) == 0
    code = main(
        [
            "firmware",
            "sign",
            str(unsigned),
            "--ecc-key",
            str(files["ecc0"]),
            "--pqc-key",
            str(files["pqc0"]),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 1
    assert "key-not-in-descriptor" in capsys.readouterr().err


def test_sign_refuses_an_unsigned_bundle_whose_components_changed_after_build(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The FMC bytes of the build output are replaced before signing: the TOC still names the
    built FMC, so signing would vouch for an image the signer was not given. Exit 1, nothing
    written."""
    unsigned = tmp_path / "u"
    assert main(_build_args(files, unsigned)) == 0
    parsed = FirmwareBundle.parse(unsigned.read_bytes())
    other = bytes(len(parsed.components[0]))
    unsigned.write_bytes(FirmwareBundle(parsed.manifest, (other, *parsed.components[1:])).encode())
    capsys.readouterr()
    code = main(
        [
            "firmware",
            "sign",
            str(unsigned),
            "--ecc-key",
            str(files["ecc1"]),
            "--pqc-key",
            str(files["pqc0"]),
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "digest-mismatch" in err
    assert "component 1 does not match its TOC digest" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("clobbered", ["lms", "ecc"])
def test_sign_refuses_to_write_the_bundle_over_a_signing_key(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str], clobbered: str
) -> None:
    """``--out`` naming a key file (a slip of the shell history) replaced the vendor's key
    with the signed bundle: an LMS state file, its seed and its leaf index, gone for good."""
    lms = LmsPrivateKey.generate(tmp_path / "lms.state", "SHA256-N24-H5-W4")
    lms_pub = tmp_path / "lms.cose"
    lms_pub.write_bytes(cbor2.dumps(lms.public_key.to_cose_key()))
    lms_opt = ["--lms-params", "SHA256-N24-H5-W4"]
    unsigned = tmp_path / "u"
    build = [
        "firmware", "build", "--fmc", str(files["fmc"]), "--runtime", str(files["rt"]),
        "--svn", "1", "--vendor-ecc-key", str(files["ecc0.pub"]), "--vendor-pqc-key", str(lms_pub),
        "--pqc-type", "lms", "--not-before", NB, "--not-after", NA, "--out", str(unsigned),
        *lms_opt,
    ]  # fmt: skip
    assert main(build) == 0
    target = lms.path if clobbered == "lms" else files["ecc0"]
    link = tmp_path / "out-link"
    link.symlink_to(target)  # through a link too
    for out in (target, link):
        before = target.read_bytes()
        sign = [
            "firmware", "sign", str(unsigned), "--ecc-key", str(files["ecc0"]),
            "--pqc-key", str(lms.path), "--out", str(out), *lms_opt,
        ]  # fmt: skip
        assert main(sign) == 2
        err = capsys.readouterr().err
        assert f"ironroot: config: --out {out} is the key file {target}" in err
        assert target.read_bytes() == before
    assert lms.remaining() == 32  # no one-time key spent


def test_lms_product_through_the_cli(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "lms.state", "SHA256-N24-H5-W4")
    lms_pub = tmp_path / "lms.cose"
    lms_pub.write_bytes(cbor2.dumps(lms.public_key.to_cose_key()))
    lms_opt = ["--lms-params", "SHA256-N24-H5-W4"]
    unsigned, bundle = tmp_path / "u", tmp_path / "lms.bin"
    build = [
        "firmware", "build", "--fmc", str(files["fmc"]), "--runtime", str(files["rt"]),
        "--svn", "1", "--vendor-ecc-key", str(files["ecc0.pub"]), "--vendor-pqc-key", str(lms_pub),
        "--pqc-type", "lms", "--not-before", NB, "--not-after", NA, "--out", str(unsigned),
    ]  # fmt: skip
    assert main(build) == 2  # H5 is not Caliptra's parameter set
    assert "unsupported-algorithm" in capsys.readouterr().err
    assert main([*build, *lms_opt]) == 0
    sign = [
        "firmware",
        "sign",
        str(unsigned),
        "--ecc-key",
        str(files["ecc0"]),
        "--pqc-key",
        str(tmp_path / "lms.state"),
        "--out",
        str(bundle),
        *lms_opt,
    ]
    assert main(sign) == 0
    assert lms.remaining() == 31
    assert (
        main(
            [
                "firmware",
                "key-descriptor",
                "--ecc",
                str(files["ecc0.pub"]),
                "--pqc",
                str(lms_pub),
                "--json",
            ]
        )
        == 0
    )
    desc = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert desc["pqc_key_type"] == "lms"
    verify = [
        "firmware",
        "verify",
        str(bundle),
        "--vendor-key-hash",
        desc["vendor_key_descriptor_hash"],
        "--at",
        AT,
    ]
    assert main([*verify, *lms_opt]) == 0
    assert main(verify) == 1
    assert "algorithm-not-accepted" in capsys.readouterr().err


def test_build_usage_errors(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "u"
    args = _build_args(files, out)
    bad_time = [a if a != NB else "2026-01-01T00:00:00" for a in args]  # no offset
    assert main(bad_time) == 2
    assert main([*args, "--component", "nonsense"]) == 2
    assert main([*args, "--component", "x=y"]) == 2
    svn = args.index("--svn")
    assert main([*args[: svn + 1], "200", *args[svn + 2 :]]) == 2
    capsys.readouterr()


@pytest.fixture
def service_url(tmp_path: Path, files: dict[str, Path]) -> Iterator[str]:
    data = tmp_path / "tsdata"
    init_data_dir(data)
    key = PrivateKey.from_pem(files["ecc0"].read_bytes())
    (data / "vendor.pub.pem").write_bytes(key.public_key.to_pem())
    config = data / "ironroot.toml"
    config.write_text(
        config.read_text()
        + '\n[[transparency.issuers]]\niss = "https://vendor.example"\nkey = "vendor.pub.pem"\n'
    )
    service = TransparencyService.open(data)
    with service, ServiceThread(service) as server:
        yield server.url


def test_publish(
    files: dict[str, Path],
    signed: Path,
    tmp_path: Path,
    service_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "release"
    code = main(
        [
            "firmware",
            "publish",
            str(signed),
            "--url",
            service_url,
            "--key",
            str(files["ecc0"]),
            "--iss",
            "https://vendor.example",
            "--sub",
            "pkg:fw/acme",
            "--out-dir",
            str(out),
            "--at",
            AT,
            "--vendor-key-hash",
            _descriptor(files, capsys),
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    manifest_ts = out / "fw.manifest.ts"
    corim_ts = out / "fw.corim.ts"
    assert doc["manifest_statement"] == str(manifest_ts)
    assert manifest_ts.exists()
    assert corim_ts.exists()
    with TransparencyClient(service_url) as client:
        keys = client.service_keys()
    ts = verify_transparent_statement(manifest_ts.read_bytes(), keys)
    assert ts.statement.payload.hex() == doc["manifest_digest"]


def _publish_args(
    files: dict[str, Path], signed: Path, url: str, out: Path, vendor_key_hash: str = ""
) -> list[str]:
    return [
        "firmware",
        "publish",
        str(signed),
        "--url",
        url,
        "--key",
        str(files["ecc0"]),
        "--iss",
        "https://vendor.example",
        "--sub",
        "pkg:fw/acme",
        "--out-dir",
        str(out),
        "--at",
        AT,
        "--vendor-key-hash",
        vendor_key_hash or "00" * 48,
    ]


def _log_size(url: str) -> int:
    with TransparencyClient(url) as client:
        return int(client.checkpoint().decode().splitlines()[1])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("out-dir-is-a-file", "is not a folder"),
        ("statement-is-a-folder", "fw.manifest.ts: is a directory, not a file"),
        ("corim-is-a-folder", "fw.corim.ts: is a directory, not a file"),
    ],
)
def test_publish_refuses_an_unwritable_output_before_registering(
    files: dict[str, Path],
    signed: Path,
    tmp_path: Path,
    service_url: str,
    capsys: pytest.CaptureFixture[str],
    where: str,
    message: str,
) -> None:
    """Before, both statements were registered (for good: a log never forgets) and only then
    did writing them fail, with nothing saved: a retry registered them again."""
    out = tmp_path / "release"
    if where == "out-dir-is-a-file":
        out.write_bytes(b"a file")
    else:
        (out / ("fw.manifest.ts" if where == "statement-is-a-folder" else "fw.corim.ts")).mkdir(
            parents=True
        )
    args = _publish_args(files, signed, service_url, out, _descriptor(files, capsys))
    before = _log_size(service_url)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ironroot: input-unavailable:" in err
    assert message in err
    assert _log_size(service_url) == before
    assert not (out / "fw.manifest.ts").is_file()


def test_publish_never_writes_a_statement_over_a_private_key(
    files: dict[str, Path],
    signed: Path,
    tmp_path: Path,
    service_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The outputs follow the command line's rules: a link named like a statement, to a key,
    is refused (``config``, exit 2) before anything is registered, and the key is kept."""
    out = tmp_path / "release"
    out.mkdir()
    (out / "fw.corim.ts").symlink_to(files["ecc0"])
    key = files["ecc0"].read_bytes()
    args = _publish_args(files, signed, service_url, out, _descriptor(files, capsys))
    before = _log_size(service_url)
    assert main(args) == 2
    assert "holds a private key" in capsys.readouterr().err
    assert files["ecc0"].read_bytes() == key
    assert _log_size(service_url) == before


def test_publish_refuses_an_expired_release(
    files: dict[str, Path],
    signed: Path,
    tmp_path: Path,
    service_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Publication verified the bundle at its own not-before: an expired release (which no
    device installs) was registered as current. ``--at`` (default: now) decides."""
    out = tmp_path / "release"
    args = _publish_args(files, signed, service_url, out, _descriptor(files, capsys))
    args[args.index("--at") + 1] = "2027-01-02T00:00:00Z"  # NA is 2027-01-01
    before = _log_size(service_url)
    assert main(args) == 1
    assert "ironroot: manifest-expired: the manifest expired at 2027-01-01T00:00:00+00:00" in (
        capsys.readouterr().err
    )
    assert _log_size(service_url) == before
    assert not (out / "fw.manifest.ts").exists()


def test_publish_refuses_a_bundle_not_signed_with_the_product_keys(
    files: dict[str, Path],
    signed: Path,
    tmp_path: Path,
    service_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--vendor-key-hash`` (the product's fused hash) is required: publication checked the
    bundle only against the keys it carries, so a bundle signed with anyone's firmware keys
    was registered under the vendor's statement key."""
    out = tmp_path / "release"
    args = _publish_args(files, signed, service_url, out, "ab" * 48)
    before = _log_size(service_url)
    assert main(args) == 1
    assert "ironroot: key-descriptor-mismatch:" in capsys.readouterr().err
    assert _log_size(service_url) == before
    assert not (out / "fw.manifest.ts").exists()
    at = args.index("--vendor-key-hash")
    with pytest.raises(SystemExit) as info:  # the option is required: a usage error
        main(args[:at] + args[at + 2 :])
    assert info.value.code == 2
    assert "--vendor-key-hash" in capsys.readouterr().err


def test_sign_refuses_a_rebuilt_bundle_whose_header_is_not_the_one_built(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between build and sign, the unsigned bundle is rebuilt with another runtime: the vendor
    public keys are public, so the TOC and its digests are consistent and the self-check
    passes. ``build`` prints the header digest (what the signatures cover) and ``sign
    --header-digest`` refuses any other header (exit 1) before a signature is made."""
    unsigned = tmp_path / "u"
    assert main(_build_args(files, unsigned)) == 0
    built = [line for line in capsys.readouterr().out.splitlines() if line.startswith("header")]
    assert built == [
        f"header digest: {FirmwareBundle.parse(unsigned.read_bytes()).header_digest().hex()}"
    ]
    digest = built[0].split()[-1]
    files["rt"].write_bytes(b"a runtime the vendor never built" * 64)
    assert main(_build_args(files, unsigned)) == 0
    capsys.readouterr()
    sign = [
        "firmware",
        "sign",
        str(unsigned),
        "--ecc-key",
        str(files["ecc1"]),
        "--pqc-key",
        str(files["pqc0"]),
        "--header-digest",
        digest,
        "--out",
        str(tmp_path / "x"),
    ]
    assert main(sign) == 1
    err = capsys.readouterr().err
    assert "ironroot: digest-mismatch: the header to sign is not the expected one" in err
    assert not (tmp_path / "x").exists()
    fresh = FirmwareBundle.parse(unsigned.read_bytes()).header_digest().hex()
    assert main([*sign[:-4], "--header-digest", fresh, *sign[-2:]]) == 0
    assert main([*sign[:-4], "--header-digest", "00", *sign[-2:]]) == 2
