"""The OpenAPI description's tile path patterns agree with the router's tile path parser."""

from __future__ import annotations

import re

import pytest

from ironroot.errors import MalformedInput
from ironroot.log import parse_tile_path
from ironroot.transparency._openapi import OPENAPI

STORE_INDEPENDENT = True  # no test here opens a log store (conftest.py)

_TILE = OPENAPI["paths"]["/tile/{L}/{N}"]["get"]["parameters"]
LEVEL = re.compile(_TILE[0]["schema"]["pattern"])
INDEX = re.compile(_TILE[1]["schema"]["pattern"])
BUNDLE_INDEX = re.compile(
    OPENAPI["paths"]["/tile/entries/{N}"]["get"]["parameters"][0]["schema"]["pattern"]
)

VALID = [
    ("0", "000"),
    ("0", "001.p/1"),
    ("1", "x001/x234/067"),
    ("63", "x999/999.p/255"),
    ("9", "x036/x028/x797/x018/x963/967"),
    ("entries", "x123/456.p/17"),
]
INVALID = [
    ("64", "000"),
    ("01", "000"),
    ("-1", "000"),
    ("0", "1"),
    ("0", "0001"),
    ("0", "x001"),
    ("0", "001/002"),
    ("0", "001.p/0"),
    ("0", "001.p/256"),
    ("0", "001.p/007"),
    ("0", "001.p/"),
    ("0", "x001/x002/x003/x004/x005/x006/007"),
    ("0", "X001/002"),
]


def test_index_pattern_is_anchored_and_shared() -> None:
    assert INDEX.pattern.startswith("^")
    assert INDEX.pattern.endswith("$")
    assert BUNDLE_INDEX.pattern == INDEX.pattern


@pytest.mark.parametrize(("level", "index"), VALID)
def test_valid_paths_match_the_patterns_and_parse(level: str, index: str) -> None:
    if level != "entries":
        assert LEVEL.fullmatch(level)
    assert INDEX.fullmatch(index)
    parse_tile_path(f"tile/{level}/{index}")


@pytest.mark.parametrize(("level", "index"), INVALID)
def test_invalid_paths_fail_both_the_patterns_and_the_parser(level: str, index: str) -> None:
    assert not (LEVEL.fullmatch(level) and INDEX.fullmatch(index))
    with pytest.raises(MalformedInput):
        parse_tile_path(f"tile/{level}/{index}")
