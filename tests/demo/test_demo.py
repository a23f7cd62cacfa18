"""``make demo``: the whole story at the test size (``--quick``: three nodes), once per module.

The attack table is asserted row by row: every staged attack refused with exactly the error
class and code below, through the layer named — if the product let one through, or refused it
otherwise, the demo exits 1 and these tests fail. The ``--json`` report is checked against its
published schema (:data:`ironroot.demo.REPORT_SCHEMA`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import http_calls
from ironroot import errors
from ironroot.demo import ACTS, ATTACKS, REPORT_FORMAT, REPORT_SCHEMA, Attack, main, run_attack
from ironroot.demo import _main as demo_main
from ironroot.errors import IronrootError, PolicyRejected
from once import once_per_run

pytestmark = pytest.mark.integration

# The attack table: name -> (error class, code). Each is attempted for real by the demo.
EXPECTED = {
    "unsigned-firmware": ("MissingSignature", "missing-signature"),
    "revoked-key": ("KeyRevoked", "key-revoked"),
    "firmware-rollback": ("SvnRollback", "svn-rollback"),
    "never-logged": ("PolicyRejected", "no-receipt"),
    "forged-receipt": ("UnknownIssuer", "untrusted-service"),
    "borrowed-receipt": ("InvalidProof", "receipt-not-for-statement"),
    "unreviewed-firmware": ("PolicyRejected", "safe-review-missing"),
    "split-view": ("ForkDetected", "fork-detected"),
    "tampered-log-row": ("StorageError", "storage"),
    "one-person-change": ("PolicyRejected", "too-few-signers"),
    "direct-flash-write": ("FlashProtected", "flash-protected"),
    "replayed-nonce": ("StaleNonce", "nonce-reused"),
    "stolen-identity": ("ChainNotTrusted", "node-identity"),
    "debug-unlocked": ("VerificationFailed", "verification-failed"),
    "drifted-node": ("CredentialRejected", "credential-revoked"),
    "wrong-plane": ("RoleNotPermitted", "wrong-plane"),
    "hsm-export": ("KeyNotExportable", "key-not-exportable"),
    "hsm-other-user": ("RoleNotPermitted", "key-access-denied"),
    "hsm-lone-officer": ("RoleNotPermitted", "quorum-required"),
    "unattested-vm": ("UnknownIssuer", "unknown-issuer"),
    "stolen-ear": ("KeyBindingMismatch", "key-binding-mismatch"),
    "swapped-release": ("KeyBindingMismatch", "release-statement"),
    "quarantined-vm": ("ReleaseDenied", "node-not-admitted"),
    "gpu-evidence-missing": ("ReleaseDenied", "policy-claims"),
    "gpu-evidence-stale": ("StaleNonce", "nonce-mismatch"),
    "gpu-other-session": ("StaleNonce", "nonce-mismatch"),
    "gpu-rim-not-logged": ("ReleaseDenied", "not-affirming"),
    "tampered-audit": ("AuditBundleRejected", "member-changed"),
}


@dataclasses.dataclass
class Run:
    code: int
    out: str
    report: dict[str, Any]
    work: Path
    probes: dict[str, int]


def _probe(report: dict[str, Any], work: Path) -> dict[str, int]:
    """While ``--serve`` keeps them up: ask each service something public; the status codes."""

    from ironroot.http import client_context

    services = report["services"]
    ca = client_context(work / "fleet" / "admission" / "ca.cert.pem")
    found = {
        "transparency": http_calls.get(services["transparency"] + "/checkpoint").status_code,
        "fleet-admission": http_calls.get(
            services["fleet-admission"] + "/fleet/ca", verify=ca
        ).status_code,
    }
    if "dashboard" in services:
        found["dashboard"] = http_calls.get(services["dashboard"] + "log").status_code
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """``python -m ironroot.demo --quick --serve --json FILE``: the story, then, while the
    services stay up, a few requests to them, then Ctrl-C (SIGINT). Run once for the whole
    test run (``once_per_run``): the tests only read what it left."""
    base, found = once_per_run(tmp_path_factory, "demo", _run_demo)
    report_file = base / WORKDIR / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    return Run(found["code"], found["out"], report, base / WORKDIR / "work", found["probes"])


WORKDIR = "demo run #1 ü?x=%41"
"""The run's work directory: spaces, a letter outside ASCII and the characters of a ``file:``
URI (``#``, ``?``, ``%``) — a user's directory name, which once cut the log's snapshot short
and made ``tampered-log-row`` "refused" for the wrong reason and ``split-view`` not refused."""

HOSTILE_ENV = {
    # what a user's shell may carry in: none of it may change the demo's story or its table
    "IRONROOT_FLEET": "/nonexistent/fleet",
    "IRONROOT_PG_DSN": "postgresql://nobody:secret@127.0.0.1:1/none",
    "IRONROOT_DATA": "/nonexistent/data",
    "IRONROOT_HOST": "0.0.0.0",
    "IRONROOT_PORT": "8000",
    "IRONROOT_URL": "http://127.0.0.1:1",
    "IRONROOT_TOKEN": "not-a-token",
    "IRONROOT_CA": "/nonexistent/ca.pem",
    "IRONROOT_LOG_LEVEL": "debug",
    "IRONROOT_LOG_FORMAT": "json",
    "IRONROOT_ACCESS_LOG": "1",
    "IRONROOT_ROT_OBFUSCATION_KEY": "zz",
    "IRONROOT_ROT_OBFUSCATION_KEY_FILE": "/nonexistent/key",
    "TZ": "XYZ+13:45",
    "LC_ALL": "C",
    "LANG": "C",
}

SERVE_PORT = 8000
"""``ironroot serve``'s default port: held by this test while the demo runs, as a user's
running service would hold it (the demo's services take ports the system chooses)."""


def _hold_port(port: int) -> socket.socket | None:
    """A socket listening on ``127.0.0.1:port``; ``None`` when another program holds it
    already (it is taken either way)."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
    except OSError:
        holder.close()
        return None
    return holder


def _run_demo(base: Path) -> dict[str, Any]:
    report_file, work = base / WORKDIR / "report.json", base / WORKDIR / "work"
    command = [
        sys.executable,
        "-m",
        "ironroot.demo",
        "--quick",
        "--serve",
        "--workdir",
        str(work),
        "--json",
        str(report_file),
        "--width",
        "200",
    ]
    env = {**os.environ, **HOSTILE_ENV, "PYTHONUNBUFFERED": "1"}
    holder = _hold_port(SERVE_PORT)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=env,
    )
    lines: list[str] = []
    up = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "The services stay up" in line:
                up.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    probes: dict[str, int] = {}
    try:
        while not up.wait(0.5):
            if process.poll() is not None:
                break
        if up.is_set():
            time.sleep(0.5)  # the URLs are printed after the marker line
            probes = _probe(json.loads(report_file.read_text()), work)
            process.send_signal(signal.SIGINT)
        code = process.wait(timeout=120)
    finally:
        if holder is not None:
            holder.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
    return {"code": code, "out": "".join(lines), "probes": probes}


def test_serve_leaves_the_services_up_until_ctrl_c(run: Run) -> None:
    assert run.code == 0, run.out[-3000:]
    services = run.report["services"]
    for name in ("transparency", "witness", "fleet-admission", "fleet-control", "fleet-data"):
        assert services[name].startswith(("http://", "https://")), name
        assert services[name] in run.out
    assert run.probes["transparency"] == 200
    assert run.probes["fleet-admission"] == 200
    if importlib.util.find_spec("ironroot.web") is not None:
        assert run.probes["dashboard"] == 200  # the log page is public
    else:
        assert "dashboard" not in services
    assert "stopping" in run.out


def test_the_story_runs_in_a_user_s_directory_and_shell(run: Run) -> None:
    """The run above works in :data:`WORKDIR` with :data:`HOSTILE_ENV` set and port 8000
    held: the story, the table and the services are the same."""
    assert run.code == 0, run.out[-3000:]
    assert WORKDIR in str(run.work)
    for name, url in run.report["services"].items():
        host, _, port = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
        assert host in ("127.0.0.1", "localhost"), (name, url)
        assert int(port) != SERVE_PORT, (name, url)
    # the SQLite log in the work directory, not the PostgreSQL the environment names
    assert (run.work / "ts" / "log.sqlite3").is_file()
    assert "Traceback" not in run.out
    tampered = next(a for a in run.report["attacks"] if a["name"] == "tampered-log-row")
    assert "flipped" in tampered["evidence"]  # refused after the edit, not before it


def test_the_story_runs_and_exits_0(run: Run) -> None:
    assert run.code == 0, run.out[-3000:]
    assert run.report["ok"] is True
    assert [a["name"] for a in run.report["acts"]] == [a.name for a in ACTS]
    assert all(a["ok"] and a["error"] is None for a in run.report["acts"])
    assert "demo complete" in run.out


def test_the_attack_table_every_attack_refused_with_its_exact_error(run: Run) -> None:
    assert len(EXPECTED) >= 15
    assert {a.name: (a.expect.__name__, a.code) for a in ATTACKS} == EXPECTED
    rows = {row["name"]: row for row in run.report["attacks"]}
    assert list(rows) == [a.name for a in ATTACKS]
    for name, (cls, code) in EXPECTED.items():
        row = rows[name]
        assert row["outcome"] == "refused", row
        assert (row["error"]["class"], row["error"]["code"]) == (cls, code), row
        assert row["expected"] == {"class": cls, "code": code}
        assert row["evidence"]
    summary = run.report["summary"]
    assert summary == {"attacks": len(EXPECTED), "refused": len(EXPECTED), "not_refused": []}
    # the console table shows each attack with the class that stopped it
    table = run.out[run.out.index("Staged attacks") :]
    for attack in ATTACKS:
        assert attack.expect.__name__ in table


def test_the_acts_leave_their_evidence_in_the_work_directory(run: Run) -> None:
    facts = {a["name"]: a["facts"] for a in run.report["acts"]}
    assert facts["manufacture"]["nodes"] == ["node-0001", "node-0002", "node-0003"]
    assert facts["rollout"]["updated"] == ["node-0001", "node-0002", "node-0003"]
    assert facts["key-release"]["released"] == "db-key"
    ai = facts["ai-key-release"]
    assert ai["released"] == "model-weights"
    assert ai["ear"] == {"cvm": "affirming", "gpu0": "affirming"}
    assert ai["rims"] == ["NV_GPU_DRIVER_GH100_550.90.07", "NV_GPU_VBIOS_1010_0200_882_96005E0001"]
    assert ai["attacks"] == [
        "gpu-evidence-missing",
        "gpu-evidence-stale",
        "gpu-other-session",
        "gpu-rim-not-logged",
    ]
    audit = facts["audit"]
    assert all(s["status"] in ("ok", "skipped") for s in audit["steps"])
    assert (run.work / audit["bundle"]).is_file()
    assert (run.work / "ts" / "log.sqlite3").is_file()
    assert (run.work / "fleet" / "fleet.json").is_file()
    # the log the story left verifies as a whole, as `ironroot log verify` would check it
    from ironroot.log import verify_log_dir

    assert verify_log_dir(run.work / "ts").size > 0


# --- the report's schema ---------------------------------------------------------------------


def _check(value: Any, schema: Mapping[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema the report's schema uses (type, const, enum, pattern,
    minimum, required, properties, additionalProperties, items)."""
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(value, kinds[t]) and not (t in ("integer", "number") and value is True)
            for t in types
        )
        assert ok, (where, value)
        assert not (isinstance(value, bool) and "boolean" not in types), (where, value)
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    if "pattern" in schema and isinstance(value, str):
        assert re.search(schema["pattern"], value), where
    if "minimum" in schema and isinstance(value, int | float):
        assert value >= schema["minimum"], where
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            assert key in value, f"{where}.{key} is missing"
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{where}.{key}")
            elif extra is False:
                raise AssertionError(f"{where}.{key} is not in the schema")
            elif isinstance(extra, dict):
                _check(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for number, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{number}]")


def test_the_hsm_s_second_officer_approved_the_one_verifier_it_installs(run: Run) -> None:
    """The demo logged the two officers in together: the second officer's record named no
    operation. It now approves the one verifier install, by name and key (``Hsm.approve``)."""
    from ironroot.demo._act_keys import VERIFIER
    from ironroot.hsm import parse_audit_log

    records = [
        record
        for path in sorted((run.work / "hsm").glob("audit*.jsonl"))
        for record in parse_audit_log(path.read_bytes())
    ]
    subject = f"verifier-add {VERIFIER}"
    approvals = [(r.identity, r.operation, r.key, r.result) for r in records if r.key == subject]
    assert approvals == [
        ("officer-2", "approve", subject, "ok"),
        ("officer", "approval", subject, "ok"),
    ]
    added = [(r.identity, r.result) for r in records if r.operation == "verifier-add"]
    assert ("officer+officer-2", "ok") in added


def test_the_json_report_follows_its_schema(run: Run) -> None:
    assert run.report["format"] == REPORT_FORMAT
    _check(run.report, REPORT_SCHEMA)
    assert run.report["settings"] == {"nodes": 3, "wave_size": 2}


def test_the_schema_check_catches_a_wrong_report(run: Run) -> None:
    broken = json.loads(json.dumps(run.report))
    broken["attacks"][0]["outcome"] = "maybe"
    with pytest.raises(AssertionError):
        _check(broken, REPORT_SCHEMA)
    del broken["attacks"][0]["outcome"]
    with pytest.raises(AssertionError):
        _check(broken, REPORT_SCHEMA)


def test_docs_publish_the_same_schema_and_attack_table() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "demo.md"
    if not page.is_file():
        pytest.skip("docs/demo.md is not beside this source tree")
    text = page.read_text(encoding="utf-8")
    start = text.index("```json\n", text.index("## The report")) + len("```json\n")
    published = json.loads(text[start : text.index("```", start)])
    assert published == json.loads(json.dumps(REPORT_SCHEMA))
    for number, attack in enumerate(ATTACKS, 1):
        row = (
            f"| {number} | {attack.title} | {attack.layer} | "
            f"`{attack.expect.__name__}` `{attack.code}` |"
        )
        assert row in text, row


# --- an attack that is not refused fails the demo ---------------------------------------------


def _went_through(story: object, attempt: object) -> None:
    return None  # nothing refused it


def _refused_otherwise(story: object, attempt: object) -> None:
    raise PolicyRejected("refused, but not the way the table says", code="something-else")


def _crashed(story: object, attempt: object) -> None:
    raise KeyError("a bug")


@pytest.mark.parametrize(
    ("attempt", "error_class", "code"),
    [
        (_went_through, None, None),
        (_refused_otherwise, "PolicyRejected", "something-else"),
        (_crashed, "KeyError", None),
    ],
)
def test_run_attack_counts_only_the_exact_error_as_refused(
    attempt: Any, error_class: str | None, code: str | None
) -> None:
    attack = Attack("test", "a test attack", "nowhere", errors.PolicyRejected, "expected", attempt)
    result = run_attack(None, attack)  # type: ignore[arg-type]
    assert result.refused is False
    assert (result.error_class, result.error_code) == (error_class, code)
    assert result.to_json()["outcome"] == "not-refused"


def test_a_subclass_is_not_the_expected_class() -> None:
    def attempt(story: object, attempt: object) -> None:
        raise errors.ReleaseDenied("denied", code="expected")  # a PolicyRejected subclass

    attack = Attack("test", "t", "l", errors.PolicyRejected, "expected", attempt)
    assert run_attack(None, attack).refused is False  # type: ignore[arg-type]


def test_the_demo_exits_1_when_an_attack_is_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    attack = Attack(
        "went-through", "an attack nothing stops", "nowhere", IronrootError, "x", _went_through
    )

    def story(_story: object) -> tuple[list[dict[str, Any]], list[Any]]:
        acts = [
            {
                "name": a.name,
                "title": a.title,
                "ok": True,
                "seconds": 0.0,
                "facts": {},
                "error": None,
            }
            for a in ACTS
        ]
        return acts, [run_attack(None, attack)]  # type: ignore[arg-type]

    monkeypatch.setattr(demo_main, "run_story", story)
    report = tmp_path / "report.json"
    code = main(["--quick", "--workdir", str(tmp_path / "w"), "--json", str(report)])
    assert code == 1
    doc = json.loads(report.read_text())
    assert doc["ok"] is False
    assert doc["summary"]["not_refused"] == ["went-through"]
    _check(doc, REPORT_SCHEMA)
    assert "demo FAILED" in capsys.readouterr().out


def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["--nodes", "2"], ["--wave-size", "0"], ["--nodes", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
    capsys.readouterr()
