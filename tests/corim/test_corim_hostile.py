"""CoRIMs written by a hostile vendor or changed on the way: inputs another CoRIM implementation
reads differently, values the CDDL forbids, and each refused with the exact typed error."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.corim import (
    CORIM_CONTENT_TYPE,
    ClassMap,
    Comid,
    Corim,
    CorimMeta,
    Digest,
    Entity,
    Environment,
    Flags,
    IntRange,
    Measurement,
    MeasurementValues,
    SignedCorim,
    Svn,
    Tagged,
    TagIdentity,
    Triple,
    Triples,
    Validity,
    Version,
)
from ironroot.cose import decode_cbor, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedCorim


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly this error message."""
    return f"^{re.escape(message)}$"


def _comid() -> Comid:
    return Comid(
        tag_identity=TagIdentity("fw-tag", 1),
        entities=(Entity("Vendor", (0,), "https://vendor.example"),),
        triples=Triples(
            reference=(
                Triple(
                    Environment(ClassMap(Tagged(37, b"\x22" * 16), "vendor", "model", 0, 0)),
                    (
                        Measurement(
                            MeasurementValues(
                                svn=Svn(4),
                                digests=(Digest(7, hashlib.sha384(b"fmc").digest()),),
                                flags=Flags(is_debug=False),
                            ),
                            mkey="fmc",
                        ),
                    ),
                ),
            ),
        ),
    )


def _corim() -> Corim:
    return Corim(
        id="fw-1",
        tags=(_comid(),),
        rim_validity=Validity(not_after=2_000_000_000, not_before=1_700_000_000),
        entities=(Entity("Vendor", (1,)),),
    )


# --- map keys: only integers and text ------------------------------------------------------

# A decoded CBOR map is a Python dict, where false == 0, true == 1, 1.0 == 1 and cbor2's simple
# value 1 == 1: a map keyed by any of them would be read as if keyed by the integer, though
# every other CoRIM implementation sees a different key (or an extension).
_Path = tuple[object, ...]


