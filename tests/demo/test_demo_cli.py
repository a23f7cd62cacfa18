"""``ironroot demo`` is ``python -m ironroot.demo``: the same options, and the process becomes
the demo (so its exit status and Ctrl-C are the demo's)."""

from __future__ import annotations

import sys

import pytest

from ironroot.cli import main
from ironroot.cli._main import build_parser
from ironroot.demo._main import _parser as demo_parser


def _options(parser: object) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}  # type: ignore[attr-defined]


def test_the_verb_takes_the_demo_s_options() -> None:
    parser = build_parser(["demo"])
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    verb = sub.choices["demo"]  # type: ignore[attr-defined]
    assert _options(verb) == _options(demo_parser())


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["demo"], ["--nodes", "12", "--wave-size", "4"]),
        (["demo", "--quick", "--json", "r.json"], ["--quick", "--json", "r.json"]),
        (
            ["demo", "--nodes", "20", "--wave-size", "5", "--serve", "--workdir", "w"],
            ["--nodes", "20", "--wave-size", "5", "--workdir", "w", "--serve"],
        ),
        (["demo", "--quick", "--keep", "--width", "120"], ["--quick", "--width", "120", "--keep"]),
    ],
)
def test_the_verb_becomes_the_demo_process(
    argv: list[str], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    became: list[list[str]] = []

    def execv(path: str, args: list[str]) -> None:
        became.append([path, *args])
        raise SystemExit(0)  # what the demo would exit with

    monkeypatch.setattr("os.execv", execv)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    assert became == [[sys.executable, sys.executable, "-m", "ironroot.demo", *expected]]


def test_a_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--nodes", "many"])
    assert info.value.code == 2
    assert "--nodes" in capsys.readouterr().err
