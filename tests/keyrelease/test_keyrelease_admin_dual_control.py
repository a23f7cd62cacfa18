"""The admin API under the HSM's dual control: approving officers in ``Ironroot-Approver``.

With an officer quorum of two, one officer alone cannot remove the verifier the HSM trusts
or prune its audit log through the running service; with a second officer's
``Ironroot-Approver`` header (``base64(identity:credential)``) it can, and the HSM's record
names both.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _kr_helpers import VERIFIER, Harness, assert_problem, build_harness, problem_of

from ironroot.cli import main
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import Conflict, MalformedInput, RoleNotPermitted, Unauthorized
from ironroot.hsm import Role
from ironroot.keyrelease import (
    KeyReleaseClient,
    KeyReleaseServerThread,
    ReleasableKey,
    create_keyrelease_app,
)

OFFICER = ("officer", "officer-credential")
SECOND = ("second-officer", "second-credential")
SERVICE = ("keyrelease", "user-credential")


@pytest.fixture
def dual() -> Iterator[tuple[Harness, str]]:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, SECOND[0], Role.OFFICER, SECOND[1].encode())
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    harness.hsm.set_officer_quorum(harness.officer, 2)
    with (
        harness.http,
        KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server,
    ):
        harness.url = server.url
        yield harness, server.url


def _approver(identity: str, credential: str) -> str:
    return base64.b64encode(f"{identity}:{credential}".encode()).decode()


def _remove(url: str, *approvers: str) -> httpx.Response:
    headers = [("Accept", "application/json")] + [("Ironroot-Approver", a) for a in approvers]
    with httpx.Client(base_url=url, auth=OFFICER, timeout=30) as http:
        return http.delete(f"/admin/verifiers/{quote(VERIFIER, safe='')}", headers=headers)


def _last(harness: Harness, operation: str) -> tuple[str, str]:
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    record = [r for r in harness.hsm.audit_records(auditor) if r.operation == operation][-1]
    return record.identity, record.result


def test_one_officer_alone_is_refused_and_an_approver_meets_the_quorum(
    dual: tuple[Harness, str],
) -> None:
    harness, url = dual
    alone = _remove(url)
    assert_problem(alone, RoleNotPermitted, "quorum-required")
    assert "under dual control" in problem_of(alone).detail
    assert harness.hsm.release_verifiers(harness.officer)[0][0] == VERIFIER
    wrong = _remove(url, _approver(SECOND[0], "not-the-credential"))
    assert_problem(wrong, Unauthorized)
    assert _last(harness, "approve") == (SECOND[0], "unauthorized")
    both = _remove(url, _approver(*SECOND))
    assert both.status_code == 200, both.content
    assert json.loads(both.content) == {"name": VERIFIER, "removed": True}
    assert _last(harness, "verifier-remove") == (f"{OFFICER[0]}+{SECOND[0]}", "ok")


def test_approvers_are_checked_before_any_login(dual: tuple[Harness, str]) -> None:
    harness, url = dual
    own = _remove(url, _approver(*SERVICE))  # the service's own identity never logs in
    assert_problem(own, Unauthorized)
    assert problem_of(own).detail == (
        "the key service's own identity does not administer it: use another HSM identity"
    )
    assert ("keyrelease", "approve") not in {
        (r.identity, r.operation)
        for r in harness.hsm.audit_records(harness.hsm.login("auditor", b"auditor-credential"))
    }
    assert_problem(_remove(url, "not base64!"), Unauthorized)
    assert_problem(_remove(url, base64.b64encode(b"no-colon").decode()), Unauthorized)
    many = ",".join([_approver(*SECOND)] * 16)
    assert_problem(_remove(url, many), MalformedInput)
    assert problem_of(_remove(url, many)).detail == "at most 15 approvers"


def test_the_client_and_the_cli_send_approvers(
    dual: tuple[Harness, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    harness, url = dual
    with KeyReleaseClient(url) as client, pytest.raises(RoleNotPermitted) as info:
        client.remove_verifier(VERIFIER, identity=OFFICER[0], credential=OFFICER[1].encode())
    assert info.value.code == "quorum-required"
    files = {}
    for name, secret in (OFFICER, SECOND):
        files[name] = tmp_path / f"{name}.cred"
        files[name].write_text(secret + "\n")
        files[name].chmod(0o600)
    argv = ["keyrelease", "verifier", "remove", VERIFIER, "--url", url, "--json",
            "--identity", OFFICER[0], "--credential-file", str(files[OFFICER[0]])]  # fmt: skip
    assert main([*argv, "--approver", f"{SECOND[0]}={files[SECOND[0]]}"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "name": VERIFIER, "removed": True}
    assert _last(harness, "verifier-remove") == (f"{OFFICER[0]}+{SECOND[0]}", "ok")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert main([*argv, "--approver", SECOND[0]]) == 2
    assert "--approver second-officer: give NAME=FILE" in json.dumps(
        json.loads(capsys.readouterr().out)
    )


def test_an_offer_that_loses_its_name_makes_no_key_one_officer_could_not_delete(
    dual: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``offer_as`` whose name another offer takes after the request's own check: it was
    refused only after its key was made, and the key then deleted — a delete one officer
    alone may not do under dual control, so the key stayed behind and the answer was the
    delete's ``quorum-required`` (403). The name is now taken and checked before the key is
    made: 409, and no key."""
    harness, url = dual
    other = harness.handles["cel-key"]
    harness.service.add_key(ReleasableKey("raced-key", other))
    offered = harness.service.keys
    # the request's own check saw the name free: the other offer landed just after it
    monkeypatch.setattr(type(harness.service), "keys", property(lambda _self: {}))
    before = {k.handle for k in harness.hsm.keys(harness.officer)}
    body = {
        "type": "AES-256",
        "exportable": True,
        "release_policy": "true",
        "offer_as": "raced-key",
    }
    with httpx.Client(base_url=url, auth=OFFICER, timeout=30) as http:
        lost = http.post("/admin/keys", json=body)
    monkeypatch.undo()
    assert_problem(lost, Conflict)
    assert problem_of(lost).detail == "a key is offered as 'raced-key' already"
    assert {k.handle for k in harness.hsm.keys(harness.officer)} == before
    assert harness.service.keys == offered
    assert ("delete", "quorum-required") not in {
        (r.operation, r.result)
        for r in harness.hsm.audit_records(harness.hsm.login("auditor", b"auditor-credential"))
    }


