"""Real processes on one HSM directory. KILL -9 of a process that rotates its audit log every
few records: power-up finishes what the kill cut short, no record made durable is lost or
changed, and the whole chain (every segment and the live log, every MAC, the sealed head)
verifies after each kill. Two processes opening the directory at once: one serves it, the
other is refused. ``hsm audit verify`` while a process rotates: it verifies every time."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _hsm_helpers import FAST, OFFICER, OFFICER_PASS, SECRET, USER, USER_PASS, make_device

from ironroot.hsm import (
    DirectoryStorage,
    Hsm,
    Role,
    check_sealed_audit,
    parse_audit_log,
    verify_audit_segments,
)
from rot_counters import provisioned_device

SCRIPT = Path(__file__).with_name("hsm_rotation_writer.py")
RUNS = 6
SEGMENT = 3  # a rotation every four records: most kills land in or near one


def _durable(out: Path) -> list[tuple[int, str]]:
    text = out.read_text()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [(int(n), head) for _d, n, head in (line.split() for line in complete.splitlines())]


def _writer(hsm_dir: Path, rot: Path, out: Path, segment: int = SEGMENT) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with out.open("w") as stdout, out.with_suffix(".err").open("w") as stderr:
        return subprocess.Popen(
            [sys.executable, str(SCRIPT), str(hsm_dir), str(rot), str(segment)],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )


def _wait_durable(proc: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + 60
    while not _durable(out):
        assert proc.poll() is None, out.with_suffix(".err").read_text()
        assert time.monotonic() < deadline, "the writer never made a record durable"
        time.sleep(0.02)


def _new_hsm(tmp_path: Path) -> tuple[Path, Path]:
    rot, hsm_dir = tmp_path / "rot", tmp_path / "hsm"
    provisioned_device(rot)
    with DirectoryStorage.on_device(hsm_dir, rot) as storage:
        device = make_device().identity
        hsm = Hsm.initialize(
            storage, SECRET, officer=OFFICER, credential=OFFICER_PASS, device=device, config=FAST
        )
        hsm.add_identity(hsm.login(OFFICER, OFFICER_PASS), USER, Role.USER, USER_PASS)
        hsm.close()
    return hsm_dir, rot


def _run_until_killed(hsm_dir: Path, rot: Path, out: Path, delay: float) -> list[tuple[int, str]]:
    proc = _writer(hsm_dir, rot, out)
    try:
        _wait_durable(proc, out)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    return _durable(out)


@pytest.mark.integration
def test_kill_9_mid_rotation_loses_no_durable_record(tmp_path: Path) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    hsm_dir, rot = _new_hsm(tmp_path)
    for run in range(RUNS):
        durable = _run_until_killed(hsm_dir, rot, tmp_path / f"run-{run}.out", rng.random() / 3)
        with DirectoryStorage.on_device(hsm_dir, rot) as storage:
            Hsm.open(storage, SECRET, config=FAST).close()  # finishes a rotation cut short
            names = storage.audit_segments()
            span = verify_audit_segments(names, storage.read_audit_segment, storage.read_audit())
            check_sealed_audit(
                audit=storage.read_audit(),
                store=storage.read_store(),
                anchor=storage.read_anchor(),
                sealing_secret=SECRET,
                counter=storage.counter.value(),
                rot_counter="hsm",
                segments=list(names),
                read_segment=storage.read_audit_segment,
            )
            chain = {
                r.seq: r.digest().hex()
                for data in [*map(storage.read_audit_segment, names), storage.read_audit()]
                for r in parse_audit_log(data)
            }
        assert (span.first, span.records) == (0, len(chain)), f"seed {seed}, run {run}"
        for size, head in durable:  # every record the writer saw durable, unchanged
            assert chain[size - 1] == head, f"seed {seed}, run {run}: record {size - 1}"
        assert len(names) >= run + 1  # it did rotate, and on


@pytest.mark.integration
def test_two_processes_opening_one_hsm_directory_at_once(tmp_path: Path) -> None:
    hsm_dir, rot = _new_hsm(tmp_path)
    outs = [tmp_path / "a.out", tmp_path / "b.out"]
    procs = [_writer(hsm_dir, rot, out) for out in outs]
    try:
        deadline = time.monotonic() + 60
        while not any(map(_durable, outs)) or all(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "neither writer served, or both did"
            time.sleep(0.02)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    refused = [out for proc, out in zip(procs, outs, strict=True) if proc.returncode == 1]
    assert len(refused) == 1  # the other served until killed
    assert not _durable(refused[0])
    assert "is in use by another process" in refused[0].with_suffix(".err").read_text()
    with DirectoryStorage.on_device(hsm_dir, rot) as storage:
        Hsm.open(storage, SECRET, config=FAST).close()
        names = storage.audit_segments()
        verify_audit_segments(names, storage.read_audit_segment, storage.read_audit())


@pytest.mark.integration
def test_audit_verify_while_a_process_rotates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import _main

    hsm_dir, rot = _new_hsm(tmp_path)
    secret = tmp_path / "sealing.secret"
    secret.write_bytes(SECRET)
    out = tmp_path / "writer.out"
    proc = _writer(hsm_dir, rot, out)
    try:
        _wait_durable(proc, out)
        for _ in range(8):
            capsys.readouterr()
            code = _main.main(["hsm", "audit", "verify", "--dir", str(hsm_dir), "--rot-device",
                               str(rot), "--sealing-secret-file", str(secret)])  # fmt: skip
            assert code == 0, capsys.readouterr().err
            assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert len(list(hsm_dir.glob("audit-*.jsonl"))) > 1
