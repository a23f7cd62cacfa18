"""The fleet credential and fleet operator extension values (``docs/fleet.md``): written byte
for byte as the committed vector ``tests/vectors/fleet-credential-extensions.json`` (made by
the fleet CA before their codec moved from pyasn1 to ``cryptography.hazmat.asn1``), read back
to the same values, and every value that is not the one DER encoding of a value of the profile
refused with ``MalformedCertificate`` (``malformed-certificate``), as before the move."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import MalformedCertificate
from ironroot.fleet import FLEET_CREDENTIAL_OID, FLEET_OPERATOR_OID, FleetCA, parse_credential
from ironroot.fleet._credentials import (
    _decode_extension,
    _decode_operator,
    _encode_extension,
    _encode_operator,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
NAME = "fleet-credential-extensions.json"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _vector() -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((VECTORS / "index.json").read_text())
    (entry,) = [v for v in index["vectors"] if v["file"] == NAME]
    return json.loads((VECTORS / NAME).read_text()), entry["expect"]


DOCUMENT, EXPECT = _vector()
CREDENTIALS = list(
    zip(DOCUMENT["fleet-credential"]["values"], EXPECT["fleet-credential"], strict=True)
)
OPERATORS = list(zip(DOCUMENT["fleet-operator"]["values"], EXPECT["fleet-operator"], strict=True))


def test_the_vector_names_the_profile_s_oids() -> None:
    assert DOCUMENT["fleet-credential"]["oid"] == FLEET_CREDENTIAL_OID
    assert DOCUMENT["fleet-operator"]["oid"] == FLEET_OPERATOR_OID
    assert len(CREDENTIALS) >= 6
    assert len(OPERATORS) >= 3


@pytest.mark.parametrize(("value", "fields"), CREDENTIALS, ids=[f["node"] for _, f in CREDENTIALS])
def test_the_credential_extension_is_written_and_read_as_committed(
    value: str, fields: dict[str, str]
) -> None:
    values = (fields["node"], fields["class"], fields["plane"], fields["ear_id"])
    assert _encode_extension(*values).hex() == value
    assert _decode_extension(bytes.fromhex(value)) == values


@pytest.mark.parametrize(
    ("value", "fields"), OPERATORS, ids=[f["operator"][:12] for _, f in OPERATORS]
)
def test_the_operator_extension_is_written_and_read_as_committed(
    value: str, fields: dict[str, str]
) -> None:
    assert _encode_operator(fields["operator"]).hex() == value
    assert _decode_operator(bytes.fromhex(value)) == fields["operator"]


def test_the_fleet_ca_issues_the_committed_values(tmp_path: Path) -> None:
    ca = FleetCA.create(tmp_path, now=NOW)
    spki = PrivateKey.generate(Algorithm.ES384).public_key.to_der()
    value, fields = CREDENTIALS[-1]
    issued = ca.issue(
        spki,
        node=fields["node"],
        node_class=fields["class"],
        plane=fields["plane"],
        ear_id=fields["ear_id"],
        now=NOW,
    )
    assert _extension(issued.der, FLEET_CREDENTIAL_OID) == bytes.fromhex(value)
    assert parse_credential(issued.der) == issued
    value, fields = OPERATORS[-1]
    operator = ca.issue_operator(spki, operator=fields["operator"], now=NOW)
    assert _extension(operator.der, FLEET_OPERATOR_OID) == bytes.fromhex(value)


def _extension(der: bytes, oid: str) -> bytes:
    cert = x509.load_der_x509_certificate(der)
    value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


# --- refusals ---------------------------------------------------------------------------------


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _seq(*fields: bytes, tag: int = 0x30) -> bytes:
    return _tlv(tag, b"".join(fields))


_V = b"\x02\x01\x01"
_N = _tlv(0x0C, b"node-0001")
_K = _tlv(0x0C, b"gpu")
_P = b"\x0a\x01\x00"
_E = _tlv(0x16, b"urn:ironroot:ear:sha256:" + b"0" * 64)
_GOOD = _seq(_V, _N, _K, _P, _E)
_OP = _tlv(0x0C, b"alice")
_GOOD_OPERATOR = _seq(_V, _OP)
_HUGE = _tlv(0x02, b"\x01" + bytes(200))  # a 1,601-bit INTEGER

# Each refused by the decoder today and before (pyasn1 then, checked by re-encoding).
_CREDENTIAL_REFUSED: dict[str, bytes] = {
    "empty": b"",
    "over 1 KiB": _GOOD + bytes(1100),
    "truncated": _GOOD[:-1],
    "a header only": _GOOD[:2],
    "long-form SEQUENCE length": b"\x30\x81" + _GOOD[1:],
    "long-form field length": _seq(_V, b"\x0c\x81\x09node-0001", _K, _P, _E),
    "indefinite length": b"\x30\x80" + _GOOD[2:] + b"\0\0",
    "an 8-byte length": b"\x30\x88\xff\xff\xff\xff\xff\xff\xff\xff" + _V,
    "a trailing byte": _GOOD + b"\x00",
    "a second value after it": _GOOD + _GOOD,
    "end-of-contents inside": _seq(_V, _N, _K, _P, _E, b"\x00\x00"),
    "non-minimal version": _seq(b"\x02\x02\x00\x01", _N, _K, _P, _E),
    "empty version": _seq(b"\x02\x00", _N, _K, _P, _E),
    "version 0": _seq(b"\x02\x01\x00", _N, _K, _P, _E),
    "version 2": _seq(b"\x02\x01\x02", _N, _K, _P, _E),
    "version -1": _seq(b"\x02\x01\xff", _N, _K, _P, _E),
    "an oversized version": _seq(_HUGE, _N, _K, _P, _E),
    "version an ENUMERATED": _seq(b"\x0a\x01\x01", _N, _K, _P, _E),
    "non-minimal plane": _seq(_V, _N, _K, b"\x0a\x02\x00\x01", _E),
    "empty plane": _seq(_V, _N, _K, b"\x0a\x00", _E),
    "plane 2": _seq(_V, _N, _K, b"\x0a\x01\x02", _E),
    "plane -1": _seq(_V, _N, _K, b"\x0a\x01\xff", _E),
    "an oversized plane": _seq(_V, _N, _K, _tlv(0x0A, b"\x01" + bytes(200)), _E),
    "plane an INTEGER": _seq(_V, _N, _K, b"\x02\x01\x00", _E),
    "plane a BOOLEAN": _seq(_V, _N, _K, b"\x01\x01\x00", _E),
    "plane constructed": _seq(_V, _N, _K, b"\x2a\x03\x02\x01\x00", _E),
    "plane in high-tag form": _seq(_V, _N, _K, b"\x1f\x0a\x01\x00", _E),
    "an empty node": _seq(_V, b"\x0c\x00", _K, _P, _E),
    "an empty class": _seq(_V, _N, b"\x0c\x00", _P, _E),
    "an empty EAR id": _seq(_V, _N, _K, _P, b"\x16\x00"),
    "a 65-character node": _seq(_V, _tlv(0x0C, b"n" * 65), _K, _P, _E),
    "a 65-character class": _seq(_V, _N, _tlv(0x0C, b"c" * 65), _P, _E),
    "a 129-character EAR id": _seq(_V, _N, _K, _P, _tlv(0x16, b"e" * 129)),
    "a node not UTF-8": _seq(_V, b"\x0c\x01\xff", _K, _P, _E),
    "a node in over-long UTF-8": _seq(_V, b"\x0c\x02\xc0\xaf", _K, _P, _E),
    "a node holding a surrogate": _seq(_V, b"\x0c\x03\xed\xa0\x80", _K, _P, _E),
    "an EAR id not IA5": _seq(_V, _N, _K, _P, b"\x16\x01\xff"),
    "an EAR id a UTF8String": _seq(_V, _N, _K, _P, _tlv(0x0C, _E[2:])),
    "a node a PrintableString": _seq(_V, _tlv(0x13, b"node-0001"), _K, _P, _E),
    "a node an IA5String": _seq(_V, _tlv(0x16, b"node-0001"), _K, _P, _E),
    "a constructed node": _seq(_V, _tlv(0x2C, _N), _K, _P, _E),
    "a constructed EAR id": _seq(_V, _N, _K, _P, _tlv(0x36, _E)),
    "a SET": _seq(_V, _N, _K, _P, _E, tag=0x31),
    "a primitive SEQUENCE": _seq(_V, _N, _K, _P, _E, tag=0x10),
    "a [0] in place of the SEQUENCE": _seq(_V, _N, _K, _P, _E, tag=0xA0),
    "the SEQUENCE in high-tag form": b"\x3f\x10" + _GOOD[1:],
    "a NULL": b"\x05\x00",
    "no fields": b"\x30\x00",
    "no EAR id": _seq(_V, _N, _K, _P),
    "an extra field": _seq(_V, _N, _K, _P, _E, b"\x05\x00"),
    "fields out of order": _seq(_V, _K, _N, _E, _P),
    "an operator's value": _GOOD_OPERATOR,
}

_OPERATOR_REFUSED: dict[str, bytes] = {
    "empty": b"",
    "over 1 KiB": _GOOD_OPERATOR + bytes(1100),
    "truncated": _GOOD_OPERATOR[:-1],
    "long-form SEQUENCE length": b"\x30\x81" + _GOOD_OPERATOR[1:],
    "indefinite length": b"\x30\x80" + _GOOD_OPERATOR[2:] + b"\0\0",
    "an 8-byte length": bytes.fromhex("300a0288a30c05616c696365"),
    "a trailing byte": _GOOD_OPERATOR + b"\x00",
    "non-minimal version": _seq(b"\x02\x02\x00\x01", _OP),
    "version 2": _seq(b"\x02\x01\x02", _OP),
    "an oversized version": _seq(_HUGE, _OP),
    "an empty name": _seq(_V, b"\x0c\x00"),
    "a 65-character name": _seq(_V, _tlv(0x0C, b"a" * 65)),
    "a name not UTF-8": _seq(_V, b"\x0c\x01\xff"),
    "a name a PrintableString": _seq(_V, _tlv(0x13, b"alice")),
    "a constructed name": _seq(_V, _tlv(0x2C, _OP)),
    "a SET": _seq(_V, _OP, tag=0x31),
    "no name": _seq(_V),
    "an extra field": _seq(_V, _OP, b"\x05\x00"),
    "a node's value": _GOOD,
}


def test_the_refusal_tables_are_built_around_values_that_are_read() -> None:
    assert _decode_extension(_GOOD) == ("node-0001", "gpu", "control", _E[2:].decode())
    assert _decode_operator(_GOOD_OPERATOR) == "alice"


@pytest.mark.parametrize("case", list(_CREDENTIAL_REFUSED))
def test_a_credential_extension_not_in_the_profile_is_malformed(case: str) -> None:
    with pytest.raises(MalformedCertificate) as caught:
        _decode_extension(_CREDENTIAL_REFUSED[case])
    assert type(caught.value) is MalformedCertificate
    assert caught.value.code == "malformed-certificate"
    assert caught.value.detail.startswith("the fleet credential extension ")


@pytest.mark.parametrize("case", list(_OPERATOR_REFUSED))
def test_an_operator_extension_not_in_the_profile_is_malformed(case: str) -> None:
    with pytest.raises(MalformedCertificate) as caught:
        _decode_operator(_OPERATOR_REFUSED[case])
    assert type(caught.value) is MalformedCertificate
    assert caught.value.code == "malformed-certificate"
    assert caught.value.detail.startswith("the fleet operator extension ")


# Read by the decoder (sizes count characters, as ASN.1 SIZE does for UTF8String; any
# character), refused by the profile's names after it.
_PROFILE_REFUSED: dict[str, tuple[bytes, tuple[str, str, str, str]]] = {
    "64 two-byte characters": (
        _seq(_V, _tlv(0x0C, "é".encode() * 64), _K, _P, _E),
        ("é" * 64, "gpu", "control", _E[2:].decode()),
    ),
    "a NUL character": (
        _seq(_V, _tlv(0x0C, b"no\x00de"), _K, _P, _E),
        ("no\x00de", "gpu", "control", _E[2:].decode()),
    ),
    "an EAR id not a URN": (
        _seq(_V, _N, _K, _P, _tlv(0x16, b"e" * 128)),
        ("node-0001", "gpu", "control", "e" * 128),
    ),
}


@pytest.mark.parametrize("case", list(_PROFILE_REFUSED))
def test_values_the_decoder_reads_and_the_profile_refuses(case: str) -> None:
    value, read = _PROFILE_REFUSED[case]
    assert _decode_extension(value) == read
    with pytest.raises(MalformedCertificate) as caught:
        parse_credential(_certificate(value, "node-0001"))
    assert type(caught.value) is MalformedCertificate
    assert caught.value.detail == "the fleet credential extension names malformed values"


def _certificate(extension: bytes, cn: str) -> bytes:
    """A certificate under a throwaway key carrying ``extension`` as the fleet extension."""
    signer = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(signer.public_key())
        .serial_number(7)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(FLEET_CREDENTIAL_OID), extension),
            critical=False,
        )
        .sign(signer, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )
