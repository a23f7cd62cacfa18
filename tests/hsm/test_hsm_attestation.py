"""Key attestation: HSM-signed, chained to the device identity, verified offline."""

from __future__ import annotations

import dataclasses

import pytest
from _hsm_helpers import FAST, NOW, make_device, new_hsm, sessions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.cose import CONTENT_TYPE, X5CHAIN, Sign1, encode_cbor, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    ConfigError,
    MalformedInput,
    StaleNonce,
)
from ironroot.hsm import (
    ATTESTATION_CONTENT_TYPE,
    DeviceIdentity,
    KeyAttributes,
    KeyType,
    verify_key_attestation,
)
from x509_extensions import UNKNOWN, UNKNOWN_OID, refusal, with_extension


def test_attestation_of_a_generated_key(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    attrs = KeyAttributes.of(["sign", "verify"], label="receipts", release_policy="true")
    handle = hsm.generate(officer, KeyType.EC_P384, attrs)
    statement = hsm.attest(user, handle, nonce=b"fresh")
    result = verify_key_attestation(
        statement,
        roots=[device.root],
        now=NOW,
        nonce=b"fresh",  # type: ignore[attr-defined]
    )
    assert result.handle == handle
    assert result.key_type is KeyType.EC_P384
    assert result.attributes == attrs
    assert result.generated_inside
    assert result.public_key == hsm.key_info(user, handle).public_key
    assert result.hsm_id == hsm.hsm_id
    assert result.attestation_key == hsm.attestation_public_key
    assert result.device_key.kid == device.identity.signer.kid  # type: ignore[attr-defined]
    with pytest.raises(StaleNonce):
        verify_key_attestation(statement, roots=[device.root], now=NOW, nonce=b"other")  # type: ignore[attr-defined]


def test_imported_and_secret_keys(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    secret = hsm.generate(officer, KeyType.AES_256, KeyAttributes.of(["encrypt"], exportable=True))
    kem = hsm.generate(officer, KeyType.ML_KEM_1024)
    imported = hsm.unwrap(
        user,
        hsm.wrap(user, secret, wrapping_key=kem),
        unwrapping_key=kem,
        attributes=KeyAttributes.of(["encrypt"]),
    )
    roots = [device.root]  # type: ignore[attr-defined]
    result = verify_key_attestation(hsm.attest(officer, imported), roots=roots, now=NOW)
    assert not result.generated_inside
    assert result.public_der is None
    assert result.nonce is None
    kem_result = verify_key_attestation(hsm.attest(user, kem), roots=roots, now=NOW)
    assert kem_result.public_der == hsm.key_info(user, kem).public_der
    assert kem_result.public_key is None


def test_untrusted_root_expired_chain_and_tampering(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    handle = hsm.generate(officer, KeyType.ED25519)
    statement = hsm.attest(user, handle)
    with pytest.raises(ChainNotTrusted):
        verify_key_attestation(statement, roots=[make_device().root], now=NOW)
    with pytest.raises(CertificateExpired):
        verify_key_attestation(
            statement,
            roots=[device.root],
            now=NOW.replace(year=2040),  # type: ignore[attr-defined]
        )
    msg = Sign1.decode(statement)
    forged = dataclasses.replace(msg, payload=msg.payload.replace(b"\xf5", b"\xf4"))  # type: ignore[union-attr]
    with pytest.raises(BadSignature):
        verify_key_attestation(forged.encode(), roots=[device.root], now=NOW)  # type: ignore[attr-defined]


def test_a_statement_signed_by_another_key_is_refused(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    statement = Sign1.decode(hsm.attest(user, hsm.generate(officer, KeyType.EC_P256)))
    intruder = PrivateKey.generate(Algorithm.ES384)
    resigned = sign1(intruder, statement.payload or b"", statement.protected).encode()
    with pytest.raises(BadSignature):
        verify_key_attestation(resigned, roots=[device.root], now=NOW)  # type: ignore[attr-defined]
    # an attestation certificate the device did not issue
    other = make_device()
    foreign_chain = [hsm.attestation_chain[0], *other.identity.chain]
    moved = sign1(
        intruder,
        statement.payload or b"",
        {CONTENT_TYPE: ATTESTATION_CONTENT_TYPE, X5CHAIN: foreign_chain},
    ).encode()
    with pytest.raises(ChainNotTrusted):
        verify_key_attestation(moved, roots=[other.root], now=NOW)


def test_malformed_statements(device: object) -> None:
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    roots = [device.root]  # type: ignore[attr-defined]
    signer = PrivateKey.generate(Algorithm.ES384)
    chain = list(hsm.attestation_chain)
    for protected, payload in (
        ({CONTENT_TYPE: "application/other", X5CHAIN: chain}, b"\xa0"),
        ({CONTENT_TYPE: ATTESTATION_CONTENT_TYPE, X5CHAIN: chain[:1]}, b"\xa0"),
        ({CONTENT_TYPE: ATTESTATION_CONTENT_TYPE}, b"\xa0"),
    ):
        with pytest.raises(MalformedInput):
            verify_key_attestation(sign1(signer, payload, protected).encode(), roots=roots, now=NOW)
    with pytest.raises(MalformedInput):
        verify_key_attestation(b"\x00", roots=roots, now=NOW)
    assert encode_cbor({}) == b"\xa0"


@pytest.mark.parametrize("algorithm", [Algorithm.ML_DSA_87, Algorithm.ED25519, Algorithm.ES256])
def test_other_device_and_attestation_algorithms(algorithm: Algorithm) -> None:
    chain = make_device(algorithm)
    attestation = Algorithm.ML_DSA_87 if algorithm is Algorithm.ES256 else Algorithm.ES384
    config = dataclasses.replace(FAST, attestation_algorithm=attestation)
    hsm = new_hsm(chain.identity, config=config)
    officer, user, _ = sessions(hsm)
    handle = hsm.generate(officer, KeyType.ML_DSA_65)
    result = verify_key_attestation(hsm.attest(user, handle), roots=[chain.root], now=NOW)
    assert result.attestation_key.algorithm is attestation
    cert = x509.load_der_x509_certificate(hsm.attestation_chain[0])
    assert cert.issuer == x509.load_der_x509_certificate(chain.identity.chain[0]).subject


def test_device_signer_must_match_its_certificate(device: object) -> None:
    wrong = DeviceIdentity(PrivateKey.generate(Algorithm.ES384), device.identity.chain)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        new_hsm(wrong)
    with pytest.raises(ConfigError):
        DeviceIdentity(PrivateKey.generate(Algorithm.ES384), ())


def test_a_device_chain_out_of_order_is_refused_at_initialize() -> None:
    """The device chain goes into every statement's x5chain, which verifiers take only as the
    ordered path (RFC 9360): a chain whose next certificate is not the issuer of the one
    before is refused when the HSM is made, not found out by every verifier later."""
    ordered, other = make_device(), make_device()
    leaf, _root = ordered.identity.chain
    stranger = other.root.public_bytes(Encoding.DER)
    misordered = DeviceIdentity(ordered.identity.signer, (leaf, stranger))
    with pytest.raises(ConfigError, match="device chain is not in order"):
        new_hsm(misordered)
    new_hsm(ordered.identity)  # the same leaf followed by its own issuer


@pytest.mark.parametrize("where", ["attestation", "device"])
@pytest.mark.parametrize("critical", [True, False])
def test_a_certificate_with_an_unknown_critical_extension_is_refused(
    device: object, where: str, critical: bool
) -> None:
    # RFC 5280 §4.2. The attestation certificate is checked link by link (standard extensions
    # only); the device chain by the library's path validation, which refuses it as well.
    hsm = new_hsm(device.identity)  # type: ignore[attr-defined]
    officer, user, _ = sessions(hsm)
    statement = Sign1.decode(hsm.attest(user, hsm.generate(officer, KeyType.EC_P256)))
    attestation_key = PrivateKey.generate(Algorithm.ES384)
    device_key = device.identity.signer.raw  # type: ignore[attr-defined]
    device_der, root_der = device.identity.chain  # type: ignore[attr-defined]
    device_cert = x509.load_der_x509_certificate(device_der)
    attestation = with_extension(
        x509.load_der_x509_certificate(hsm.attestation_chain[0]),
        device_key,
        critical=critical,
        extension=UNKNOWN if where == "attestation" else None,
        public_key=attestation_key.public_key.raw,
    )
    if where == "device":
        device_cert = with_extension(device_cert, device.root_key.raw, critical=critical)  # type: ignore[attr-defined]
    chain = [c.public_bytes(Encoding.DER) for c in (attestation, device_cert)] + [root_der]
    protected = {CONTENT_TYPE: ATTESTATION_CONTENT_TYPE, X5CHAIN: chain}
    resigned = sign1(attestation_key, statement.payload or b"", protected).encode()
    roots = [device.root]  # type: ignore[attr-defined]
    if not critical:
        assert verify_key_attestation(resigned, roots=roots, now=NOW).hsm_id == hsm.hsm_id
        return
    if where == "attestation":
        pattern = refusal(attestation)
    else:  # the library's words, naming the extension
        pattern = f"x5chain does not validate to a trusted root: .*invalid extension: {UNKNOWN_OID}"
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_key_attestation(resigned, roots=roots, now=NOW)
    assert type(caught.value) is ChainNotTrusted
