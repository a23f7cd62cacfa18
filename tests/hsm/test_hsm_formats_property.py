"""The HSM's own file formats under mutation (hypothesis): the sealed store's document, the
anchor and the audit log. Each decoder answers any input with a value or its typed error
(``MalformedInput``, or ``SealedStoreError`` where a sealed file does not open); never a
``KeyError``, ``TypeError`` or a library's exception.

The store and the anchor are sealed (AES-256-GCM under the device's secret), so only the HSM
writes what their decoders read; the log is plain text anyone with the directory edits. The
mutations start from real documents: a store holding a key of every type, identities and a
verifier, so that a mutation reaches every record's decoder.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import cbor2
import pytest
from _hsm_helpers import SECRET, make_device, new_hsm, sessions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import AuditChainBroken, MalformedInput, SealedStoreError
from ironroot.hsm import KeyType, MemoryStorage
from ironroot.hsm._anchor import Anchor, open_anchor
from ironroot.hsm._audit import AuditRecord, parse_audit_log, verify_audit
from ironroot.hsm._document import decode_store
from ironroot.hsm._storage import seal, unseal

_SUBSTITUTES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=True),
    st.binary(max_size=64),
    st.text(max_size=16),
    st.sampled_from(["EC-P384", "AES-256", "ML-KEM-768", "officer", "user", "sign", "wrap"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def files() -> dict[str, Any]:
    storage = MemoryStorage()
    hsm = new_hsm(make_device().identity, storage)
    officer, user, _auditor = sessions(hsm)
    for key_type in KeyType:
        hsm.generate(officer, key_type)
    hsm.sign(user, hsm.generate(officer, KeyType.EC_P256), b"m")
    hsm.flush()
    store, anchor = storage.read_store(), storage.read_anchor()
    assert store is not None
    assert anchor is not None
    return {
        "store": cbor2.loads(unseal(SECRET, store)),
        "anchor": cbor2.loads(unseal(SECRET, anchor)),
        "log": [json.loads(line) for line in storage.read_audit().splitlines()],
    }


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every place in a decoded document (maps and arrays, and the leaves in them)."""
    found = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _mutated(document: object, data: st.DataObject) -> object:
    """A copy of ``document`` with one to three places replaced or removed."""
    copy = cbor2.loads(cbor2.dumps(document))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(copy)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths))
        parent: Any = copy
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_SUBSTITUTES)
    return copy


_SETTINGS = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(data=st.data())
def test_a_mutated_store_document_decodes_or_is_malformed(
    files: dict[str, Any], data: st.DataObject
) -> None:
    try:
        encoded = cbor2.dumps(_mutated(files["store"], data))
    except (ValueError, TypeError, cbor2.CBOREncodeError):
        return
    with contextlib.suppress(MalformedInput):
        decode_store(encoded)


@_SETTINGS
@given(data=st.data())
def test_a_mutated_anchor_opens_or_is_a_sealed_store_error(
    files: dict[str, Any], data: st.DataObject
) -> None:
    try:
        encoded = cbor2.dumps(_mutated(files["anchor"], data))
    except (ValueError, TypeError, cbor2.CBOREncodeError):
        return
    try:
        anchor = open_anchor(SECRET, seal(SECRET, encoded))
    except SealedStoreError:
        return
    assert isinstance(anchor, Anchor)


def _as_text(value: object) -> str:
    """A substitute JSON cannot hold (bytes), as the text an editor would put there."""
    return value.hex() if isinstance(value, bytes) else str(value)


@_SETTINGS
@given(data=st.data(), raw=st.binary(max_size=256))
def test_a_mutated_audit_log_parses_or_is_malformed(
    files: dict[str, Any], data: st.DataObject, raw: bytes
) -> None:
    mutated: Any = _mutated(files["log"], data)
    lines = [json.dumps(record, default=_as_text).encode() for record in mutated]
    if data.draw(st.booleans()):
        lines.insert(data.draw(st.integers(0, len(lines))), raw)
    try:
        records = parse_audit_log(b"\n".join(lines) + b"\n")
    except MalformedInput:
        return
    assert all(isinstance(r, AuditRecord) for r in records)
    with contextlib.suppress(MalformedInput, AuditChainBroken):
        verify_audit(records)


@_SETTINGS
@given(raw=st.binary(max_size=512))
def test_arbitrary_bytes_are_never_a_sealed_store(raw: bytes) -> None:
    with pytest.raises(SealedStoreError):
        unseal(SECRET, raw)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("keys", 0, "created"), float("inf")),  # was OverflowError (int(inf))
        (("audit", "size"), float("-inf")),  # was OverflowError
        (("identities", 0, "n"), "32768"),  # was accepted, then TypeError at login
        (("identities", 0, "failures"), -1),  # was accepted
    ],
)
def test_found_by_mutation_a_number_that_is_not_a_count_is_malformed(
    files: dict[str, Any], path: tuple[object, ...], value: object
) -> None:
    document = cbor2.loads(cbor2.dumps(files["store"]))
    parent: Any = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    with pytest.raises(MalformedInput, match=r"not well formed|non-negative integer"):
        decode_store(cbor2.dumps(document))
