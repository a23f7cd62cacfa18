"""A degenerate wrapping key is refused before the nonce is spent and before the HSM is asked.

An all-zero ML-KEM key, one whose ``t`` is short (made with ``s = 0``) or sparse, an RSA
modulus with a small factor or a square one: the library takes each, and a key wrapped to it
is readable by anyone who reads the answer. The first test shows that for ML-KEM (the shared
secret from the ciphertext alone); the others that the service, the HSM and the HTTP API
refuse such keys as ``MalformedInput`` code ``degenerate-wrapping-key``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from collections.abc import Callable

import pytest
from _kr_helpers import Harness, assert_problem, build_harness, make_ear, problem_of
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, rsa

from ironroot.cose import encode_cbor
from ironroot.crypto import check_wrapping_key
from ironroot.errors import MalformedInput, UnsupportedAlgorithm
from ironroot.hsm import Role, WrappingKey, bind_report_data
from ironroot.hsm._wrap import load_recipient
from ironroot.keyrelease import KeyReleaseServerThread, ReleaseRequest, create_keyrelease_app

Q = 3329
_K = {768: 3, 1024: 4}
_DV = {768: 4, 1024: 5}
_DU = {768: 10, 1024: 11}
_OIDS = {768: "0609608648016503040402", 1024: "0609608648016503040403"}
_ZETAS = [pow(17, int(f"{i:07b}"[::-1], 2), Q) for i in range(128)]
_CODE = "degenerate-wrapping-key"
ML_KEM_DEGENERATE = (
    "the ML-KEM wrapping key is degenerate (its t is zero, short or sparse): anyone who reads "
    "a ciphertext to it could recover the shared secret"
)
ML_KEM_RHO = "the ML-KEM wrapping key's seed ρ is one byte repeated: not a key ML-KEM.KeyGen made"
RSA_SMALL_FACTOR = "the RSA wrapping key's modulus has a small prime factor: anyone can factor it"
RSA_SQUARE = "the RSA wrapping key's modulus is a perfect square: not a product of two primes"


def _ntt(f: list[int]) -> list[int]:
    """FIPS 203 Algorithm 9, written here apart from the product's inverse."""
    f = list(f)
    i, length = 1, 128
    while length >= 2:
        for start in range(0, 256, 2 * length):
            zeta = _ZETAS[i]
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % Q
                f[j + length] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        length //= 2
    return f


def _encode12(coefficients: list[int]) -> bytes:
    out = bytearray()
    for a, b in zip(coefficients[::2], coefficients[1::2], strict=True):
        out += bytes([a & 0xFF, a >> 8 | (b & 0x0F) << 4, b >> 4])
    return bytes(out)


