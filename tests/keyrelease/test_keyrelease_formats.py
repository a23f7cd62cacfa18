"""The wrapping key's canonical form, the report data, the released-key format and the TEE's
unwrap: round trips, exact bytes, refusals, fuzzing; and the package's public surface."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import resource
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import RSAKey

import ironroot.keyrelease
from hsm_devices import ReleaseSigner
from hypothesis_budget import examples
from ironroot.cose import decode_cbor, encode_cbor
from ironroot.errors import (
    IronrootError,
    KeyBindingMismatch,
    LimitExceeded,
    MalformedInput,
    ReleaseDenied,
    StaleNonce,
    StorageError,
    StoreUnavailable,
    UnsupportedAlgorithm,
    VerificationFailed,
)
from ironroot.hsm import KeyType, wrap_key_kem, wrap_key_rsa_aes
from ironroot.keyrelease import (
    ReleasedKey,
    WrappingKey,
    bind_report_data,
    check_binding,
    parse_release_request,
)
from ironroot.keyrelease._format import RELEASED_KEY_CBOR
from ironroot.keyrelease.tee import TeeKeyPair

MLKEM = TeeKeyPair.generate("ML-KEM-768")
NONCE = bytes(range(32))


HSM = ReleaseSigner()
ROOTS = HSM.roots


def _answer(
    tee: TeeKeyPair, key_type: KeyType, alg: str, wrapped: bytes, *, kid: str = "db-key"
) -> ReleasedKey:
    """The key service's answer: ``wrapped`` with the HSM's statement over it."""
    recipient = tee.public.digest
    return ReleasedKey(
        kid=kid,
        key_type=key_type,
        alg=alg,
        recipient=recipient,
        nonce=NONCE,
        wrapped=wrapped,
        statement=HSM.sign(key_type=key_type, recipient=recipient, nonce=NONCE, wrapped=wrapped),
    )


def _released(tee: TeeKeyPair = MLKEM, material: bytes = b"k" * 32) -> ReleasedKey:
    wrapped = wrap_key_kem(tee.public.key, KeyType.AES_256, material)  # type: ignore[arg-type]
    return _answer(tee, KeyType.AES_256, "ML-KEM-768+A256KWP", wrapped)


def test_public_surface() -> None:
    assert sorted(ironroot.keyrelease.__all__) == sorted(
        [
            "CEL_VARIABLES",
            "CONFIG_FILE",
            "NONCE_SIZE",
            "RELEASED_KEY_CBOR",
            "RELEASED_KEY_JSON",
            "RELEASES_DB",
            "REPORT_DATA_SIZE",
            "WRAPPING_KEY_KINDS",
            "WRAP_ALGORITHMS",
            "AzureReleasePolicy",
            "CelReleasePolicy",
            "HsmVault",
            "KeyReleaseClient",
            "KeyReleaseConfig",
            "KeyReleaseServerThread",
            "KeyReleaseService",
            "KeyVault",
            "PolicyCache",
            "ReleasableKey",
            "ReleaseContext",
            "ReleasePolicy",
            "ReleaseGate",
            "ReleaseRequest",
            "ReleaseStatements",
            "ReleasedKey",
            "TeeKeyPair",
            "TrustedVerifier",
            "UnwrappedKey",
            "WrappingKey",
            "authorize_release",
            "bind_report_data",
            "check_binding",
            "check_composite_binding",
            "create_keyrelease_app",
            "demo_release",
            "keyrelease_info",
            "keyrelease_routes",
            "load_keyrelease_config",
            "parse_release_policy",
            "parse_release_request",
            "release_claims",
            "serve_keyrelease",
        ]
    )
    assert ironroot.keyrelease.tee.__all__ == ["TeeKeyPair", "UnwrappedKey"]


def test_report_data_is_nonce_then_sha256_of_spki() -> None:
    spki = MLKEM.public_spki
    assert spki[:2] == b"\x30\x82"
    assert len(spki) == 1206
    assert MLKEM.report_data(NONCE) == NONCE + hashlib.sha256(spki).digest()
    assert bind_report_data(NONCE, MLKEM.public) == MLKEM.report_data(NONCE)


def test_canonical_form_is_the_same_for_pem_der_and_jwk() -> None:
    private = rsa.generate_private_key(65537, 3072)
    public = private.public_key()
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = RSAKey.import_key(public).as_dict()
    forms = [der, pem, pem.decode(), jwk, json.dumps(jwk)]
    parsed = {WrappingKey.parse(f).spki for f in forms}  # type: ignore[arg-type]
    assert parsed == {der}
    assert WrappingKey.parse(der).kind == "RSA-3072"
    assert WrappingKey.parse(MLKEM.public.to_pem()).spki == MLKEM.public_spki


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (b"", MalformedInput),
        (b"\x30\x03\x02\x01\x00", MalformedInput),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", MalformedInput),
        ({"kty": "EC", "crv": "P-256"}, UnsupportedAlgorithm),
        ({"kty": "RSA", "n": "AQAB"}, MalformedInput),
        (b"{not json", MalformedInput),
        (b'{"k":' * 2500 + b"1" + b"}" * 2500, MalformedInput),  # nested too deep, 15 KB
        (b"\x00" * (17 * 1024), LimitExceeded),
    ],
)
def test_wrapping_keys_that_are_refused(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        WrappingKey.parse(value)  # type: ignore[arg-type]


def test_rsa_keys_outside_the_profile_are_refused() -> None:
    small = rsa.generate_private_key(65537, 2048).public_key()
    der = small.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UnsupportedAlgorithm):
        WrappingKey.parse(der)
    jwk = RSAKey.import_key(rsa.generate_private_key(65537, 3072)).as_dict(private=True)
    with pytest.raises(MalformedInput):
        WrappingKey.parse(jwk)


def test_check_binding_names_what_is_wrong() -> None:
    good = MLKEM.report_data(NONCE)
    check_binding(good, nonce=NONCE, key=MLKEM.public)
    with pytest.raises(StaleNonce) as info:
        check_binding(good, nonce=bytes(32), key=MLKEM.public)
    assert info.value.code == "nonce-mismatch"
    with pytest.raises(KeyBindingMismatch):
        check_binding(good, nonce=NONCE, key=TeeKeyPair.generate().public)
    with pytest.raises(StaleNonce):
        check_binding(good[:63], nonce=NONCE, key=MLKEM.public)
    with pytest.raises(StaleNonce):
        check_binding(good, nonce=b"short", key=MLKEM.public)


def test_released_key_cbor_layout() -> None:
    released = _released()
    decoded = decode_cbor(released.to_cbor())
    assert decoded == {
        "v": 2,
        "kid": "db-key",
        "key_type": "AES-256",
        "alg": "ML-KEM-768+A256KWP",
        "recipient": MLKEM.public.digest,
        "nonce": NONCE,
        "wrapped": released.wrapped,
        "statement": released.statement,
    }
    wrapped = released.wrapped
    assert wrapped[:8] == b"IRKW\x01\x01\x0a\x00"
    assert len(wrapped) == 8 + 1088 + 40
    assert ReleasedKey.parse(released.to_cbor()) == released
    assert ReleasedKey.parse(released.to_json()) == released
    assert ReleasedKey.parse(released.to_json().encode()) == released


def test_a_released_key_in_json_with_a_member_twice_is_refused() -> None:
    """Which of two ``kid`` members a reader takes is its parser's choice: the TEE checking
    the name and a proxy logging it could read two keys from one answer."""
    text = _released().to_json()
    assert text.startswith("{")
    twice = '{"kid": "other-key", ' + text[1:]
    with pytest.raises(MalformedInput, match="appears twice"):
        ReleasedKey.parse(twice)
    with pytest.raises(MalformedInput, match="appears twice"):
        MLKEM.unwrap(twice.encode(), nonce=NONCE, hsm_roots=ROOTS, kid="db-key")


def test_tee_unwraps_and_checks_what_it_was_given() -> None:
    released = _released()
    key = MLKEM.unwrap(released.to_cbor(), nonce=NONCE, hsm_roots=ROOTS)
    assert (key.kid, key.key_type, key.material) == ("db-key", KeyType.AES_256, b"k" * 32)
    assert "material" not in repr(key)
    assert "kkkk" not in repr(key)
    with pytest.raises(StaleNonce):
        MLKEM.unwrap(released, nonce=bytes(32), hsm_roots=ROOTS)
    with pytest.raises(KeyBindingMismatch):
        TeeKeyPair.generate().unwrap(released, nonce=NONCE, hsm_roots=ROOTS)
    other = TeeKeyPair.generate()
    # Even with the HSM's statement over them: bytes wrapped to another key do not unwrap,
    # and a header naming another key type than the response is refused.
    misdirected = _answer(MLKEM, KeyType.AES_256, "ML-KEM-768+A256KWP", _released(other).wrapped)
    with pytest.raises(VerificationFailed):
        MLKEM.unwrap(misdirected, nonce=NONCE, hsm_roots=ROOTS)
    mislabelled = _answer(MLKEM, KeyType.HMAC_SHA384, "ML-KEM-768+A256KWP", released.wrapped)
    with pytest.raises(MalformedInput):
        MLKEM.unwrap(mislabelled, nonce=NONCE, hsm_roots=ROOTS)


def test_tee_unwrap_checks_the_key_name_when_given() -> None:
    released = _released()
    assert MLKEM.unwrap(released, nonce=NONCE, hsm_roots=ROOTS, kid="db-key").kid == "db-key"
    with pytest.raises(KeyBindingMismatch, match="of key 'db-key', not 'other-key'") as caught:
        MLKEM.unwrap(released, nonce=NONCE, hsm_roots=ROOTS, kid="other-key")
    assert caught.value.code == "other-key"


def test_tee_unwrap_needs_the_nonce() -> None:
    with pytest.raises(TypeError):
        MLKEM.unwrap(_released(), hsm_roots=ROOTS)  # type: ignore[call-arg]
    with pytest.raises(StaleNonce, match="answers another nonce"):
        MLKEM.unwrap(_released(), nonce=None, hsm_roots=ROOTS)  # type: ignore[arg-type]


RSA_TEE = TeeKeyPair(rsa.generate_private_key(65537, 3072))


def _rsa_released(key_type: KeyType, material: bytes) -> ReleasedKey:
    wrapped = wrap_key_rsa_aes(RSA_TEE.public.key, material)  # type: ignore[arg-type]
    return _answer(RSA_TEE, key_type, "RSA-OAEP-256+A256KWP", wrapped)


def test_tee_unwrap_refuses_material_that_is_not_the_named_type() -> None:
    """The RSA format carries no key type: the material itself must be one of the type the
    response names, or a 32-byte AES value could be taken for a P-384 key (and the reverse)."""
    key = RSA_TEE.unwrap(_rsa_released(KeyType.AES_256, b"a" * 32), nonce=NONCE, hsm_roots=ROOTS)
    assert (key.key_type, key.material) == (KeyType.AES_256, b"a" * 32)
    with pytest.raises(MalformedInput, match="not a PKCS#8 private key"):
        RSA_TEE.unwrap(_rsa_released(KeyType.EC_P384, b"a" * 32), nonce=NONCE, hsm_roots=ROOTS)
    with pytest.raises(MalformedInput, match="AES-256 key must be 32 bytes"):
        RSA_TEE.unwrap(_rsa_released(KeyType.AES_256, b"a" * 48), nonce=NONCE, hsm_roots=ROOTS)
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(MalformedInput, match="not a EC-P384 key"):
        RSA_TEE.unwrap(_rsa_released(KeyType.EC_P384, p256), nonce=NONCE, hsm_roots=ROOTS)


def test_tee_key_pem_round_trip() -> None:
    again = TeeKeyPair.from_pem(MLKEM.to_pem())
    assert again.public_spki == MLKEM.public_spki
    assert "PRIVATE" not in repr(again)
    with pytest.raises(MalformedInput):
        TeeKeyPair.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(UnsupportedAlgorithm):
        TeeKeyPair.generate("X25519")


def test_a_tee_key_file_of_an_algorithm_the_library_does_not_know() -> None:
    # PKCS#8 whose algorithm OID the library does not know: its own UnsupportedAlgorithm
    # used to escape, untyped
    der = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = der.replace(bytes.fromhex("2a8648ce3d0201"), bytes.fromhex("2a8648ce3d0209"), 1)
    body = b"\n".join(base64.encodebytes(der).split())
    text = b"-----BEGIN PRIVATE KEY-----\n" + body + b"\n-----END PRIVATE KEY-----\n"
    with pytest.raises(UnsupportedAlgorithm, match="not a key type a TEE wraps with"):
        TeeKeyPair.from_pem(text)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xa0",
        b"{}",
        b'{"v": 1}',
        b"\x00" * 10,
        json.dumps(
            {
                "v": 2,
                "kid": "k",
                "key_type": "AES-256",
                "alg": "ML-KEM-768+A256KWP",
                "recipient": "A" * 43,
                "nonce": "A" * 43,
                "wrapped": "A" * 40,
            }
        ).encode(),
        json.dumps(
            {
                "v": 1,
                "kid": "k",
                "key_type": "DES",
                "alg": "ML-KEM-768+A256KWP",
                "recipient": "A" * 43,
                "nonce": "A" * 43,
                "wrapped": "A" * 40,
            }
        ).encode(),
    ],
)
def test_released_keys_that_do_not_parse(data: bytes) -> None:
    with pytest.raises(MalformedInput):
        ReleasedKey.parse(data)


@pytest.mark.parametrize("version", [2.0, True, "2"], ids=["float", "bool", "text"])
def test_a_released_key_version_is_the_integer_2(version: object) -> None:
    """``v`` is a uint (docs/keyrelease.md): ``2.0`` equals ``2`` in Python, not in CBOR or
    JSON's integer reading, and is refused in both forms like any other value."""
    released = _released()
    as_json = {**json.loads(released.to_json()), "v": version}
    as_cbor = {**decode_cbor(released.to_cbor()), "v": version}  # type: ignore[dict-item]
    for data in (json.dumps(as_json).encode(), encode_cbor(as_cbor)):
        with pytest.raises(MalformedInput) as caught:
            ReleasedKey.parse(data)
        assert str(caught.value) == f"released key format version {version!r} is not 2"


