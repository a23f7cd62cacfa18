"""A real ``kill -9`` of ``ironroot audit export NODE --out BUNDLE`` (``kill_points``) as it
writes the bundle — its temporary file made, just before the rename and just after it (the
export changes no other file: what it opens before are the locks it reads under): the path
holds the bundle it held before (an earlier export) or a whole new one that verifies, never a
truncated file, and the next export writes a bundle that verifies."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import verify_bundle
from kill_points import KillServer
from scratch import in_memory

AT = EXPORTED.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-export-kill"))


# What ``audit export`` imports, once for the sweep's runs (kill_points.KillServer; the lazy
# packages' modules are named, and httpx's transport).
_PRELOAD = (
    *("ironroot.cli", "ironroot.cli.audit", "ironroot.audit._export", "ironroot.fleet._fleet"),
    *("ironroot.spdm._requester", "ironroot.platform._boot", "ironroot.log._http"),
    *("httpcore", "anyio", "certifi", "encodings.idna"),  # httpx's transport, made per client
)


@pytest.fixture
def killer() -> Iterator[KillServer]:
    with in_memory("audit-export-kill-server-") as directory, KillServer(directory, _PRELOAD) as s:
        yield s


def _export(aw: AuditWorld, killer: KillServer, root: Path, **env: str) -> int:
    argv = ["audit", "export", NODE, "--fleet", str(root / "fleet"), "--at", AT, "--json"]
    argv += ["--log-url", aw.world.urls["trusted"], "--out", str(root / "out" / "node.audit")]
    return killer.run(argv, **env).returncode


def test_a_kill_of_an_export_leaves_the_earlier_bundle_or_a_whole_new_one(
    aw: AuditWorld, tmp_path: Path, killer: KillServer
) -> None:
    trust = aw.trust()
    template = tmp_path / "template"
    shutil.copytree(aw.fleet.directory, template / "fleet")
    earlier = aw.export()
    (template / "out").mkdir()
    (template / "out" / "node.audit").write_bytes(earlier)
    tally = tmp_path / "tally"
    shutil.copytree(template, tmp_path / "counted")
    assert _export(aw, killer, tmp_path / "counted", IRONROOT_TEST_KILL_TALLY=str(tally)) == 0
    points = int(tally.read_text()) - 1  # the tally's own write is the last
    assert points >= 5  # the locks it reads under; the bundle's temporary file, mode, rename
    # The bundle's write is the last four: the temporary file made, its mode set (its bytes
    # follow), the rename, the temporary name's removal.
    kills = [{"IRONROOT_TEST_KILL_AT": str(k)} for k in (points - 2, points - 1)]
    kills.append({"IRONROOT_TEST_KILL_AFTER_REPLACING": "node.audit"})
    renewed = 0
    for n, env in enumerate(kills):
        run = tmp_path / f"kill-{n}"
        shutil.copytree(template, run)
        assert _export(aw, killer, run, **env) == -9, env
        found = (run / "out" / "node.audit").read_bytes()
        if found != earlier:
            assert verify_bundle(found, trust).ok, env
            renewed += 1
    assert renewed == 1  # killed after the rename alone
    run = tmp_path / "kill-1"  # killed just before the rename: its temporary file is left
    assert _export(aw, killer, run) == 0
    assert verify_bundle((run / "out" / "node.audit").read_bytes(), trust).ok
