"""DICE extension values: DER encode/decode round trips, the SVN rule, and strictness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import LimitExceeded, MalformedCertificate, MalformedInput
from ironroot.rot import (
    Fwid,
    IntegrityRegister,
    OperationalFlag,
    OperationalFlags,
    TcbInfo,
    encode_multi_tcb_info,
    encode_tcb_info,
    encode_ueid,
    parse_multi_tcb_info,
    parse_open_dice_input,
    parse_riot_extension,
    parse_tcb_info,
    parse_ueid,
)

SHA384 = "2.16.840.1.101.3.4.2.2"


def _fwid_der(digest: bytes) -> bytes:
    body = bytes.fromhex("0609608648016503040202") + b"\x04" + bytes([len(digest)]) + digest
    return b"\x30" + bytes([len(body)]) + body


def _tcb_der(*fields: bytes) -> bytes:
    body = b"".join(fields)
    return b"\x30" + bytes([len(body)]) + body


def test_decode_hand_assembled_tcb_info() -> None:
    fwid = _fwid_der(b"\xab" * 48)
    der = _tcb_der(
        b"\x80\x04ACME",  # vendor [0]
        b"\x82\x031.2",  # version [2]
        b"\x83\x01\x05",  # svn [3]
        b"\xa6" + bytes([len(fwid)]) + fwid,  # fwids [6] constructed
        b"\x87\x02\x04\x10",  # flags [7]: 4 unused bits, bit 3 (debug)
        b"\x89\x02RT",  # type [9]
    )
    tcb = parse_tcb_info(der)
    assert tcb.vendor == "ACME"
    assert tcb.model is None
    assert tcb.version == "1.2"
    assert tcb.svn == 5
    assert tcb.svn_raw == 5
    assert tcb.fwids == (Fwid(SHA384, b"\xab" * 48),)
    assert tcb.fwids[0].hash_alg_name == "sha384"
    assert tcb.flags == OperationalFlags(frozenset({3}), 4)
    assert tcb.flags.names == ("debug",)
    assert "debug" in tcb.flags
    assert OperationalFlag.notSecure not in tcb.flags
    assert tcb.type == b"RT"
    assert encode_tcb_info(tcb) == der


def test_caliptra_svn_rule() -> None:
    raw = encode_tcb_info(TcbInfo.with_svn(7, caliptra=True))
    assert raw == bytes.fromhex("300483020107")  # fixed two octets: 0x100 | 7
    auto = parse_tcb_info(raw)
    assert (auto.svn, auto.svn_raw, auto.svn_encoding) == (7, 0x107, "caliptra")
    plain = parse_tcb_info(raw, svn_encoding="plain")
    assert (plain.svn, plain.svn_raw) == (0x107, 0x107)
    # Outside 0x100..0x1FF auto reads plain, and an explicit "caliptra" refuses.
    small = encode_tcb_info(TcbInfo(svn_raw=123))
    assert parse_tcb_info(small).svn == 123
    assert parse_tcb_info(encode_tcb_info(TcbInfo(svn_raw=0x200))).svn == 0x200
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(small, svn_encoding="caliptra")
    with pytest.raises(MalformedCertificate):
        TcbInfo.with_svn(256, caliptra=True)


def test_flags_of_names_and_fixed_width() -> None:
    flags = OperationalFlags.of("notConfigured", OperationalFlag.fixedWidth)
    assert flags.width == 32
    assert flags.names == ("notConfigured", "fixedWidth")
    der = encode_tcb_info(TcbInfo(flags=flags))
    assert der == bytes.fromhex("300787050080000001")
    assert parse_tcb_info(der).flags == flags
    with pytest.raises(MalformedCertificate):
        OperationalFlags.of("noSuchFlag")
    with pytest.raises(MalformedCertificate):
        OperationalFlags(frozenset({8}), 8)


def test_integrity_registers_round_trip() -> None:
    tcb = TcbInfo(
        vendor="v",
        integrity_registers=(
            IntegrityRegister("PCR0", 0, (Fwid(SHA384, b"\x01" * 48),)),
            IntegrityRegister(None, None, (Fwid(SHA384, b"\x02" * 48),)),
        ),
    )
    assert parse_tcb_info(encode_tcb_info(tcb)) == tcb


def test_ueid_round_trip_and_exact_bytes() -> None:
    assert encode_ueid(b"\x11\x22") == bytes.fromhex("300404021122")
    assert parse_ueid(bytes.fromhex("300404021122")) == b"\x11\x22"


_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=20)
_fwid = st.sampled_from(
    [(SHA384, 48), ("2.16.840.1.101.3.4.2.1", 32), ("1.3.14.3.2.26", 20)]
).flatmap(
    lambda alg: st.builds(Fwid, st.just(alg[0]), st.binary(min_size=alg[1], max_size=alg[1]))
) | st.builds(Fwid, st.just("1.2.3.4"), st.binary(max_size=64))  # a hash not named: any size
_flags = st.builds(
    lambda bits, extra: OperationalFlags(frozenset(bits), (max(bits) + 1 if bits else 0) + extra),
    st.sets(st.integers(0, 40), max_size=6),
    st.integers(0, 3),
)
_tcb = st.builds(
    TcbInfo,
    vendor=st.none() | _text,
    model=st.none() | _text,
    version=st.none() | _text,
    svn_raw=st.none() | st.integers(0, 0xFF) | st.integers(0x200, 2**40),
    layer=st.none() | st.integers(0, 2**31),
    index=st.none() | st.integers(0, 2**31),
    fwids=st.lists(_fwid, max_size=3).map(tuple),
    flags=st.none() | _flags,
    vendor_info=st.none() | st.binary(max_size=16),
    type=st.none() | st.binary(max_size=16),
    flags_mask=st.none() | _flags,
)


@settings(max_examples=examples(60), deadline=None)
@given(_tcb)
def test_tcb_info_round_trip(tcb: TcbInfo) -> None:
    assert parse_tcb_info(encode_tcb_info(tcb)) == tcb


@settings(max_examples=examples(25), deadline=None)
@given(st.lists(_tcb, min_size=1, max_size=4))
def test_multi_tcb_info_round_trip(tcbs: list[TcbInfo]) -> None:
    assert parse_multi_tcb_info(encode_multi_tcb_info(tcbs)) == tuple(tcbs)


# --- must reject ---------------------------------------------------------------------------

_GOOD = encode_tcb_info(TcbInfo(vendor="ACME", svn_raw=3, fwids=(Fwid(SHA384, b"\x00" * 48),)))


def test_rejects_truncated() -> None:
    for cut in (1, 2, len(_GOOD) // 2, len(_GOOD) - 1):
        with pytest.raises(MalformedCertificate):
            parse_tcb_info(_GOOD[:cut])


def test_rejects_trailing_garbage() -> None:
    with pytest.raises(MalformedCertificate, match="trailing"):
        parse_tcb_info(_GOOD + b"\x00")


def test_rejects_wrong_implicit_tag() -> None:
    # vendor is [0] IMPLICIT UTF8String; [12] is no field of DiceTcbInfo.
    assert _GOOD[2] == 0x80
    wrong = _GOOD[:2] + b"\x8c" + _GOOD[3:]
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(wrong)
    # A universal UTF8String where the IMPLICIT [0] is required.
    universal = _GOOD[:2] + b"\x0c" + _GOOD[3:]
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(universal)


def test_rejects_fields_out_of_order() -> None:
    der = _tcb_der(b"\x83\x01\x05", b"\x80\x01A")  # svn [3] before vendor [0]
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(der)


def test_rejects_overlong_length_and_non_minimal_integer() -> None:
    overlong = b"\x30\x81\x03\x83\x01\x05"  # length 3 written in long form
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(overlong)
    non_minimal = _tcb_der(b"\x83\x02\x00\x05")  # INTEGER 5 as 00 05
    with pytest.raises(MalformedCertificate, match="canonical"):
        parse_tcb_info(non_minimal)


def test_negative_integers_are_written_and_read_in_minimal_form() -> None:
    # -128 is one content octet, 80, in DER; pyasn1 wrote it ff 80, and its re-encoding check
    # then refused the DER form (and any value it had itself written this way).
    for value, content in ((-128, b"\x80"), (-32768, b"\x80\x00"), (-129, b"\xff\x7f")):
        der = _tcb_der(b"\x84" + bytes([len(content)]) + content)
        assert encode_tcb_info(TcbInfo(layer=value)) == der
        assert parse_tcb_info(der).layer == value


def test_rejects_non_zero_padding_bits() -> None:
    der = _tcb_der(b"\x87\x02\x04\x11")  # 4 unused bits, but the last one is set
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(der)


def test_rejects_empty_and_over_limit_lists() -> None:
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(_tcb_der(b"\xa6\x00"))  # FWIDLIST SIZE (1..MAX)
    with pytest.raises(MalformedCertificate):
        parse_multi_tcb_info(b"\x30\x00")
    many = encode_multi_tcb_info([TcbInfo(svn_raw=i) for i in range(64)])
    assert len(parse_multi_tcb_info(many)) == 64
    with pytest.raises(LimitExceeded):
        encode_multi_tcb_info([TcbInfo(svn_raw=i) for i in range(65)])
    body = b"".join(encode_tcb_info(TcbInfo(svn_raw=1)) for _ in range(65))
    over = b"\x30\x82" + len(body).to_bytes(2, "big") + body
    with pytest.raises(MalformedInput):
        parse_multi_tcb_info(over)


def test_rejects_oversized_input() -> None:
    with pytest.raises(LimitExceeded):
        parse_ueid(b"\x30\x83\x01\x00\x04" + b"\x00" * 70_000)


def test_rejects_non_utf8_vendor() -> None:
    with pytest.raises(MalformedCertificate):
        parse_tcb_info(_tcb_der(b"\x80\x02\xff\xfe"))


def test_other_extension_parsers_reject_garbage() -> None:
    for parser in (parse_ueid, parse_open_dice_input, parse_riot_extension):
        with pytest.raises(MalformedCertificate):
            parser(b"\x44" * 8)


def test_a_fwid_digest_has_the_size_of_its_hash() -> None:
    # A FWID naming SHA-384 over 47 bytes is no SHA-384 digest (a truncated one, or another
    # hash's): refused when read, and when built.
    der = _tcb_der(b"\xa6" + bytes([len(_fwid_der(b"\xab" * 47))]) + _fwid_der(b"\xab" * 47))
    with pytest.raises(MalformedCertificate) as caught:
        parse_tcb_info(der)
    assert type(caught.value) is MalformedCertificate
    assert caught.value.detail == "a sha384 FWID digest is 48 bytes, not 47"
    with pytest.raises(MalformedCertificate, match="a sha256 FWID digest is 32 bytes, not 48"):
        Fwid("2.16.840.1.101.3.4.2.1", bytes(48))
    # a hash this module does not name keeps its digest as given
    assert Fwid("1.2.3.4", b"\x01").hash_alg_name == "1.2.3.4"
