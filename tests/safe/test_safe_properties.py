"""Property tests: a signed SFR mutated anywhere, and signed again by a trusted provider so
that its signature holds, verifies or raises a typed ``ironroot.errors`` error; never another
exception. The mutations reach every member of the JSON report (in a compact JWS) and every
node of the CoRIM report (in a COSE_Sign), the CoMID inside it included."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import cbor2
from _safe_helpers import KID, provider, report, report_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.cose import CONTENT_TYPE, cose_sign, decode_cbor, encode_cbor
from ironroot.cose import KID as KID_LABEL
from ironroot.errors import IronrootError
from ironroot.safe import build_sfr_corim, parse_report_json, verify_report

_KEY, _KEYS = provider()
_COMID = 506
_SETTINGS = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "None", "9.8", "10.0", "2023-02-30", "\ud800", "a1" * 48, "CVSS:4.0"])
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)
_cbor_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=12)
    | st.binary(max_size=4)
    | st.sampled_from([bytes(32), bytes(48), bytes(64), "9.8", "AV:N/AC:L/Au:N/C:C/I:C/A:C"])
)
_cbor_value = st.recursive(
    _cbor_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.integers(-2, 8) | st.text(max_size=2), inner, max_size=3)
        | st.builds(cbor2.CBORTag, st.sampled_from([1, 111, 501, 506]), inner)
    ),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, cbor2.CBORTag):
        out += _paths(node.value, (*here, "tag"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            out += _paths(item, (*here, i))
    elif isinstance(node, dict):
        for key, item in node.items():
            out += _paths(item, (*here, key))
    return out


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(node, cbor2.CBORTag):
        return cbor2.CBORTag(node.tag, _replace(node.value, rest, value))
    copy: Any = list(node) if isinstance(node, list) else dict(node)
    copy[step] = _replace(node[step], rest, value)
    return copy


def _thaw(node: Any) -> Any:
    """Decoded CBOR as plain lists and dicts, the CoMID byte string decoded in place."""
    if isinstance(node, cbor2.CBORTag):
        if node.tag == _COMID and isinstance(node.value, bytes):
            return cbor2.CBORTag(_COMID, _thaw(decode_cbor(node.value)))
        return cbor2.CBORTag(node.tag, _thaw(node.value))
    if isinstance(node, list | tuple):
        return [_thaw(item) for item in node]
    if isinstance(node, dict) or hasattr(node, "items"):
        return {key: _thaw(item) for key, item in node.items()}
    return node


def _freeze(node: Any) -> Any:
    if isinstance(node, cbor2.CBORTag):
        if node.tag == _COMID and isinstance(node.value, dict):
            return cbor2.CBORTag(_COMID, encode_cbor(_freeze(node.value)))
        return cbor2.CBORTag(node.tag, _freeze(node.value))
    if isinstance(node, list):
        return [_freeze(item) for item in node]
    if isinstance(node, dict):
        return {key: _freeze(item) for key, item in node.items()}
    return node


_CORIM = _thaw(decode_cbor(build_sfr_corim(parse_report_json(report_bytes()))))
_CORIM_PATHS = _paths(_CORIM)
_JSON = report(exp=2**40, nbf=1, iat=1, iss="lab", aud=["x"])
_JSON["device"]["manifest"] = [{"file_name": "a.c", "file_hash": "c3" * 64}]
_JSON_PATHS = _paths(_JSON)


def _jws(payload: bytes) -> bytes:
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=")  # noqa: E731
    signing_input = b64(b'{"alg":"ES512","kid":"%s"}' % KID.encode()) + b"." + b64(payload)
    return signing_input + b"." + b64(_KEY.sign(signing_input))


@_SETTINGS
@given(data=st.data())
def test_a_mutated_json_report_signed_again_is_typed(data: st.DataObject) -> None:
    doc = _JSON
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(doc)), label="path")
        doc = _replace(doc, path, data.draw(_json_value, label="value"))
    payload = json.dumps(doc).encode()
    with contextlib.suppress(IronrootError):
        verify_report(_jws(payload), _KEYS)


@_SETTINGS
@given(data=st.data())
def test_a_mutated_corim_report_signed_again_is_typed(data: st.DataObject) -> None:
    corim = _CORIM
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(_paths(corim)), label="path")
        corim = _replace(corim, path, data.draw(_cbor_value, label="value"))
    with contextlib.suppress(IronrootError):
        # a value deterministic CBOR cannot encode is no message to verify
        payload = encode_cbor(_freeze(corim))
        signed = cose_sign(
            [_KEY],
            payload,
            protected={CONTENT_TYPE: "application/rim+cbor"},
            signer_headers=[({KID_LABEL: KID.encode()}, {})],
        ).encode()
        verify_report(signed, _KEYS)


def test_the_unmutated_reports_verify() -> None:
    # the properties above start from reports that verify: a mutation is what they test
    assert verify_report(_jws(json.dumps(_JSON).encode()), _KEYS).report.expires_at == 2**40
    payload = encode_cbor(_freeze(_CORIM))
    assert len(_CORIM_PATHS) > 40
    assert len(_JSON_PATHS) > 30
    signed = cose_sign(
        [_KEY],
        payload,
        protected={CONTENT_TYPE: "application/rim+cbor"},
        signer_headers=[({KID_LABEL: KID.encode()}, {})],
    ).encode()
    assert verify_report(signed, _KEYS).report.device.vendor == "ACME Inc"
