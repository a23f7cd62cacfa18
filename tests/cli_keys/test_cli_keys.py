"""``ironroot key generate`` and ``ironroot key show``, run in-process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cbor2
import pytest

from ironroot.cli import main
from ironroot.crypto import (
    Algorithm,
    LmsPrivateKey,
    LmsPublicKey,
    PrivateKey,
    PublicKey,
    load_signer,
    load_verifier,
    save_signer,
)
from ironroot.rot import Device
from rot_counters import provisioned_device


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "ML-DSA-87"])
def test_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str], alg: str) -> None:
    prefix = tmp_path / "vendor"
    code, out, _ = _run(capsys, "key", "generate", "--alg", alg, "--out", str(prefix))
    assert code == 0
    kid = bytes.fromhex(out.strip())
    signer = load_signer(tmp_path / "vendor.key")
    assert signer.algorithm is Algorithm.from_label(alg)
    assert signer.kid == kid
    assert stat.S_IMODE(os.stat(tmp_path / "vendor.key").st_mode) == 0o600
    assert load_verifier(tmp_path / "vendor.pub.pem").kid == kid
    cose = cbor2.loads((tmp_path / "vendor.cose").read_bytes())
    assert cose[2] == kid
    assert cose[3] == Algorithm.from_label(alg).cose_id
    assert PublicKey.from_cose_key(cose).kid == kid


def test_generate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "svc"
    code, out, _ = _run(
        capsys, "key", "generate", "--alg", "ML-DSA-44", "--out", str(prefix), "--json"
    )
    assert code == 0
    report = json.loads(out)
    assert report["alg"] == "ML-DSA-44"
    assert report["files"] == {
        "private": str(tmp_path / "svc.key"),
        "public_pem": str(tmp_path / "svc.pub.pem"),
        "cose_key": str(tmp_path / "svc.cose"),
    }
    assert load_signer(report["files"]["private"]).kid.hex() == report["kid"]


def test_generate_lms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = tmp_path / "fw"
    code, out, _ = _run(
        capsys,
        "key",
        "generate",
        "--alg",
        "HSS-LMS",
        "--lms-params",
        "SHA256-N24-H5-W4",
        "--out",
        str(prefix),
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert set(report["files"]) == {"private", "cose_key"}
    assert not (tmp_path / "fw.pub.pem").exists()
    signer = load_signer(tmp_path / "fw.key")
    assert isinstance(signer, LmsPrivateKey)
    verifier = load_verifier(tmp_path / "fw.cose")
    assert isinstance(verifier, LmsPublicKey)
    assert verifier.kid.hex() == report["kid"]
    verifier.verify(signer.sign(b"image"), b"image")


def test_generate_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = str(tmp_path / "k")
    assert _run(capsys, "key", "generate", "--alg", "ES256", "--out", prefix)[0] == 0
    before = (tmp_path / "k.key").read_bytes()
    code, _, err = _run(capsys, "key", "generate", "--alg", "ES256", "--out", prefix)
    assert code == 1
    assert "conflict" in err
    assert (tmp_path / "k.key").read_bytes() == before


@pytest.mark.parametrize("link_to", ["elsewhere", "/no/such/folder/x"])
def test_generate_writes_nothing_when_one_of_its_files_cannot_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link_to: str
) -> None:
    """A dangling link where PREFIX.cose goes is a conflict found before PREFIX.key is
    written: no private key without its public files (a second run would refuse it)."""
    (tmp_path / "vendor.cose").symlink_to(link_to)
    code, _, err = _run(
        capsys, "key", "generate", "--alg", "ES256", "--out", str(tmp_path / "vendor")
    )
    assert code == 1
    assert err == f"ironroot: conflict: {tmp_path / 'vendor.cose'} already exists\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vendor.cose"]


def test_generate_into_a_missing_folder_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = tmp_path / "missing" / "vendor"
    code, _, err = _run(capsys, "key", "generate", "--alg", "ES256", "--out", str(prefix))
    assert code == 2
    assert err == (
        f"ironroot: input-unavailable: {prefix}.key: the folder {tmp_path / 'missing'} "
        "does not exist\n"
    )


def test_generate_unknown_algorithm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "key", "generate", "--alg", "RS256", "--out", str(tmp_path / "k"))
    assert code == 2
    assert "unsupported-algorithm" in err
    assert list(tmp_path.iterdir()) == []


def test_generate_unknown_lms_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = _run(
        capsys,
        "key",
        "generate",
        "--alg",
        "HSS-LMS",
        "--lms-params",
        "SHA256-N24-H25-W4",
        "--out",
        str(tmp_path / "k"),
    )
    assert code == 2
    assert list(tmp_path.iterdir()) == []


def test_generate_needs_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["key", "generate", "--alg", "ES256"])
    assert info.value.code == 2


def test_show_private_and_public_forms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    save_signer(key, tmp_path / "k.key")
    (tmp_path / "k.pem").write_bytes(key.public_key.to_pem())
    (tmp_path / "k.cose").write_bytes(cbor2.dumps(key.public_key.to_cose_key()))
    (tmp_path / "k.jwk").write_text(json.dumps(key.public_key.to_jwk()))
    expected_cose = cbor2.dumps(key.public_key.to_cose_key(), canonical=True).hex()
    for name, kind in (("k.key", "private"), ("k.pem", "public"), ("k.cose", "public")):
        code, out, _ = _run(capsys, "key", "show", str(tmp_path / name), "--json")
        assert code == 0
        report = json.loads(out)
        assert report["kind"] == kind
        assert report["alg"] == "ES384"
        assert report["kid"] == key.kid.hex()
        assert report["cose_key"] == expected_cose
        assert report["jwk"] == key.public_key.to_jwk()
    code, out, _ = _run(capsys, "key", "show", str(tmp_path / "k.jwk"))
    assert code == 0
    assert f"kid: {key.kid.hex()}" in out
    assert "alg: ES384" in out


def test_show_never_prints_private_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_65)
    save_signer(key, tmp_path / "k.key")
    for extra in ([], ["--json"]):
        code, out, _ = _run(capsys, "key", "show", str(tmp_path / "k.key"), *extra)
        assert code == 0
        assert key.to_jwk()["priv"] not in out
        assert '"priv"' not in out


def test_show_lms_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "fw.key", "SHA256-N24-H5-W4")
    lms.sign(b"one")
    code, out, _ = _run(capsys, "key", "show", str(tmp_path / "fw.key"), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["alg"] == "HSS-LMS"
    assert report["kid"] == lms.kid.hex()
    assert report["remaining_signatures"] == 31
    assert report["lms_parameter_set"] == "SHA256-N24-H5-W4"
    assert report["jwk"] is None
    assert cbor2.loads(bytes.fromhex(report["cose_key"])) == lms.public_key.to_cose_key()
    assert lms.remaining() == 31  # showing a key never uses it


@pytest.mark.parametrize("content", [b"", b"not a key", b"\xa1\x01\x02", b"{}"])
def test_show_malformed(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    code, _, err = _run(capsys, "key", "show", str(path))
    assert code == 2
    assert err.startswith("ironroot: ")


def test_show_encrypted_private_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_signer(PrivateKey.generate(Algorithm.ES256), tmp_path / "k", password=b"pw")
    code, _, err = _run(capsys, "key", "show", str(tmp_path / "k"))
    assert code == 2
    assert "encrypted" in err


def test_show_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = _run(capsys, "key", "show", str(tmp_path / "absent"))
    assert code == 2  # missing input


_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
from ironroot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_generate_that_fails_part_way_leaves_no_file_half_written(tmp_path: Path) -> None:
    """An ML-DSA-87 private key (a seed: 128 bytes of PEM) fits under the limit, its public
    PEM (3.6 kB) does not: the write fails part way, and what is left is no truncated public
    key (which a second run would refuse to replace), but nothing at all."""
    import subprocess
    import sys

    prefix = tmp_path / "k"
    argv = ["key", "generate", "--alg", "ML-DSA-87", "--out", str(prefix)]
    run = subprocess.run(
        [sys.executable, "-c", _UNDER_A_FILE_SIZE_LIMIT, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("ironroot: input-unavailable: "), run.stderr
    assert "file too large" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _bound_lms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Device, Path, bytes]:
    """An LMS key bound to the counter ``lms-fw`` of a root of trust, then one signature: the
    state is written at 2, the counter reads 2. Returns the device, the state file and a copy
    of the state as generated (written at 1)."""
    rot = provisioned_device(tmp_path / "rot")
    argv = ["key", "generate", "--alg", "HSS-LMS", "--lms-params", "SHA256-N24-H5-W4"]
    argv += ["--out", str(tmp_path / "fw"), "--rot-device", str(tmp_path / "rot")]
    assert _run(capsys, *argv, "--counter", "lms-fw")[0] == 0
    state = tmp_path / "fw.key"
    first = state.read_bytes()
    LmsPrivateKey.load(state, counter=rot.counter("lms-fw")).sign(b"image")
    assert rot.counter("lms-fw").value() == 2
    return rot, state, first


def test_show_an_lms_keys_counter_binding_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: ``key show`` said nothing of the root-of-trust counter a state is bound to, so an
    operator could not tell a bound key from an unbound one (whose copies nothing detects),
    nor which counter to give ``firmware sign``, nor whether a state file is the latest. Now
    it shows the counter's name and the value the state was written with, and, with
    ``--rot-device``, the counter's value and what the two say (nothing is incremented)."""
    rot, state, first = _bound_lms(tmp_path, capsys)
    device = ["--rot-device", str(tmp_path / "rot")]
    code, out, _ = _run(capsys, "key", "show", str(state), "--json")
    assert code == 0
    assert json.loads(out)["rot_counter"] == {
        "name": "lms-fw",
        "state_value": 2,
        "device": None,
        "current_value": None,
        "status": "unchecked",
    }
    code, out, _ = _run(capsys, "key", "show", str(state), "--json", *device)
    assert code == 0
    assert json.loads(out)["rot_counter"] == {
        "name": "lms-fw",
        "state_value": 2,
        "device": str(tmp_path / "rot"),
        "current_value": 2,
        "status": "latest",
    }
    state.write_bytes(first)  # an older copy put back
    code, out, _ = _run(capsys, "key", "show", str(state), "--json", *device)
    assert code == 0
    report = json.loads(out)["rot_counter"]
    assert (report["state_value"], report["current_value"]) == (1, 2)
    assert report["status"] == "older-copy"
    assert rot.counter("lms-fw").value() == 2  # showing never moves the counter
    LmsPrivateKey.generate(tmp_path / "free.key", "SHA256-N24-H5-W4")
    code, out, _ = _run(capsys, "key", "show", str(tmp_path / "free.key"), "--json")
    assert code == 0
    assert json.loads(out)["rot_counter"] is None  # an LMS key bound to nothing


