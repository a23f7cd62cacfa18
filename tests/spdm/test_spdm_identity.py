"""Device identities Ironroot generates for SPDM responders: chains libspdm accepts."""

from __future__ import annotations

import datetime as dt

import pytest
from _spdm_helpers import BLOCKS, NOW, Device
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, MalformedCertificate
from ironroot.spdm import (
    BaseHashAlgo,
    CertificateChain,
    DeviceIdentity,
    Requester,
    Responder,
    check_device_leaf,
    verify_certificate_chain,
)

HASH_FOR = {
    Algorithm.ES256: BaseHashAlgo.SHA_256,
    Algorithm.ES384: BaseHashAlgo.SHA_384,
    Algorithm.ES512: BaseHashAlgo.SHA_512,
}


@pytest.mark.parametrize("algorithm", [Algorithm.ES256, Algorithm.ES384, Algorithm.ES512])
def test_generated_chain_shape(algorithm: Algorithm) -> None:
    identity = DeviceIdentity.generate(algorithm, now=NOW, common_name="Widget")
    root, ca, leaf = (x509.load_der_x509_certificate(c) for c in identity.chain)
    assert leaf.subject.rfc4514_string() == "CN=Widget"
    assert leaf.issuer == ca.subject
    assert ca.issuer == root.subject == root.issuer
    leaf_bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    leaf_ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert leaf_bc.critical
    assert leaf_bc.value.ca is False
    assert leaf_ku.critical
    assert leaf_ku.value.digital_signature
    assert not leaf_ku.value.key_cert_sign
    # BasicConstraints CA:FALSE is the empty SEQUENCE 30 00 (the form libspdm compares with)
    assert leaf_bc.value.public_bytes() == b"\x30\x00"
    for cert in (root, ca):
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert check_device_leaf(identity.leaf) == []
    assert identity.root == identity.chain[0]
    chain = CertificateChain.build(identity.chain, HASH_FOR[algorithm])
    verify_certificate_chain(chain, root=identity.root, hash_algo=HASH_FOR[algorithm], now=NOW)
    assert leaf.not_valid_before_utc < NOW < leaf.not_valid_after_utc
    assert "key" not in repr(identity).lower().replace("publickey", "")


def test_generated_device_attests() -> None:
    identity = DeviceIdentity.generate(Algorithm.ES256, now=NOW)
    responder = Responder(identity.key, identity.chain, BLOCKS)
    requester = Requester(responder, root_certificate=identity.root, now=NOW)
    result = requester.attest()
    assert result.challenge_auth is not None


def test_check_device_leaf_reports_what_is_missing() -> None:
    device = Device()
    assert check_device_leaf(device.leaf) == []
    assert "BasicConstraints says CA:TRUE" in check_device_leaf(device.intermediate)
    assert "KeyUsage lacks digitalSignature" in check_device_leaf(device.intermediate)
    bare = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(device.leaf_key.public_key.raw)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .sign(device.ca_key.raw, hashes.SHA384())  # type: ignore[arg-type]
        .public_bytes(serialization.Encoding.DER)
    )
    assert check_device_leaf(bare) == ["BasicConstraints is not critical", "no KeyUsage"]
    with pytest.raises(MalformedCertificate):
        check_device_leaf(b"\x30\x00")


def test_identity_checks_its_parts() -> None:
    identity = DeviceIdentity.generate(now=NOW)
    with pytest.raises(ConfigError, match="does not certify"):
        DeviceIdentity(PrivateKey.generate(Algorithm.ES384), identity.chain)
    with pytest.raises(ConfigError):
        DeviceIdentity(PrivateKey.generate(Algorithm.ED25519), identity.chain)
    with pytest.raises(ConfigError):
        DeviceIdentity(identity.key, ())
    with pytest.raises(ConfigError):
        DeviceIdentity.generate(Algorithm.ED25519, now=NOW)
    with pytest.raises(ConfigError):
        DeviceIdentity.generate(now=NOW.replace(tzinfo=None))
    with pytest.raises(ConfigError):
        DeviceIdentity.generate(now=NOW, days=0)
    with pytest.raises(ConfigError):
        DeviceIdentity.generate(now=NOW, common_name="")
    # `ironroot spdm device-init --at 9999-12-31...`: an OverflowError, an internal error
    for edge in (dt.datetime.max, dt.datetime.min):
        with pytest.raises(ConfigError, match="is no date"):
            DeviceIdentity.generate(now=edge.replace(tzinfo=dt.UTC))
