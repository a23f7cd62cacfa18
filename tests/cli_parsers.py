"""Many in-process runs of ``ironroot.cli.main`` without rebuilding the parser for each.

``main`` builds the parser of the group it runs every time, as a process must; a test that
runs a group's verbs dozens of times in one process spends more time building argparse
actions (a few hundred per group) than running the verbs. :func:`reuse_parsers` makes
``main`` take each group's parser, built by ``build_parser`` itself, from a cache: parsing
leaves a parser unchanged, so every run parses, runs and reports exactly as before.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pytest

from ironroot.cli import _main

__all__ = ["reuse_parsers"]

_PARSERS: dict[str | None, argparse.ArgumentParser] = {}
_BUILD = _main.build_parser  # the real one, before any test replaces it


def _built_once(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    # the parser depends only on the group ``argv`` runs (its first word that is no option)
    key = None if argv is None else next((w for w in argv if not w.startswith("-")), "")
    if key not in _PARSERS:
        _PARSERS[key] = _BUILD(argv)
    return _PARSERS[key]


def reuse_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    """For the rest of the test, ``ironroot.cli.main`` reuses each group's parser."""
    monkeypatch.setattr(_main, "build_parser", _built_once)