def test_show_an_lms_keys_counter_binding_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _rot, state, first = _bound_lms(tmp_path, capsys)
    device = ["--rot-device", str(tmp_path / "rot")]
    code, out, _ = _run(capsys, "key", "show", str(state))
    assert code == 0
    assert (
        "rot_counter: lms-fw (the state was written at 2; give --rot-device DIR to compare it "
        "with the counter)\n"
    ) in out
    code, out, _ = _run(capsys, "key", "show", str(state), *device)
    assert code == 0
    assert (
        f"rot_counter: lms-fw on {tmp_path / 'rot'} (the state was written at 2, the counter "
        "is at 2: the latest state)\n"
    ) in out
    state.write_bytes(first)
    code, out, _ = _run(capsys, "key", "show", str(state), *device)
    assert code == 0
    assert (
        f"rot_counter: lms-fw on {tmp_path / 'rot'} (the state was written at 1, the counter "
        "is at 2: an older copy, refused for signing)\n"
    ) in out
    LmsPrivateKey.generate(tmp_path / "free.key", "SHA256-N24-H5-W4")
    code, out, _ = _run(capsys, "key", "show", str(tmp_path / "free.key"))
    assert code == 0
    assert "rot_counter: none (not bound: copies of the state are not detected)\n" in out


def test_show_with_a_rot_device_is_for_lms_state_files_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    provisioned_device(tmp_path / "rot")
    save_signer(PrivateKey.generate(Algorithm.ES256), tmp_path / "k.key")
    code, out, err = _run(
        capsys, "key", "show", str(tmp_path / "k.key"), "--rot-device", str(tmp_path / "rot")
    )
    assert code == 2
    assert out == ""
    assert "--rot-device shows the counter of an LMS state file only" in err
    code, out, _ = _run(capsys, "key", "show", str(tmp_path / "k.key"), "--json")
    assert code == 0
    assert "rot_counter" not in json.loads(out)  # a key no counter binds


