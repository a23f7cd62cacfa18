"""Hostile ``ironroot-lms-leaves`` headers: whatever a statement holds there (any CBOR value,
in the protected header or out of it), reading its leaves gives the leaves or one typed
``MalformedStatement``/``LimitExceeded`` naming the fault, never another exception, and
``firmware leaves`` exits 2 for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest
from cbor2 import CBORTag
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cli import main
from ironroot.cose import HASH_SHA384, Sign1, SignedStatement, create_statement, encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import LimitExceeded, MalformedInput, MalformedStatement
from ironroot.firmware import (
    LMS_LEAVES_HEADER,
    MANIFEST_CONTENT_TYPE,
    LoggedLmsLeaf,
    find_lms_leaf_reuse,
    logged_lms_leaves,
)

KEY = PrivateKey.generate(Algorithm.ES384)
_LEAF = {
    "role": "vendor",
    "key-hash": bytes(range(48)),
    "leaf": 3,
    "message": b"\1" * 48,
    "signature-hash": b"\2" * 48,
}
_UNPROTECTED = (
    "ironroot-lms-leaves must be in the protected header (signed with the statement), not the"
    " unprotected one"
)
# every message logged_lms_leaves may refuse a header with
_MESSAGES = {
    "ironroot-lms-leaves must be an array of one or two LMS leaf maps",
    'an LMS leaf\'s role must be "vendor" or "owner", each once',
    "an LMS leaf's leaf must be an integer 0–4294967295",
    "an LMS leaf of ironroot-lms-leaves must be a map of exactly role, key-hash, leaf,"
    " message and signature-hash",
    *(f"an LMS leaf's {n} must be a 48-byte SHA-384" for n in ("key-hash", "message",
                                                                "signature-hash")),
}  # fmt: skip


def _statement(headers: dict[object, object]) -> bytes:
    return create_statement(
        KEY,
        b"manifest",
        iss="https://vendor.example",
        sub="pkg:firmware/acme/bmc",
        hash_envelope=True,
        hash_alg=HASH_SHA384,
        preimage_content_type=MANIFEST_CONTENT_TYPE,
        headers=headers,  # type: ignore[arg-type]
    )


def _unprotected(value: object, protected: dict[object, object] | None = None) -> bytes:
    """A manifest statement with ``value`` under the leaves label in its unprotected header."""
    msg: Sign1 = SignedStatement.parse(_statement(protected or {})).sign1
    moved = MappingProxyType({LMS_LEAVES_HEADER: value})
    return dataclasses.replace(msg, unprotected=moved).encode()


def test_leaves_in_the_unprotected_header_are_refused_not_read_as_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old behaviour: a statement whose leaves were in the unprotected header (unsigned: a
    signer that put them there, or anyone on the way) read as one that logs none, so a
    release reusing a leaf passed ``find_lms_leaf_reuse`` and ``publish --logged`` without a
    word. The header is signed or it is refused, as the profile's other protected labels."""
    for data in (_unprotected([_LEAF]), _unprotected([_LEAF], {"other": 1})):
        with pytest.raises(MalformedStatement) as exc:
            logged_lms_leaves(data)
        assert (exc.value.code, exc.value.detail) == ("malformed-statement", _UNPROTECTED)
        with pytest.raises(MalformedStatement):
            find_lms_leaf_reuse([_statement({LMS_LEAVES_HEADER: [_LEAF]}), data])
    path = tmp_path / "moved.manifest.ts"
    path.write_bytes(_unprotected([_LEAF]))
    assert main(["firmware", "leaves", str(path)]) == 2
    assert capsys.readouterr().err == f"ironroot: malformed-statement: {path}: {_UNPROTECTED}\n"


_LABELS = st.one_of(st.sampled_from(sorted(_LEAF)), st.text(max_size=8), st.integers(-30, 30))
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.sampled_from([-1, 0, 1 << 32, (1 << 32) - 1, (1 << 64) - 1, -(1 << 64)]),
    st.floats(allow_nan=True),
    st.binary(max_size=64),
    st.sampled_from([b"\0" * 47, b"\0" * 48, b"\0" * 49]),
    st.text(max_size=10),
    st.sampled_from(["vendor", "owner"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_LABELS, inner, max_size=6)
    ),
    max_leaves=40,
)


def _leaf_like() -> st.SearchStrategy[dict[object, object]]:
    """A leaf map with each field kept, dropped or replaced, and maybe more keys."""
    fields = {
        name: st.one_of(st.just(value), _VALUES) for name, value in _LEAF.items()
    }  # fmt: skip
    return st.fixed_dictionaries({}, optional={**fields, "extra": _VALUES, 3: _VALUES})  # type: ignore[arg-type]


_HEADERS = st.one_of(
    st.sampled_from([[_LEAF], [_LEAF, {**_LEAF, "role": "owner"}]]),
    _VALUES,
    st.lists(_leaf_like(), min_size=0, max_size=3),
    st.lists(st.recursive(st.just(1), st.lists, max_leaves=30), max_size=1),
)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(value=_HEADERS, unprotected=st.booleans())
def test_any_leaves_header_is_read_or_refused_with_a_typed_error(
    value: object, unprotected: bool
) -> None:
    try:
        data = _unprotected(value) if unprotected else _statement({LMS_LEAVES_HEADER: value})
    except MalformedInput:
        return  # nothing to sign (no CBOR for it): create_statement refused it, typed
    leaves = _read(data)
    if isinstance(leaves, LimitExceeded):
        assert leaves.detail.startswith("CBOR nesting deeper than")
    elif isinstance(leaves, MalformedStatement):
        assert leaves.detail in (_MESSAGES | {_UNPROTECTED})
        assert not unprotected or leaves.detail == _UNPROTECTED
    else:
        assert isinstance(leaves, tuple), leaves  # no other MalformedInput
        assert not unprotected
        assert 1 <= len(leaves) <= 2
        assert all(isinstance(x, LoggedLmsLeaf) for x in leaves)
        assert {x.role for x in leaves} <= {"vendor", "owner"}
        assert all(0 <= x.leaf <= 0xFFFF_FFFF and len(x.key_hash) == 48 for x in leaves)


def _read(data: bytes) -> tuple[LoggedLmsLeaf, ...] | MalformedInput:
    """The leaves of ``data``, or the typed error that refused it (any other escapes)."""
    try:
        return logged_lms_leaves(data)
    except MalformedInput as exc:
        return exc


def test_cli_leaves_keeps_the_code_of_a_statement_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Old behaviour: ``firmware leaves`` (and ``publish --logged``) named the file in the
    error by raising its class again with the detail alone: a statement signed with an
    algorithm Ironroot does not know was ``malformed-statement``, not the
    ``unsupported-algorithm`` the library says (the code scripts match on)."""
    protected = encode_cbor(
        {1: -65535, 15: {1: "https://vendor.example", 2: "pkg:firmware/acme/bmc"},
         258: -43, 259: MANIFEST_CONTENT_TYPE}
    )  # fmt: skip
    path = tmp_path / "unknown.manifest.ts"
    path.write_bytes(encode_cbor(CBORTag(18, [protected, {}, b"\0" * 48, b"signature"])))
    assert main(["firmware", "leaves", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: unsupported-algorithm: {path}: unsupported COSE algorithm -65535\n"
    )
