"""``kill -9`` while a counter-bound LMS key signs: at every file operation that can change
state (the state file's write, the root of trust's counter commit, the signature's file), the
signer dies; then it signs again. The key always opens (a state one ahead of the counter, a
signer killed between its state write and its increment, is rolled forward: a leaf lost, never
reused), and no two signatures that came out share a leaf."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironroot.crypto import LmsPrivateKey
from kill_points import KillServer
from rot_counters import provisioned_device
from scratch import in_memory

H5 = "SHA256-N24-H5-W4"
# ``ironroot.crypto`` and ``ironroot.rot`` are lazy packages (``ironroot._lazy``): the modules
# the script uses are named, or each run would import them (and pyhsslms) again.
PRELOAD = ("ironroot.crypto._lms", "ironroot.rot._device", "ironroot._fileio")

_SIGN = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from ironroot._fileio import write_atomic
    from ironroot.crypto import LmsPrivateKey
    from ironroot.rot import Device

    state, rot, name, out = sys.argv[1:5]
    key = LmsPrivateKey.load(state, counter=Device(Path(rot)).counter(name))
    write_atomic(Path(out), key.sign(Path(out).name.encode()))
    """
)


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("lms-rollback-kill-") as directory:
        yield directory


def _leaf(signature: bytes) -> int:
    return int.from_bytes(signature[4:8], "big")


def test_a_killed_bound_signer_never_reuses_a_leaf_and_never_bricks_the_key(
    tmp_path: Path,
) -> None:
    rot = provisioned_device(tmp_path / "rot")
    script = tmp_path / "sign.py"
    script.write_text(_SIGN)
    with KillServer(tmp_path, PRELOAD) as killer:

        def sweep(points: range) -> None:
            """One fresh H5 key (32 leaves) and counter of its own for a run of kill points."""
            name = f"lms-{points.start}"
            key = LmsPrivateKey.generate(tmp_path / f"{name}.state", H5, counter=rot.counter(name))

            def sign(out: Path, **env: str) -> int:
                argv = [str(key.path), str(tmp_path / "rot"), name, str(out)]
                return killer.run(argv, IRONROOT_TEST_KILL_SCRIPT=str(script), **env).returncode

            outputs = []
            for point in points:
                cut, after = tmp_path / f"cut{point}.sig", tmp_path / f"after{point}.sig"
                assert sign(cut, IRONROOT_TEST_KILL_AT=str(point)) == -9, point
                assert sign(after) == 0, point  # the key opens and signs after every kill
                outputs += [cut, after]
            signatures = {p.name: p.read_bytes() for p in outputs if p.exists()}
            for file, signature in signatures.items():
                key.public_key.verify(signature, file.encode())
            leaves = [_leaf(s) for s in signatures.values()]
            assert len(leaves) == len(set(leaves)), leaves
            assert len(leaves) >= len(points)
            assert rot.counter(name).value() >= len(leaves) + 1

        tally = tmp_path / "tally"
        first = LmsPrivateKey.generate(tmp_path / "tally.state", H5, counter=rot.counter("t"))
        argv = [str(first.path), str(tmp_path / "rot"), "t", str(tmp_path / "first.sig")]
        env = {"IRONROOT_TEST_KILL_SCRIPT": str(script), "IRONROOT_TEST_KILL_TALLY": str(tally)}
        assert killer.run(argv, **env).returncode == 0
        # The last operation the tally counts is its own write (at exit, under the hook).
        operations = int(tally.read_text()) - 1
        assert operations >= 8  # device lock, state write and rename, counter commit, output
        for start in range(1, operations + 1, 10):  # 10 points: at most 20 of 32 leaves
            sweep(range(start, min(start + 10, operations + 1)))
