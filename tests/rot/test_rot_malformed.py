"""Hostile DICE certificates and extension values: ``MalformedCertificate``, exactly.

pyasn1 raises ``IndexError``, ``OverflowError`` and ``ValueError`` from deep inside its decoder
and value objects, and ``cryptography`` ``InvalidVersion`` and friends from lazily parsed
fields; none of them may escape the DICE parsers. The byte strings below are the ones that did.
"""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
from pathlib import Path

import pytest

from ironroot import rot
from ironroot.cli import main
from ironroot.errors import IronrootError, LimitExceeded, MalformedCertificate

CALIPTRA_FMC = Path("caliptra") / "fmc_alias_cert_ecc.der"


@pytest.mark.parametrize(
    ("parse", "hex_input"),
    [
        (rot.parse_tcb_info, "30820080aa41ff000001"),  # IndexError inside pyasn1
        (rot.parse_tcb_info, "30038a0104"),  # ValueError: __len__() should return >= 0
        (rot.parse_multi_tcb_info, "308201d4302c8388a782c64e3ceefbcc"),  # OverflowError
        (rot.load_dice_objects, "301b3011020110300030083003060100030100a00030030601000301003000"),
        (rot.parse_ueid, "3003040201"),
        (rot.parse_ueid, "30820080"),
        (rot.parse_open_dice_input, "3003a08180"),
        (rot.parse_riot_extension, "3005a003060100"),
    ],
)
def test_reported_inputs_are_malformed_certificate(parse: object, hex_input: str) -> None:
    with pytest.raises(MalformedCertificate) as info:
        parse(bytes.fromhex(hex_input))  # type: ignore[operator]
    assert type(info.value) is MalformedCertificate


def test_every_truncation_and_byte_of_a_tcb_info_is_typed() -> None:
    tcb = rot.TcbInfo(
        vendor="v",
        model="m",
        svn_raw=3,
        layer=1,
        fwids=(rot.Fwid("2.16.840.1.101.3.4.2.2", bytes(48)),),
        flags=rot.OperationalFlags(frozenset({3}), 32),
    )
    good = rot.encode_tcb_info(tcb)
    assert rot.parse_tcb_info(good).vendor == "v"
    for end in range(len(good)):
        with pytest.raises(MalformedCertificate):
            rot.parse_tcb_info(good[:end])
    for pos in range(len(good)):
        for value in (0x00, 0x80, 0xFF, good[pos] ^ 0x01):
            mutated = good[:pos] + bytes([value]) + good[pos + 1 :]
            for parse in (rot.parse_tcb_info, rot.parse_multi_tcb_info):
                with contextlib.suppress(IronrootError):  # anything else fails the test
                    parse(mutated)


def _version_5(der: bytes) -> bytes:
    at = der.index(bytes.fromhex("a003020102"))
    return der[: at + 4] + b"\x05" + der[at + 5 :]


@pytest.mark.vectors
def test_version_5_certificate(vectors: Path) -> None:
    bad = _version_5((vectors / CALIPTRA_FMC).read_bytes())
    for parse in (rot.parse_certificate, rot.parse_certificates, rot.load_dice_objects):
        with pytest.raises(MalformedCertificate, match="version") as info:
            parse(bad)  # type: ignore[operator]
        assert type(info.value) is MalformedCertificate


@pytest.mark.vectors
def test_every_byte_of_a_dice_certificate(vectors: Path) -> None:
    der = (vectors / CALIPTRA_FMC).read_bytes()
    assert rot.parse_certificate(der).dice.multi
    kinds = set()
    for pos in range(len(der)):
        mutated = der[:pos] + bytes([der[pos] ^ 0x41]) + der[pos + 1 :]
        for strict in (True, False):
            try:
                rot.load_dice_objects(mutated, strict=strict)
            except IronrootError as exc:
                kinds.add(type(exc).__name__)
    assert "MalformedCertificate" in kinds


