"""How ``python -m ironroot.demo`` treats what a user gives it: a work directory used before
(a second run, or one interrupted), one that cannot be a directory, a report path that cannot
be written, ``--json -`` (the report alone on standard output), a path with spaces, non-ASCII
letters and URI characters. None of these may end in a traceback or a half-written state.

The story itself is replaced by a stand-in (``run_story``) so that these tests take no time:
the real story runs once, in ``test_demo.py``, and in ``test_demo_honesty.py``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ironroot.demo import ACTS, ATTACKS, REPORT_FORMAT, AttackResult, main, run_attack
from ironroot.demo import _main as demo_main
from ironroot.demo._attempt import snapshot_sqlite

WEIRD = "demo run #2 ü?x=%41"
"""A directory name a user may well have: spaces, a letter outside ASCII, and ``#``, ``?``,
``%`` (which mean something in a ``file:`` URI)."""


def _acts() -> list[dict[str, Any]]:
    return [
        {"name": a.name, "title": a.title, "ok": True, "seconds": 0.0, "facts": {}, "error": None}
        for a in ACTS
    ]


def _refused(story: Any) -> AttackResult:
    """One attack, refused as the table says (``unsigned-firmware``'s class and code, raised
    by a stand-in attempt)."""
    attack = ATTACKS[0]

    def refused(_story: object, _attempt: object) -> None:
        raise attack.expect("refused by the stand-in", code=attack.code)

    return run_attack(story, dataclasses.replace(attack, attempt=refused))


@pytest.fixture
def stories(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The story replaced by one that runs no act and attempts one attack (:func:`_refused`);
    the work directories it ran in."""
    ran: list[Path] = []

    def story(story: Any) -> tuple[list[dict[str, Any]], list[Any]]:
        ran.append(story.work)
        (story.work / "ts").mkdir()
        return _acts(), [_refused(story)]

    monkeypatch.setattr(demo_main, "run_story", story)
    return ran


def _usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


# --- the work directory -------------------------------------------------------------------------


