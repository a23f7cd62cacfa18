"""A real ``kill -9`` of ``ironroot monitor once`` at every state-changing file operation of
a round that advances (the high-water file's lock, its temporary file, its replacement), and
just after the high-water file is replaced. The state is SQLite (a commit is whole or not at
all) and is committed before the high-water file is written, so after every kill the next
round succeeds: a kill never reads as a rollback, and never loses what was verified."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from witness_testkit import service_dir, statement

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.transparency import ServiceThread, TransparencyService
from kill_points import KillServer
from scratch import in_memory


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("monitor-kill-") as directory:
        yield directory


# What ``monitor once`` imports, once for the sweep's runs (kill_points.KillServer).
# ``ironroot.monitor`` is a lazy package (``ironroot._lazy``) and httpx imports its transport
# (httpcore, h11, certifi) when a client is made: their modules are named, or each run would
# import them again.
_PRELOAD = (
    "ironroot.cli",
    "ironroot.cli.monitor",
    "ironroot.monitor._monitor",
    "ironroot.monitor._store",
    "ironroot.log._http",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "certifi",
    "encodings.idna",
)


def _size(state: Path) -> int:
    from ironroot.monitor import MonitorStore

    store = MonitorStore(state, create=False)
    try:
        (only,) = store.states()
        return only.size
    finally:
        store.close()


def test_a_kill_at_every_file_operation_of_a_round_loses_nothing(tmp_path: Path) -> None:
    vendor = PrivateKey.generate(Algorithm.ES256)
    data = service_dir(tmp_path / "ts", vendor)
    service = TransparencyService.open(data)
    with (
        service,
        ServiceThread(service) as server,
        httpx.Client(base_url=server.url) as c,
        KillServer(tmp_path, _PRELOAD) as killer,
    ):
        _run = killer.run

        def register(n: int) -> None:
            body = statement(vendor, f"pkg:fw/{n}")
            answer = c.post("/entries", content=body, headers={"Content-Type": "application/cose"})
            assert answer.status_code == 201

        register(0)
        template = tmp_path / "template"
        template.mkdir()
        once = ["monitor", "once", "--url", server.url]
        first = _run([*once, "--state", str(template / "m.db")])
        assert first.returncode == 0, first
        register(1)
        tally = tmp_path / "tally"
        counted = tmp_path / "counted"
        shutil.copytree(template, counted)
        done = _run([*once, "--state", str(counted / "m.db")], IRONROOT_TEST_KILL_TALLY=str(tally))
        assert done.returncode == 0, done
        assert _size(counted / "m.db") == 2
        points = int(tally.read_text())
        assert points >= 3  # the lock, the temporary file, its replacement (at least)
        kills = [{"IRONROOT_TEST_KILL_AT": str(k)} for k in range(1, points + 1)]
        kills.append({"IRONROOT_TEST_KILL_AFTER_REPLACING": ".verified"})
        dead = 0
        for env in kills:
            state = tmp_path / "run"
            shutil.rmtree(state, ignore_errors=True)
            shutil.copytree(template, state)
            killed = _run([*once, "--state", str(state / "m.db")], **env)
            assert killed.returncode in (-9, 0), (env, killed)  # the tally's own write: 0
            dead += killed.returncode == -9
            again = _run([*once, "--state", str(state / "m.db")])
            assert again.returncode == 0, (env, again)
            assert _size(state / "m.db") == 2
            marks = json.loads((state / "m.db.verified").read_text())
            assert [m["size"] for m in marks["logs"].values()] == [2], env
        assert dead >= 4
