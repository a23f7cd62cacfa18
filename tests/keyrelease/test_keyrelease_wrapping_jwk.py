"""An RSA JWK as the wrapping key: public members only.

A JWK that carries any private member of RFC 7518 §6.3.2 (``d``, ``p``, ``q``, ``dp``,
``dq``, ``qi``, ``oth``) is refused: a TEE that sends one has sent what unwraps every key
released to it (``q`` alone factors ``n``), through the key service and whatever stands in
between. Until now only ``d`` and ``p`` were refused.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ironroot.crypto import b64url_encode
from ironroot.errors import LimitExceeded, MalformedInput
from ironroot.hsm import WrappingKey

_PRIVATE = rsa.generate_private_key(65537, 3072)
_NUMBERS = _PRIVATE.private_numbers()


def _b64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _public_jwk() -> dict[str, object]:
    public = _NUMBERS.public_numbers
    return {"kty": "RSA", "n": _b64(public.n), "e": _b64(public.e)}


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("d", _b64(_NUMBERS.d)),
        ("p", _b64(_NUMBERS.p)),
        ("q", _b64(_NUMBERS.q)),
        ("dp", _b64(_NUMBERS.dmp1)),
        ("dq", _b64(_NUMBERS.dmq1)),
        ("qi", _b64(_NUMBERS.iqmp)),
        ("oth", [{"r": _b64(3), "d": _b64(1), "t": _b64(1)}]),
    ],
)
def test_a_jwk_with_a_private_member_is_refused(member: str, value: object) -> None:
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse({**_public_jwk(), member: value})
    assert str(caught.value) == "the wrapping key JWK holds private parameters"


def test_a_public_jwk_is_the_key() -> None:
    der = _PRIVATE.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert WrappingKey.parse(_public_jwk()).digest == WrappingKey.parse(der).digest


def test_a_jwk_text_with_a_member_twice_is_refused() -> None:
    """As every other JSON the service reads: which ``n`` counts would be its parser's choice."""
    public = _public_jwk()
    other = rsa.generate_private_key(65537, 3072).public_key().public_numbers()
    text = f'{{"kty": "RSA", "n": "{_b64(other.n)}", "e": "{public["e"]}", "n": "{public["n"]}"}}'
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse(text.encode())
    assert str(caught.value) == "the wrapping key is not a JSON JWK"
    assert isinstance(caught.value.__cause__, ValueError)
    assert "appears twice" in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("members", "detail"),
    [
        ({"use": "sig"}, "the wrapping key JWK is for use 'sig', not 'enc'"),
        (
            {"key_ops": ["verify"]},
            "the wrapping key JWK's key_ops allow neither wrapKey nor encrypt",
        ),
        (
            {"key_ops": "encrypt"},
            "the wrapping key JWK's key_ops allow neither wrapKey nor encrypt",
        ),
    ],
    ids=["use-sig", "key-ops-verify", "key-ops-not-a-list"],
)
def test_a_jwk_declared_for_another_use_is_refused(members: dict[str, object], detail: str) -> None:
    """RFC 7517: a key its owner declared for signatures is not one to encrypt a key to."""
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse({**_public_jwk(), **members})
    assert str(caught.value) == detail


@pytest.mark.parametrize(
    "members",
    [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": ["wrapKey", "verify"]}],
    ids=["use-enc", "key-ops-encrypt", "key-ops-wrap"],
)
def test_a_jwk_declared_for_encryption_is_the_key(members: dict[str, object]) -> None:
    der = _PRIVATE.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert WrappingKey.parse({**_public_jwk(), **members}).digest == WrappingKey.parse(der).digest


@pytest.mark.parametrize("member", ["n", "e"])
def test_a_jwk_number_larger_than_any_wrapping_key_is_refused_before_it_is_read(
    member: str,
) -> None:
    """An SPKI is at most 16 KiB; a JWK given as a map (a request's ``wrapping_key``) had no
    bound but the request's 512 KiB, and a 300 KB ``n`` kept the event loop for a quarter
    of a second before its size was refused."""
    jwk = _public_jwk()
    jwk[member] = b64url_encode(b"\xc3" * 300_000)
    with pytest.raises(LimitExceeded) as caught:
        WrappingKey.parse(jwk)
    assert str(caught.value) == "a wrapping key JWK's n and e are at most 1024 characters each"
    assert WrappingKey.parse(_public_jwk()).kind == "RSA-3072"  # a real one still parses


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "HS256", "none"])
def test_a_jwk_whose_alg_is_a_signature_algorithm_is_refused(alg: str) -> None:
    """RFC 7517 §4.4: ``alg`` names the algorithm the key is for; a key its owner declared
    for RS256 or PS256 signatures is not one to encrypt a released key to, as one with
    ``use: sig`` is not (it was taken, and the key wrapped to it)."""
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse({**_public_jwk(), "alg": alg})
    assert caught.value.code == "malformed"
    assert str(caught.value) == (
        f"the wrapping key JWK is for alg {alg!r}, not an RSA key-encryption algorithm"
    )


@pytest.mark.parametrize("alg", ["RSA-OAEP-256", "RSA-OAEP", "RSA1_5"])
def test_a_jwk_whose_alg_is_rsa_key_encryption_is_the_key(alg: str) -> None:
    der = _PRIVATE.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert WrappingKey.parse({**_public_jwk(), "alg": alg}).digest == WrappingKey.parse(der).digest


def test_a_jwk_whose_alg_is_not_text_is_refused() -> None:
    """An unhashable ``alg`` (a CBOR request's list) is a refusal, not a TypeError."""
    with pytest.raises(MalformedInput) as caught:
        WrappingKey.parse({**_public_jwk(), "alg": ["RSA-OAEP-256"]})
    assert str(caught.value) == (
        "the wrapping key JWK is for alg \"['RSA-OAEP-256']\", not an RSA key-encryption algorithm"
    )