@settings(max_examples=examples(100), deadline=None)
@given(
    kid=st.text(min_size=1, max_size=40),
    key_type=st.sampled_from(list(KeyType)),
    alg=st.sampled_from(["ML-KEM-768+A256KWP", "ML-KEM-1024+A256KWP", "RSA-OAEP-256+A256KWP"]),
    recipient=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=32, max_size=32),
    wrapped=st.binary(min_size=16, max_size=2048),
    statement=st.binary(min_size=1, max_size=2048),
)
def test_released_key_round_trips(
    kid: str,
    key_type: KeyType,
    alg: str,
    recipient: bytes,
    nonce: bytes,
    wrapped: bytes,
    statement: bytes,
) -> None:
    released = ReleasedKey(kid, key_type, alg, recipient, nonce, wrapped, statement)
    assert ReleasedKey.from_cbor(released.to_cbor()) == released
    assert ReleasedKey.from_json(released.to_json()) == released


@settings(max_examples=examples(150), deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_typed_errors(data: bytes) -> None:
    for parse in (ReleasedKey.parse, WrappingKey.parse):
        with contextlib.suppress(MalformedInput):
            parse(data)
    for ctype in ("application/cbor", "application/json"):
        with contextlib.suppress(MalformedInput):
            parse_release_request(data, ctype)


@pytest.mark.parametrize(
    "body", [b"<html>a proxy's page</html>", b"[" * 5000, b'["not an object"]', b"\xff\xfe"]
)
def test_a_challenge_answer_that_is_not_a_json_object_is_the_services_failure(
    body: bytes,
) -> None:
    # Was MalformedInput (exit 2); nothing the caller gave is wrong: the service's answer is
    # (StorageError malformed-answer, exit 1, as the transparency client's)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    with (
        ironroot.keyrelease.KeyReleaseClient("http://keys.test", transport=transport) as client,
        pytest.raises(StorageError) as caught,
    ):
        client.challenge()
    assert type(caught.value) is StorageError
    assert caught.value.code == "malformed-answer"


