"""KILL -9 of a real process that rotates its audit log every few records: power-up finishes
what the kill cut short, no record made durable is lost or changed, and the whole chain (every
segment and the live log, every MAC, the sealed head) verifies after each kill."""

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


def _run_until_killed(hsm_dir: Path, rot: Path, out: Path, delay: float) -> list[tuple[int, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with out.open("w") as stdout, out.with_suffix(".err").open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), str(hsm_dir), str(rot), str(SEGMENT)],
            stdout=stdout,
            stderr=stderr,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while not _durable(out):
                assert proc.poll() is None, out.with_suffix(".err").read_text()
                assert time.monotonic() < deadline, "the writer never made a record durable"
                time.sleep(0.02)
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
    rot, hsm_dir = tmp_path / "rot", tmp_path / "hsm"
    provisioned_device(rot)
    with DirectoryStorage.on_device(hsm_dir, rot) as storage:
        device = make_device().identity
        hsm = Hsm.initialize(
            storage, SECRET, officer=OFFICER, credential=OFFICER_PASS, device=device, config=FAST
        )
        hsm.add_identity(hsm.login(OFFICER, OFFICER_PASS), USER, Role.USER, USER_PASS)
        hsm.close()
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
