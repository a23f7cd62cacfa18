"""``kill -9`` while ``ironroot firmware sign`` spends an LMS one-time key: at every file
operation that can change state, the signing process dies; then it signs again. Every bundle
that came out holds a leaf no other bundle holds, the state file always loads, and no copy of
it (a killed write's temp file) outlives the next signature."""

from __future__ import annotations

from pathlib import Path

import cbor2
from _fw_helpers import FMC, RUNTIME

from ironroot.cli import main
from ironroot.crypto import Algorithm, LmsPrivateKey, PrivateKey
from ironroot.firmware import field_offsets
from kill_points import KillServer

LMS = ["--lms-params", "SHA256-N24-H5-W4"]
# What the signing and key generation commands import, once for a sweep (kill_points.KillServer).
PRELOAD = ("ironroot.cli", "ironroot.cli.firmware", "ironroot.cli.keys", "ironroot.firmware")


def _leaf(bundle: bytes) -> int:
    offset, _ = field_offsets(2)["preamble.vendor_pqc_signature"]
    return int.from_bytes(bundle[offset : offset + 4], "big")  # LMS q, first in the slot


def test_a_killed_signer_never_signs_two_bundles_with_one_leaf(tmp_path: Path) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "lms.state", "SHA256-N24-H5-W4")
    (tmp_path / "lms.cose").write_bytes(cbor2.dumps(lms.public_key.to_cose_key()))
    ecc = PrivateKey.generate(Algorithm.ES384)
    (tmp_path / "ecc.key").write_bytes(ecc.to_pem())
    (tmp_path / "ecc.pub").write_bytes(ecc.public_key.to_pem())
    (tmp_path / "fmc").write_bytes(FMC)
    (tmp_path / "rt").write_bytes(RUNTIME)
    unsigned = tmp_path / "unsigned"
    build = [
        "firmware", "build", "--fmc", str(tmp_path / "fmc"), "--runtime", str(tmp_path / "rt"),
        "--svn", "1", "--vendor-ecc-key", str(tmp_path / "ecc.pub"),
        "--vendor-pqc-key", str(tmp_path / "lms.cose"), "--pqc-type", "lms",
        "--not-before", "2026-01-01T00:00:00Z", "--not-after", "2027-01-01T00:00:00Z",
        "--out", str(unsigned), *LMS,
    ]  # fmt: skip
    assert main(build) == 0
    with KillServer(tmp_path, PRELOAD) as killer:

        def sign(out: Path, **env: str) -> None:
            argv = [
                "firmware", "sign", str(unsigned), "--ecc-key", str(tmp_path / "ecc.key"),
                "--pqc-key", str(lms.path), "--out", str(out), *LMS,
            ]  # fmt: skip
            killer.run(argv, **env)

        tally = tmp_path / "tally"
        sign(tmp_path / "first.bin", IRONROOT_TEST_KILL_TALLY=str(tally))
        operations = int(tally.read_text())
        assert operations >= 3  # the state's temp file, its rename, the bundle's temp file, ...
        bundles = [tmp_path / "first.bin"]
        for point in range(1, operations + 1):
            cut, after = tmp_path / f"cut{point}.bin", tmp_path / f"after{point}.bin"
            sign(cut, IRONROOT_TEST_KILL_AT=str(point))
            LmsPrivateKey.load(lms.path)  # never torn
            sign(after)
            bundles += [cut, after]
            # A signer killed inside its state write left a temp file: a whole copy of the key
            # (seed and leaf index). The next signature removes it rather than leave a clone.
            assert sorted(p.name for p in tmp_path.glob(".lms.state.*")) == []
        leaves = [_leaf(b.read_bytes()) for b in bundles if b.exists()]
        assert len(leaves) == len(set(leaves)), leaves
        assert len(leaves) >= operations + 1
        assert lms.remaining() <= 32 - len(leaves)


def test_a_key_whose_generation_was_killed_signs_once_it_exists(tmp_path: Path) -> None:
    """``ironroot key generate --alg HSS-LMS`` killed at each of its file operations: where
    the state file came to exist, it signs (a kill between linking it into place and removing
    the temp name left a second name of the key beside it, which the signer removes: it is
    the state file's own leftover, not a copy someone made)."""
    with KillServer(tmp_path, PRELOAD) as killer:

        def generate(prefix: Path, **env: str) -> None:
            argv = ["key", "generate", "--alg", "HSS-LMS", "--out", str(prefix), *LMS]
            killer.run(argv, **env)

        tally = tmp_path / "tally"
        generate(tmp_path / "whole", IRONROOT_TEST_KILL_TALLY=str(tally))
        operations = int(tally.read_text())
        assert operations >= 3
        for point in range(1, operations + 1):
            folder = tmp_path / f"cut{point}"
            folder.mkdir()
            generate(folder / "vendor", IRONROOT_TEST_KILL_AT=str(point))
            state = folder / "vendor.key"
            if state.exists():
                signature = LmsPrivateKey.load(state).sign(b"first release")
                assert int.from_bytes(signature[4:8], "big") == 0
                assert sorted(p.name for p in folder.glob(".vendor.key.*")) == []