@pytest.mark.parametrize(
    ("change", "error", "code"),
    [
        ({"kid": "another-key"}, KeyBindingMismatch, "other-key"),
        ({"nonce": bytes(32)}, StaleNonce, "nonce-mismatch"),
        ({"recipient": bytes(32)}, KeyBindingMismatch, None),
    ],
)
def test_a_release_answer_for_another_request_is_refused_by_the_client(
    change: dict[str, object], error: type[Exception], code: str | None
) -> None:
    """The client checks that the answer is for its own request (the key it named, its
    nonce, its wrapping key): it returned whatever parsed, e.g. a proxy's answer to another
    TEE's request for another key."""
    import dataclasses

    answer = dataclasses.replace(_released(), **change)  # type: ignore[arg-type]
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=answer.to_cbor(), headers={"Content-Type": RELEASED_KEY_CBOR}
        )
    )
    with (
        ironroot.keyrelease.KeyReleaseClient("http://keys.test", transport=transport) as client,
        pytest.raises(error) as info,
    ):
        client.release("db-key", ear=b"e", wrapping_key=MLKEM.public_spki, nonce=NONCE)
    if code is not None:
        assert info.value.code == code  # type: ignore[attr-defined]


def test_the_release_answer_for_this_request_is_returned() -> None:
    answer = _released()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=answer.to_cbor(), headers={"Content-Type": RELEASED_KEY_CBOR}
        )
    )
    with ironroot.keyrelease.KeyReleaseClient("http://keys.test", transport=transport) as client:
        got = client.release("db-key", ear=b"e", wrapping_key=MLKEM.public_spki, nonce=NONCE)
    assert got == answer


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("old-size-mismatch", IronrootError),  # its class needs a size: the base, typed
        ("store-unavailable", StoreUnavailable),
        ("release-denied", ReleaseDenied),
    ],
)
def test_a_refusal_naming_any_error_code_is_a_typed_error(
    code: str, error: type[IronrootError]
) -> None:
    """Whatever error code the answer names, the client raises a typed error, never the
    ``TypeError`` of an error class that takes other arguments."""
    problem = {"title": "Refused", "status": 409, "detail": "no", "code": code}
    transport = httpx.MockTransport(
        lambda request: httpx.Response(
            409, json=problem, headers={"Content-Type": "application/problem+json"}
        )
    )
    with (
        ironroot.keyrelease.KeyReleaseClient("http://keys.test", transport=transport) as client,
        pytest.raises(IronrootError) as info,
    ):
        client.release("db-key", ear=b"e", wrapping_key=MLKEM.public_spki, nonce=NONCE)
    assert type(info.value) is error
    assert (info.value.code, info.value.detail) == (code, "no")


