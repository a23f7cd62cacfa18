"""Lazy package namespaces (PEP 562): a package's public names load from their submodules on
first use.

``from ironroot.transparency import TransparencyClient`` should cost the client, not the
server, the registration policy engine and the metrics library as well; a command-line verb
should pay for what it runs. A package therefore lists its public names once, as ordinary
imports under ``if TYPE_CHECKING:`` (what readers and type checkers see), and ends with::

    __getattr__, __dir__ = lazy_package(__name__, __file__)

:func:`lazy_package` reads that block from the package's own source and imports each name's
submodule on first access (then caches the name in the package, so later lookups are plain
attribute reads). Written by hand because the standard tools defer whole modules, not names:
``importlib.util.LazyLoader`` still loads everything on the first ``from package import name``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["lazy_package"]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _exports(package: str, source: str) -> dict[str, tuple[str, str]]:
    """``name -> (module, attribute)`` of every import under ``if TYPE_CHECKING:``."""
    found: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and _is_type_checking(node.test)):
            continue
        for statement in node.body:
            if not isinstance(statement, ast.ImportFrom):
                continue
            module = statement.module or ""
            if statement.level:
                base = package.rsplit(".", statement.level - 1)[0]
                module = f"{base}.{module}" if module else base
            for alias in statement.names:
                found[alias.asname or alias.name] = (module, alias.name)
    return found


def lazy_package(name: str, file: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for package ``name`` whose ``__init__`` is ``file``."""
    exports = _exports(name, Path(file).read_text(encoding="utf-8"))

    def __getattr__(attribute: str) -> object:
        try:
            module, original = exports[attribute]
        except KeyError:
            # a public subpackage or submodule, as an eager package would have imported it
            if not attribute.startswith("_") and importlib.util.find_spec(f"{name}.{attribute}"):
                return importlib.import_module(f"{name}.{attribute}")
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None
        if module == name:  # `from package import submodule`
            value: object = importlib.import_module(f"{name}.{original}")
        else:
            value = getattr(importlib.import_module(module), original)
        setattr(sys.modules[name], attribute, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[name])))

    return __getattr__, __dir__
