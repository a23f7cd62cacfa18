"""An ML-KEM wrapping key is checked as FIPS 203 §7.2 asks before anything is encapsulated to
it: its length (type check) and every coefficient below q = 3329 (modulus check). The key
service (``WrappingKey``) and the HSM (``load_recipient``) refuse one that fails either; the
library does the check, and these tests keep it so."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import mlkem

from ironroot.errors import MalformedInput
from ironroot.hsm import WrappingKey
from ironroot.hsm._wrap import load_recipient

_OIDS = {
    1184: bytes.fromhex("0609608648016503040402"),  # id-alg-ml-kem-768
    1568: bytes.fromhex("0609608648016503040403"),  # id-alg-ml-kem-1024
}


def _der_length(n: int) -> bytes:
    if n < 128:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(value)) + value


def _spki(ek: bytes, oid_for: int | None = None) -> bytes:
    """SubjectPublicKeyInfo of raw encapsulation key ``ek`` (absent parameters)."""
    oid = _OIDS[oid_for if oid_for is not None else len(ek)]
    return _tlv(0x30, _tlv(0x30, oid) + _tlv(0x03, b"\x00" + ek))


def _out_of_range(ek: bytes) -> bytes:
    """``ek`` with its first coefficient set to 4095 (12 bits, at least q)."""
    return bytes([0xFF, ek[1] | 0x0F]) + ek[2:]


@pytest.mark.parametrize("kind", [mlkem.MLKEM768PrivateKey, mlkem.MLKEM1024PrivateKey])
def test_a_coefficient_at_or_above_q_is_refused(kind: type[mlkem.MLKEM768PrivateKey]) -> None:
    ek = kind.generate().public_key().public_bytes_raw()
    assert WrappingKey.parse(_spki(ek)).spki == _spki(ek)  # the well-formed key is taken
    bad = _spki(_out_of_range(ek))
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse(bad)
    assert str(caught.value) == "the wrapping key is not a SubjectPublicKeyInfo"
    with pytest.raises(MalformedInput) as in_hsm:
        load_recipient(bad)
    assert str(in_hsm.value) == "not a SubjectPublicKeyInfo"


def test_a_key_of_the_other_parameter_set_length_is_refused() -> None:
    ek = mlkem.MLKEM1024PrivateKey.generate().public_key().public_bytes_raw()
    for bad in (_spki(ek, oid_for=1184), _spki(ek[:1184][:-1], oid_for=1184)):
        with pytest.raises(MalformedInput) as caught:
            WrappingKey.parse(bad)
        assert str(caught.value) == "the wrapping key is not a SubjectPublicKeyInfo"
