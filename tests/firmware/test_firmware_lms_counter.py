"""``ironroot key generate --alg HSS-LMS --rot-device DIR --counter NAME`` binds the LMS state to
a root-of-trust counter, and ``firmware sign --rot-device DIR --pqc-counter NAME`` signs with
it: a state file restored from an older copy is refused (``state-reuse``, exit 1) before any
one-time key is spent, instead of signing a second bundle with a leaf already used."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _fw_helpers import FMC, RUNTIME

from ironroot.cli import main
from ironroot.firmware import field_offsets
from rot_counters import provisioned_device

LMS = ["--lms-params", "SHA256-N24-H5-W4"]


def _leaf(bundle: bytes) -> int:
    offset, _ = field_offsets(2)["preamble.vendor_pqc_signature"]
    return int.from_bytes(bundle[offset : offset + 4], "big")


def test_a_restored_lms_state_does_not_sign_a_second_bundle_with_a_used_leaf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rot = provisioned_device(tmp_path / "rot")
    bind = ["--rot-device", str(tmp_path / "rot")]
    gen = ["key", "generate", "--alg", "HSS-LMS", "--out", str(tmp_path / "lms"), *LMS]
    assert main([*gen, *bind, "--counter", "lms-vendor"]) == 0
    assert main(["key", "generate", "--alg", "ES384", "--out", str(tmp_path / "ecc")]) == 0
    (tmp_path / "fmc").write_bytes(FMC)
    (tmp_path / "rt").write_bytes(RUNTIME)
    unsigned = tmp_path / "unsigned"
    build = [
        "firmware", "build", "--fmc", str(tmp_path / "fmc"), "--runtime", str(tmp_path / "rt"),
        "--svn", "1", "--vendor-ecc-key", str(tmp_path / "ecc.pub.pem"),
        "--vendor-pqc-key", str(tmp_path / "lms.cose"), "--pqc-type", "lms",
        "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2027-01-01T00:00:00Z",
        "--out", str(unsigned), *LMS,
    ]  # fmt: skip
    assert main(build) == 0
    state = tmp_path / "lms.key"

    def sign(out: str, *extra: str) -> int:
        argv = [
            "firmware", "sign", str(unsigned), "--ecc-key", str(tmp_path / "ecc.key"),
            "--pqc-key", str(state), "--out", str(tmp_path / out), *LMS, *extra,
        ]  # fmt: skip
        return main(argv)

    assert sign("first.bin", *bind, "--pqc-counter", "lms-vendor") == 0
    shutil.copy2(state, tmp_path / "backup")
    assert sign("second.bin", *bind, "--pqc-counter", "lms-vendor") == 0
    leaves = [_leaf((tmp_path / f"{n}.bin").read_bytes()) for n in ("first", "second")]
    assert leaves == [0, 1]
    shutil.copy2(tmp_path / "backup", state)
    capsys.readouterr()
    assert sign("third.bin", *bind, "--pqc-counter", "lms-vendor") == 1
    err = capsys.readouterr().err
    assert "state-reuse" in err
    assert "is an older copy" in err
    assert "written at counter 2, the counter is at 3 (root-of-trust counter 'lms-vendor')" in err
    assert not (tmp_path / "third.bin").exists()
    # Without its counter the bound state does not sign either.
    assert sign("fourth.bin") == 1
    assert "bound to the root-of-trust counter 'lms-vendor'" in capsys.readouterr().err
    assert rot.counter("lms-vendor").value() == 3  # generation and two signatures


def test_counter_options_without_a_device_or_an_lms_key_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gen = ["key", "generate", "--alg", "HSS-LMS", "--out", str(tmp_path / "lms"), *LMS]
    assert main([*gen, "--counter", "lms"]) == 2
    assert "--counter names a counter of the root of trust" in capsys.readouterr().err
    provisioned_device(tmp_path / "rot")
    ecc = ["key", "generate", "--alg", "ES384", "--out", str(tmp_path / "ecc")]
    assert main([*ecc, "--rot-device", str(tmp_path / "rot"), "--counter", "x"]) == 2
    assert "--counter binds HSS-LMS state files only" in capsys.readouterr().err
    assert not list(tmp_path.glob("lms*"))
    assert not list(tmp_path.glob("ecc*"))
