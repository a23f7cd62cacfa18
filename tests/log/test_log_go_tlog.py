"""Go's transparent-log code as the judge of Ironroot's static tiles and checkpoints, both ways.

``go_tlog/tlogcheck.go`` is built here against ``golang.org/x/mod/sumdb/tlog`` and
``sumdb/note`` (Debian's ``golang-go`` and ``golang-golang-x-mod-dev``, which
``scripts/install-test-deps.sh`` installs; the module is skipped, saying so, without them).

* Ironroot → Go: a log exported by ``export_tiles`` is verified by Go alone — the checkpoint's
  note signature (``note.Open``), the tree hash from the hash tiles (``tlog.TileHashReader``),
  the tree the entry bundles give (``tlog.StoredHashes``: its root must be the checkpoint's and
  every hash tile ``tlog.NewTiles`` lists must be the one ``tlog.ReadTileData`` makes),
  inclusion proofs from the tiles (``tlog.ProveRecord``/``CheckRecord``), and a consistency
  proof from an older checkpoint (``tlog.ProveTree``/``CheckTree``). A changed tile, entry or
  signature and a forked older checkpoint are refused by Go.
* Go → Ironroot: a log whose tiles, bundles and signed checkpoint Go wrote is verified by
  ``ironroot log verify`` and ``verify_remote_log``, mirrored and grown with ``export_tiles``
  (which checks the new tree extends the exported one), and refused once a byte is changed.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from log_testkit import (
    ORIGIN,
    LogBackedFetcher,
    ed25519_key,
    entries,
    fill,
    mldsa_key,
    signer,
)

from ironroot.cli import main
from ironroot.crypto import PrivateKey
from ironroot.errors import InconsistentCheckpoint, MalformedInput, VerificationFailed
from ironroot.log import (
    DirectoryLogFetcher,
    Log,
    LogIdentity,
    NoteVerifier,
    TileTree,
    entry_bundle_path,
    export_tiles,
    parse_tile_path,
    tile_path,
    tiles_for_size,
    verify_remote_log,
)

pytestmark = pytest.mark.integration

_SOURCE = Path(__file__).parent / "go_tlog" / "tlogcheck.go"
_GOPATH = Path("/usr/share/gocode")  # Debian's Go library sources (golang-*-dev packages)
_X_MOD = _GOPATH / "src/golang.org/x/mod/sumdb/tlog"


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None or not _X_MOD.is_dir():
        pytest.skip(
            "Go and golang.org/x/mod are not installed (Debian: golang-go and "
            "golang-golang-x-mod-dev; scripts/install-test-deps.sh installs them)"
        )
    out = tmp_path_factory.mktemp("go") / "tlogcheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(_GOPATH), "GOFLAGS": ""}
    env.setdefault("GOCACHE", str(tmp_path_factory.mktemp("gocache")))
    built = subprocess.run(
        [go, "build", "-o", str(out), str(_SOURCE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return out


def _go(tool: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [str(tool), *args], capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(done.stdout) if done.returncode == 0 else {}
    return done.returncode, report, done.stderr


def _new_log(*keys: PrivateKey) -> Log:
    log = Log.open_memory(origin=ORIGIN, note_signers=[signer(k) for k in keys])
    log.start()
    return log


def _export(log: Log, out: Path) -> None:
    export_tiles(
        LogBackedFetcher(log), out, identity=LogIdentity(ORIGIN, tuple(log.note_verifiers))
    )


def _vkey(log: Log) -> str:
    return log.note_verifiers[0].vkey  # Ed25519: the signature Go's note package knows


# --- Ironroot's log, Go verifies ---------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 255, 256, 257, 700, 65_536 + 256 + 3])
def test_go_verifies_every_entry_of_an_exported_log(
    tlogcheck: Path, tmp_path: Path, size: int
) -> None:
    log = _new_log(ed25519_key())
    try:
        fill(log, entries(size))
        _export(log, tmp_path / "tiles")
        code, report, err = _go(tlogcheck, "verify", str(tmp_path / "tiles"), ORIGIN, _vkey(log))
        assert code == 0, err
        proofs = size if size <= 1024 else len(range(0, size, 97)) + ((size - 1) % 97 != 0)
        assert report == {
            "size": size,
            "root": _b64(log.root()),
            "entries_checked": size,
            "tiles_checked": len(list(tiles_for_size(size))),  # Go's list of them, and ours
            "inclusion_proofs": proofs,
        }
    finally:
        log.close()


def test_go_verifies_a_checkpoint_cosigned_with_ml_dsa(tlogcheck: Path, tmp_path: Path) -> None:
    """An ML-DSA-44 cosignature beside the Ed25519 signature: Go skips the key it does not
    know and verifies the one it does (C2SP: a public log always signs with Ed25519)."""
    log = _new_log(ed25519_key(), mldsa_key())
    try:
        fill(log, entries(300))
        _export(log, tmp_path / "tiles")
        assert (tmp_path / "tiles/checkpoint").read_bytes().count(b"\n\xe2\x80\x94 ") == 2
        code, report, err = _go(tlogcheck, "verify", str(tmp_path / "tiles"), ORIGIN, _vkey(log))
        assert (code, report.get("entries_checked")) == (0, 300), err
    finally:
        log.close()


def test_go_checks_consistency_with_an_older_checkpoint(tlogcheck: Path, tmp_path: Path) -> None:
    log = _new_log(ed25519_key())
    tiles = tmp_path / "tiles"
    try:
        old, previous = tmp_path / "old-checkpoint", 0
        for size in (3, 300, 70_000):
            fill(log, entries(size - log.tree_size, log.tree_size))
            _export(log, tiles)
            if old.exists():
                code, report, err = _go(
                    tlogcheck, "verify", str(tiles), ORIGIN, _vkey(log), str(old)
                )
                assert code == 0, err
                assert (report["size"], report["consistent_from"]) == (size, previous)
            shutil.copy(tiles / "checkpoint", old)
            previous = size
    finally:
        log.close()


def test_go_refuses_a_checkpoint_from_a_fork(tlogcheck: Path, tmp_path: Path) -> None:
    """Two logs under one key and origin that agree on 200 entries and then differ: Go finds
    the older checkpoint of one inconsistent with the tiles of the other."""
    key = ed25519_key()
    honest, fork = _new_log(key), _new_log(key)
    try:
        fill(honest, entries(300))
        fill(fork, entries(200) + entries(100, 200, tag=b"other"))
        _export(fork, tmp_path / "fork")
        _export(honest, tmp_path / "honest")
        fill(honest, entries(200, 300))
        _export(honest, tmp_path / "honest")
        old = tmp_path / "fork/checkpoint"
        code, _, err = _go(
            tlogcheck, "verify", str(tmp_path / "honest"), ORIGIN, _vkey(honest), str(old)
        )
        assert code == 1
        assert "consistency with the old checkpoint (size 300): invalid transparency proof" in err
    finally:
        honest.close()
        fork.close()


@pytest.mark.parametrize(
    ("path", "offset", "error"),
    [
        ("tile/0/000", 100, "tile/0/000: not the tile the entries give"),
        ("tile/0/001.p/44", 5, "tree hash from tiles: downloaded inconsistent tile"),
        ("tile/1/000.p/1", 0, "tree hash from tiles: downloaded inconsistent tile"),
        ("tile/entries/001.p/44", 40, "the entries do not give the checkpoint's root hash"),
        ("checkpoint", 30, "checkpoint note:"),
    ],
)
def test_go_refuses_a_changed_byte(
    tlogcheck: Path, tmp_path: Path, path: str, offset: int, error: str
) -> None:
    log = _new_log(ed25519_key())
    try:
        fill(log, entries(300))
        tiles = tmp_path / "tiles"
        _export(log, tiles)
        code, _, err = _go(tlogcheck, "verify", str(tiles), ORIGIN, _vkey(log))
        assert code == 0, err
        _flip(tiles / path, offset)
        code, _, err = _go(tlogcheck, "verify", str(tiles), ORIGIN, _vkey(log))
        assert code == 1
        assert error in err
    finally:
        log.close()


def test_go_refuses_a_checkpoint_under_another_key(tlogcheck: Path, tmp_path: Path) -> None:
    log, other = _new_log(ed25519_key()), _new_log(ed25519_key())
    try:
        fill(log, entries(10))
        _export(log, tmp_path / "tiles")
        code, _, err = _go(tlogcheck, "verify", str(tmp_path / "tiles"), ORIGIN, _vkey(other))
        assert code == 1
        assert "checkpoint note: note has no verifiable signatures" in err
    finally:
        log.close()
        other.close()


# --- Go's log, Ironroot verifies ---------------------------------------------------------------


def _go_log(
    tool: Path, directory: Path, count: int, key_file: Path, *change: str
) -> dict[str, Any]:
    code, report, err = _go(
        tool, "write", str(directory), ORIGIN, str(key_file), str(count), *change
    )
    assert code == 0, err
    return report


@pytest.mark.parametrize("size", [1, 256, 700, 65_536 + 1])
def test_ironroot_verifies_a_log_go_wrote(
    tlogcheck: Path, tmp_path: Path, size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    go_dir = tmp_path / "go"
    written = _go_log(tlogcheck, go_dir, size, tmp_path / "note.key")
    identity = LogIdentity(ORIGIN, (NoteVerifier.from_vkey(written["vkey"]),))
    report = verify_remote_log(DirectoryLogFetcher(go_dir), identity=identity)
    assert (report.size, report.entries, _b64(report.root)) == (size, size, written["root"])
    tree = TileTree(DirectoryLogFetcher(go_dir), size)
    last = min(size, 300)
    assert tree.entries(0, last) == [b"go entry %d\n" % i for i in range(last)]
    capsys.readouterr()
    assert main(["log", "verify", str(go_dir), "--origin", ORIGIN, "--key", written["vkey"]]) == 0
    assert str(size) in capsys.readouterr().out


def test_ironroot_mirrors_a_growing_go_log_and_refuses_a_changed_one(
    tlogcheck: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    go_dir, mirror, key_file = tmp_path / "go", tmp_path / "mirror", tmp_path / "note.key"
    written = _go_log(tlogcheck, go_dir, 300, key_file)
    identity = LogIdentity(ORIGIN, (NoteVerifier.from_vkey(written["vkey"]),))
    assert export_tiles(DirectoryLogFetcher(go_dir), mirror, identity=identity).size == 300
    grown = _go_log(tlogcheck, go_dir, 1_000, key_file)  # the same key, the log extended
    report = export_tiles(DirectoryLogFetcher(go_dir), mirror, identity=identity)
    assert (report.previous_size, report.size, _b64(report.root)) == (300, 1_000, grown["root"])
    # a byte of an entry changed on the way: refused
    forked = tmp_path / "forked"
    shutil.copytree(go_dir, forked)
    bundle = forked / "tile/entries/003.p/232"
    _flip(bundle, 10)
    with pytest.raises(VerificationFailed):
        verify_remote_log(DirectoryLogFetcher(forked), identity=identity)
    capsys.readouterr()
    assert main(["log", "verify", str(forked), "--origin", ORIGIN, "--key", grown["vkey"]]) == 1
    assert "verification-failed" in capsys.readouterr().err
    # Go writes another log under the same key and origin, one entry changed: a fork
    other = tmp_path / "other"
    _go_log(tlogcheck, other, 1_200, key_file, "fork", "600")
    with pytest.raises(InconsistentCheckpoint):
        export_tiles(DirectoryLogFetcher(other), mirror, identity=identity)
    assert verify_remote_log(DirectoryLogFetcher(other), identity=identity).size == 1_200


def test_ironroot_verifies_a_go_log_whose_origin_holds_a_delete(
    tlogcheck: Path, tmp_path: Path
) -> None:
    """c2sp.org/signed-note forbids the ASCII control characters below U+0020 but newline;
    DEL (U+007F) is not one of them, and Go's note package signs and opens such a note.
    Ironroot refused it (``MalformedInput``: the signed note contains a control character),
    so a conformant log or witness whose origin, key name or extension line held one could
    not be verified or mirrored."""
    origin = "log.example/\x7fdel"
    go_dir = tmp_path / "go"
    code, written, err = _go(tlogcheck, "write", str(go_dir), origin, str(tmp_path / "k"), "300")
    assert code == 0, err
    identity = LogIdentity(origin, (NoteVerifier.from_vkey(written["vkey"]),))
    report = verify_remote_log(DirectoryLogFetcher(go_dir), identity=identity)
    assert (report.origin, report.size, _b64(report.root)) == (origin, 300, written["root"])
    mirror = tmp_path / "mirror"
    assert export_tiles(DirectoryLogFetcher(go_dir), mirror, identity=identity).size == 300
    code, _, err = _go(tlogcheck, "verify", str(mirror), origin, written["vkey"])
    assert code == 0, err


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# --- tile paths, both ways ---------------------------------------------------------------------


def _go_paths(tool: Path, requests: list[str]) -> list[str]:
    done = subprocess.run(
        [str(tool), "paths"],
        input="".join(r + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


_MAX_INDEX = ((1 << 63) - 1) >> 8  # the last level-0 tile of the largest tree


def test_tile_paths_are_written_as_go_writes_them(tlogcheck: Path) -> None:
    """``tile_path`` and ``entry_bundle_path`` against ``tlog.Tile.Path``: every width, every
    number of three-digit groups, indices around 2^40 and up to the largest tree's."""
    rng = random.Random(7)
    indices = [0, 1, 999, 1_000, 1_001, 999_999, 1_000_000, 1_234_067, _MAX_INDEX]
    indices += [(1 << 40) + d for d in (-1, 0, 1)] + [10**k - 1 for k in range(1, 17)]
    indices += [rng.randrange(_MAX_INDEX) for _ in range(200)]
    cases = [(level, n, w) for n in indices for level in (0, 5) for w in (None, 1, 17)]
    cases += [(rng.randrange(64), rng.randrange(1 << 40), w) for w in range(1, 256)]
    cases += [(-1, n, w) for n in indices for w in (None, 1, 255)]  # entry bundles
    theirs = _go_paths(
        tlogcheck, [f"path {lvl} {n} {256 if w is None else w}" for lvl, n, w in cases]
    )
    ours = [entry_bundle_path(n, w) if lvl < 0 else tile_path(lvl, n, w) for lvl, n, w in cases]
    assert ours == theirs


