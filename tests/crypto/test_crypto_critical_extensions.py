"""ExtensionProfile: the one RFC 5280 §4.2 check of the verifiers that walk issuer links."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from ironroot.crypto import STANDARD_EXTENSIONS, ExtensionProfile
from ironroot.errors import ChainNotTrusted

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())


def _cert(*extensions: tuple[x509.ExtensionType, bool]) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some device")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(_KEY, hashes.SHA256())


def _opaque(oid: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00")


def test_the_standard_extensions() -> None:
    assert {
        "2.5.29.19",  # basicConstraints
        "2.5.29.15",  # keyUsage
        "2.5.29.37",  # extKeyUsage
        "2.5.29.14",  # subjectKeyIdentifier
        "2.5.29.35",  # authorityKeyIdentifier
    } == STANDARD_EXTENSIONS
    profile = ExtensionProfile.of("test", "1.2.3", x509.ObjectIdentifier("1.2.4"))
    assert profile.understood == STANDARD_EXTENSIONS | {"1.2.3", "1.2.4"}


def test_critical_extensions_the_profile_knows_pass() -> None:
    cert = _cert(
        (x509.BasicConstraints(ca=True, path_length=None), True),
        (x509.KeyUsage(True, False, False, False, False, True, False, False, False), True),
        (x509.ExtendedKeyUsage([x509.ObjectIdentifier("1.3.6.1.4.1.412.274.3")]), True),
        (_opaque("2.23.133.5.4.1"), True),
    )
    ExtensionProfile.of("DICE", "2.23.133.5.4.1").check(cert)


def test_an_unknown_critical_extension_is_refused_naming_it() -> None:
    cert = _cert((_opaque("1.2.3.4"), True), (_opaque("1.2.3.5"), False))
    assert ExtensionProfile.of("test").unknown_critical(cert.extensions) == ("1.2.3.4",)
    with pytest.raises(ChainNotTrusted) as caught:
        ExtensionProfile.of("test").check(cert)
    assert type(caught.value) is ChainNotTrusted
    assert caught.value.detail == "certificate 'CN=Some device': unknown critical extension 1.2.3.4"
    with pytest.raises(ChainNotTrusted) as coded:
        ExtensionProfile.of("test").check(cert, code="credential-untrusted")
    assert coded.value.code == "credential-untrusted"


def test_standard_extensions_a_profile_does_not_process_are_refused() -> None:
    # A name constraint or a certificate policy constrains the path: a verifier that walks
    # issuer links itself does not enforce them, so critical they are refused.
    constraints = x509.NameConstraints([x509.DNSName("example.com")], None)
    policies = x509.CertificatePolicies(
        [x509.PolicyInformation(x509.ObjectIdentifier("1.2"), None)]
    )
    cert = _cert((constraints, True), (policies, True))
    with pytest.raises(ChainNotTrusted) as caught:
        ExtensionProfile.of("test").check(cert)
    assert caught.value.detail == (
        "certificate 'CN=Some device': unknown critical extensions 2.5.29.30, 2.5.29.32"
    )


def test_unknown_non_critical_extensions_pass() -> None:
    ExtensionProfile.of("test").check(_cert((_opaque("1.2.3.4"), False)))
    ExtensionProfile.of("test").check(_cert())


def test_the_dice_profile_is_the_dice_verifiers() -> None:
    from ironroot.crypto import DICE_EXTENSIONS
    from ironroot.rot import dice

    oids = (dice.TCB_INFO_OID, dice.MULTI_TCB_INFO_OID, dice.UEID_OID, dice.OPEN_DICE_OID)
    assert DICE_EXTENSIONS.understood == STANDARD_EXTENSIONS | {o.dotted_string for o in oids}


_ROOT_KEY = ec.generate_private_key(ec.SECP256R1())
_ROOT_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some root")])
_ROOT = (
    x509.CertificateBuilder()
    .subject_name(_ROOT_NAME)
    .issuer_name(_ROOT_NAME)
    .public_key(_ROOT_KEY.public_key())
    .serial_number(1)
    .not_valid_before(NOW)
    .not_valid_after(NOW + dt.timedelta(days=1))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(_ROOT_KEY, hashes.SHA256())
)


def _validate(
    policy: verification.ExtensionPolicy, *extensions: tuple[x509.ExtensionType, bool]
) -> None:
    """Path validation by ``cryptography`` of a leaf under ``_ROOT`` carrying ``extensions``
    (extension, critical), with ``policy`` for the leaf."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some device")]))
        .issuer_name(_ROOT_NAME)
        .public_key(_KEY.public_key())
        .serial_number(2)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    leaf = builder.sign(_ROOT_KEY, hashes.SHA256())
    ca_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, None
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([_ROOT]))
        .time(NOW + dt.timedelta(hours=1))
        .extension_policies(ca_policy=ca_policy, ee_policy=policy)
        .build_client_verifier()
    )
    verifier.verify(leaf, [])


def test_extension_policy_declares_the_profile_to_cryptography() -> None:
    # cryptography's path validation refuses a critical extension it has no type for; declared
    # by the profile, it passes, and one the profile does not know is still refused.
    critical = (_opaque("1.2.3.4"), True)
    permit_all = verification.ExtensionPolicy.permit_all()
    refused = r"1\.2\.3\.4: certificate contains unaccounted-for critical extensions"
    with pytest.raises(verification.VerificationError, match=refused):
        _validate(permit_all, critical)
    _validate(ExtensionProfile.of("test", "1.2.3.4").extension_policy(permit_all), critical)
    with pytest.raises(verification.VerificationError, match=refused):
        _validate(ExtensionProfile.of("test", "1.2.3.5").extension_policy(permit_all), critical)


def test_extension_policy_checks_only_critical_values() -> None:
    seen: list[tuple[str, bytes]] = []

    def refuse(oid: str, value: bytes) -> None:
        seen.append((oid, value))
        raise ValueError(f"extension {oid} does not decode")

    policy = ExtensionProfile.of("test", "1.2.3.4").extension_policy(
        verification.ExtensionPolicy.permit_all(), check=refuse
    )
    refused = r"ValueError: extension 1\.2\.3\.4 does not decode"
    with pytest.raises(verification.VerificationError, match=refused):
        _validate(policy, (_opaque("1.2.3.4"), True))
    assert seen == [("1.2.3.4", b"\x05\x00")]
    _validate(policy, (_opaque("1.2.3.4"), False))  # not critical: not checked
    _validate(policy)  # absent
    assert len(seen) == 1
