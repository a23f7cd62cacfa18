"""What the attacks share: the :class:`Attempt` that collects evidence, and helpers to aim an
attack at a node and read a refused request's typed error."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ironroot.demo._world import (
    Story,
    problem_error,
)
from ironroot.errors import IronrootError


class Attempt:
    """What one attack saw: evidence lines, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, line: str) -> None:
        self.lines.append(line)


def node_at(story: Story, index: int) -> str:
    """The fleet's ``index``-th node (0-based; negative from the end), for attacks that each
    use a node of their own."""
    fleet = story.need(story.fleet, "fleet")
    ids: list[str] = fleet.node_ids()
    return ids[index % len(ids)]


def push_update(
    story: Story, node: str, component: str, bundle: bytes, statements: Any, **kw: Any
) -> None:
    """Push an update to ``node``'s RoT: the path every firmware change takes."""
    fleet = story.need(story.fleet, "fleet")
    fleet.node(node).update(component, bundle, tuple(statements), now=story.now(), **kw)


def active_image(story: Story, node: str, component: str) -> str:
    fleet = story.need(story.fleet, "fleet")
    image = fleet.node(node).state().components[component].image
    return f"{image.version} (SVN {image.svn})" if image is not None else "none"


def refusal_of(response: Any) -> IronrootError:
    """The typed error a refused request stands for (its RFC 9290 problem); a request that
    went through means the attack succeeded: :class:`NotRefused`."""
    if response.status_code < 400:
        raise NotRefused(f"the service answered {response.status_code}: the attack went through")
    return problem_error(response)


class NotRefused(Exception):
    """Raised when an attack went through where a refusal was expected."""


def snapshot_sqlite(source: Any, target: Any) -> None:
    """A consistent copy of a live SQLite database (the online backup API). The source is
    named by its ``file:`` URI, so a directory holding ``#``, ``?`` or ``%`` is read as it is
    (not cut at the ``#`` into another, empty, database)."""
    src = sqlite3.connect(f"{Path(source).resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(str(target))
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
