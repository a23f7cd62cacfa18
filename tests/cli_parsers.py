"""Many in-process runs of ``ironroot.cli.main`` without rebuilding the parser for each.

``main`` builds the parser of the group it runs every time, as a process must; a test
process that runs verbs thousands of times spends more time building argparse actions (a
few hundred per group, each help text translated by ``gettext``) than running the verbs.
:func:`reuse_parsers` makes ``main`` take each group's parser, built by ``build_parser``
itself, from a cache kept for the test process: parsing leaves a parser unchanged, so every
run parses, runs and reports exactly as before.

``tests/conftest.py`` applies it to every test that does not use ``monkeypatch``: a test that
replaces a verb's function (``set_defaults(func=...)`` keeps the function the parser was built
with) gets a parser built afresh, as in a process of its own.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence

import pytest

from ironroot.cli import _main

__all__ = ["parsers_reused", "reuse_parsers"]

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


@contextlib.contextmanager
def parsers_reused() -> Iterator[None]:
    """``ironroot.cli.main`` reuses each group's parser inside the block."""
    _main.build_parser = _built_once  # type: ignore[assignment]
    try:
        yield
    finally:
        _main.build_parser = _BUILD  # type: ignore[assignment]