# Paths C2SP allows and Go reads (with its own limits), or that neither reads.
_PATHS = [
    "tile/0/000",
    "tile/0/999",
    "tile/63/000",
    "tile/0/x001/000",
    "tile/0/x001/x234/067",
    "tile/0/x036/x028/x797/x018/x963/967",  # 2^55 - 1
    "tile/0/000.p/1",
    "tile/0/000.p/255",
    "tile/entries/000",
    "tile/entries/x999/999.p/128",
    "tile/0/1",
    "tile/0/0000",
    "tile/00/000",
    "tile/01/000",
    "tile/-1/000",
    "tile/+1/000",
    "tile/0/+01",
    "tile/0/-01",
    "tile/0/ 01",
    "tile/0/x000/001",
    "tile/0/001/x002",
    "tile/0/x1/000",
    "tile/0/X001/000",
    "tile/0/x001/234/067",
    "tile/0/000.p/0",
    "tile/0/000.p/256",
    "tile/0/000.p/01",
    "tile/0/000.p/+1",
    "tile/0/000.p",
    "tile/0/000.p/",
    "tile/0/000.p/5/6",
    "tile/0/000/",
    "tile/0/000.P/5",
    "tile/data/000",
    "tile/entries/000.p/256",
    "tile/entries/x000/000",
    "tile/0/00a",
    "tile/0/０００",  # fullwidth digits
]
# What C2SP forbids that Go's sumdb paths allow: a level above 63, and indices no tree of at
# most 2^63 - 1 leaves has.
_GO_ONLY = [
    "tile/64/000",
    "tile/0/x036/x028/x797/x018/x963/968",
    "tile/0/x999/x999/x999/x999/x999/999",
]


def test_tile_paths_are_read_as_go_reads_them(tlogcheck: Path) -> None:
    theirs = _go_paths(tlogcheck, [f"parse {p}" for p in _PATHS + _GO_ONLY])
    ours = []
    for path in _PATHS + _GO_ONLY:
        try:
            address = parse_tile_path(path)
        except MalformedInput:
            ours.append("bad")
            continue
        level = -1 if address.entries else address.level
        ours.append(f"{level} {address.index} {address.count}")
    assert ours[: len(_PATHS)] == theirs[: len(_PATHS)]
    assert "bad" not in theirs[: len(_PATHS)][:10]  # the canonical ones are read by both
    assert ours[len(_PATHS) :] == ["bad"] * len(_GO_ONLY)
    assert "bad" not in theirs[len(_PATHS) :]