def _decode_bits(data: bytes, d: int) -> list[int]:
    bits = int.from_bytes(data, "little")
    return [(bits >> (d * i)) & ((1 << d) - 1) for i in range(len(data) * 8 // d)]


def _ek(level: int, t: list[int], *, rho: bytes | None = None, ntt: bool = True) -> bytes:
    """An encapsulation key with ``t`` (normal domain, or ``t̂`` itself if not ``ntt``)."""
    polys = [t[k : k + 256] for k in range(0, len(t), 256)]
    t_hat = [c for p in polys for c in (_ntt(p) if ntt else p)]
    return _encode12(t_hat) + (os.urandom(32) if rho is None else rho)


def _short(level: int) -> list[int]:
    """CBD_2 noise, as KeyGen's ``e``: with ``s = 0``, ``t = e``."""
    out = []
    for _ in range(256 * _K[level]):
        b = secrets.randbits(4)
        out.append(((b & 1) + (b >> 1 & 1) - (b >> 2 & 1) - (b >> 3 & 1)) % Q)
    return out


def _spki(level: int, ek: bytes) -> bytes:
    oid = bytes.fromhex(_OIDS[level])

    def tlv(tag: int, value: bytes) -> bytes:
        n = len(value)
        length = bytes([n]) if n < 128 else bytes([0x82, n >> 8, n & 0xFF])
        return bytes([tag]) + length + value

    return tlv(0x30, tlv(0x30, oid) + tlv(0x03, b"\x00" + ek))


def _read_secret_from_ciphertext(level: int, ek: bytes, ciphertext: bytes) -> bytes:
    """What anyone recovers without the private key when ``t`` is short: ``v`` decodes to
    ``m``, and ``K = G(m ‖ H(ek))``."""
    c2 = ciphertext[32 * _DU[level] * _K[level] :]
    v = [round(Q * y / (1 << _DV[level])) for y in _decode_bits(c2, _DV[level])]
    m_bits = [round(2 * c / Q) % 2 for c in v]
    m = sum(bit << i for i, bit in enumerate(m_bits)).to_bytes(32, "little")
    return hashlib.sha3_512(m + hashlib.sha3_256(ek).digest()).digest()[:32]


DEGENERATE_MLKEM: dict[str, Callable[[int], bytes]] = {
    "all-zero": lambda level: bytes(384 * _K[level] + 32),
    "t zero": lambda level: _ek(level, [0] * 256 * _K[level]),
    "t short (s = 0)": lambda level: _ek(level, _short(level)),
    "t-hat sparse": lambda level: _ek(
        level,
        [secrets.randbelow(Q) if i < 20 else 0 for i in range(256 * _K[level])],
        ntt=False,
    ),
}


@pytest.mark.parametrize("level", [768, 1024])
@pytest.mark.parametrize("make", ["all-zero", "t zero", "t short (s = 0)"])
def test_the_library_encapsulates_to_a_degenerate_key_and_anyone_reads_the_secret(
    level: int, make: str
) -> None:
    ek = DEGENERATE_MLKEM[make](level)
    loaded = serialization.load_der_public_key(_spki(level, ek))
    assert isinstance(loaded, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey)
    shared, ciphertext = loaded.encapsulate()
    assert _read_secret_from_ciphertext(level, ek, ciphertext) == shared


@pytest.mark.parametrize("level", [768, 1024])
@pytest.mark.parametrize("make", sorted(DEGENERATE_MLKEM))
def test_a_degenerate_mlkem_key_is_refused_by_the_service_and_the_hsm(
    level: int, make: str
) -> None:
    der = _spki(level, DEGENERATE_MLKEM[make](level))
    for parse in (WrappingKey.parse, load_recipient):
        with pytest.raises(MalformedInput) as caught:
            parse(der)
        assert type(caught.value) is MalformedInput
        assert caught.value.code == _CODE
        assert str(caught.value) == ML_KEM_DEGENERATE


@pytest.mark.parametrize("level", [768, 1024])
def test_an_mlkem_key_whose_seed_is_one_byte_repeated_is_refused(level: int) -> None:
    kind = mlkem.MLKEM768PrivateKey if level == 768 else mlkem.MLKEM1024PrivateKey
    ek = kind.generate().public_key().public_bytes_raw()
    for rho in (bytes(32), b"\xff" * 32):
        with pytest.raises(MalformedInput) as caught:
            WrappingKey.parse(_spki(level, ek[:-32] + rho))
        assert caught.value.code == _CODE
        assert str(caught.value) == ML_KEM_RHO


@pytest.mark.parametrize("level", [768, 1024])
def test_keys_from_keygen_are_taken(level: int) -> None:
    kind = mlkem.MLKEM768PrivateKey if level == 768 else mlkem.MLKEM1024PrivateKey
    for _ in range(50):
        ek = kind.generate().public_key().public_bytes_raw()
        assert WrappingKey.parse(_spki(level, ek)).kind == f"ML-KEM-{level}"


def _rsa_spki(n: int) -> bytes:
    return (
        rsa.RSAPublicNumbers(65537, n)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _odd_with_bits(bits: int) -> int:
    return secrets.randbits(bits - 2) | 1 << (bits - 1) | 1


def _odd_multiple(prime: int, bits: int) -> int:
    """An odd ``bits``-bit multiple of ``prime``."""
    m = ((1 << (bits - 1)) // prime + 1 + 2 * secrets.randbelow(1 << (bits - 20))) | 1
    return prime * m


@pytest.mark.parametrize("bits", [3072, 4096])
def test_an_rsa_modulus_with_a_small_factor_or_a_square_one_is_refused(bits: int) -> None:
    prime = rsa.generate_private_key(65537, bits).private_numbers().p  # top two bits set
    cases = {
        RSA_SMALL_FACTOR: [
            _odd_with_bits(bits) & ~1,  # even
            _odd_multiple(3, bits),
            _odd_multiple(997, bits),
        ],
        RSA_SQUARE: [prime * prime],
    }
    for message, moduli in cases.items():
        for n in moduli:
            assert n.bit_length() == bits
            for parse in (WrappingKey.parse, load_recipient):
                with pytest.raises(MalformedInput) as caught:
                    parse(_rsa_spki(n))
                assert caught.value.code == _CODE
                assert str(caught.value) == message


def test_a_generated_rsa_key_is_taken() -> None:
    for bits in (3072, 4096):
        key = rsa.generate_private_key(65537, bits).public_key()
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert WrappingKey.parse(der).kind == f"RSA-{bits}"


def test_an_ec_key_on_or_off_the_curve_is_no_wrapping_key() -> None:
    point = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = point.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnsupportedAlgorithm) as caught:
        WrappingKey.parse(der)
    assert str(caught.value) == "a wrapping key is ML-KEM-768, ML-KEM-1024 or RSA"
    raw = point.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    off_curve = der[: -len(raw)] + raw[:-1] + bytes([raw[-1] ^ 1])
    with pytest.raises(MalformedInput) as off:
        WrappingKey.parse(off_curve)
    assert str(off.value) == "the wrapping key is not a SubjectPublicKeyInfo"


@pytest.fixture
def served() -> Harness:
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    with harness.http, KeyReleaseServerThread(create_keyrelease_app(harness.service)) as server:
        harness.url = server.url
        yield harness


def _release_records(harness: Harness) -> int:
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    return sum(r.operation == "release" for r in harness.hsm.audit_records(auditor))


@pytest.mark.parametrize("as_json", [False, True])
def test_a_release_to_a_degenerate_key_spends_no_nonce_and_asks_no_hsm(
    served: Harness, as_json: bool
) -> None:
    harness = served
    nonce = harness.nonce()
    zero = _spki(768, bytes(384 * 3 + 32))
    # the evidence binds the degenerate key: only the key itself is wrong
    report_data = nonce + hashlib.sha256(zero).digest()
    ear = make_ear(harness.verifier_key, report_data)
    before = _release_records(harness)
    refused = harness.post("cel-key", ear, nonce, wrapping_key=zero, as_json=as_json)
    assert_problem(refused, MalformedInput, _CODE)
    assert _release_records(harness) == before  # the HSM was not asked
    # the nonce is still good: the same VM, with a sound key, gets the key with it
    good = harness.ear(nonce)
    assert bind_report_data(nonce, harness.tee.public) == harness.tee.report_data(nonce)
    released = harness.post("cel-key", good, nonce, as_json=as_json)
    assert released.status_code == 200, released.content


def _degenerate_rsa() -> bytes:
    return _rsa_spki(_odd_multiple(3, 3072))


ZERO_MLKEM_768 = _spki(768, bytes(384 * 3 + 32))
# each degenerate key the entry points are asked about, with the refusal's exact message
DEGENERATE_KEYS: dict[str, tuple[Callable[[], bytes], str]] = {
    "all-zero ML-KEM-768": (lambda: ZERO_MLKEM_768, ML_KEM_DEGENERATE),
    "all-zero ML-KEM-1024": (lambda: _spki(1024, bytes(384 * 4 + 32)), ML_KEM_DEGENERATE),
    "RSA-3072 with factor 3": (_degenerate_rsa, RSA_SMALL_FACTOR),
}


def _assert_degenerate(caught: pytest.ExceptionInfo[MalformedInput], message: str) -> None:
    assert caught.type is MalformedInput
    assert caught.value.code == _CODE
    assert str(caught.value) == message


@pytest.mark.parametrize("case", sorted(DEGENERATE_KEYS))
def test_each_library_entry_point_refuses_a_degenerate_key(case: str) -> None:
    make, message = DEGENERATE_KEYS[case]
    der = make()
    loaded = serialization.load_der_public_key(der)
    assert isinstance(loaded, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey)
    for check in (lambda: check_wrapping_key(loaded), lambda: WrappingKey.parse(der)):
        with pytest.raises(MalformedInput) as caught:
            check()
        _assert_degenerate(caught, message)
    with pytest.raises(MalformedInput) as recipient:
        load_recipient(der)
    _assert_degenerate(recipient, message)


@pytest.mark.parametrize("case", sorted(DEGENERATE_KEYS))
def test_a_wrapping_key_built_without_parse_is_refused_when_it_is_made(case: str) -> None:
    """A library caller may build the ``WrappingKey`` itself: its constructor makes the one
    check, so no ``WrappingKey`` of a degenerate key exists for the service or the HSM to be
    given (they do not check it again), and the nonce is not spent."""
    make, message = DEGENERATE_KEYS[case]
    der = make()
    loaded = serialization.load_der_public_key(der)
    assert isinstance(loaded, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey)
    kind = {1184: "ML-KEM-768", 1568: "ML-KEM-1024"}.get(len(der) - 22, "RSA-3072")
    with pytest.raises(MalformedInput) as caught:
        WrappingKey(spki=der, kind=kind, key=loaded)
    _assert_degenerate(caught, message)
    harness = build_harness()
    nonce = harness.nonce()
    released = harness.service.release("cel-key", harness.request(harness.ear(nonce), nonce))
    assert harness.holds("cel-key", harness.unwrap(released, nonce))


def test_a_wrapping_key_whose_spki_or_kind_is_not_its_keys_is_refused() -> None:
    """The service and the HSM bind the SPKI's digest and wrap to the key: a ``WrappingKey``
    naming one key and holding another would bind one and wrap to the other."""
    mine = WrappingKey.parse(_spki_of(mlkem.MLKEM768PrivateKey.generate().public_key()))
    other = mlkem.MLKEM768PrivateKey.generate().public_key()
    with pytest.raises(MalformedInput) as caught:
        WrappingKey(spki=mine.spki, kind="ML-KEM-768", key=other)
    assert str(caught.value) == (
        "the wrapping key's spki is not the canonical SubjectPublicKeyInfo of its key"
    )
    with pytest.raises(MalformedInput) as kind:
        WrappingKey(spki=mine.spki, kind="ML-KEM-1024", key=mine.key)
    assert str(kind.value) == "the wrapping key is ML-KEM-768, not 'ML-KEM-1024'"
    with pytest.raises(UnsupportedAlgorithm):
        WrappingKey(spki=mine.spki, kind="ML-KEM-768", key=b"not a key")  # type: ignore[arg-type]


def test_a_release_request_holds_a_checked_wrapping_key_not_bytes() -> None:
    with pytest.raises(MalformedInput) as caught:
        ReleaseRequest(ear=b"e", wrapping_key=ZERO_MLKEM_768, nonce=bytes(32))  # type: ignore[arg-type]
    assert str(caught.value) == "a release request's wrapping key is a WrappingKey"


def _spki_of(key: mlkem.MLKEM768PublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("case", sorted(DEGENERATE_KEYS))
def test_the_hsm_refuses_a_release_to_a_degenerate_key(case: str) -> None:
    """Asked directly (the key's SPKI as bytes), the HSM parses and checks the key itself,
    after it redeemed the nonce (``Hsm.release``'s documented order), and audits the code."""
    make, message = DEGENERATE_KEYS[case]
    der = make()
    harness = build_harness()
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    nonce = harness.nonce()
    ear = make_ear(harness.verifier_key, nonce + hashlib.sha256(der).digest())
    with pytest.raises(MalformedInput) as caught:
        harness.hsm.release(
            harness.user, harness.handles["cel-key"], ear=ear, nonce=nonce, recipient=der
        )
    _assert_degenerate(caught, message)
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    last = [r for r in harness.hsm.audit_records(auditor) if r.operation == "release"][-1]
    assert last.result == _CODE


@pytest.mark.parametrize("case", sorted(DEGENERATE_KEYS))
def test_the_hsm_refuses_to_approve_or_wrap_to_a_degenerate_recipient(case: str) -> None:
    make, message = DEGENERATE_KEYS[case]
    der = make()
    harness = build_harness()
    with pytest.raises(MalformedInput) as approve:
        harness.hsm.add_wrap_recipient(harness.officer, "escrow", der)
    _assert_degenerate(approve, message)
    with pytest.raises(MalformedInput) as wrap:
        harness.hsm.wrap(harness.user, harness.handles["no-policy"], recipient=der)
    _assert_degenerate(wrap, message)


def _rsa_jwk(der: bytes) -> dict[str, str]:
    loaded = serialization.load_der_public_key(der)
    assert isinstance(loaded, rsa.RSAPublicKey)
    numbers = loaded.public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e)}


@pytest.mark.parametrize("form", ["cbor", "json", "json-jwk", "cbor-jwk"])
def test_a_release_over_http_to_a_degenerate_rsa_key_spends_no_nonce(
    served: Harness, form: str
) -> None:
    harness = served
    der = _degenerate_rsa()
    nonce = harness.nonce()
    ear = make_ear(harness.verifier_key, nonce + hashlib.sha256(der).digest())
    before = _release_records(harness)
    if form in ("cbor", "json"):
        refused = harness.post("cel-key", ear, nonce, wrapping_key=der, as_json=form == "json")
    elif form == "json-jwk":
        body = {
            "ear": ear.decode(),
            "wrapping_key": _rsa_jwk(der),
            "nonce": base64.urlsafe_b64encode(nonce).rstrip(b"=").decode(),
        }
        refused = harness.http.post(
            f"{harness.url}/keys/cel-key/release",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
    else:
        refused = harness.http.post(
            f"{harness.url}/keys/cel-key/release",
            content=encode_cbor({"ear": ear, "wrapping_key": _rsa_jwk(der), "nonce": nonce}),
            headers={"Content-Type": "application/cbor"},
        )
    assert_problem(refused, MalformedInput, _CODE)
    assert problem_of(refused).detail == RSA_SMALL_FACTOR
    assert _release_records(harness) == before  # the HSM was not asked
    released = harness.post("cel-key", harness.ear(nonce), nonce)
    assert released.status_code == 200, released.content