@pytest.mark.vectors
def test_inspect_cert_on_a_malformed_certificate(
    vectors: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "v5.der"
    bad.write_bytes(_version_5((vectors / CALIPTRA_FMC).read_bytes()))
    assert main(["rot", "inspect-cert", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "malformed-certificate" in err
    assert "version" in err
    assert "Traceback" not in err


@pytest.mark.vectors
@pytest.mark.integration
def test_inspect_cert_process_prints_no_traceback(vectors: Path, tmp_path: Path) -> None:
    bad = tmp_path / "v5.der"
    bad.write_bytes(_version_5((vectors / CALIPTRA_FMC).read_bytes()))
    done = subprocess.run(
        [sys.executable, "-m", "ironroot", "rot", "inspect-cert", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "malformed-certificate" in done.stderr


@pytest.mark.parametrize(
    "parse",
    [rot.parse_certificate, rot.parse_certificates, rot.load_dice_objects, rot.parse_csr],
)
def test_pem_begin_lines_are_bounded_before_they_are_searched(parse: object) -> None:
    # Each BEGIN line is searched to the end of the input for its END line: 1 MiB of BEGIN lines
    # without an END took minutes (a 256 KiB quote x5chain item, 14 s). Their number is bounded
    # first: certificates (at most 16) and the odd other block beside them.
    data = b"-----BEGIN CERTIFICATE-----\n" * 33
    with pytest.raises(LimitExceeded) as info:
        parse(data)  # type: ignore[operator]
    assert info.value.detail == "more than 32 PEM blocks in one input"
    # at the bound, what the blocks hold decides, as before
    with pytest.raises(MalformedCertificate, match="no PEM block found"):
        parse(data[: 32 * 28])  # type: ignore[operator]


def test_a_refused_input_over_one_certificate_is_not_kept() -> None:
    # The split of an input was cached by its bytes even when what it held was then refused:
    # 1,024 refused 256 KiB inputs (a quote's x5chain items) kept 277 MiB. An input larger
    # than one certificate is split afresh each time, and nothing keeps it.
    body = b"\x01" * (4 * rot.dice.MAX_CERTIFICATE_BYTES)
    data = b"\x30\x83" + len(body).to_bytes(3, "big") + body
    before = sys.getrefcount(data)
    with pytest.raises(LimitExceeded) as info:
        rot.parse_certificate(data)
    assert info.value.detail == "certificate is 262149 bytes, over 65536"
    del info
    gc.collect()  # what the traceback held
    assert sys.getrefcount(data) == before


# --- DER strictness of each DICE extension value --------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    """One DER TLV (minimal length), to assemble hostile values around valid parts."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


_FWID = _tlv(0x30, bytes.fromhex("0609608648016503040201") + _tlv(0x04, bytes(32)))
_SPKI = bytes.fromhex("3019301306072a8648ce3d020106082a8648ce3d030107030200ff")
_RIOT_OID = bytes.fromhex("0606678105050401")


def _riot(version: bytes = b"\x02\x01\x01", spki: bytes = _SPKI) -> bytes:
    return _tlv(0x30, _tlv(0xA0, _RIOT_OID + _tlv(0x30, version + spki + _FWID)))


# (parser, structure named in the message, hostile value, what the message says after it)
_CANONICAL = "is not in canonical DER form"
_NOT_DER = "is not "  # "is not valid DER: ..." or "is not in canonical DER form"
_HOSTILE: dict[str, tuple[object, str, bytes, str]] = {
    "tcb: long-form outer length": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x81\x03\x83\x01\x05",
        _CANONICAL,
    ),
    "tcb: long-form inner length": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x04\x83\x81\x01\x05",
        _CANONICAL,
    ),
    "tcb: four-byte length of 3": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x84\x00\x00\x00\x03\x83\x01\x05",
        _CANONICAL,
    ),
    "tcb: non-minimal integer": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x04\x83\x02\x00\x05",
        _CANONICAL,
    ),
    "tcb: non-minimal negative integer": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x04\x83\x02\xff\x85",
        _CANONICAL,
    ),
    "tcb: empty integer": (rot.parse_tcb_info, "DiceTcbInfo", b"\x30\x02\x83\x00", _CANONICAL),
    "tcb: constructed string": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x05\xa0\x03\x0c\x01A",
        _NOT_DER,
    ),
    "tcb: SET for SEQUENCE": (rot.parse_tcb_info, "DiceTcbInfo", b"\x31\x03\x83\x01\x05", _NOT_DER),
    "tcb: unknown field tag": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x03\x8c\x01\x05",
        _NOT_DER,
    ),
    "tcb: a field twice": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x06\x83\x01\x05\x83\x01\x05",
        _NOT_DER,
    ),
    "tcb: primitive FWIDLIST": (rot.parse_tcb_info, "DiceTcbInfo", b"\x30\x02\x86\x00", _NOT_DER),
    "tcb: indefinite length": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x80\x83\x01\x05\x00\x00",
        _NOT_DER,
    ),
    "tcb: over-long length": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff\x83\x01\x05",
        _NOT_DER,
    ),
    "tcb: integer longer than the value": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x04\x83\x88\xff\xff\xff\xff\xff\xff\xff\xff",
        _NOT_DER,
    ),
    "tcb: length past the end": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x7f\x83\x01\x05",
        _NOT_DER,
    ),
    "tcb: trailing byte": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x03\x83\x01\x05\x00",
        "has 1 trailing bytes",
    ),
    "tcb: 8 unused bits": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        b"\x30\x04\x87\x02\x08\x00",
        _NOT_DER,
    ),
    "tcb: bad OID": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        _tlv(0x30, _tlv(0xA6, _tlv(0x30, b"\x06\x02\x80\x01\x04\x00"))),
        _NOT_DER,
    ),
    "tcb: 65 FWIDs": (
        rot.parse_tcb_info,
        "DiceTcbInfo",
        _tlv(0x30, _tlv(0xA6, _FWID * 65)),
        "",  # MalformedCertificate, not LimitExceeded: a lenient read records it as invalid
    ),
    "multi: long-form inner length": (
        rot.parse_multi_tcb_info,
        "DiceTcbInfoSeq",
        b"\x30\x06\x30\x81\x03\x83\x01\x01",
        _CANONICAL,
    ),
    "multi: trailing byte": (
        rot.parse_multi_tcb_info,
        "DiceTcbInfoSeq",
        b"\x30\x05\x30\x03\x83\x01\x01\x00",
        "has 1 trailing bytes",
    ),
    "multi: 65 entries": (
        rot.parse_multi_tcb_info,
        "DiceTcbInfoSeq",
        _tlv(0x30, b"\x30\x03\x83\x01\x01" * 65),
        "",
    ),
    "ueid: long-form length": (rot.parse_ueid, "TcgUeid", b"\x30\x05\x04\x81\x02ab", _CANONICAL),
    "ueid: constructed OCTET STRING": (
        rot.parse_ueid,
        "TcgUeid",
        b"\x30\x06\x24\x04\x04\x02ab",
        _NOT_DER,
    ),
    "ueid: trailing byte": (
        rot.parse_ueid,
        "TcgUeid",
        b"\x30\x04\x04\x02ab\x00",
        "has 1 trailing bytes",
    ),
    "ueid: indefinite length": (rot.parse_ueid, "TcgUeid", b"\x30\x80\x04\x02ab\x00\x00", _NOT_DER),
    "ueid: wrong tag": (rot.parse_ueid, "TcgUeid", b"\x30\x04\x0c\x02ab", _NOT_DER),
    "ueid: an extra field": (
        rot.parse_ueid,
        "TcgUeid",
        b"\x30\x07\x04\x02ab\x02\x01\x01",
        _NOT_DER,
    ),
    "ueid: no field": (rot.parse_ueid, "TcgUeid", b"\x30\x00", _NOT_DER),
    "open dice: non-minimal ENUMERATED": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x06\xa6\x04\x0a\x02\x00\x01",
        _CANONICAL,
    ),
    "open dice: empty ENUMERATED": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x04\xa6\x02\x0a\x00",
        _CANONICAL,
    ),
    "open dice: BOOLEAN mode": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x05\xa6\x03\x01\x01\xff",
        _NOT_DER,
    ),
    "open dice: two values in one EXPLICIT tag": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x08\xa6\x06\x0a\x01\x01\x0a\x01\x01",
        _NOT_DER,
    ),
    "open dice: long-form length": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x06\xa0\x04\x04\x81\x01a",
        _CANONICAL,
    ),
    "open dice: IMPLICIT for EXPLICIT": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x03\x80\x01a",
        _NOT_DER,
    ),
    "open dice: empty EXPLICIT tag": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x02\xa0\x00",
        _NOT_DER,
    ),
    "open dice: not UTF-8": (
        rot.parse_open_dice_input,
        "OpenDiceInput",
        b"\x30\x05\xa7\x03\x0c\x01\xff",
        _NOT_DER,
    ),
    "riot: long-form length": (
        rot.parse_riot_extension,
        "RIoT extension",
        b"\x30\x81" + _riot()[1:],
        _CANONICAL,
    ),
    "riot: non-minimal version": (
        rot.parse_riot_extension,
        "RIoT extension",
        _riot(version=b"\x02\x02\x00\x01"),
        _CANONICAL,
    ),
    "riot: trailing byte": (
        rot.parse_riot_extension,
        "RIoT extension",
        _riot() + b"\x00",
        "has 1 trailing bytes",
    ),
    "riot: end-of-contents as the key's parameters": (
        rot.parse_riot_extension,
        "RIoT extension",
        _riot(spki=bytes.fromhex("3019301306072a8648ce3d020100082a8648ce3d030107030200ff")),
        _NOT_DER,
    ),
    "riot: key not a SubjectPublicKeyInfo": (
        rot.parse_riot_extension,
        "RIoT extension",
        _riot(spki=_tlv(0x30, _tlv(0x04, b"k"))),
        _NOT_DER,
    ),
}


