"""No CBOR map label is read under another spelling: a decoded map is a Python dict, where
``1.0 == 1`` and ``True == 1``, so a map keyed by ``1.0`` or ``true`` is found by
``get(1)`` though every other CBOR reader sees another key (two verifiers, two readings).

For each target whose parsers read every map they are given, every integer label of every
map in its seeds (inside byte strings that hold CBOR too: protected headers, payloads) is
written as a float, and as a boolean where it is 0 or 1; the seed with that one label
changed must be refused. The EAR claims and COSE_Key labels were read this way before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import cbor2
import pytest
from _targets import TARGETS

from ironroot.errors import IronrootError
from ironroot_vectors import vectors_missing

# Targets that refuse any map they cannot read whole (no header bucket left unread, no
# signature check they swallow); a receipt or a key set in them is checked, not carried.
_READ_WHOLE = (
    "corim",
    "ear-claims",
    "key-set",
    "receipt",
    "rot-quote",
    "sfr-corim",
    "transparent-statement",
    "witnessed-statement",
)

_Path = tuple[tuple[str, object], ...]


def _labels(value: object, path: _Path = ()) -> Iterator[tuple[_Path, int]]:
    """(path to a map, one of its integer labels), for every map in ``value``."""
    if isinstance(value, cbor2.CBORTag):
        yield from _labels(value.value, (*path, ("tag", None)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _labels(item, (*path, ("item", i)))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, int) and not isinstance(key, bool):
                yield path, key
            yield from _labels(item, (*path, ("member", key)))
    elif isinstance(value, bytes) and value[:1] and value[0] >> 5 in (4, 5, 6):
        try:
            inner = cbor2.loads(value)
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
            return
        if cbor2.dumps(inner) == value:  # CBOR in a byte string, encoded as cbor2 would
            yield from _labels(inner, (*path, ("cbor", None)))


def _relabelled(value: object, path: _Path, label: int, alias: object) -> object:
    """``value`` with ``label`` of the map at ``path`` written as ``alias``."""
    if not path:
        assert isinstance(value, Mapping)
        return {(alias if k == label and type(k) is int else k): v for k, v in value.items()}
    (kind, step), rest = path[0], path[1:]
    if kind == "tag":
        assert isinstance(value, cbor2.CBORTag)
        return cbor2.CBORTag(value.tag, _relabelled(value.value, rest, label, alias))
    if kind == "item":
        assert isinstance(value, list | tuple)
        assert isinstance(step, int)
        items = list(value)
        items[step] = _relabelled(items[step], rest, label, alias)
        return items
    if kind == "member":
        assert isinstance(value, Mapping)
        return {
            k: _relabelled(v, rest, label, alias) if k == step and type(k) is type(step) else v
            for k, v in value.items()
        }
    assert isinstance(value, bytes)
    return cbor2.dumps(_relabelled(cbor2.loads(value), rest, label, alias))


def _accepted(name: str, data: bytes) -> bool:
    try:
        TARGETS[name].run(data)
    except IronrootError:
        return False
    return True


@pytest.mark.parametrize("name", _READ_WHOLE)
def test_a_label_spelt_as_a_float_or_a_boolean_is_refused(name: str) -> None:
    logging.disable(logging.CRITICAL)
    try:
        # the CBOR seeds (ear-claims has a JSON one too) that the target accepts as they are
        seeds = [s for s in TARGETS[name].seeds() if s[:1] != b"{" and _accepted(name, s)]
        if not seeds:
            vectors_missing(f"{name}: no accepted seed (its seeds come from the vectors)")
        checked = 0
        for seed in seeds[:6]:
            value = cbor2.loads(seed)
            for path, label in _labels(value):
                for alias in (float(label), *((bool(label),) if label in (0, 1) else ())):
                    data = cbor2.dumps(_relabelled(value, path, label, alias))
                    checked += 1
                    assert not _accepted(name, data), (
                        f"{name}: label {label} at {path} spelt {alias!r} was read as {label}"
                    )
        assert checked
    finally:
        logging.disable(logging.NOTSET)
