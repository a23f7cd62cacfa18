"""Refusing a degenerate public key before anything is wrapped (encrypted) to it.

A key released to a TEE is wrapped to the TEE's public key (ML-KEM-768/1024 or RSA), and the
wrapped key travels in the clear of the service's answer. The library checks an encoding
(FIPS 203 §7.2's modulus check, an RSA modulus of the right size) but takes keys whose
structure gives the secret away to anyone who reads the answer. :func:`check_wrapping_key`
refuses those (``MalformedInput`` code ``degenerate-wrapping-key``), with no secret in hand:

**ML-KEM** (FIPS 203: ``ek = ByteEncode12(t̂) ‖ ρ``, ``t = NTT⁻¹(t̂) = A·s + e``). A key pair
made by ML-KEM.KeyGen has ``t̂`` indistinguishable from uniform mod q = 3329, in the NTT
domain and out of it: about one coefficient in 3,329 is zero and about half lie within q/4 of
zero. If ``t`` is short (``s = 0``, so ``t = e``; the all-zero key, ``t = 0``), the ciphertext's
``v = tᵀ·r + e₂ + ⌈q/2⌋·m`` decodes to ``m`` without the private key, and with ``m`` and ``ek``
the shared secret ``K = G(m ‖ H(ek))``. If ``t̂`` is sparse, ``v`` has a handful of unknowns
and is found by search. So the key is refused when, in either domain, more than
:data:`_MAX_ZEROS` coefficients are zero or more than three quarters lie within q/4 of zero
(for a key from KeyGen, either has a probability below 2⁻⁶⁰), or when ``ρ`` is one byte
repeated (2⁻²⁴⁸ for KeyGen's ``ρ``, a hash output).

**RSA** (NIST SP 800-89 §5.3.3, partial public-key validation): the modulus is odd, has no
prime factor below 1,000 and is not a perfect square; the exponent is checked by the caller
(65537). Whether the modulus is a prime (or a prime power) is not asked: that takes a
full-size modular exponentiation (50 ms for RSA-3072 in Python) on every request, before any
authentication.

**Once per key.** The ML-KEM check takes 1-2 ms (an inverse NTT in Python), so a key is
checked once, where it enters: ``ironroot.hsm.WrappingKey`` checks its key when it is made,
and a key release (the HTTP API, the key service, the HSM) trusts the ``WrappingKey`` it is
given; nothing here remembers a key.
"""

from __future__ import annotations

import math
from typing import Final

from cryptography.hazmat.primitives.asymmetric import mlkem, rsa

from ironroot.errors import MalformedInput

__all__ = ["check_wrapping_key"]

_Q: Final = 3329
_N: Final = 256
_MAX_ZEROS: Final = 16
_SMALL_PRIMES: Final = tuple(
    p for p in range(2, 1000) if all(p % d for d in range(2, math.isqrt(p) + 1))
)
_SMALL_PRODUCT: Final = math.prod(_SMALL_PRIMES)
_CODE: Final = "degenerate-wrapping-key"


def _bit_reverse7(i: int) -> int:
    return int(f"{i:07b}"[::-1], 2)


_ZETAS: Final = tuple(pow(17, _bit_reverse7(i), _Q) for i in range(128))  # FIPS 203 §4.3


def _ntt_inverse(f_hat: list[int]) -> list[int]:
    """FIPS 203 Algorithm 10 (NTT⁻¹) on one polynomial."""
    f = list(f_hat)
    i = 127
    length = 2
    while length <= 128:
        for start in range(0, _N, 2 * length):
            zeta = _ZETAS[i]
            i -= 1
            for j in range(start, start + length):
                t = f[j]
                f[j] = (t + f[j + length]) % _Q
                f[j + length] = zeta * (f[j + length] - t) % _Q
        length *= 2
    return [c * 3303 % _Q for c in f]


def _decode12(data: bytes) -> list[int]:
    """FIPS 203 ByteDecode₁₂: two 12-bit coefficients from each three bytes."""
    out: list[int] = []
    for k in range(0, len(data), 3):
        b0, b1, b2 = data[k], data[k + 1], data[k + 2]
        out.append(b0 | (b1 & 0x0F) << 8)
        out.append(b1 >> 4 | b2 << 4)
    return out


def _looks_uniform(coefficients: list[int]) -> bool:
    zeros = sum(1 for c in coefficients if c == 0)
    short = sum(1 for c in coefficients if min(c, _Q - c) <= _Q // 4)
    return zeros <= _MAX_ZEROS and 4 * short <= 3 * len(coefficients)


def _check_mlkem(raw: bytes) -> None:
    t_hat_bytes, rho = raw[:-32], raw[-32:]
    if len(t_hat_bytes) % 384 or not t_hat_bytes:
        raise MalformedInput("an ML-KEM encapsulation key is k·384 bytes and ρ")
    t_hat = _decode12(t_hat_bytes)
    if any(c >= _Q for c in t_hat):
        raise MalformedInput("an ML-KEM encapsulation key coefficient is not below q")
    t = [c for k in range(0, len(t_hat), _N) for c in _ntt_inverse(t_hat[k : k + _N])]
    if not _looks_uniform(t_hat) or not _looks_uniform(t):
        raise MalformedInput(
            "the ML-KEM wrapping key is degenerate (its t is zero, short or sparse): anyone "
            "who reads a ciphertext to it could recover the shared secret",
            code=_CODE,
        )

    if rho.count(rho[0]) == len(rho):
        raise MalformedInput(
            "the ML-KEM wrapping key's seed ρ is one byte repeated: not a key ML-KEM.KeyGen made",
            code=_CODE,
        )


def _check_rsa(key: rsa.RSAPublicKey) -> None:
    n = key.public_numbers().n
    if not n & 1 or math.gcd(n, _SMALL_PRODUCT) != 1:
        raise MalformedInput(
            "the RSA wrapping key's modulus has a small prime factor: anyone can factor it",
            code=_CODE,
        )
    if math.isqrt(n) ** 2 == n:
        raise MalformedInput(
            "the RSA wrapping key's modulus is a perfect square: not a product of two primes",
            code=_CODE,
        )


def check_wrapping_key(
    key: mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey | rsa.RSAPublicKey,
) -> None:
    """Return if ``key`` is fit to wrap a secret to, else raise ``MalformedInput`` code
    ``degenerate-wrapping-key`` (module docs); no other key type is a wrapping key
    (``MalformedInput``)."""
    if isinstance(key, mlkem.MLKEM768PublicKey | mlkem.MLKEM1024PublicKey):
        _check_mlkem(key.public_bytes_raw())
    elif isinstance(key, rsa.RSAPublicKey):
        _check_rsa(key)
    else:
        raise MalformedInput("a wrapping key is ML-KEM or RSA")