@pytest.mark.parametrize("case", list(_HOSTILE))
def test_non_der_extension_values_are_malformed_certificate(case: str) -> None:
    parse, what, der, says = _HOSTILE[case]
    with pytest.raises(MalformedCertificate) as info:
        parse(der)  # type: ignore[operator]
    assert type(info.value) is MalformedCertificate
    assert info.value.detail.startswith(f"{what} {says}")


def test_the_hostile_riot_values_are_built_around_a_valid_one() -> None:
    riot = rot.parse_riot_extension(_riot())
    assert (riot.version, riot.device_id_public_key) == (1, _SPKI)
    # an AlgorithmIdentifier with parameters (an ECDSA key's named curve) and without both read
    assert rot.parse_riot_extension(_riot(spki=_SPKI)).fwid.digest == bytes(32)
    no_params = bytes.fromhex("3010300b06092a864886f70d01010b030100")
    assert rot.parse_riot_extension(_riot(spki=no_params)).device_id_public_key == no_params


@pytest.mark.parametrize(("tag", "what"), [(0x83, "svn"), (0x84, "layer"), (0x85, "index")])
def test_an_integer_over_64_bits_is_malformed(tag: int, what: str) -> None:
    """INTEGERs are unbounded in the schema; a DiceTcbInfo's are at most 64 bits (a value of
    thousands of digits could not even be printed as text)."""
    big = _tlv(0x30, _tlv(tag, b"\x01" + bytes(2000)))
    with pytest.raises(MalformedCertificate) as caught:
        rot.parse_tcb_info(big)
    assert caught.value.detail == f"DiceTcbInfo {what} is over 64 bits"
    edge = _tlv(0x30, _tlv(tag, b"\x01" + bytes(8)))  # 2^64
    with pytest.raises(MalformedCertificate):
        rot.parse_tcb_info(edge)
    most = _tlv(0x30, _tlv(tag, b"\x00" + b"\xff" * 8))  # 2^64 - 1
    assert rot.parse_tcb_info(most)


