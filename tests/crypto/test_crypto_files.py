"""Key files: format detection, password handling, atomic 0600 writes, LMS never copied."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cbor2
import pytest

from ironroot.crypto import (
    Algorithm,
    LmsPrivateKey,
    LmsPublicKey,
    PrivateKey,
    PublicKey,
    Signer,
    load_signer,
    load_verifier,
    save_signer,
    verifier_from_cose_key,
)
from ironroot.errors import (
    Conflict,
    LimitExceeded,
    MalformedInput,
    StateReuse,
    UnsupportedAlgorithm,
)

KEY = PrivateKey.generate(Algorithm.ES384)


def test_save_signer_writes_pkcs8_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "issuer.key"
    save_signer(KEY, path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_signer(path).kid == KEY.kid
    assert [p.name for p in tmp_path.iterdir()] == ["issuer.key"]  # no temp file left


def test_save_signer_never_overwrites_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_signer(KEY, path)
    other = PrivateKey.generate(Algorithm.ES256)
    with pytest.raises(Conflict):
        save_signer(other, path)
    assert load_signer(path).kid == KEY.kid
    save_signer(other, path, overwrite=True)
    assert load_signer(path).kid == other.kid


def test_encrypted_pem(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_signer(KEY, path, password=b"secret")
    assert b"ENCRYPTED" in path.read_bytes()
    assert load_signer(path, password=b"secret").kid == KEY.kid
    with pytest.raises(MalformedInput):
        load_signer(path, password=b"wrong")
    with pytest.raises(MalformedInput):
        load_signer(path)


def test_lms_state_is_never_copied(tmp_path: Path) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "lms.key", "SHA256-N24-H5-W4")
    save_signer(lms, tmp_path / "lms.key")  # its own file: nothing to do
    with pytest.raises(StateReuse):
        save_signer(lms, tmp_path / "copy.key")
    assert not (tmp_path / "copy.key").exists()
    with pytest.raises(UnsupportedAlgorithm):
        load_signer(tmp_path / "lms.key", password=b"x")


def test_save_signer_refuses_foreign_signers(tmp_path: Path) -> None:
    class Remote:
        algorithm = Algorithm.ES256
        kid = b"k"

        def sign(self, data: bytes) -> bytes:
            return data

        def verifier(self) -> PublicKey:
            return KEY.public_key

    signer: Signer = Remote()  # type: ignore[assignment]
    with pytest.raises(UnsupportedAlgorithm):
        save_signer(signer, tmp_path / "k")


def test_private_jwk_file(tmp_path: Path) -> None:
    path = tmp_path / "k.jwk"
    path.write_text(json.dumps(KEY.to_jwk()))
    assert load_signer(path).kid == KEY.kid
    assert load_verifier(path) == KEY.public_key


def test_load_verifier_detects_every_format(tmp_path: Path) -> None:
    public = KEY.public_key
    forms = {
        "pem": public.to_pem(),
        "der": public.to_der(),
        "cose": cbor2.dumps(public.to_cose_key(include_kid=True)),
        "jwk": json.dumps(public.to_jwk()).encode(),
    }
    for name, data in forms.items():
        assert load_verifier(data) == public, name
        (tmp_path / name).write_bytes(data)
        assert load_verifier(tmp_path / name) == public, name
        assert load_verifier(str(tmp_path / name)) == public, name


def test_load_verifier_for_lms_cose_key(tmp_path: Path) -> None:
    lms = LmsPrivateKey.generate(tmp_path / "lms.key", "SHA256-N24-H5-W4")
    encoded = cbor2.dumps(lms.public_key.to_cose_key())
    verifier = load_verifier(encoded)
    assert isinstance(verifier, LmsPublicKey)
    verifier.verify(lms.sign(b"x"), b"x")


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x00\x01", b"\xa1\x01", b"\xa0", b"[1]", b"  \n", b"\x30\x00"],
)
def test_load_verifier_rejects_garbage(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        load_verifier(data)


def test_load_verifier_rejects_private_pem() -> None:
    with pytest.raises(MalformedInput):
        load_verifier(KEY.to_pem())


@pytest.mark.parametrize("data", [b"", b"garbage", b"\xa1\x01\x02", b"{}"])
def test_load_signer_rejects_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(data)
    with pytest.raises(MalformedInput):
        load_signer(path)


def test_size_limits(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"-----BEGIN" + b"A" * (1024 * 1024))
    with pytest.raises(LimitExceeded):
        load_signer(path)
    with pytest.raises(LimitExceeded):
        load_verifier(path)
    with pytest.raises(LimitExceeded):
        load_verifier(b"\xa0" * (1024 * 1024 + 1))


def test_verifier_from_cose_key_rejects_non_maps() -> None:
    with pytest.raises(MalformedInput):
        verifier_from_cose_key(cbor2.dumps([1, 2]))
    with pytest.raises(MalformedInput):
        verifier_from_cose_key(b"\xff")
    with pytest.raises(MalformedInput):
        verifier_from_cose_key("text")  # type: ignore[arg-type]


def _with_repeated_x(first: bytes, second: bytes) -> bytes:
    members = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in ((1, 1), (-1, 6), (-2, first)))
    return bytes((0xA4,)) + members + cbor2.dumps(-2) + cbor2.dumps(second)


def test_verifier_from_cose_key_refuses_a_repeated_label() -> None:
    # cbor2.loads kept the last x: another parser keeping the first saw another key
    first = PrivateKey.generate(Algorithm.EDDSA).public_key
    second = PrivateKey.generate(Algorithm.EDDSA).public_key
    data = _with_repeated_x(first.raw_bytes(), second.raw_bytes())
    with pytest.raises(MalformedInput, match="Duplicate"):
        verifier_from_cose_key(data)
    with pytest.raises(MalformedInput, match="Duplicate"):
        load_verifier(data)


def test_verifier_from_cose_key_refuses_trailing_bytes_and_indefinite_maps() -> None:
    key = PrivateKey.generate(Algorithm.ES256).public_key
    encoded = cbor2.dumps(key.to_cose_key())
    assert verifier_from_cose_key(encoded) == key
    with pytest.raises(MalformedInput, match="trailing bytes"):
        verifier_from_cose_key(encoded + b"\x00")
    with pytest.raises(MalformedInput, match="trailing bytes"):
        load_verifier(encoded + b"junk")
    members = b"".join(cbor2.dumps(k) + cbor2.dumps(v) for k, v in key.to_cose_key().items())
    with pytest.raises(MalformedInput, match="indefinite"):
        verifier_from_cose_key(b"\xbf" + members + b"\xff")


@pytest.mark.parametrize(
    "cose_key",
    [
        {1: 2**20000},
        {1: 2, 3: -(2**20000), -1: 1},
        {1: 5, 3: 2**20000, -1: b""},
        {1: 2, -1: 2**20000, -2: b"", -3: b""},
    ],
    ids=["kty", "alg", "lms alg", "crv"],
)
def test_a_bignum_in_a_cose_key_is_no_integer(cose_key: dict[int, object]) -> None:
    # cbor2 decoded tags 2 and 3 to int: naming one of 20,000 bits in an error raised ValueError
    with pytest.raises(UnsupportedAlgorithm):
        load_verifier(cbor2.dumps(cose_key))