def _int_keys(value: object, path: _Path = ()) -> Iterator[tuple[_Path, int]]:
    """Every integer map key of a built CoRIM, inside its CoMID byte strings too."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, int):
                yield path, key
            yield from _int_keys(item, (*path, key))
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            yield from _int_keys(item, (*path, number))
    elif isinstance(value, cbor2.CBORTag):
        yield from _int_keys(value.value, (*path, "tag"))
    elif isinstance(value, bytes) and value[:1] and value[0] >> 5 == 5:  # a CoMID in a 506 tag
        yield from _int_keys(decode_cbor(value), (*path, "cbor"))


def _rekeyed(value: object, path: _Path, key: int, new: object) -> object:
    if isinstance(value, bytes):
        return cbor2.dumps(_rekeyed(decode_cbor(value), path[1:], key, new))
    if isinstance(value, cbor2.CBORTag):
        return cbor2.CBORTag(value.tag, _rekeyed(value.value, path[1:], key, new))
    if not path:
        assert isinstance(value, Mapping)
        return {(new if k == key and isinstance(k, int) else k): v for k, v in value.items()}
    if isinstance(value, Mapping):
        return {
            k: (_rekeyed(v, path[1:], key, new) if k == path[0] else v) for k, v in value.items()
        }
    assert isinstance(value, list | tuple)
    items = list(value)
    assert isinstance(path[0], int)
    items[path[0]] = _rekeyed(items[path[0]], path[1:], key, new)
    return items


def _look_alikes(key: int) -> list[object]:
    out: list[object] = [float(key)]
    if key in (0, 1):
        out.append(bool(key))
    if 0 <= key < 20:
        out.append(cbor2.CBORSimpleValue(key))
    return out


_BUILT = decode_cbor(_corim().encode())  # tags kept as they are (cbor2.loads reads tag 1)
_KEYS = list(_int_keys(_BUILT))


@settings(max_examples=examples(100), deadline=None)
@given(
    st.sampled_from(_KEYS).flatmap(
        lambda pk: st.tuples(st.just(pk), st.sampled_from(_look_alikes(pk[1])))
    )
)
def test_a_map_key_that_equals_an_integer_but_is_not_one_is_refused(
    case: tuple[tuple[_Path, int], object],
) -> None:
    (path, key), new = case
    data = cbor2.dumps(_rekeyed(_BUILT, path, key, new))
    with pytest.raises(MalformedCorim, match=r"key .* is not an integer or text"):
        Corim.parse(data)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            cbor2.CBORTag(501, {False: "fw-1", True: [_comid().to_tag()]}),
            "corim-map key False is not an integer or text",
        ),
        (
            cbor2.CBORTag(501, {0.0: "fw-1", 1: [_comid().to_tag()]}),
            "corim-map key 0.0 is not an integer or text",
        ),
        (
            cbor2.CBORTag(501, {0: "fw-1", 1: [_comid().to_tag()], b"\x04": {1: 1}}),
            "corim-map key b'\\x04' is not an integer or text",
        ),
        (
            cbor2.CBORTag(501, {cbor2.CBORSimpleValue(0): "fw-1", 1: [_comid().to_tag()]}),
            "corim-map key CBORSimpleValue(0) is not an integer or text",
        ),
        (
            cbor2.CBORTag(501, {0: "fw-1", 1: [_comid().to_tag()], cbor2.CBORTag(2, b"\x01"): 1}),
            "corim-map key CBORTag(2, b'\\x01') is not an integer or text",
        ),
        (
            cbor2.CBORTag(501, {0: "fw-1", 1: [_comid().to_tag()], None: 1}),
            "corim-map key None is not an integer or text",
        ),
    ],
)
def test_corim_map_keys_of_another_type_are_refused(value: object, message: str) -> None:
    with pytest.raises(MalformedCorim, match=exactly(message)):
        Corim.parse(cbor2.dumps(value))


def test_a_corim_meta_keyed_by_false_is_refused() -> None:
    # {false: signer} read as {0: signer} would name a signer no other verifier sees.
    meta = cbor2.dumps({False: {0: "Vendor signing key"}})
    protected = {3: CORIM_CONTENT_TYPE, 8: meta}
    forged = sign1(PrivateKey.generate(Algorithm.ES256), _corim().encode(), protected).encode()
    with pytest.raises(
        MalformedCorim, match=exactly("corim-meta-map key False is not an integer or text")
    ):
        SignedCorim.parse(forged)


def test_a_comid_with_a_float_key_is_refused() -> None:
    data = encode_cbor({(1.0 if k == 1 else k): v for k, v in _comid().to_cbor().items()})
    with pytest.raises(
        MalformedCorim, match=exactly("concise-mid-tag key 1.0 is not an integer or text")
    ):
        Comid.parse(data)


# --- values the CDDL forbids -------------------------------------------------------------------


def _with_mval(mval: object) -> bytes:
    """A CoMID whose one reference measurement has the values ``mval``."""
    return encode_cbor({1: {0: "t"}, 4: {0: [[{0: {1: "vendor"}}, [{0: "fmc", 1: mval}]]]}})


def test_empty_integrity_registers_are_refused() -> None:
    # integrity-registers = { + id => digests }: an empty map states nothing, and a
    # measurement holding only it was parsed, then could not be encoded again.
    with pytest.raises(MalformedCorim, match=exactly("integrity-registers must not be empty")):
        Comid.parse(_with_mval({14: {}}))


# --- the signed CoRIM's signer metadata ------------------------------------------------------


def _signed(protected: dict[object, object]) -> bytes:
    return sign1(PrivateKey.generate(Algorithm.ES256), _corim().encode(), protected).encode()


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({}, "CWT claims need iss (1), the signer, as text"),
        ({2: "fw-1"}, "CWT claims need iss (1), the signer, as text"),
        ({1: b"vendor"}, "CWT claims need iss (1), the signer, as text"),
        ({1: "vendor", 2: 7}, "CWT claim sub (2) must be text"),
        ({1: "vendor", 4: "2030-01-01"}, "CWT claim 4 is not an integer or a finite float (exp)"),
        ({1: "vendor", 4: True}, "CWT claim 4 is not an integer or a finite float (exp)"),
        (
            {1: "vendor", 5: cbor2.CBORTag(1, 0)},
            "CWT claim 5 is not an integer or a finite float (nbf)",
        ),
        ({1: "vendor", 5: float("nan")}, "CWT claim 5 is not an integer or a finite float (nbf)"),
        ({1: "vendor", 4: float("inf")}, "CWT claim 4 is not an integer or a finite float (exp)"),
    ],
)
def test_cwt_claims_that_name_no_signer_or_no_time_are_refused(
    claims: dict[object, object], message: str
) -> None:
    # cwt-claims = {1: iss tstr, ? 2: sub tstr, ? 4: exp int/float, ? 5: nbf int/float, ...}:
    # a signed CoRIM's claims say who signed it; without iss they identify nobody.
    with pytest.raises(MalformedCorim, match=exactly(message)):
        SignedCorim.parse(_signed({3: CORIM_CONTENT_TYPE, 15: claims}))


def test_cwt_claims_with_iss_and_numeric_times_parse() -> None:
    claims = {1: "vendor", 2: "fw-1", 4: 2_000_000_000, 5: 1.7e9, -70000: "extension"}
    signed = SignedCorim.parse(_signed({3: CORIM_CONTENT_TYPE, 15: claims}))
    assert signed.cwt_claims == claims


def test_a_version_scheme_may_be_text() -> None:
    # $version-scheme /= int / text (RFC 9393 §4.1): a CoMID naming its scheme by text is
    # valid and was refused.
    comid = Comid.parse(_with_mval({0: {0: "1.2.3-rc1", 1: "semver-with-build"}}))
    (triple,) = comid.triples.reference
    assert triple.measurements[0].mval.version == Version("1.2.3-rc1", "semver-with-build")
    assert Comid.parse(comid.encode()) == comid


@pytest.mark.parametrize("scheme", [True, b"semver", 1.0, None])
def test_a_version_scheme_of_another_type_is_refused(scheme: object) -> None:
    with pytest.raises(MalformedCorim, match=exactly("version-scheme must be an integer or text")):
        Comid.parse(_with_mval({0: {0: "1.2.3", 1: scheme}}))


def test_a_null_tag_version_is_refused() -> None:
    data = encode_cbor({**_comid().to_cbor(), 1: {0: "fw-tag", 1: None}})
    with pytest.raises(MalformedCorim, match=exactly("tag-version must be an unsigned integer")):
        Comid.parse(data)


@pytest.mark.parametrize(
    ("protected", "message"),
    [
        ({3: CORIM_CONTENT_TYPE, 15: None}, "CWT claims must be a map"),
        ({3: CORIM_CONTENT_TYPE, 8: None}, "corim-meta must be a byte string"),
        ({3: CORIM_CONTENT_TYPE, 8: None, 15: {1: "vendor"}}, "corim-meta must be a byte string"),
        ({3: CORIM_CONTENT_TYPE, 4: None, 15: {1: "vendor"}}, "kid must be a byte string"),
    ],
)
def test_a_null_corim_meta_cwt_claims_or_kid_is_refused(
    protected: dict[object, object], message: str
) -> None:
    # "15: null" passed for the CWT claims a signed CoRIM must carry (8 or 15): it was read as
    # absent, and the CoRIM named no signer at all.
    with pytest.raises(MalformedCorim, match=exactly(message)):
        SignedCorim.parse(_signed(protected))


# --- property: any decoded value, wherever a parser reads one, is read or MalformedCorim ---------

_ANY_KEY = st.integers(-2, 16) | st.text(max_size=2) | st.booleans() | st.floats(0, 3)
_ANY_TAG = st.sampled_from([1, 32, 37, 111, 501, 506, *range(550, 565)])
_ANY = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=40)
    | st.just(cbor2.undefined),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_ANY_KEY, inner, max_size=4)
        | st.builds(cbor2.CBORTag, _ANY_TAG, inner)
    ),
    max_leaves=12,
)
_READERS = {
    "corim": Corim.from_value,
    "comid": Comid.from_value,
    "triples": Triples.parse,
    "environment": Environment.parse,
    "measurement": Measurement.parse,
    "mval": MeasurementValues.parse,
    "digest": Digest.parse,
    "svn": Svn.parse,
    "flags": Flags.parse,
    "entity": Entity.parse,
    "validity": Validity.parse,
    "tagged": lambda v: Tagged.parse(v, frozenset({37, 111, *range(550, 565)}), "value"),
    "corim-meta": lambda v: CorimMeta.parse(cbor2.dumps(v)),
}


@settings(max_examples=examples(300), deadline=None)
@given(st.sampled_from(sorted(_READERS)), _ANY)
def test_any_value_is_read_or_refused_as_malformed_corim(reader: str, value: object) -> None:
    try:
        parsed = _READERS[reader](value)
    except MalformedCorim:
        return
    to_cbor = getattr(parsed, "to_cbor", None)
    if to_cbor is not None:
        with contextlib.suppress(MalformedCorim):
            encode_cbor(to_cbor())


def test_an_int_range_may_be_a_bare_integer() -> None:
    # int-range-type-choice = int / tagged-int-range: a bare integer is the one value allowed
    # (a range from it to itself); such CoMIDs were refused.
    comid = Comid.parse(_with_mval({15: -3}))
    (triple,) = comid.triples.reference
    assert triple.measurements[0].mval.int_range == IntRange(-3, -3)
    assert Comid.parse(comid.encode()) == comid


@pytest.mark.parametrize("value", [True, 1.0, "3", None])
def test_an_int_range_of_another_type_is_refused(value: object) -> None:
    with pytest.raises(
        MalformedCorim, match=exactly("int-range must be an integer or carry CBOR tag 564")
    ):
        Comid.parse(_with_mval({15: value}))


# --- validity: epoch times may be floats (RFC 8949 §3.4.2) ---------------------------------


def test_validity_times_may_be_floats_read_inwards() -> None:
    # A float epoch time is valid CBOR tag 1 content and such CoRIMs were refused. Whole
    # seconds are kept: not-before rounded up and not-after down, never widening the window.
    window = {0: cbor2.CBORTag(1, 1_700_000_000.5), 1: cbor2.CBORTag(1, 2_000_000_000.75)}
    assert Validity.parse(window) == Validity(not_after=2_000_000_000, not_before=1_700_000_001)
    assert Validity.parse({1: cbor2.CBORTag(1, 1e9)}) == Validity(not_after=1_000_000_000)


@pytest.mark.parametrize(
    ("time", "message"),
    [
        (float("nan"), "not-after must be an integer or a finite float"),
        (float("inf"), "not-after must be an integer or a finite float"),
        (True, "not-after must be an integer or a finite float"),
        ("2030-01-01T00:00:00Z", "not-after must be an integer or a finite float"),
    ],
)
def test_a_validity_time_that_is_no_number_is_refused(time: object, message: str) -> None:
    with pytest.raises(MalformedCorim, match=exactly(message)):
        Validity.parse({1: cbor2.CBORTag(1, time)})


def test_a_float_window_that_rounds_to_nothing_is_refused() -> None:
    # not-before 10.2 and not-after 10.7 hold no whole second.
    window = {0: cbor2.CBORTag(1, 10.2), 1: cbor2.CBORTag(1, 10.7)}
    with pytest.raises(MalformedCorim, match=exactly("validity not-after is before not-before")):
        Validity.parse(window)


# --- critical headers (RFC 9052 §3.1) -----------------------------------------------------------


def test_a_signed_corim_with_a_critical_header_it_does_not_process_is_refused_at_parse() -> None:
    # The signer marks header 99 critical: a recipient that does not process it must fail. The
    # CoRIM parsed, and its values and dates were used wherever its signature is not checked
    # (a logged statement without vendor keys); verify() then raised a bare MalformedInput.
    key = PrivateKey.generate(Algorithm.ES256)
    data = sign1(key, _corim().encode(), {3: CORIM_CONTENT_TYPE, 15: {1: "v"}, 99: 1, 2: [99]})
    with pytest.raises(
        MalformedCorim, match=exactly("signed CoRIM: critical header 99 is not understood")
    ):
        SignedCorim.parse(data.encode())


@pytest.mark.parametrize("critical", [[8], [15], [3, 4, 8, 15]])
def test_a_signed_corim_may_mark_the_headers_it_carries_critical(critical: list[int]) -> None:
    # corim-meta (8), CWT claims (15), content type (3) and kid (4) are what a signed CoRIM's
    # reader processes: marked critical, they were refused at verify ("not understood").
    key = PrivateKey.generate(Algorithm.ES256)
    meta = CorimMeta("vendor").encode()
    protected = {3: CORIM_CONTENT_TYPE, 4: key.kid, 8: meta, 15: {1: "v"}, 2: critical}
    signed = SignedCorim.parse(sign1(key, _corim().encode(), protected).encode())
    signed.verify(key.public_key)
