from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cli._main import GROUPS


def test_no_arguments_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2


def test_unknown_group_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-group"])
    assert info.value.code == 2


def test_the_group_table_matches_each_group_s_own_parser() -> None:
    from ironroot.cli._main import GROUPS, build_parser

    full = build_parser()
    (sub,) = [a for a in full._actions if a.dest == "group"]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    assert helps == {command: help_text for command, (_, help_text) in GROUPS.items()}


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["log", "--help"]])
def test_only_the_group_that_runs_is_imported(argv: list[str]) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from ironroot.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('ironroot.'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")[-2]
    loaded = set(out.split())
    assert "ironroot.attestation" not in loaded
    assert "ironroot.hsm" not in loaded
    assert ("ironroot.cli.log" in loaded) == (argv[0] == "log")


# What a command's start must not pay for: the web stack, the policy engine and its REPL, the
# network client, metrics, JOSE and PKCS#11 load only in the verbs that use them (the start
# times themselves are measured by bench/cli_start.py, not asserted here).
_HEAVY = ("starlette", "uvicorn", "httpx", "cel", "prompt_toolkit", "typer",
          "prometheus_client", "joserfc", "pkcs11")  # fmt: skip


@pytest.mark.parametrize("group", list(GROUPS))
def test_a_group_starts_without_the_heavy_libraries(group: str) -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "from ironroot.cli import main\n"
        "try:\n"
        f"    main([{group!r}, '--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"print('HEAVY:', *sorted(loaded & set({_HEAVY!r})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "HEAVY:", out.stdout[-300:]


def test_the_demo_module_answers_help_without_running() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ironroot.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.startswith("usage: python -m ironroot.demo")
    assert "Ironroot demo" not in out.stdout  # it did not start
    bad = subprocess.run(
        [sys.executable, "-m", "ironroot.demo", "--bogus"], capture_output=True, timeout=60
    )
    assert bad.returncode == 2


def test_the_cli_page_lists_exactly_the_groups() -> None:
    """docs/cli.md's group table names every group of ``GROUPS`` and no other, in order."""
    import re
    from pathlib import Path

    import ironroot

    page = Path(ironroot.__file__).parents[2] / "docs" / "cli.md"
    if not page.is_file():  # an installed package without the docs
        pytest.skip("docs/cli.md is not beside this source tree")
    text = page.read_text(encoding="utf-8")
    table = text[text.index("| group | what |") : text.index("## Exit codes")]
    assert re.findall(r"^\| `([a-z-]+)` \|", table, re.MULTILINE) == list(GROUPS)


@pytest.mark.parametrize(
    "options",
    [
        ["--log-level", "warning"],
        ["--log-format", "json"],
        ["-v", "--log-level", "info", "--log-format", "text"],
        ["--log-level=warning"],
        ["--log-l", "warning"],
    ],
)
def test_the_global_options_with_a_value_before_the_group(
    tmp_path: Path, options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """``ironroot --log-level warning key show K``: the option's value is not the group (the
    group's parser was left unbuilt, and every command was a usage error)."""
    assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "k")]) == 0
    capsys.readouterr()
    assert main([*options, "key", "show", str(tmp_path / "k.pub.pem"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["alg"] == "ES256"
