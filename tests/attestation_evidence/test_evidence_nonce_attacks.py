"""Attacks on the nonce binding rules that hold (each must be able to fail): report data that
shares a prefix with the nonce, a nonce longer than the report data, a key bound beside the
right nonce but another key."""

from __future__ import annotations

import hashlib
import os

import pytest

from ironroot.attestation.evidence import EVIDENCE_FORMATS
from ironroot.errors import KeyBindingMismatch, MalformedInput, StaleNonce

ZERO_PADDED = ("snp", "azure-hcl", "tdx")


@pytest.mark.parametrize("row", ZERO_PADDED)
def test_report_data_sharing_the_nonces_first_32_bytes_is_stale(row: str) -> None:
    binding = EVIDENCE_FORMATS[row].binding
    nonce = os.urandom(32)
    other = os.urandom(32)
    assert binding.check(nonce + bytes(32), nonce, None).startswith("zero-padded")
    with pytest.raises(StaleNonce) as caught:  # the first 32 bytes answer, the rest do not
        binding.check(nonce + other, nonce, None)
    assert caught.value.code == "nonce-mismatch"
    with pytest.raises(StaleNonce):  # a 64-byte nonce whose second half is another's
        binding.check(nonce + other, nonce + os.urandom(32), None)
    with pytest.raises(StaleNonce):  # longer than the report data: never answered
        binding.check(nonce + other, nonce + other + b"\x00", None)
    with pytest.raises(StaleNonce):  # a nonce that is a prefix of the zero padding
        binding.check(bytes(64), nonce, None)


@pytest.mark.parametrize("row", ZERO_PADDED)
def test_the_right_nonce_with_another_key_is_a_key_binding_mismatch(row: str) -> None:
    binding = EVIDENCE_FORMATS[row].binding
    nonce, key, other = os.urandom(32), b"our key", b"their key"
    ours = nonce + hashlib.sha256(key).digest()
    assert "SHA-256(key)" in binding.check(ours, nonce, key)
    with pytest.raises(KeyBindingMismatch):
        binding.check(nonce + hashlib.sha256(other).digest(), nonce, key)
    with pytest.raises(StaleNonce):  # the hash convention: another key is another nonce
        binding.check(hashlib.sha512(nonce + other).digest(), nonce, key)
    assert "SHA512" in binding.check(hashlib.sha512(nonce + key).digest(), nonce, key)


@pytest.mark.parametrize("row", [*ZERO_PADDED, "ironroot", "spdm", "nvidia-gpu"])
def test_an_empty_nonce_binds_nothing(row: str) -> None:
    with pytest.raises(MalformedInput):
        EVIDENCE_FORMATS[row].binding.check(bytes(64), b"", None)
