"""The architecture, enforced: lower layers never import higher ones; every layer's public
surface is declared in ``__all__`` and every declared name exists."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import ironroot

SRC = Path(ironroot.__file__).parent

# Bottom to top. A package may import only packages before it (and itself).
LAYERS = [
    "errors",
    "_text",
    "_json",
    "_lazy",
    "_memo",
    "_netaddr",
    "_fileio",
    "_statedb",
    "_trust",
    "_httpclient",
    "_cel",
    "crypto",
    "merkle",
    "cose",
    "corim",
    "rim",
    "ear",
    "log",
    "http",
    "witness",
    "transparency",
    "monitor",
    "firmware",
    "rot",
    "spdm",
    "hsm",
    "safe",
    "attestation",
    "keyrelease",
    "platform",
    "fleet",
    "audit",
    "web",
    "cli",
    "demo",
    "__main__",
]


def _package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _resolve_relative(path: Path, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``path``."""
    parts = ["ironroot", *path.relative_to(SRC).with_suffix("").parts]
    package = parts[:-1]  # a module's package; an __init__'s package is its folder
    if level - 1 > len(package) - 1:
        raise AssertionError(f"{path.relative_to(SRC)}: relative import above ironroot")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names = [_resolve_relative(path, node.level, node.module)]
        else:
            continue
        found.update(n.split(".")[1] for n in names if n.startswith("ironroot."))
    return found


def test_every_package_has_a_place_in_the_layering() -> None:
    packages = {_package_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert packages <= set(LAYERS), sorted(packages - set(LAYERS))


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_lower_layers_never_import_higher_ones(path: Path) -> None:
    package = _package_of(path)
    if package == "__init__":
        return
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    assert _imports(path) <= allowed, f"{path.relative_to(SRC)} imports {_imports(path) - allowed}"


def test_top_level_surface() -> None:
    assert ironroot.__all__ == ["__version__"]


@pytest.mark.parametrize(
    "package",
    [p for p in LAYERS if (SRC / p / "__init__.py").exists()],
)
def test_each_layer_declares_its_public_names(package: str) -> None:
    module = importlib.import_module(f"ironroot.{package}")
    names = module.__all__
    assert len(names) == len(set(names)), "duplicate names in __all__"
    for name in names:
        assert not name.startswith("_") or name.startswith("__"), name
        assert hasattr(module, name), f"ironroot.{package}.{name} is declared but missing"


def test_errors_surface_is_every_error_class() -> None:
    import ironroot.errors as errors

    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.IronrootError)
    }
    assert set(errors.__all__) == classes


def test_architecture_page_lists_the_layers() -> None:
    """docs/architecture.md's layer table names exactly LAYERS, in order."""
    page = SRC.parents[1] / "docs" / "architecture.md"
    if not page.is_file():  # an installed package without the docs
        pytest.skip("docs/architecture.md is not beside this source tree")
    import re

    rows = re.findall(r"^\| \d+ \| `([^`]+)` \|", page.read_text(encoding="utf-8"), re.MULTILINE)
    assert rows == LAYERS


def test_relative_imports_are_resolved_and_checked(tmp_path: Path) -> None:
    """A relative import counts like an absolute one: ``from ..fleet import x`` written in
    ``ironroot/log/_x.py`` is an import of ``fleet`` (so the layering test catches it)."""
    assert _resolve_relative(SRC / "log" / "_x.py", 2, "fleet") == "ironroot.fleet"
    assert _resolve_relative(SRC / "log" / "_x.py", 1, "_store") == "ironroot.log._store"
    assert _resolve_relative(SRC / "log" / "__init__.py", 1, "_log") == "ironroot.log._log"
    assert _resolve_relative(SRC / "errors.py", 1, "crypto") == "ironroot.crypto"
    with pytest.raises(AssertionError, match="above ironroot"):
        _resolve_relative(SRC / "errors.py", 2, "os")