_KILLED_BEFORE_THE_COSE_KEY = """
import os, signal, sys
from ironroot.cli import keys, main
written = keys._write_new
def write_new(path, data):
    if path.name.endswith(".cose"):
        os.kill(os.getpid(), signal.SIGKILL)  # the power cut: after PREFIX.key, PREFIX.pub.pem
    written(path, data)
keys._write_new = write_new
sys.exit(main(sys.argv[1:]))
"""


def test_a_generate_killed_part_way_is_refused_by_the_next_run_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kill -9`` between ``PREFIX.key`` and ``PREFIX.cose`` (the cleanup never runs): the
    next run never takes the private key left behind for a new one, nor adds a ``.cose`` to
    it; it is a ``Conflict`` (exit 1) that names the file there and the one missing."""
    import subprocess
    import sys

    prefix = tmp_path / "k"
    argv = ["key", "generate", "--alg", "ES256", "--out", str(prefix)]
    run = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_THE_COSE_KEY, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == -9, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.pub.pem"]
    left = (tmp_path / "k.key").read_bytes()
    code, out, err = _run(capsys, "key", "generate", "--alg", "ES256", "--out", str(prefix))
    assert (code, out) == (1, "")
    assert err == (
        f"ironroot: conflict: {tmp_path / 'k.key'} already exists, without "
        f"{tmp_path / 'k.cose'}: the files of a key generate cut short; remove "
        f"{tmp_path / 'k.key'} and {tmp_path / 'k.pub.pem'} to generate again\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.key", "k.pub.pem"]
    assert (tmp_path / "k.key").read_bytes() == left
