"""``ironroot completion bash|zsh|fish``: scripts generated from the parser, checked by the
shells themselves."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cli._main import build_parser
from ironroot.cli.completion import command_table


def _script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def test_the_table_has_every_verb_and_its_options() -> None:
    table = command_table(build_parser())
    assert "hsm" in table[""]
    assert "--version" in table[""]
    assert {"add", "list", "remove"} <= set(table["hsm verifier"])
    assert "--service-keys" in table["statement verify"]
    assert "--tls-cert" in table["keyrelease serve"]


def _complete_bash(script: Path, *words: str) -> list[str]:
    line = " ".join(words)
    probe = (
        f"source {script}; COMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; _ironroot; "
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_groups_verbs_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "ironroot.bash"
    script.write_text(_script("bash", capsys))
    assert _complete_bash(script, "ironroot", "ke")[:2] == ["key", "keyrelease"]
    assert "remove" in _complete_bash(script, "ironroot", "hsm", "verifier", "''")
    assert _complete_bash(script, "ironroot", "statement", "verify", "x.ts", "--serv") == [
        "--service-issuer",
        "--service-keys",
    ]
    assert _complete_bash(script, "ironroot", "statement", "verify", "x.ts", "--service-k") == [
        "--service-keys"
    ]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_parse(
    shell: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = tmp_path / f"ironroot.{shell}"
    script.write_text(_script(shell, capsys))
    subprocess.run([shell, "-n", str(script)], check=True)
    if shell == "fish":
        out = subprocess.run(
            ["fish", "-c", f"source {script}; complete -C 'ironroot hsm ver'"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "verifier" in out.split()