def test_the_cli_writes_keys_owner_only_even_over_a_readable_file(tmp_path: Path) -> None:
    """``--out`` naming a file that is there already, world-readable: the unwrapped key and
    the TEE's private key are written owner-only all the same."""
    from ironroot.cli import main

    tee_file, released, out = tmp_path / "tee.key", tmp_path / "released.cbor", tmp_path / "k"
    for path in (tee_file, out):
        path.write_bytes(b"")
        path.chmod(0o644)
    assert main(["keyrelease", "tee-key", "--out", str(tee_file)]) == 0
    assert stat.S_IMODE(tee_file.stat().st_mode) == 0o600
    tee = TeeKeyPair.from_pem(tee_file.read_bytes())
    released.write_bytes(_released(tee).to_cbor())
    root = tmp_path / "hsm-root.pem"
    root.write_bytes(ROOTS[0].public_bytes(serialization.Encoding.PEM))
    args = ["--tee-key", str(tee_file), "--nonce", NONCE.hex(), "--hsm-root", str(root)]
    assert main(["keyrelease", "unwrap", str(released), "--out", str(out), *args]) == 0
    assert out.read_bytes() == b"k" * 32
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_endless_answer_is_refused_as_it_streams_in() -> None:
    """The client stops reading at its bound: whoever answers in the key service's place
    cannot make the TEE hold (or wait for) a body of any size."""
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(256):  # 64 MiB, if it were all read
            pulled += 256 * 1024
            yield b"a" * (256 * 1024)

    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=endless()))
    with (
        ironroot.keyrelease.KeyReleaseClient("http://keys.test", transport=transport) as client,
        pytest.raises(StorageError, match="with more than 262144 bytes") as caught,
    ):
        client.challenge()
    assert caught.value.code == "answer-too-large"  # the service's failure, not the caller's
    assert pulled <= 512 * 1024


def test_a_key_file_that_fails_part_way_leaves_the_file_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import main

    tee_file = tmp_path / "tee.key"
    tee_file.write_bytes(b"the TEE key kept from before\n")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64, limit[1]))  # less than a PEM key
    try:
        code = main(["keyrelease", "tee-key", "--out", str(tee_file)])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limit)
        signal.signal(signal.SIGXFSZ, previous)
    assert code == 2
    assert "file too large" in capsys.readouterr().err
    assert tee_file.read_bytes() == b"the TEE key kept from before\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_tee_key_whose_public_file_cannot_be_written_writes_neither(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ironroot.cli import main

    (tmp_path / "tee.key.pub.pem").mkdir()
    assert main(["keyrelease", "tee-key", "--out", str(tmp_path / "tee.key")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"ironroot: input-unavailable: {tmp_path}/tee.key.pub.pem: is a directory, not a file\n"
    )
    assert not (tmp_path / "tee.key").exists()  # no private key without its public one
