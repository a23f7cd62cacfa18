"""Every verb has an example, every argument a line of help, defaults are shown."""

from __future__ import annotations

import argparse

import pytest

from ironroot.cli import main
from ironroot.cli._help import EXAMPLES
from ironroot.cli._main import _leaves, build_parser

_PARSER = build_parser()
_VERBS = {leaf.prog.removeprefix("ironroot ").strip(): leaf for leaf in _leaves(_PARSER)}


@pytest.mark.parametrize("verb", sorted(_VERBS))
def test_every_verb_has_an_example_and_every_argument_help(verb: str) -> None:
    leaf = _VERBS[verb]
    assert (leaf.epilog or "").startswith("example: ironroot "), verb
    assert leaf.epilog.split()[2] == verb.split()[0], leaf.epilog  # the example runs this group
    missing = [
        a.dest for a in leaf._actions if not isinstance(a, argparse._HelpAction) and not a.help
    ]
    assert missing == [], f"{verb}: {missing}"


def test_examples_name_real_verbs() -> None:
    assert set(EXAMPLES) <= set(_VERBS)


def test_help_shows_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["hsm", "audit", "verify", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "(default: hsm)" in out
    assert "example: ironroot hsm audit verify" in out