def test_a_second_run_into_the_same_workdir_is_refused_and_leaves_the_first_alone(
    tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "w"
    assert main(["--quick", "--workdir", str(work)]) == 0
    before = sorted(p.name for p in work.iterdir())
    log = (work / "demo.log").read_bytes()
    capsys.readouterr()
    err = _usage_error(capsys, ["--quick", "--workdir", str(work)])
    assert f"--workdir {work} is not empty" in err
    assert "an earlier run" in err  # says why, and what to do
    assert len(stories) == 1  # the second run started nothing
    assert sorted(p.name for p in work.iterdir()) == before
    assert (work / "demo.log").read_bytes() == log


def test_an_interrupted_run_s_workdir_is_refused_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # what kill -9 in act 1 leaves: the log's directory and demo.log, nothing else
    work = tmp_path / "w"
    (work / "ts").mkdir(parents=True)
    (work / "demo.log").write_text("")
    err = _usage_error(capsys, ["--quick", "--workdir", str(work)])
    assert "is not empty" in err


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_workdir_that_cannot_be_a_directory_is_a_usage_error(
    where: str, tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: NotADirectoryError / FileExistsError, with a traceback
    (tmp_path / "file").write_text("not a directory\n")
    err = _usage_error(capsys, ["--quick", "--workdir", str(tmp_path / where)])
    assert "--workdir" in err
    assert "not a directory" in err or "cannot be created" in err
    assert stories == []


def test_a_workdir_that_is_not_writable_is_a_usage_error(
    tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "ro"
    work.mkdir(mode=0o555)
    try:
        if os.access(work, os.W_OK):
            pytest.skip("running as root: a mode 0555 directory is writable")
        err = _usage_error(capsys, ["--quick", "--workdir", str(work / "sub")])
        assert "--workdir" in err
        err = _usage_error(capsys, ["--quick", "--workdir", str(work)])
        assert "not writable" in err
    finally:
        work.chmod(0o755)
    assert stories == []


def test_a_workdir_with_spaces_unicode_and_uri_characters(
    tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / WEIRD / "w"
    report = tmp_path / WEIRD / "report.json"
    assert main(["--quick", "--workdir", str(work), "--json", str(report)]) == 0
    assert stories == [work.resolve()]
    assert json.loads(report.read_text())["ok"] is True


def test_a_live_sqlite_snapshot_in_a_directory_with_uri_characters(tmp_path: Path) -> None:
    # was: "file:{path}?mode=ro" read another (empty) database when the path held '#' or '?'
    # (the tampered-log-row attack then crashed and the demo failed in such a directory)
    folder = tmp_path / WEIRD
    folder.mkdir()
    with sqlite3.connect(folder / "log.sqlite3") as db:
        db.execute("create table entries (n integer)")
        db.execute("insert into entries values (7)")
    db.close()
    snapshot_sqlite(folder / "log.sqlite3", folder / "copy.sqlite3")
    copy = sqlite3.connect(folder / "copy.sqlite3")
    try:
        assert copy.execute("select n from entries").fetchall() == [(7,)]
    finally:
        copy.close()


# --- the report ---------------------------------------------------------------------------------


def test_json_dash_puts_the_report_alone_on_stdout(
    tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the narration went to stdout too, so `--json - | jq` could not parse it
    assert main(["--quick", "--workdir", str(tmp_path / "w"), "--json", "-"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["format"] == REPORT_FORMAT
    assert report["ok"] is True
    assert "demo complete" in captured.err  # the story is told on stderr instead
    assert not (tmp_path / "-").exists()
    assert not Path("-").exists()


def test_a_report_path_that_is_a_directory_is_refused_before_the_story(
    tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: the whole story ran, then InputUnavailable with a traceback
    err = _usage_error(capsys, ["--quick", "--workdir", str(tmp_path / "w"), "--json", "."])
    assert "--json" in err
    assert stories == []
    (tmp_path / "file").write_text("x")
    err = _usage_error(
        capsys, ["--quick", "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "file/r")]
    )
    assert "--json" in err
    assert stories == []


def test_a_report_that_cannot_be_written_at_the_end_fails_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"

    def story(story: Any) -> tuple[list[dict[str, Any]], list[Any]]:
        report.mkdir()  # the report's place taken while the story ran (a full disk alike)
        return _acts(), [_refused(story)]

    monkeypatch.setattr(demo_main, "run_story", story)
    code = main(["--quick", "--workdir", str(tmp_path / "w"), "--json", str(report)])
    assert code == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "report not written" in captured.out
    assert report.is_dir()


# --- the console --------------------------------------------------------------------------------


def test_a_console_that_cannot_show_unicode_gets_the_story_with_replacements(
    tmp_path: Path,
    stories: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # was: UnicodeEncodeError at the title's dash (PYTHONIOENCODING=ascii, or LC_ALL=C with
    # PYTHONUTF8=0 and no locale coercion)
    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", ascii_out)
    assert main(["--quick", "--workdir", str(tmp_path / "w"), "--width", "100"]) == 0
    text = raw.getvalue().decode("ascii")
    assert "demo complete" in text
    assert "Ironroot ? defense in depth" in text


# --- interrupted ---------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_in_the_first_act_stops_cleanly_and_a_rerun_is_refused(
    stop: signal.Signals, status: int, tmp_path: Path
) -> None:
    """SIGINT (or SIGTERM: ``kill``) while act 1 runs: the services stopped, exit 130 (143),
    "interrupted", no traceback; the directory it left is refused by the next run (exit 2),
    as after kill -9."""
    work = tmp_path / WEIRD
    command = [sys.executable, "-m", "ironroot.demo", "--quick", "--workdir", str(work)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        env=env,
        # as in a terminal: a background job of a script would start with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if "vendor firmware keys" in line:  # act 1 is under way
                process.send_signal(stop)
                break
        out = "".join(lines) + process.stdout.read()
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    assert code == status, out[-2000:]
    assert "interrupted" in out
    assert "Traceback" not in out
    assert (work / "demo.log").is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert again.returncode == 2
    assert "is not empty" in again.stderr
    assert "Traceback" not in again.stderr


def test_two_runs_started_at_once_into_one_workdir_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both saw the directory empty; the first to claim it (demo.log, created exclusively)
    # runs, the other is refused instead of writing into the same files.
    work = tmp_path / "w"
    work.mkdir()
    demo_main._claim_workdir(work)
    with pytest.raises(SystemExit) as info:
        demo_main._claim_workdir(work)
    assert info.value.code == 2
    assert "in use by another run" in capsys.readouterr().err


@pytest.mark.integration
def test_a_full_disk_fails_the_act_it_stops_without_a_traceback(tmp_path: Path) -> None:
    """Files limited to 4 kB (RLIMIT_FSIZE: each write past it fails, as on a full disk):
    act 1 fails with the storage error, exit 1, no traceback on the console."""
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    work = tmp_path / "w"
    done = subprocess.run(
        [sys.executable, "-m", "ironroot.demo", "--quick", "--workdir", str(work)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=small_files,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "act vendor-release failed: StorageError" in done.stdout
    assert "demo FAILED" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("width", ["0", "-3", "19"])
def test_a_console_width_too_small_to_tell_the_story_is_a_usage_error(
    width: str, tmp_path: Path, stories: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # was: --width 0 printed nothing at all, the whole story and the table silently lost
    err = _usage_error(capsys, ["--quick", "--workdir", str(tmp_path / "w"), "--width", width])
    assert "--width" in err
    assert stories == []
