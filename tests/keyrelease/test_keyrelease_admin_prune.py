"""Pruning the running key service's HSM audit log through ``POST /admin/audit/prune``.

The gap: ``ironroot hsm audit prune`` cannot open the HSM directory the key service holds
(``Conflict``), so with rotation the archived segments piled up until the service stopped.
The route prunes through ``Hsm.prune_audit``, so the chain records and anchors it exactly as
the command line's prune, and ``ironroot hsm audit verify`` checks what is left."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from _kr_helpers import assert_problem, problem_of

from hsm_devices import self_signed_device
from ironroot.cli import main
from ironroot.errors import MalformedInput, RoleNotPermitted, Unauthorized
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, Role, parse_segment_name
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseServerThread,
    KeyReleaseService,
    create_keyrelease_app,
)
from rot_counters import provisioned_device
from scratch import in_memory

OFFICER = ("officer", "officer-credential")
USER = ("operator", "operator-credential")  # a crypto user: not an officer
SERVICE = ("keyrelease", "service-credential")  # the identity the service runs as
SECRET = bytes(range(48))
_PRUNE = "/admin/audit/prune"


@dataclass
class Running:
    directory: Path
    rot: Path
    hsm: Hsm
    service: KeyReleaseService
    url: str

    def starts(self) -> list[int]:
        """Where the archived segments start, then where the live log does."""
        spans = sorted(
            span
            for path in self.directory.glob("audit-*.jsonl")
            if (span := parse_segment_name(path.name)) is not None
        )
        return [first for first, _ in spans] + [spans[-1][1] + 1 if spans else 0]

    def segments(self) -> list[str]:
        """The archived segments' names, in chain order."""
        named = {parse_segment_name(p.name): p.name for p in self.directory.glob("audit-*.jsonl")}
        return [name for span, name in sorted(named.items()) if span is not None]


@pytest.fixture
def running() -> Iterator[Running]:
    """A key service holding an HSM directory (its lock, the RoT's counter) whose audit log
    rotated into three archived segments, served over HTTP on the loopback interface."""
    with in_memory("keyrelease-prune-") as tmp:
        provisioned_device(tmp / "rot")
        directory = tmp / "hsm"
        storage = DirectoryStorage.on_device(directory, tmp / "rot")
        config = HsmConfig(scrypt_n=2**10, audit_group_commit=1, audit_segment_records=30)
        hsm = Hsm.initialize(
            storage,
            SECRET,
            officer=OFFICER[0],
            credential=OFFICER[1].encode(),
            device=self_signed_device(),
            config=config,
        )
        officer = hsm.login(OFFICER[0], OFFICER[1].encode())
        hsm.add_identity(officer, SERVICE[0], Role.USER, SERVICE[1].encode())
        hsm.add_identity(officer, USER[0], Role.USER, USER[1].encode())
        while len(list(directory.glob("audit-*.jsonl"))) < 3:
            hsm.keys(officer)
        hsm.logout(officer)
        service = KeyReleaseService(
            keys=[], vault=HsmVault(hsm, hsm.login(SERVICE[0], SERVICE[1].encode()))
        )
        with KeyReleaseServerThread(create_keyrelease_app(service)) as server:
            yield Running(directory, tmp / "rot", hsm, service, server.url)
        hsm.close()
        storage.close()


def _client(url: str, auth: tuple[str, str] | None) -> httpx.Client:
    return httpx.Client(base_url=url, auth=auth, timeout=30, headers={"Accept": "application/json"})


