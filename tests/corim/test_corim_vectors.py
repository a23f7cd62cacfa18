"""Every CoRIM/CoMID vector from veraison/corim parses, with values read from its .diag source."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.corim import (
    ClassMap,
    Comid,
    Corim,
    Digest,
    Entity,
    Flags,
    IntRange,
    LinkedTag,
    Locator,
    RawValue,
    SignedCorim,
    Svn,
    Tagged,
    TagIdentity,
    Validity,
    Version,
)
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import AlgorithmNotAccepted, BadSignature, LimitExceeded, MalformedCorim

pytestmark = pytest.mark.vectors

ACME_DIGEST = bytes.fromhex("44aa336af4cb14a879432e53dd6571c7fa9bccafb75f488259262d6ea3a4d91b")
ACME_CLASS = Tagged(37, bytes.fromhex("67b28b6c34cc40a19117ab5b05911e37"))
ACME_TAG_ID = bytes.fromhex("3f06af63a93c11e4979700505690773f")
ACME = Entity("ACME Inc.", (0,), "https://acme.example")


def _oid(hexstr: str) -> Tagged:
    return Tagged(111, bytes.fromhex(hexstr))


def _ref(comid: Comid, i: int = 0) -> tuple[ClassMap | None, list[object]]:
    triple = comid.triples.reference[i]
    return triple.environment.class_map, [m.mval for m in triple.measurements]


def check_comid_1(c: Comid) -> None:
    assert c.tag_identity == TagIdentity(ACME_TAG_ID)
    assert c.entities == (ACME,)
    klass, (mval,) = _ref(c)
    assert klass == ClassMap(ACME_CLASS, "ACME Inc.", "ACME RoadRunner", 1)
    assert mval.version == Version("1.0.0", 16384)  # type: ignore[attr-defined]
    assert mval.digests == (Digest(1, ACME_DIGEST),)  # type: ignore[attr-defined]


def check_comid_1a(c: Comid) -> None:
    _, (a, b) = _ref(c)
    assert a.version == Version("1.0.0", 16384)  # type: ignore[attr-defined]
    assert b.version == Version("2.0.0", 16384)  # type: ignore[attr-defined]
    assert b.digests[0].value.hex().startswith("ffaa336a")  # type: ignore[attr-defined]


def check_comid_2(c: Comid) -> None:
    assert not c.triples.reference
    (triple,) = c.triples.endorsed
    assert triple.environment.class_map == ClassMap(
        ACME_CLASS, "ACME Inc.", "ACME Root of Trust", 0
    )
    assert [m.mval.svn for m in triple.measurements] == [Svn(1), Svn(2)]


def check_comid_2b(c: Comid) -> None:
    assert len(c.triples.reference) == 3
    wylie = [t.environment.class_map for t in c.triples.reference[1:]]
    assert [(k.vendor, k.model, k.layer, k.index) for k in wylie if k] == [
        ("WYLIE Inc.", "WYLIE Coyote Trusted OS", 2, 0),
        ("WYLIE Inc.", "WYLIE Coyote Trusted OS", 2, 1),
    ]
    assert c.triples.endorsed[0].measurements[0].mval.svn == Svn(1, minimum=False)


def check_comid_3(c: Comid) -> None:
    assert c.tag_identity.tag_id == "my-ns:acme-roadrunner-supplement"
    assert c.entities[0].roles == (1, 0, 2)
    klass, _ = _ref(c)
    assert klass is not None
    assert klass.class_id == _oid("5502C000")
    mkeys = [m.mkey for m in c.triples.reference[0].measurements]
    assert mkeys == [
        700,
        "my_element",
        _oid("5502C001"),
        Tagged(37, bytes.fromhex("67b28b6c34cc40a19117ab5b05911e38")),
        None,
    ]
    first = c.triples.reference[0].measurements[0].mval
    assert first.digests == (Digest(6, bytes.fromhex("ABCDEF00")),)


def check_comid_4(c: Comid) -> None:
    assert c.entities == ()
    _, (mval,) = _ref(c)
    assert mval.cryptokeys == (  # type: ignore[attr-defined]
        Tagged(554, "base64_key_ACME_MAX"),
        Tagged(555, "base64_cert_ACME_MAX"),
        Tagged(556, "base64_cert_path_ACME_MAX"),
    )


def check_comid_5(c: Comid) -> None:
    assert c.triples.reference[0].measurements[0].mkey == "thing 2"
    assert set(c.triples.other) == {2, 3}  # identity and attest-key triples
    assert len(c.triples.other[2]) == 4


def check_comid_6(c: Comid) -> None:
    assert c.triples.reference[0].environment.instance == Tagged(554, "base64_key_X")


def check_comid_7(c: Comid) -> None:
    (a, b) = c.triples.reference[0].measurements
    assert a.mval.int_range == IntRange(1, None)
    assert (b.mkey, b.mval.int_range) == (1, IntRange(-1, 1))


def check_comid_cend(c: Comid) -> None:
    assert set(c.triples.other) == {10}
    assert c.tag_identity.tag_id == "my-ns:acme-roadrunner-supplement"


def check_comid_cond_endorse_series(c: Comid) -> None:
    klass, (mval,) = _ref(c)
    assert klass == ClassMap(_oid("6086480186F84D0102030404"), "Acme Inc", "0123456789ABCDEF")
    assert mval.version == Version("2")  # type: ignore[attr-defined]
    assert set(c.triples.other) == {8}


def check_comid_design_cd(c: Comid) -> None:
    assert c.linked_tags == (LinkedTag(bytes.fromhex("97F5A7071C6F438F877A4A020780EBE9"), 0),)
    _, (state,) = _ref(c, 0)
    assert state.raw_value == RawValue(bytes(8))  # type: ignore[attr-defined]
    assert state.raw_value_mask == bytes.fromhex("FFFFFFFF00000000")  # type: ignore[attr-defined]
    _, (io,) = _ref(c, 1)
    assert io.digests[0].alg == 7  # type: ignore[attr-defined]
    assert io.digests[0].value.hex().upper().startswith("3FE18ECA4053879E")  # type: ignore[attr-defined]


def check_comid_domain_dep(c: Comid) -> None:
    assert set(c.triples.other) == {4}
    assert len(c.triples.other[4]) == 5


def check_comid_domain_mem(c: Comid) -> None:
    assert set(c.triples.other) == {5}


def check_comid_firmware_cd(c: Comid) -> None:
    assert c.entities[0].name == "Firmware MFG Inc."
    klass, (mval,) = _ref(c, 0)
    assert klass == ClassMap(None, "fwmfginc.example", "fwY_n5x", 0, 0)
    assert mval.svn == Svn(1)  # type: ignore[attr-defined]
    assert mval.digests == (  # type: ignore[attr-defined]
        Digest(
            7,
            bytes.fromhex(
                "15E77D6F133252F1DB7044901313884F2977D2109B33C79F33E079BFC78865255C0FB733C240FDDA544B8215D7B8F815"
            ),
        ),
    )
    assert c.triples.endorsed[0].environment.class_map.class_id == _oid("6086480186F84D010F046301")  # type: ignore[union-attr]


def check_comid_flags(c: Comid) -> None:
    flags = c.triples.endorsed[0].measurements[0].mval.flags
    assert flags == Flags(
        is_configured=True,
        is_secure=True,
        is_recovery=True,
        is_debug=False,
        is_replay_protected=True,
        is_integrity_protected=True,
        is_runtime_meas=True,
        is_immutable=True,
        is_tcb=True,
        is_confidentiality_protected=True,
    )
    assert len(c.linked_tags) == 2


def check_comid_integrity_registers(c: Comid) -> None:
    _, (mval,) = _ref(c)
    registers = mval.integrity_registers  # type: ignore[attr-defined]
    assert registers[0] == (Digest(1, ACME_DIGEST), Digest("my-alg-id", bytes.fromhex("deadbeef")))
    assert registers["my-ir"][1] == Digest("my-alg-id", bytes.fromhex("fefefafa"))


def check_comid_opaque_instance_id(c: Comid) -> None:
    instance = c.triples.reference[0].environment.instance
    assert instance is not None
    assert instance.tag == 560
    assert isinstance(instance.value, bytes)
    assert instance.value.hex().startswith("9f71ec4d223f4f89")


def check_comid_raw_value(c: Comid) -> None:
    values = [t.measurements[0].mval for t in c.triples.reference]
    assert values[0].raw_value == RawValue(bytes.fromhex("12345678"))
    assert values[1].raw_value == RawValue(bytes.fromhex("12340000"), bytes.fromhex("FFFF0000"))
    assert values[2].raw_value == RawValue(bytes.fromhex("12340000"))
    assert values[2].raw_value_mask == bytes.fromhex("FFFF0000")


def check_comid_series(c: Comid) -> None:
    assert set(c.triples.other) == {8}
    assert len(c.triples.other[8]) == 2


COMIDS: dict[str, Callable[[Comid], None]] = {
    "comid-1.cbor": check_comid_1,
    "comid-1a.cbor": check_comid_1a,
    "comid-2.cbor": check_comid_2,
    "comid-2b.cbor": check_comid_2b,
    "comid-3.cbor": check_comid_3,
    "comid-4.cbor": check_comid_4,
    "comid-5.cbor": check_comid_5,
    "comid-6.cbor": check_comid_6,
    "comid-7.cbor": check_comid_7,
    "comid-cend.cbor": check_comid_cend,
    "comid-cond-endorse-series.cbor": check_comid_cond_endorse_series,
    "comid-design-cd.cbor": check_comid_design_cd,
    "comid-domain-dep.cbor": check_comid_domain_dep,
    "comid-domain-mem.cbor": check_comid_domain_mem,
    "comid-firmware-cd.cbor": check_comid_firmware_cd,
    "comid-flags.cbor": check_comid_flags,
    "comid-integrity-registers.cbor": check_comid_integrity_registers,
    "comid-opaque-instance-id.cbor": check_comid_opaque_instance_id,
    "comid-raw-value.cbor": check_comid_raw_value,
    "comid-series.cbor": check_comid_series,
}


def _comid_dir(vectors: Path) -> Path:
    return vectors / "corim" / "comid" / "testcases"


def _corim_dir(vectors: Path) -> Path:
    return vectors / "corim" / "corim" / "testcases"


def test_every_vector_file_has_a_test(vectors: Path) -> None:
    assert {p.name for p in _comid_dir(vectors).glob("*.cbor")} == set(COMIDS)
    assert {p.name for p in _corim_dir(vectors).glob("*.cbor")} == set(CORIMS) | set(SIGNED)


@pytest.mark.parametrize("name", sorted(COMIDS))
def test_comid_vector(vectors: Path, name: str) -> None:
    data = (_comid_dir(vectors) / name).read_bytes()
    comid = Comid.parse(data)
    COMIDS[name](comid)
    again = Comid.parse(comid.encode())
    assert again == comid
    assert again.encode() == comid.encode()  # deterministic


def _good_corim(c: Corim, profile: str | None, extensions: bool) -> None:
    assert c.id == "test corim id"
    assert c.profile == profile
    assert (dict(c.extensions) == {-1: "foo"}) is extensions
    (comid,) = c.comids
    assert comid.language == "en-GB"
    assert comid.tag_identity.tag_id == base64.b64decode("Q7vjfy5hSzOu01PP8UKLFg==")
    entity = comid.entities[0]
    assert (entity.name, entity.reg_id, entity.roles) == (
        "ACME Ltd.",
        "https://acme.example",
        (0, 1, 2),
    )
    assert (dict(entity.extensions) == {-1: "123 Fake Street"}) is extensions
    klass, mvals = _ref(comid)
    assert klass == ClassMap(Tagged(560, b"acme-implementation-id-000000001"), "ACME", "RoadRunner")
    assert len(mvals) == 3
    first = comid.triples.reference[0].measurements[0]
    assert first.mkey == Tagged(37, base64.b64decode("MftavwI+SZKqTpX5wVA7+g=="))
    assert first.mval.digests == (
        Digest(1, base64.b64decode("h0KPxSKAPTEGXnvOPPA/5HUJZjHl4Hu9eg/eYMTPJcc=")),
    )
    assert (dict(first.mval.extensions) == {-1: 1720782190}) is extensions


def check_corim_1(c: Corim, vectors: Path) -> None:
    assert c.id == bytes.fromhex("284e6c3e5d9f4f6b851f5a4247f243a7")
    assert c.comids == (Comid.parse((_comid_dir(vectors) / "comid-1.cbor").read_bytes()),)


def check_corim_2(c: Corim, vectors: Path) -> None:
    (comid,) = c.comids
    endorsed = comid.triples.endorsed[0]
    assert endorsed.environment.class_map.model == "ACME RoadRunner Root of Trust"  # type: ignore[union-attr]
    assert endorsed.measurements[0].mval.svn == Svn(1)
    assert len(comid.triples.reference) == 3


def check_corim_design_cd(c: Corim, vectors: Path) -> None:
    assert c.dependent_rims == (
        Locator(("https://rims.example.com/path/to/file_adkfhaeria-dfka_efkj.rim",)),
    )
    assert c.profile == _oid("6086480186F84D010F06")
    assert c.comids == (Comid.parse((_comid_dir(vectors) / "comid-design-cd.cbor").read_bytes()),)


def check_corim_firmware_cd(c: Corim, vectors: Path) -> None:
    assert c.id == bytes.fromhex("29B834181A5C4E4EA53E8F8786BC8C5B")
    assert c.comids == (Comid.parse((_comid_dir(vectors) / "comid-firmware-cd.cbor").read_bytes()),)


def check_corim_roles(c: Corim, vectors: Path) -> None:
    assert c.entities == (Entity("OEM-A", (2,), "https://oem-a.example"),)
    assert c.comids[0].entities == ()


CORIMS: dict[str, Callable[[Corim, Path], None]] = {
    "corim-1.cbor": check_corim_1,
    "corim-2.cbor": check_corim_2,
    "corim-design-cd.cbor": check_corim_design_cd,
    "corim-firmware-cd.cbor": check_corim_firmware_cd,
    "corim-roles.cbor": check_corim_roles,
    "unsigned-good-corim.cbor": lambda c, _: _good_corim(c, None, False),
    "unsigned-example-corim.cbor": lambda c, _: _good_corim(
        c, "http://example.com/example-profile", True
    ),
    "unsigned-corim-with-extensions.cbor": lambda c, _: _good_corim(
        c, "http://example.com/test-profile", True
    ),
}
SIGNED = {
    "signed-good-corim.cbor": "unsigned-good-corim.cbor",
    "signed-example-corim.cbor": "unsigned-example-corim.cbor",
    "signed-corim-with-extensions.cbor": "unsigned-corim-with-extensions.cbor",
}


@pytest.mark.parametrize("name", sorted(CORIMS))
def test_corim_vector(vectors: Path, name: str) -> None:
    corim = Corim.parse((_corim_dir(vectors) / name).read_bytes())
    CORIMS[name](corim, vectors)
    assert Corim.parse(corim.encode()) == corim


def _vector_key(vectors: Path) -> PublicKey:
    return PublicKey.from_jwk((_corim_dir(vectors) / "src" / "ec-p256.jwk").read_text())


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_signed_corim_vector_verifies(vectors: Path, name: str) -> None:
    data = (_corim_dir(vectors) / name).read_bytes()
    signed = SignedCorim.verify_bytes(data, _vector_key(vectors))
    assert signed.algorithm is Algorithm.ES256
    assert signed.kid == b"1"
    assert signed.meta is not None
    assert signed.meta.signer_name == "ACME Ltd signing key"
    assert signed.meta.signer_uri == "https://acme.example"
    assert signed.meta.signature_validity == Validity(not_after=1767139200, not_before=1640908800)
    unsigned = Corim.parse((_corim_dir(vectors) / SIGNED[name]).read_bytes())
    assert signed.corim == unsigned


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_signed_corim_vector_rejects_tampering_and_other_keys(vectors: Path, name: str) -> None:
    data = bytearray((_corim_dir(vectors) / name).read_bytes())
    data[-5] ^= 0x01  # inside the signature
    with pytest.raises(BadSignature):
        SignedCorim.verify_bytes(bytes(data), _vector_key(vectors))
    original = (_corim_dir(vectors) / name).read_bytes()
    with pytest.raises(BadSignature):
        SignedCorim.verify_bytes(original, PrivateKey.generate(Algorithm.ES256).public_key)
    with pytest.raises(AlgorithmNotAccepted):
        SignedCorim.verify_bytes(original, PrivateKey.generate(Algorithm.ES384).public_key)


# --- property: every field of every vector replaced by a value of another shape -------------

_TAGS = (1, 2, 18, 32, 37, 111, 501, 505, 506, 508, 550, 560, 600, 2**40)
_HOSTILE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=4)
    | st.binary(max_size=64)
    | st.just(cbor2.undefined),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.integers(-2, 8) | st.text(max_size=2), inner, max_size=3)
        | st.builds(cbor2.CBORTag, st.sampled_from(_TAGS), inner)
    ),
    max_leaves=6,
)
_Path = tuple[tuple[str, object], ...]


def _paths(value: object, path: _Path = ()) -> Iterator[_Path]:
    """Every item of a decoded vector: map values, array items, tag contents, and the items
    of byte strings that hold CBOR (a 506 CoMID, a COSE payload or protected header)."""
    yield path
    if isinstance(value, Mapping):
        for key in value:
            yield from _paths(value[key], (*path, ("key", key)))
    elif isinstance(value, list | tuple):
        for number, item in enumerate(value):
            yield from _paths(item, (*path, ("item", number)))
    elif isinstance(value, cbor2.CBORTag):
        yield from _paths(value.value, (*path, ("tag", None)))
    elif isinstance(value, bytes) and value[:1] and value[0] >> 5 in (4, 5, 6):
        with contextlib.suppress(cbor2.CBORDecodeError, ValueError):
            yield from _paths(cbor2.loads(value), (*path, ("cbor", None)))


def _replaced(value: object, path: _Path, new: object) -> object:
    if not path:
        return new
    (kind, where), rest = path[0], path[1:]
    if kind == "key":
        assert isinstance(value, Mapping)
        out = dict(value)
        if rest or new is not _DELETE:
            out[where] = _replaced(value[where], rest, new)
        else:
            del out[where]
        return out
    if kind == "item":
        assert isinstance(value, list | tuple)
        assert isinstance(where, int)
        items = list(value)
        if rest or new is not _DELETE:
            items[where] = _replaced(items[where], rest, new)
        else:
            del items[where]
        return items
    if kind == "tag":
        assert isinstance(value, cbor2.CBORTag)
        return cbor2.CBORTag(value.tag, _replaced(value.value, rest, new))
    assert isinstance(value, bytes)
    return cbor2.dumps(_replaced(cbor2.loads(value), rest, new))


_DELETE = object()
_PARSERS: dict[str, Callable[[bytes], object]] = {
    "comid": Comid.parse,
    "corim": Corim.parse,
    "signed": SignedCorim.parse,
}


@settings(max_examples=examples(300), deadline=None)
@given(data=st.data())
def test_any_field_of_a_vector_replaced_is_a_corim_or_malformed(
    vectors: Path, data: st.DataObject
) -> None:
    """Wrong types, huge integers, floats, tags, deep values or nothing in place of any item
    of a real CoRIM, CoMID or signed CoRIM (inside its payload and its embedded CoMIDs too):
    it parses and encodes again, or it is ``MalformedCorim`` (``LimitExceeded`` past the
    limits); never ``KeyError``, ``TypeError`` or ``RecursionError``."""
    files = sorted([*_comid_dir(vectors).glob("*.cbor"), *_corim_dir(vectors).glob("*.cbor")])
    file = data.draw(st.sampled_from(files), label="file")
    kind = (
        "comid"
        if file.parent == _comid_dir(vectors)
        else "signed"
        if file.name.startswith("signed-")
        else "corim"
    )
    decoded = cbor2.loads(file.read_bytes())
    path = data.draw(st.sampled_from(list(_paths(decoded))), label="path")
    new = data.draw(st.just(_DELETE) | _HOSTILE, label="value")
    try:
        mutated = cbor2.dumps(_replaced(decoded, path, new))
    except (cbor2.CBOREncodeError, TypeError, ValueError):
        return  # not CBOR at all (an unhashable key): nothing to parse
    try:
        parsed = _PARSERS[kind](mutated)
    except (MalformedCorim, LimitExceeded):
        return
    if isinstance(parsed, Corim | Comid):
        with contextlib.suppress(MalformedCorim):
            parsed.encode()