@pytest.mark.parametrize(("label", "alias"), [(2, 2.0), (1, True), (-4670552, -4670552.0)])
def test_open_dice_cbor_claims_keyed_by_a_float_or_a_boolean_are_malformed(
    label: int, alias: object
) -> None:
    # A decoded map is a Python dict, where 2.0 == 2 and True == 1: a certificate naming its
    # subject under 2.0 (or its key under -4670552.0) was read as if under the integer label,
    # though every other Open DICE reader sees no subject (or no key).
    import cbor2

    from ironroot.crypto import Algorithm, PrivateKey

    key = PrivateKey.generate(Algorithm.EDDSA).public_key
    claims: dict[object, object] = {
        1: "issuer",
        2: "subject",
        -4670552: cbor2.dumps(key.to_cose_key()),
    }
    claims[alias] = claims.pop(label)
    certificate = cbor2.dumps([cbor2.dumps({1: -8}), {}, cbor2.dumps(claims), bytes(64)])
    with pytest.raises(MalformedCertificate) as caught:
        rot.parse_open_dice_cbor(certificate)
    assert type(caught.value) is MalformedCertificate
    assert caught.value.code == "malformed-certificate"
    assert (
        caught.value.detail == f"the certificate's claim label {alias!r} is not an integer or text"
    )
