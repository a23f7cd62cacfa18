"""CoRIM build → encode → parse round trips, signing, and malformed inputs."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ironroot.corim as corim_pkg
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
    LinkedTag,
    Locator,
    Measurement,
    MeasurementValues,
    RawValue,
    SignedCorim,
    Svn,
    Tagged,
    TagIdentity,
    Triple,
    Triples,
    Validity,
    Version,
    sign_corim,
)
from ironroot.cose import encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, LimitExceeded, MalformedCorim, MalformedInput


def _firmware_comid() -> Comid:
    return Comid(
        tag_identity=TagIdentity(b"\x11" * 16, 3),
        entities=(Entity("Ironroot Vendor", (0, 1), "https://vendor.example"),),
        linked_tags=(LinkedTag("other-tag", 1),),
        language="en",
        triples=Triples(
            reference=(
                Triple(
                    Environment(
                        ClassMap(Tagged(37, b"\x22" * 16), "vendor", "model", 0, 0),
                        Tagged(550, b"\x01" + b"\x02" * 16),
                        Tagged(560, b"group"),
                    ),
                    (
                        Measurement(
                            MeasurementValues(
                                version=Version("1.2.3", 16384),
                                svn=Svn(4, minimum=True),
                                digests=(Digest(7, hashlib.sha384(b"fmc").digest()),),
                                flags=Flags(is_debug=False, is_secure=True),
                                raw_value=RawValue(b"\xaa\xbb", b"\xff\x00"),
                                mac_addr=b"\x00\x11\x22\x33\x44\x55",
                                ip_addr=b"\x0a\x00\x00\x01",
                                serial_number="SN-1",
                                ueid=b"\x01" * 17,
                                uuid=b"\x33" * 16,
                                name="fmc",
                                cryptokeys=(Tagged(554, "MFkw"),),
                                int_range=IntRange(None, 10),
                            ),
                            mkey="fmc",
                            authorized_by=(Tagged(557, [1, b"\x00" * 32]),),
                        ),
                    ),
                ),
            ),
            endorsed=(
                Triple(
                    Environment(ClassMap(vendor="vendor")),
                    (Measurement(MeasurementValues(svn=Svn(2))),),
                ),
            ),
        ),
    )


def _corim() -> Corim:
    return Corim(
        id="fw-1",
        tags=(_firmware_comid(),),
        dependent_rims=(
            Locator(("https://a.example", "https://b.example"), (Digest(1, b"\0" * 32),)),
        ),
        profile="tag:ironroot.dev,2026:firmware",
        rim_validity=Validity(not_after=2_000_000_000, not_before=1_700_000_000),
        entities=(Entity("Ironroot Vendor", (1, 2)),),
    )


def test_public_surface() -> None:
    assert "Corim" in corim_pkg.__all__
    assert all(getattr(corim_pkg, name) is not None for name in corim_pkg.__all__)
    assert not [n for n in corim_pkg.__all__ if n.startswith("_")]


def test_build_encode_parse_round_trip() -> None:
    corim = _corim()
    data = corim.encode()
    assert data[:3] == b"\xd9\x01\xf5"  # tag 501
    parsed = Corim.parse(data)
    assert parsed == corim
    assert parsed.encode() == data
    comid = parsed.comids[0]
    assert Comid.parse(comid.encode()) == comid
    assert Comid.parse(encode_cbor(comid.to_tag())) == comid  # the 506-tagged form


def test_sign_and_verify_with_meta() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    meta = CorimMeta("Vendor signing key", "https://vendor.example", Validity(2_000_000_000, 1))
    data = sign_corim(_corim(), key, meta=meta)
    signed = SignedCorim.verify_bytes(data, key.public_key)
    assert signed.meta == meta
    assert signed.kid == key.kid
    assert signed.corim == _corim()
    assert signed.sign1.protected[3] == CORIM_CONTENT_TYPE
    with pytest.raises(BadSignature):
        SignedCorim.verify_bytes(data, PrivateKey.generate(Algorithm.ES384).public_key)


def test_sign_with_cwt_claims_only() -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_65)
    data = sign_corim(_corim(), key, cwt_claims={1: "https://vendor.example", 2: "fw"})
    signed = SignedCorim.verify_bytes(data, key.public_key)
    assert signed.meta is None
    assert signed.cwt_claims == {1: "https://vendor.example", 2: "fw"}
    with pytest.raises(MalformedCorim):
        sign_corim(_corim(), key)


def _signed_with(protected: dict[object, object], payload: bytes | None = None) -> bytes:
    key = PrivateKey.generate(Algorithm.ES256)
    return sign1(key, _corim().encode() if payload is None else payload, protected).encode()


@pytest.mark.parametrize(
    ("protected", "payload"),
    [
        ({3: "application/cbor", 8: CorimMeta("x").encode()}, None),
        ({3: CORIM_CONTENT_TYPE}, None),  # neither corim-meta nor CWT claims
        ({3: CORIM_CONTENT_TYPE, 8: b"\xa0"}, None),  # meta without signer
        ({3: CORIM_CONTENT_TYPE, 8: "not bytes"}, None),
        ({3: CORIM_CONTENT_TYPE, 8: CorimMeta("x").encode()}, b"\xa0"),  # not tag 501
        ({3: CORIM_CONTENT_TYPE, 15: "claims"}, None),
    ],
)
def test_malformed_signed_corim(protected: dict[object, object], payload: bytes | None) -> None:
    with pytest.raises(MalformedCorim):
        SignedCorim.parse(_signed_with(protected, payload))


def test_signed_corim_with_a_critical_header_it_does_not_process() -> None:
    # RFC 9052 §3.1: it verified, the signer's critical header (-70000) ignored.
    key = PrivateKey.generate(Algorithm.ES256)
    protected = {3: CORIM_CONTENT_TYPE, 15: {1: "https://vendor"}, 2: [-70000], -70000: 1}
    data = sign1(key, _corim().encode(), protected).encode()
    with pytest.raises(MalformedInput, match="critical header -70000 is not understood"):
        SignedCorim.verify_bytes(data, key.public_key)


def test_signed_corim_wrong_cose_tag_and_garbage() -> None:
    good = sign_corim(_corim(), PrivateKey.generate(Algorithm.ES256), meta=CorimMeta("x"))
    wrong_tag = b"\xd1" + good[1:]  # tag 17 (COSE_Mac0) instead of 18
    for data in (wrong_tag, b"", b"\xff", good[:-1], good + b"\x00"):
        with pytest.raises(MalformedCorim):
            SignedCorim.parse(data)


def _mutate(value: object) -> bytes:
    return encode_cbor(value)


def _minimal(mval: object) -> dict[object, object]:
    return {1: {0: "t"}, 4: {0: [[{0: {1: "v"}}, [{1: mval}]]]}}


@pytest.mark.parametrize(
    "data",
    [
        _mutate({4: {0: []}}),  # no tag-identity
        _mutate({1: {0: "t"}}),  # no triples
        _mutate({1: {0: "t"}, 4: {}}),  # empty triples-map
        _mutate({1: {0: b"short"}, 4: {0: []}}),  # tag-id bytes not 16
        _mutate({1: {0: "t", 7: 1}, 4: {1: []}}),  # unknown tag-identity key
        _mutate(_minimal({})),  # empty measurement values
        _mutate(_minimal({1: -1})),  # negative svn
        _mutate(_minimal({1: cbor2.CBORTag(554, 1)})),  # svn with a foreign tag
        _mutate(_minimal({2: [[7, b"\0" * 32]]})),  # SHA-384 digest of 32 bytes
        _mutate(_minimal({2: [[1]]})),  # digest without value
        _mutate(_minimal({2: []})),  # empty digests
        _mutate(_minimal({3: {0: 1}})),  # flag not a boolean
        _mutate(_minimal({4: b"raw"})),  # raw value without tag 560
        _mutate(_minimal({4: cbor2.CBORTag(563, [b"ab", b"a"])})),  # mask length differs
        _mutate(_minimal({5: b"mask"})),  # mask without a raw value
        _mutate(_minimal({6: b"\0" * 5})),  # MAC address of 5 bytes
        _mutate(_minimal({10: b"\0" * 15})),  # UUID of 15 bytes
        _mutate(_minimal({15: cbor2.CBORTag(564, [5, 1])})),  # min > max
        _mutate(_minimal({13: ["untagged key"]})),
        _mutate({1: {0: "t"}, 4: {0: [[{0: {}}, [{1: {11: "n"}}]]]}}),  # empty class-map
        _mutate({1: {0: "t"}, 4: {0: [[{0: {9: "x"}}, [{1: {11: "n"}}]]]}}),  # unknown class key
        _mutate({1: {0: "t"}, 4: {0: [[{0: {0: cbor2.CBORTag(37, b"x")}}, [{1: {11: "n"}}]]]}}),
        _mutate({1: {0: "t"}, 4: {0: [[{}, [{1: {11: "n"}}]]]}}),  # empty environment
        _mutate({1: {0: "t"}, 4: {0: [[{0: {1: "v"}}, []]]}}),  # no measurements
        _mutate({1: {0: "t"}, 4: {0: [[{0: {1: "v"}}]]}}),  # triple of one item
        _mutate({1: {0: "t"}, 4: {0: [[{0: {1: "v"}}, [{0: 1}]]]}}),  # measurement without mval
        _mutate({1: {0: "t"}, 4: {2: "not an array"}}),
        _mutate({1: {0: "t"}, 2: [{0: "n"}], 4: {1: []}}),  # entity without roles
        _mutate([1, 2]),  # not a map
        cbor2.dumps(cbor2.CBORTag(505, b"\xa0")),  # not a CoMID tag
        b"\xa1\x01",  # truncated
        b"\xa0\x00",  # trailing byte
        b"\xbf\xff",  # indefinite length
    ],
)
def test_malformed_comids(data: bytes) -> None:
    with pytest.raises(MalformedCorim):
        Comid.parse(data)


@pytest.mark.parametrize(
    "value",
    [
        {0: "id", 1: []},  # untagged
        cbor2.CBORTag(502, {0: "id", 1: []}),  # wrong tag
        cbor2.CBORTag(501, {0: "id"}),  # no tags
        cbor2.CBORTag(501, {0: "id", 1: []}),  # empty tags
        cbor2.CBORTag(501, {0: 5, 1: [cbor2.CBORTag(506, b"\xa0")]}),
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(507, b"\xa0")]}),  # unknown tag kind
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(506, b"\xa0\x00")]}),  # trailing in tag
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(506, {1: 2})]}),  # map, not bstr
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(505, b"\xa0")], 4: {0: 1}}),
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(505, b"\xa0")], 2: [{1: 2}]}),
        cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(505, b"\xa0")], 3: 7}),
        cbor2.CBORTag(
            501,
            {
                0: "id",
                1: [cbor2.CBORTag(505, b"\xa0")],
                4: {0: cbor2.CBORTag(1, 9), 1: cbor2.CBORTag(1, 1)},
            },
        ),
    ],
)
def test_malformed_corims(value: object) -> None:
    with pytest.raises(MalformedCorim):
        Corim.parse(cbor2.dumps(value))


def test_opaque_coswid_tags_are_kept() -> None:
    data = cbor2.dumps(cbor2.CBORTag(501, {0: "id", 1: [cbor2.CBORTag(505, b"\xa1\x00\x01")]}))
    corim = Corim.parse(data)
    assert corim.comids == ()
    assert corim.tags[0].tag == 505  # type: ignore[union-attr]
    assert Corim.parse(corim.encode()) == corim


def test_size_and_depth_limits() -> None:
    with pytest.raises(LimitExceeded):
        Corim.parse(b"\xd9\x01\xf5" + cbor2.dumps({0: "x" * (1024 * 1024)}))
    deep: object = 0
    for _ in range(40):
        deep = [deep]
    with pytest.raises(LimitExceeded):
        Comid.parse(cbor2.dumps(deep))


def test_truncations_of_a_built_corim_are_all_rejected() -> None:
    data = _corim().encode()
    for size in range(len(data)):
        with pytest.raises(MalformedCorim):
            Corim.parse(data[:size])


@settings(max_examples=examples(150), deadline=None)
@given(st.data())
def test_mutated_vectors_never_raise_untyped_errors(data: st.DataObject) -> None:
    encoded = _corim().encode()
    offset = data.draw(st.integers(0, len(encoded) - 1))
    value = data.draw(st.integers(0, 255))
    mutated = encoded[:offset] + bytes([value]) + encoded[offset + 1 :]
    with contextlib.suppress(MalformedInput):
        Corim.parse(mutated)


# --- property: random CoMIDs round-trip -----------------------------------------------------

_text = st.text(max_size=12)
_digest = st.one_of(
    st.binary(min_size=48, max_size=48).map(lambda b: Digest(7, b)),
    st.binary(min_size=32, max_size=32).map(lambda b: Digest(1, b)),
    st.tuples(st.text(min_size=1, max_size=5), st.binary(max_size=8)).map(lambda t: Digest(*t)),
)
_mval = st.builds(
    MeasurementValues,
    version=st.none() | st.builds(Version, _text, st.none() | st.integers(0, 2**16)),
    svn=st.none() | st.builds(Svn, st.integers(0, 2**32), st.booleans()),
    digests=st.lists(_digest, max_size=3).map(tuple),
    name=st.none() | _text,
    flags=st.none() | st.builds(Flags, is_debug=st.booleans(), is_tcb=st.none() | st.booleans()),
    raw_value=st.none()
    | st.binary(min_size=1, max_size=8).flatmap(
        lambda b: st.sampled_from([RawValue(b), RawValue(b, bytes(len(b)))])
    ),
).filter(lambda m: bool(m.version or m.svn or m.digests or m.name or m.flags or m.raw_value))
_class = st.builds(
    ClassMap,
    class_id=st.none() | st.binary(min_size=16, max_size=16).map(lambda b: Tagged(37, b)),
    vendor=st.none() | _text,
    model=st.none() | _text,
    layer=st.none() | st.integers(0, 2**32),
    index=st.none() | st.integers(0, 2**32),
).filter(lambda c: any(v is not None for v in (c.class_id, c.vendor, c.model, c.layer, c.index)))
_measurement = st.builds(Measurement, _mval, st.none() | _text | st.integers(0, 2**20), st.just(()))
_triple = st.builds(
    Triple,
    st.builds(Environment, _class),
    st.lists(_measurement, min_size=1, max_size=3).map(tuple),
)
_comid = st.builds(
    Comid,
    tag_identity=st.builds(TagIdentity, _text | st.binary(min_size=16, max_size=16)),
    triples=st.builds(
        Triples,
        reference=st.lists(_triple, min_size=1, max_size=3).map(tuple),
        endorsed=st.lists(_triple, max_size=2).map(tuple),
    ),
    entities=st.lists(
        st.builds(Entity, _text, st.lists(st.integers(0, 2), min_size=1, max_size=3).map(tuple)),
        max_size=2,
    ).map(tuple),
)


@settings(max_examples=examples(60), deadline=None)
@given(_comid)
def test_random_comids_round_trip(comid: Comid) -> None:
    data = comid.encode()
    assert Comid.parse(data) == comid
    corim = Corim("id", (comid,))
    assert Corim.parse(corim.encode()) == corim


def test_encoded_file_round_trip(tmp_path: Path) -> None:
    """Encoding to a file and back is byte-identical (what publication writes)."""
    path = tmp_path / "fw.corim"
    path.write_bytes(_corim().encode())
    assert Corim.parse(path.read_bytes()) == _corim()


@pytest.mark.parametrize(
    ("alg", "size"),
    [("sha-384", 32), ("SHA-384", 32), ("sha-256", 48), ("sha-512", 48), ("sha3-384", 64),
     ("sha-256-32", 32), (7, 32), (1, 48)],
)  # fmt: skip
def test_a_digest_named_by_text_must_have_its_algorithms_size(alg: int | str, size: int) -> None:
    # A 32-byte value labelled SHA-384 by its IANA Named Information name is not a SHA-384
    # digest: an integer id and its text name are held to the same size.
    with pytest.raises(MalformedCorim, match="needs"):
        Digest.parse([alg, b"\x11" * size])


@pytest.mark.parametrize(
    ("alg", "size"), [("sha-384", 48), ("sha-256", 32), ("sha-256-32", 4), ("my-alg-id", 4)]
)
def test_a_digest_named_by_text_of_the_right_size_parses(alg: str, size: int) -> None:
    assert Digest.parse([alg, b"\x11" * size]) == Digest(alg, b"\x11" * size)