def test_an_operation_done_before_its_session_ended_is_answered_as_done(
    dual: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another officer locks the requesting officer while the request runs, after the HSM
    removed the verifier: the lock ends the request's session, so its logout was refused —
    and the answer was that refusal (401) for a removal that was done."""
    harness, url = dual
    hsm = harness.hsm
    third = ("third-officer", Role.OFFICER, b"third-credential")
    hsm.approve(
        harness.officer, "identity-add", *third, approvers=[(SECOND[0], SECOND[1].encode())]
    )
    hsm.add_identity(harness.officer, *third)
    remove = hsm.remove_release_verifier

    def then_locked(session: object, name: str) -> None:
        remove(session, name)  # type: ignore[arg-type]
        hsm.lock_identity(hsm.login("third-officer", b"third-credential"), OFFICER[0])

    monkeypatch.setattr(hsm, "remove_release_verifier", then_locked)
    done = _remove(url, _approver(*SECOND))
    assert done.status_code == 200, done.content
    assert json.loads(done.content) == {"name": VERIFIER, "removed": True}
    assert hsm.release_verifiers(hsm.login("third-officer", b"third-credential")) == ()


def _records(harness: Harness, operation: str) -> list[tuple[str, str | None, str]]:
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    return [
        (r.identity, r.key, r.result)
        for r in harness.hsm.audit_records(auditor)
        if r.operation == operation
    ]


def test_an_approver_approves_the_request_s_own_operation_and_target(
    dual: tuple[Harness, str],
) -> None:
    """The service logged in with the approvers: their records named no operation, and the
    session met the quorum for whichever dual-control operation it ran. They now approve
    the request's operation with its arguments (``Hsm.approve``), and their records say
    which."""
    harness, url = dual
    both = _remove(url, _approver(*SECOND))
    assert both.status_code == 200, both.content
    subject = f"verifier-remove {VERIFIER}"
    assert _records(harness, "approve")[-1] == (SECOND[0], subject, "ok")
    assert _records(harness, "approval")[-1] == (OFFICER[0], subject, "ok")
    assert _last(harness, "verifier-remove") == (f"{OFFICER[0]}+{SECOND[0]}", "ok")


def test_an_approval_runs_only_the_arguments_the_request_named(
    dual: tuple[Harness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the service to run another operation than the request names (here: a bug that
    removes another verifier), the approvers' approval does not cover it: bound to the
    request's arguments, not to the session."""
    harness, url = dual
    hsm = harness.hsm
    other = "https://other-verifier.example"
    pem = PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    hsm.approve(
        harness.officer, "verifier-add", other, pem, approvers=[(SECOND[0], SECOND[1].encode())]
    )
    hsm.add_release_verifier(harness.officer, other, pem)
    remove = hsm.remove_release_verifier

    def another(session: object, name: str) -> None:
        remove(session, other)  # type: ignore[arg-type]

    monkeypatch.setattr(hsm, "remove_release_verifier", another)
    refused = _remove(url, _approver(*SECOND))
    assert_problem(refused, RoleNotPermitted, "approval-key-mismatch")
    assert problem_of(refused).detail == (
        f"the approvals this session holds for verifier-remove are for other targets, not {other}"
    )
    assert {n for n, _ in hsm.release_verifiers(harness.officer)} == {VERIFIER, other}
    assert _last(harness, "verifier-remove") == (OFFICER[0], "approval-key-mismatch")


def test_approvers_on_a_request_under_no_dual_control_are_refused_before_any_login(
    dual: tuple[Harness, str],
) -> None:
    """Listing keys is no dual-control operation: the approvers approved nothing, yet the
    session ran under both names. Now refused, and no credential is tried."""
    harness, url = dual
    before = _records(harness, "approve")
    headers = [("Accept", "application/json"), ("Ironroot-Approver", _approver(*SECOND))]
    with httpx.Client(base_url=url, auth=OFFICER, timeout=30) as http:
        listed = http.get("/admin/keys", headers=headers)
    assert_problem(listed, MalformedInput)
    assert problem_of(listed).detail == (
        "this request runs no operation under dual control: send no Ironroot-Approver header"
    )
    assert _records(harness, "approve") == before


def test_a_malformed_prune_is_refused_before_any_approver_s_credential_is_tried(
    dual: tuple[Harness, str],
) -> None:
    harness, url = dual
    headers = [("Ironroot-Approver", _approver(SECOND[0], "not-the-credential"))]
    with httpx.Client(base_url=url, auth=OFFICER, timeout=30) as http:
        pruned = http.post("/admin/audit/prune", json={"before": 1.5}, headers=headers)
    assert_problem(pruned, MalformedInput)
    assert problem_of(pruned).detail == "an approved operation's argument cannot be float"
    assert SECOND[0] not in {who for who, _, _ in _records(harness, "approve")}