def _verify(running: Running, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    """``ironroot hsm audit verify`` of the whole chain left, while the service holds the
    HSM: every segment and the live log, every MAC, the sealed head."""
    capsys.readouterr()
    code = main(
        [
            "hsm", "audit", "verify", "--dir", str(running.directory),
            "--sealing-secret-file", str(running.directory.parent / "sealing.secret"),
            "--rot-device", str(running.rot), "--json",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    value: dict[str, object] = json.loads(out)
    return value


def _pruned(running: Running) -> list[tuple[str, str | None, str]]:
    officer = running.hsm.login(OFFICER[0], OFFICER[1].encode())
    running.hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
    auditor = running.hsm.login("auditor", b"auditor-credential")
    records = running.hsm.audit_records(auditor)
    return [(r.identity, r.key, r.result) for r in records if r.operation == "audit-prune"]


def test_an_officer_prunes_the_running_services_audit_log(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    (running.directory.parent / "sealing.secret").write_bytes(SECRET)
    starts = running.starts()
    first, second = running.segments()[:2]
    with _client(running.url, OFFICER) as officer:
        pruned = officer.post(_PRUNE, json={"before": starts[2]})
    assert pruned.status_code == 200, pruned.text
    assert pruned.json() == {"removed": [first, second], "first_kept": starts[2]}
    assert running.starts()[0] == starts[2]  # the first two segments are gone
    assert _verify(running, capsys)["first"] == starts[2]
    assert _pruned(running) == [(OFFICER[0], f"before-{starts[2]}", "ok")]


def test_only_an_officer_on_the_loopback_interface_prunes(running: Running) -> None:
    segments = running.segments()
    before = {"before": running.starts()[1]}
    with _client(running.url, None) as anonymous:
        assert_problem(anonymous.post(_PRUNE, json=before), Unauthorized)
    with _client(running.url, (OFFICER[0], "not-the-credential")) as wrong:
        assert_problem(wrong.post(_PRUNE, json=before), Unauthorized)
    with _client(running.url, USER) as user:  # the HSM's roles decide
        refused = user.post(_PRUNE, json=before)
        assert_problem(refused, RoleNotPermitted)
        assert problem_of(refused).detail == "the user role may not audit-prune"
    with _client(running.url, SERVICE) as service:  # never a login as the service itself
        assert_problem(service.post(_PRUNE, json=before), Unauthorized)

    async def remote() -> httpx.Response:
        app = create_keyrelease_app(running.service)  # the default reach: loopback
        transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            return await http.post(
                _PRUNE, json=before, auth=OFFICER, headers={"Accept": "application/json"}
            )

    assert_problem(asyncio.run(remote()), RoleNotPermitted, "admin-loopback-only")
    assert running.segments() == segments  # nothing removed
    assert _pruned(running) == [
        (USER[0], f"before-{before['before']}", "role-not-permitted")  # the HSM's refusal
    ]


def test_a_record_the_hsm_cannot_prune_before_is_a_400_problem(running: Running) -> None:
    segments = running.segments()
    starts = running.starts()
    live = starts[-1]  # no admin request here writes enough records to rotate
    cases = [
        (
            {"before": live + 1},
            f"records from {live} on are in the live log, which is never pruned: the first "
            f"record kept is at most {live}",
        ),
        (
            {"before": starts[1] + 1},
            f"record {starts[1] + 1} does not start an archived segment or the live log "
            f"(segments are pruned whole; they start at {', '.join(map(str, starts))})",
        ),
        ({"before": str(starts[1])}, "the first record kept is a positive record number"),
        ({"before": float(starts[1])}, "the first record kept is a positive record number"),
        ({"before": True}, "the first record kept is a positive record number"),
        ({"before": 0}, "the first record kept is a positive record number"),
        ({}, "the first record kept is a positive record number"),
        ({"before": starts[1], "segments": 1}, "unknown members: segments"),
    ]
    with _client(running.url, OFFICER) as officer:
        for body, detail in cases:
            refused = officer.post(_PRUNE, json=body)
            assert_problem(refused, MalformedInput)
            assert refused.status_code == 400
            assert problem_of(refused).detail == detail, body
    assert running.segments() == segments
    assert running.starts()[-1] == live  # the exact messages above were the HSM's of then
    refusals = [(OFFICER[0], f"before-{live + 1}", "malformed")]
    refusals.append((OFFICER[0], f"before-{starts[1] + 1}", "malformed"))
    assert _pruned(running) == refusals  # in the chain, as any refusal; no record for a
    # value that is not a record number (the HSM refuses it before it is an operation)


def test_the_cli_prunes_the_running_services_audit_log(
    running: Running,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (running.directory.parent / "sealing.secret").write_bytes(SECRET)
    credential = tmp_path / "officer.cred"
    credential.write_text(OFFICER[1] + "\n")
    credential.chmod(0o600)
    starts = running.starts()
    segments = running.segments()
    base = ["keyrelease", "audit", "prune", "--url", running.url, "--json"]
    monkeypatch.delenv("IRONROOT_HSM_CREDENTIAL", raising=False)
    monkeypatch.delenv("IRONROOT_HSM_IDENTITY", raising=False)
    assert main([*base, "--before", str(starts[-1]), "--credential-file", str(credential)]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "config"  # no identity
    officer = [*base, "--identity", OFFICER[0], "--credential-file", str(credential)]
    assert main([*officer, "--before", str(starts[1] + 1)]) == 2  # the HSM's MalformedInput
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "malformed"
    assert f"record {starts[1] + 1} does not start an archived segment" in error["message"]
    assert running.segments() == segments
    assert main([*officer, "--before", str(starts[-1])]) == 0  # every archived segment
    assert json.loads(capsys.readouterr().out) == {
        "ok": True,
        "removed": segments,
        "first_kept": starts[-1],
    }
    assert running.segments() == []
    assert _verify(running, capsys)["first"] == starts[-1]
