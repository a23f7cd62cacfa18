from __future__ import annotations

import pytest

from ironroot.cli import main


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
