"""Builders: DICE extensions added with ``x509.CertificateBuilder`` parse back unchanged, and a
built IDevID -> alias chain (P-384 and ML-DSA-87) verifies."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

import ironroot.rot
from hypothesis_budget import examples
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, ChainNotTrusted, MalformedCertificate
from ironroot.rot import (
    MULTI_TCB_INFO_OID,
    TCB_INFO_OID,
    UEID_OID,
    Fwid,
    OperationalFlags,
    TcbInfo,
    build_key_purpose_extension,
    build_multi_tcb_info_extension,
    build_tcb_info_extension,
    build_ueid_extension,
    parse_certificate,
    parse_certificates,
    parse_csr,
    parse_multi_tcb_info,
    parse_ueid,
    verify_chain,
    verify_signature,
)

NOW = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC)
SHA384 = "2.16.840.1.101.3.4.2.2"
DEVICE = TcbInfo.with_svn(
    7,
    caliptra=True,
    fwids=(Fwid(SHA384, bytes(range(48))),),
    flags=OperationalFlags.of("fixedWidth"),
    flags_mask=OperationalFlags.of("notConfigured", "notSecure", "debug", "fixedWidth"),
    type=b"DEVICE_INFO",
)
FMC = TcbInfo(
    vendor="Ironroot",
    model="rot-sim",
    version="1.4.2",
    svn_raw=3,
    layer=1,
    index=0,
    fwids=(Fwid(SHA384, b"\xfe" * 48),),
    vendor_info=b"\x01\x02",
    type=b"FMC_INFO",
)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    issuer: str,
    key: PrivateKey,
    issuer_key: PrivateKey,
    extensions: list[tuple[x509.ExtensionType, bool]],
    *,
    ca: bool,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key.raw)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    hash_alg = hashes.SHA384() if issuer_key.algorithm is Algorithm.ES384 else None
    return builder.sign(issuer_key.raw, hash_alg).public_bytes(Encoding.DER)


@pytest.mark.parametrize("algorithm", [Algorithm.ES384, Algorithm.ML_DSA_87])
def test_build_chain_parse_back_and_verify(algorithm: Algorithm) -> None:
    root = PrivateKey.generate(algorithm)
    alias = PrivateKey.generate(algorithm)
    root_der = _cert(
        "IDevID",
        "IDevID",
        root,
        root,
        [
            (build_ueid_extension(b"\x01" * 17), False),
            (build_key_purpose_extension("identityInit", "eca"), True),
        ],
        ca=True,
    )
    alias_der = _cert(
        "Alias",
        "IDevID",
        alias,
        root,
        [
            (build_multi_tcb_info_extension([DEVICE, FMC]), True),
            (build_tcb_info_extension(FMC), False),
            (build_ueid_extension(b"\x01" * 17), False),
            (build_key_purpose_extension("attestLoc"), True),
        ],
        ca=False,
    )
    parsed_root = parse_certificate(root_der)
    parsed_alias = parse_certificate(alias_der)
    assert parsed_root.dice.key_purposes == ("identityInit", "eca")
    assert parsed_root.dice.ueid == b"\x01" * 17
    # MultiTcbInfo first, then the single TcbInfo, in extension order.
    assert parsed_alias.dice.tcb_infos == (DEVICE, FMC, FMC)
    assert parsed_alias.dice.tcb_infos[0].svn == 7
    assert parsed_alias.dice.tcb_infos[0].svn_raw == 0x107
    assert parsed_alias.dice.multi is True
    assert parsed_alias.dice.critical == frozenset({MULTI_TCB_INFO_OID.dotted_string})
    assert parsed_alias.dice.key_purposes == ("attestLoc",)
    assert parsed_alias.public_key == alias.public_key
    verify_chain([parsed_root, parsed_alias])
    # cryptography agrees (it verifies ML-DSA-87 certificates itself too).
    x509.load_der_x509_certificate(alias_der).verify_directly_issued_by(
        x509.load_der_x509_certificate(root_der)
    )
    verify_signature(parsed_alias, root.public_key)
    with pytest.raises(BadSignature):
        verify_signature(parsed_alias, alias.public_key)
    with pytest.raises(ChainNotTrusted):
        verify_chain([parsed_alias])  # not self-signed (issuer name differs)
    # The leaf is not a CA: nothing may chain below it.
    with pytest.raises(ChainNotTrusted):
        verify_chain([parsed_root, parsed_alias, parsed_alias])


def test_build_csr_with_dice_extensions() -> None:
    key = PrivateKey.generate(Algorithm.ML_DSA_87)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name("IDevID"))
        .add_extension(build_ueid_extension(b"\xaa" * 8), critical=False)
        .add_extension(build_tcb_info_extension(FMC), critical=False)
        .add_extension(build_key_purpose_extension("identityInit", "eca"), critical=True)
        .sign(key.raw, None)
    )
    parsed = parse_csr(csr.public_bytes(Encoding.PEM))
    assert parsed.kind == "csr"
    assert parsed.signature_algorithm == "ML-DSA-87"
    assert parsed.dice.ueid == b"\xaa" * 8
    assert parsed.dice.tcb_infos == (FMC,)
    assert parsed.dice.key_purposes == ("identityInit", "eca")
    verify_signature(parsed, key.public_key)


def test_extension_builders_carry_the_tcg_oids() -> None:
    assert build_tcb_info_extension(FMC).oid == TCB_INFO_OID
    assert build_multi_tcb_info_extension([FMC]).oid == MULTI_TCB_INFO_OID
    assert build_ueid_extension(b"x").oid == UEID_OID
    eku = build_key_purpose_extension("eca", others=[x509.ObjectIdentifier("1.2.3")])
    assert [o.dotted_string for o in eku] == ["2.23.133.5.4.100.12", "1.2.3"]
    with pytest.raises(MalformedCertificate):
        build_key_purpose_extension("notAPurpose")
    with pytest.raises(MalformedCertificate):
        build_multi_tcb_info_extension([])


def test_public_surface() -> None:
    assert sorted(ironroot.rot.dice.__all__) == sorted(
        [
            "ASN1_DECODE_ERRORS",
            "KEY_PURPOSE_OIDS",
            "ML_DSA_87_OID",
            "MULTI_TCB_INFO_OID",
            "OPEN_DICE_OID",
            "TCB_INFO_OID",
            "UEID_OID",
            "DiceCertificate",
            "DiceExtensions",
            "Fwid",
            "IntegrityRegister",
            "InvalidExtension",
            "OpenDiceInput",
            "OperationalFlag",
            "OperationalFlags",
            "RiotCompositeDeviceId",
            "SvnEncoding",
            "TcbInfo",
            "build_key_purpose_extension",
            "build_multi_tcb_info_extension",
            "build_tcb_info_extension",
            "build_ueid_extension",
            "encode_multi_tcb_info",
            "encode_tcb_info",
            "encode_ueid",
            "load_dice_objects",
            "parse_certificate",
            "parse_certificates",
            "parse_csr",
            "parse_multi_tcb_info",
            "parse_open_dice_input",
            "parse_riot_extension",
            "parse_tcb_info",
            "parse_ueid",
            "verify_chain",
            "verify_signature",
        ]
    )
    # The package re-exports all of dice; the runtime's names are pinned in tests/rot_runtime.
    assert set(ironroot.rot.dice.__all__) <= set(ironroot.rot.__all__)
    assert {name: oid.dotted_string for name, oid in ironroot.rot.KEY_PURPOSE_OIDS.items()} == {
        "identityInit": "2.23.133.5.4.100.6",
        "identityLoc": "2.23.133.5.4.100.7",
        "attestInit": "2.23.133.5.4.100.8",
        "attestLoc": "2.23.133.5.4.100.9",
        "assertInit": "2.23.133.5.4.100.10",
        "assertLoc": "2.23.133.5.4.100.11",
        "eca": "2.23.133.5.4.100.12",
    }


@pytest.mark.parametrize("algorithm", [Algorithm.ES384, Algorithm.ML_DSA_87])
def test_a_remembered_signature_is_the_exact_certificate_under_the_exact_key(
    algorithm: Algorithm,
) -> None:
    """Verified signatures are remembered (a fleet verifies the same vendor certificates for
    every node): a changed byte of the certificate, or another key, is verified afresh and
    refused."""
    root, other = PrivateKey.generate(algorithm), PrivateKey.generate(algorithm)
    der = _cert("IDevID", "IDevID", root, root, [], ca=True)
    parsed = parse_certificate(der)
    verify_signature(parsed, root.public_key)
    verify_signature(parsed, root.public_key)  # remembered: the same answer
    with pytest.raises(BadSignature):
        verify_signature(parsed, other.public_key)
    tampered = bytearray(der)
    tampered[-1] ^= 0x01  # the last byte of the signature
    changed = parse_certificate(bytes(tampered))
    with pytest.raises(BadSignature):
        verify_signature(changed, root.public_key)
    with pytest.raises(BadSignature):
        verify_chain([changed])


def test_one_certificate_or_a_concatenation_splits_and_anything_else_is_refused() -> None:
    key = PrivateKey.generate(Algorithm.ES384)
    one = _cert("A", "A", key, key, [(build_ueid_extension(b"\x02" * 17), False)], ca=True)
    two = _cert("B", "A", key, key, [(build_ueid_extension(b"\x02" * 17), False)], ca=False)
    assert [c.subject for c in parse_certificates(one)] == ["CN=A"]
    assert [c.subject for c in parse_certificates(one + two)] == ["CN=A", "CN=B"]
    assert one[1] == 0x82  # a two-byte length: spell it with a leading zero byte
    longer = b"\x30\x83\x00" + one[2:]
    for bad in (one + b"\x00", one[:-1], longer, b"\x31" + one[1:], b"\x30", b""):
        with pytest.raises(MalformedCertificate):
            parse_certificates(bad)


def test_a_dice_extension_that_fails_to_decode_fails_every_time() -> None:
    for _ in range(2):  # a failure is never remembered as an answer
        with pytest.raises(MalformedCertificate):
            parse_ueid(b"\x30\x03\x04\x01\x00\x00")
        with pytest.raises(MalformedCertificate):
            parse_multi_tcb_info(b"\x30\x80\x00\x00")
    assert parse_ueid(bytes(build_ueid_extension(b"\x03" * 17).value)) == b"\x03" * 17


_POLICY = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("1.2.3.4"), None)])
_UNKNOWN = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")


@pytest.mark.parametrize(
    ("extension", "where"),
    [(_UNKNOWN, "leaf"), (_UNKNOWN, "root"), (_POLICY, "leaf")],
)
def test_a_critical_extension_the_verifier_does_not_process_is_refused(
    extension: x509.ExtensionType, where: str
) -> None:
    # RFC 5280 §4.2: a certificate with a critical extension the relying party does not
    # process must be rejected; the same extension marked non-critical is ignored.
    root, alias = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    for critical in (False, True):
        extra = [(extension, critical)]
        root_der = _cert("IDevID", "IDevID", root, root, extra if where == "root" else [], ca=True)
        alias_der = _cert(
            "Alias", "IDevID", alias, root, extra if where == "leaf" else [], ca=False
        )
        chain = [parse_certificate(root_der), parse_certificate(alias_der)]
        if not critical:
            verify_chain(chain)
            continue
        subject = chain[0 if where == "root" else 1].subject
        oid = extension.oid.dotted_string
        with pytest.raises(ChainNotTrusted) as caught:
            verify_chain(chain)
        assert caught.value.detail == f"certificate {subject!r}: unknown critical extension {oid}"


def test_the_dice_extensions_may_be_critical() -> None:
    # What the DICE verifier processes passes critical (Cerberus marks TcbInfo critical,
    # Open DICE its own extension): no real chain is refused for it.
    root, alias = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    ueid = build_ueid_extension(b"\x03" * 17)
    root_der = _cert("IDevID", "IDevID", root, root, [(ueid, True)], ca=True)
    alias_der = _cert("Alias", "IDevID", alias, root, [], ca=False)
    chain = [parse_certificate(root_der), parse_certificate(alias_der)]
    assert chain[0].dice.critical == frozenset({"2.23.133.5.4.4"})
    verify_chain(chain)


def _ca_cert(
    subject: str,
    issuer: str,
    key: PrivateKey,
    issuer_key: PrivateKey,
    *,
    path_length: int | None = None,
    key_cert_sign: bool = True,
) -> bytes:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key.raw)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .sign(issuer_key.raw, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )


def test_a_path_length_constraint_bounds_the_intermediates_below() -> None:
    # RFC 5280 §4.2.1.9: pathLenConstraint is the most non-self-issued intermediates that may
    # follow; a root with pathLen 0 may issue only end certificates, pathLen 1 one CA below.
    keys = [PrivateKey.generate(Algorithm.ES384) for _ in range(4)]
    for root_len, ok in ((None, True), (2, True), (1, False), (0, False)):
        chain = [
            _ca_cert("Root", "Root", keys[0], keys[0], path_length=root_len),
            _ca_cert("LDevID", "Root", keys[1], keys[0]),
            _ca_cert("FMC", "LDevID", keys[2], keys[1]),
            _cert("Alias", "FMC", keys[3], keys[2], [], ca=False),
        ]
        parsed = [parse_certificate(c) for c in chain]
        if ok:
            verify_chain(parsed)
        else:
            with pytest.raises(ChainNotTrusted, match="path length"):
                verify_chain(parsed)
    # the constraint of an intermediate counts too
    chain = [
        _ca_cert("Root", "Root", keys[0], keys[0]),
        _ca_cert("LDevID", "Root", keys[1], keys[0], path_length=0),
        _ca_cert("FMC", "LDevID", keys[2], keys[1]),
        _cert("Alias", "FMC", keys[3], keys[2], [], ca=False),
    ]
    with pytest.raises(ChainNotTrusted, match="path length"):
        verify_chain([parse_certificate(c) for c in chain])


def test_an_issuer_whose_key_usage_omits_key_cert_sign_is_refused() -> None:
    # RFC 5280 §6.1.4 (n): an issuer with a keyUsage extension must assert keyCertSign.
    root, alias = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    for key_cert_sign in (True, False):
        chain = [
            parse_certificate(_ca_cert("R", "R", root, root, key_cert_sign=key_cert_sign)),
            parse_certificate(_cert("Alias", "R", alias, root, [], ca=False)),
        ]
        if key_cert_sign:
            verify_chain(chain)
        else:
            with pytest.raises(ChainNotTrusted, match="keyCertSign"):
                verify_chain(chain)


def test_a_key_usage_that_asserts_nothing_is_refused() -> None:
    # RFC 5280 §4.2.1.3: a keyUsage extension sets at least one bit. An empty one read as
    # "no keyUsage" let an issuer whose certificate allows its key nothing sign the next one.
    root, alias = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    nothing = x509.KeyUsage(False, False, False, False, False, False, False, False, False)
    root_der = (
        x509.CertificateBuilder()
        .subject_name(_name("R"))
        .issuer_name(_name("R"))
        .public_key(root.public_key.raw)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(nothing, critical=True)
        .sign(root.raw, hashes.SHA384())
        .public_bytes(Encoding.DER)
    )
    alias_der = _cert("Alias", "R", alias, root, [], ca=False)
    with pytest.raises(MalformedCertificate) as caught:
        verify_chain([parse_certificate(root_der), parse_certificate(alias_der)])
    assert type(caught.value) is MalformedCertificate
    assert caught.value.detail == "the KeyUsage extension asserts no usage (RFC 5280 4.2.1.3)"


def test_an_authority_key_id_that_is_not_the_issuers_subject_key_id_is_refused() -> None:
    # RFC 5280 §4.2.1.1: the authority key identifier names the key that signed; a certificate
    # that names another key than its issuer's subject key identifier is not issued by that
    # certificate (OpenSSL: X509_V_ERR_AKID_SKID_MISMATCH), though the signature verifies.
    root, alias = PrivateKey.generate(Algorithm.ES384), PrivateKey.generate(Algorithm.ES384)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root.public_key.raw)
    root_der = _cert("R", "R", root, root, [(root_ski, False)], ca=True)
    for key_id, ok in ((root_ski.digest, True), (b"\x44" * 20, False)):
        aki = x509.AuthorityKeyIdentifier(key_id, None, None)
        alias_der = _cert("Alias", "R", alias, root, [(aki, False)], ca=False)
        chain = [parse_certificate(root_der), parse_certificate(alias_der)]
        if ok:
            verify_chain(chain)
            continue
        with pytest.raises(ChainNotTrusted) as caught:
            verify_chain(chain)
        assert caught.value.detail == (
            "chain element 1: the authority key identifier 4444444444444444444444444444444444444444"
            f" is not the issuer's subject key identifier {root_ski.digest.hex()}"
        )
    # a self-signed root naming another key than its own is refused as well
    other = x509.AuthorityKeyIdentifier(b"\x44" * 20, None, None)
    odd_root = _cert("R", "R", root, root, [(root_ski, False), (other, False)], ca=True)
    with pytest.raises(ChainNotTrusted, match="chain element 0: the authority key identifier"):
        verify_chain([parse_certificate(odd_root)])


_ROOT_KEY = PrivateKey.generate(Algorithm.ES384)
_ALIAS_KEY = PrivateKey.generate(Algorithm.ES384)


@st.composite
def _key_usages(draw: st.DrawFn) -> x509.KeyUsage | None:
    """No KeyUsage, or any combination of its bits (encipherOnly/decipherOnly need
    keyAgreement, as ``cryptography`` requires)."""
    if draw(st.booleans()):
        return None
    bits = draw(st.lists(st.booleans(), min_size=7, max_size=7))
    only = draw(st.lists(st.booleans(), min_size=2, max_size=2)) if bits[4] else [False, False]
    return x509.KeyUsage(*bits, *only)


@settings(max_examples=examples(40), deadline=None, derandomize=True, database=None)
@given(_key_usages())
def test_an_issuers_key_usage_decides_as_rfc_5280(usage: x509.KeyUsage | None) -> None:
    # Whatever the bits: the chain verifies exactly when the issuer's KeyUsage is absent or
    # asserts keyCertSign; one asserting no usage at all does not even parse.
    extensions: list[tuple[x509.ExtensionType, bool]] = [] if usage is None else [(usage, True)]
    root_der = _cert("R", "R", _ROOT_KEY, _ROOT_KEY, extensions, ca=True)
    alias = parse_certificate(_cert("Alias", "R", _ALIAS_KEY, _ROOT_KEY, [], ca=False))
    asserted = usage is not None and any(
        getattr(usage, name)
        for name in (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
        )
    )
    if usage is not None and not asserted:
        with pytest.raises(MalformedCertificate, match="asserts no usage"):
            parse_certificate(root_der)
        return
    chain = [parse_certificate(root_der), alias]
    if usage is None or usage.key_cert_sign:
        verify_chain(chain)
    else:
        with pytest.raises(ChainNotTrusted, match="key usage lacks keyCertSign"):
            verify_chain(chain)
