"""x5chain path validation and did:x509 matching, with certificates generated here."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from pathlib import Path

import pytest
from _cose_helpers import CODE_SIGNING, NOW, Chain, certificate, make_chain, name
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.cose import SignedStatement, create_statement, verify_did_x509, verify_x5chain
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import CertificateExpired, ChainNotTrusted, MalformedInput
from x509_extensions import UNKNOWN, UNKNOWN_OID, resigned, with_extension


def fingerprint(cert: x509.Certificate, alg: str = "sha256") -> str:
    digest = hashlib.new(alg, cert.public_bytes(Encoding.DER)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- x5chain -------------------------------------------------------------------------------


def test_chain_to_root_returns_leaf_key() -> None:
    chain = make_chain()
    key = verify_x5chain(chain.der(), [chain.root], NOW)
    assert key.algorithm is Algorithm.ES384
    assert key.raw == chain.leaf.public_key()
    # the root may be included in the x5chain too
    verify_x5chain(chain.der(with_root=True), [chain.root], NOW)


def test_chain_with_any_eku_or_none() -> None:
    for eku in (None, [x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.13")]):
        chain = make_chain(eku=eku)
        verify_x5chain(chain.der(), [chain.root], NOW)


def test_ed25519_leaf_under_ecdsa_ca() -> None:
    chain = make_chain(leaf_key=ed25519.Ed25519PrivateKey.generate())
    assert verify_x5chain(chain.der(), [chain.root], NOW).algorithm is Algorithm.EDDSA


def test_statement_signed_by_chain_leaf_verifies() -> None:
    raw = ec.generate_private_key(ec.SECP384R1())
    chain = make_chain(leaf_key=raw)
    signer = PrivateKey(raw)
    data = create_statement(signer, b"x", iss="vendor", sub="fw", x5chain=chain.der())
    st = SignedStatement.parse(data)
    st.sign1.verify(verify_x5chain(st.x5chain, [chain.root], NOW))


def test_untrusted_root() -> None:
    chain = make_chain()
    other = make_chain()
    with pytest.raises(ChainNotTrusted):
        verify_x5chain(chain.der(), [other.root], NOW)
    with pytest.raises(ChainNotTrusted):
        verify_x5chain(chain.der(), [], NOW)


def test_missing_intermediate() -> None:
    chain = make_chain()
    with pytest.raises(ChainNotTrusted):
        verify_x5chain(chain.der()[:1], [chain.root], NOW)


def test_leaf_as_ca_cannot_issue() -> None:
    # a chain whose "intermediate" is the leaf of another chain (CA=false) does not validate
    a = make_chain()
    b = make_chain()
    mixed = [a.leaf.public_bytes(Encoding.DER), b.leaf.public_bytes(Encoding.DER)]
    with pytest.raises(ChainNotTrusted):
        verify_x5chain(mixed, [a.root, b.root], NOW)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def test_chain_past_an_intermediate_anchor_up_to_its_root() -> None:
    # A service may trust the issuing CA itself; senders still send the chain to the root.
    chain, other = make_chain(), make_chain()
    verify_x5chain(chain.der(with_root=True), [chain.intermediate], NOW)
    # but past the anchor only its issuer may follow, not any certificate
    stranger = [*chain.der(), _der(other.root)]
    with pytest.raises(ChainNotTrusted, match="ordered path"):
        verify_x5chain(stranger, [chain.intermediate], NOW)


@pytest.mark.parametrize("where", ["appended", "inserted", "after_root", "reordered"])
def test_chain_that_is_not_its_path(where: str) -> None:
    # The path builder takes the certificates after the leaf as a pool: one it leaves unused
    # (or a path given out of order) must not pass, or a did:x509 fingerprint could match a
    # certificate that plays no part in the path.
    chain, other = make_chain(), make_chain()
    leaf, inter, root, stranger = (
        _der(c) for c in (chain.leaf, chain.intermediate, chain.root, other.root)
    )
    supplied = {
        "appended": [leaf, inter, stranger],
        "inserted": [leaf, stranger, inter],
        "after_root": [leaf, inter, root, stranger],
        "reordered": [leaf, root, inter],
    }[where]
    with pytest.raises(ChainNotTrusted, match="ordered path"):
        verify_x5chain(supplied, [chain.root, other.root], NOW)


def test_expired_leaf() -> None:
    chain = make_chain(leaf_not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(CertificateExpired):
        verify_x5chain(chain.der(), [chain.root], NOW)


def test_not_yet_valid_at_now() -> None:
    chain = make_chain()
    with pytest.raises(CertificateExpired):
        verify_x5chain(chain.der(), [chain.root], NOW - dt.timedelta(days=3650))


def test_naive_now_is_utc() -> None:
    chain = make_chain()
    verify_x5chain(chain.der(), [chain.root], NOW.replace(tzinfo=None))


@pytest.mark.parametrize("bad", [[], [b""], [b"\x30\x03\x02\x01\x01"], [b"not der"]])
def test_malformed_chain(bad: list[bytes]) -> None:
    chain = make_chain()
    with pytest.raises(MalformedInput):
        verify_x5chain(bad, [chain.root], NOW)


def test_chain_too_long() -> None:
    chain = make_chain()
    with pytest.raises(MalformedInput):
        verify_x5chain(chain.der() * 5, [chain.root], NOW)


def _key_usage(**asserted: bool) -> x509.KeyUsage:
    bits = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(**{**bits, **asserted})


_LACKS_DIGITAL_SIGNATURE = (
    "^the x5chain leaf certificate's KeyUsage lacks digitalSignature: its key may not sign "
    "statements \\(RFC 5280 4.2.1.3\\)$"
)


@pytest.mark.parametrize("leaf", ["intermediate", "root"])
def test_a_ca_certificate_as_the_leaf_is_refused(leaf: str) -> None:
    # A CA's KeyUsage (keyCertSign, cRLSign) does not let its key sign anything but
    # certificates and CRLs (RFC 5280 4.2.1.3): the issuing CA's key, or the root's, signing a
    # statement under its own certificate was accepted before.
    chain = make_chain()
    certs = [_der(c) for c in {"intermediate": [chain.intermediate], "root": [chain.root]}[leaf]]
    with pytest.raises(ChainNotTrusted, match=_LACKS_DIGITAL_SIGNATURE) as caught:
        verify_x5chain(certs, [chain.root], NOW)
    assert type(caught.value) is ChainNotTrusted
    # a chain whose leaf certifies a key rather than signing (an HSM's device CA) may end in
    # a CA: its caller says so
    key = verify_x5chain(certs, [chain.root], NOW, leaf_signs=False)
    assert key.raw == {"intermediate": chain.intermediate, "root": chain.root}[leaf].public_key()


def test_a_ca_leaf_without_key_usage_is_refused_and_one_granting_signatures_verifies() -> None:
    # A CA certificate without KeyUsage (non-conforming, RFC 5280 4.2.1.3: a CA MUST have
    # one) passed as the leaf: nothing restricted its key, and a CA's key signed a statement.
    # A CA whose KeyUsage grants digitalSignature beside keyCertSign (a DICE alias) may sign.
    root_key, issuer_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(2))
    root_name, issuer_name = name(CN="Test Root"), name(CN="Test CA")
    root = certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    issuer = certificate(issuer_name, root_name, issuer_key.public_key(), root_key, ca=True)
    bare = resigned(issuer, root_key, drop=(x509.KeyUsage,))
    message = (
        "^the x5chain leaf certificate is a CA without a KeyUsage asserting digitalSignature: "
        "its key may not sign statements \\(RFC 5280 4.2.1.3\\)$"
    )
    with pytest.raises(ChainNotTrusted, match=message) as caught:
        verify_x5chain([_der(bare)], [root], NOW)
    assert type(caught.value) is ChainNotTrusted
    assert (
        verify_x5chain([_der(bare)], [root], NOW, leaf_signs=False).raw == issuer_key.public_key()
    )
    usage = _key_usage(digital_signature=True, key_cert_sign=True)
    alias = resigned(issuer, root_key, drop=(x509.KeyUsage,), add=[(usage, True)])
    assert verify_x5chain([_der(alias)], [root], NOW).raw == issuer_key.public_key()


@pytest.mark.parametrize("usage", [{"key_encipherment": True}, {"content_commitment": True}])
def test_a_leaf_whose_key_usage_lacks_digital_signature_is_refused(
    usage: dict[str, bool],
) -> None:
    root_key, issuer_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(2))
    root_name, issuer_name = name(CN="Test Root"), name(CN="Test CA")
    root = certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    issuer = certificate(issuer_name, root_name, issuer_key.public_key(), root_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP384R1())
    leaf = certificate(name(CN="Signer"), issuer_name, leaf_key.public_key(), issuer_key, ca=False)
    good = [_der(leaf), _der(issuer)]
    assert verify_x5chain(good, [root], NOW).raw == leaf_key.public_key()
    # without KeyUsage at all the key is unrestricted (RFC 5280 4.2.1.3)
    bare = resigned(leaf, issuer_key, drop=(x509.KeyUsage,))
    assert verify_x5chain([_der(bare), _der(issuer)], [root], NOW).raw == leaf_key.public_key()
    other = resigned(leaf, issuer_key, drop=(x509.KeyUsage,), add=[(_key_usage(**usage), True)])
    with pytest.raises(ChainNotTrusted, match=_LACKS_DIGITAL_SIGNATURE) as caught:
        verify_x5chain([_der(other), _der(issuer)], [root], NOW)
    assert type(caught.value) is ChainNotTrusted


# --- did:x509 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fulcio_chain() -> Chain:
    return make_chain(
        leaf_subject=name(CN="Firmware Signer", O="Contoso, Inc.", C="US", L="San Francisco"),
        eku=[CODE_SIGNING, x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.13")],
        san=[
            x509.RFC822Name("bob@example.com"),
            x509.DNSName("fw.example.com"),
            x509.UniformResourceIdentifier("https://github.com/o/r/.github/w.yml@refs/heads/main"),
        ],
        extra=[
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1"),
                b"https://token.actions.githubusercontent.com",
            )
        ],
    )


def _did(cert: x509.Certificate, policies: str, alg: str = "sha256") -> str:
    return f"did:x509:0:{alg}:{fingerprint(cert, alg)}::{policies}"


@pytest.mark.parametrize(
    "policies",
    [
        "subject:CN:Firmware%20Signer",
        "subject:C:US:O:Contoso%2C%20Inc.:L:San%20Francisco",
        "subject:CN:Firmware%20Signer::eku:1.3.6.1.5.5.7.3.3",
        "san:email:bob%40example.com",
        "san:dns:fw.example.com",
        "san:uri:https%3A%2F%2Fgithub.com%2Fo%2Fr%2F.github%2Fw.yml%40refs%2Fheads%2Fmain",
        "eku:1.3.6.1.4.1.311.10.3.13",
        "eku:1.3.6.1.5.5.7.3.3::san:dns:fw.example.com",
        "fulcio-issuer:token.actions.githubusercontent.com::san:email:bob%40example.com",
    ],
)
def test_did_matches(fulcio_chain: Chain, policies: str) -> None:
    chain = fulcio_chain
    for alg in ("sha256", "sha384", "sha512"):
        verify_did_x509(_did(chain.intermediate, policies, alg), chain.certs)
    # the root's fingerprint works as well as the intermediate's
    verify_did_x509(_did(chain.root, policies), chain.certs)


def test_percent_encoding_is_case_insensitive_on_input(fulcio_chain: Chain) -> None:
    chain = fulcio_chain
    verify_did_x509(_did(chain.intermediate, "san:email:bob%40example.com"), chain.certs)
    verify_did_x509(_did(chain.intermediate, "subject:O:Contoso%2c%20Inc."), chain.certs)


@pytest.mark.parametrize(
    "policies",
    [
        "subject:CN:Someone%20Else",
        "subject:CN:Firmware%20Signer:O:Fabrikam",
        "subject:OU:Firmware",
        "subject:2.5.4.3:Firmware%20Signer",  # CN has a label: the OID form is not in the model
        "san:email:alice%40example.com",
        "san:dns:example.com",
        "san:uri:https%3A%2F%2Fgithub.com",
        "eku:1.3.6.1.5.5.7.3.1",
        "fulcio-issuer:accounts.google.com",
        "eku:1.3.6.1.5.5.7.3.3::san:dns:other.example.com",
    ],
)
def test_did_mismatch(fulcio_chain: Chain, policies: str) -> None:
    chain = fulcio_chain
    with pytest.raises(ChainNotTrusted):
        verify_did_x509(_did(chain.intermediate, policies), chain.certs)


def test_wrong_fingerprint(fulcio_chain: Chain) -> None:
    chain = fulcio_chain
    other = make_chain()
    with pytest.raises(ChainNotTrusted):
        verify_did_x509(_did(other.intermediate, "san:dns:fw.example.com"), chain.certs)
    # the leaf's own fingerprint never counts
    with pytest.raises(ChainNotTrusted):
        verify_did_x509(_did(chain.leaf, "san:dns:fw.example.com"), chain.certs)
    # a single certificate is never a did:x509 chain
    with pytest.raises(ChainNotTrusted):
        verify_did_x509(_did(chain.intermediate, "san:dns:fw.example.com"), [chain.leaf])


def test_leaf_without_extensions_never_matches() -> None:
    chain = make_chain(eku=None)
    for policies in ("eku:1.3.6.1.5.5.7.3.3", "san:dns:x", "fulcio-issuer:x"):
        with pytest.raises(ChainNotTrusted):
            verify_did_x509(_did(chain.intermediate, policies), chain.certs)


def test_repeated_subject_attribute_never_matches() -> None:
    subject = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "a"),
            x509.NameAttribute(x509.NameOID.ORGANIZATIONAL_UNIT_NAME, "b"),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "n"),
        ]
    )
    chain = make_chain(leaf_subject=subject)
    verify_did_x509(_did(chain.intermediate, "subject:CN:n"), chain.certs)
    with pytest.raises(ChainNotTrusted):
        verify_did_x509(_did(chain.intermediate, "subject:OU:a"), chain.certs)


@pytest.mark.parametrize(
    "suffix",
    [
        "",  # no policy
        "::",
        "::subject",
        "::subject:",
        "::subject:CN",  # odd number of items
        "::subject:CN:a:CN:b",  # repeated key
        "::subject:cn:a",  # not a label nor an OID
        "::subject:CN:a b",  # space not percent-encoded
        "::subject:CN:a%2",  # truncated escape
        "::subject:CN:%FF",  # not UTF-8
        "::san:ip:127.0.0.1",
        "::san:dns",
        "::san:dns:a:b",
        "::eku:codeSigning",
        "::unknown:x",
        "::san:email:bob@example.com",  # "@" must be encoded
    ],
)
def test_malformed_did(fulcio_chain: Chain, suffix: str) -> None:
    chain = fulcio_chain
    did = f"did:x509:0:sha256:{fingerprint(chain.intermediate)}{suffix}"
    with pytest.raises(MalformedInput):
        verify_did_x509(did, chain.certs)


@pytest.mark.parametrize(
    "did",
    [
        "did:web:example.com",
        "did:x509:1:sha256:{fp}::eku:1.2.3",
        "did:x509:0:md5:{fp}::eku:1.2.3",
        "did:x509:0:sha384:{fp}::eku:1.2.3",  # sha256-sized fingerprint under sha384
        "did:x509:0:sha256:{fp}=::eku:1.2.3",
        "did:x509:0:sha256::eku:1.2.3",
        "did:x509:0:{fp}::eku:1.2.3",
        "did:x509:0:sha256:{fp}:extra::eku:1.2.3",
    ],
)
def test_malformed_did_head(fulcio_chain: Chain, did: str) -> None:
    chain = fulcio_chain
    with pytest.raises(MalformedInput):
        verify_did_x509(did.format(fp=fingerprint(chain.intermediate)), chain.certs)


@pytest.mark.parametrize("where", ["leaf", "intermediate"])
@pytest.mark.parametrize("critical", [True, False])
def test_a_certificate_with_an_unknown_critical_extension_is_refused(
    where: str, critical: bool
) -> None:
    # RFC 5280 §4.2, done by cryptography's path validation (an extension its policy does not
    # account for): pinned here, since no Ironroot code adds it on this path.
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root_name, inter_name = name(CN="Test Root"), name(CN="Test CA")
    root = certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    inter = certificate(inter_name, root_name, inter_key.public_key(), root_key, ca=True)
    leaf = certificate(name(CN="Signer"), inter_name, leaf_key.public_key(), inter_key, ca=False)
    if where == "leaf":
        leaf = with_extension(leaf, inter_key, critical=critical)
    else:
        inter = with_extension(inter, root_key, critical=critical)
    chain = [_der(leaf), _der(inter)]
    if not critical:
        assert verify_x5chain(chain, [root], NOW).raw == leaf_key.public_key()
        return
    pattern = f"^x5chain does not validate to a trusted root: .*invalid extension: {UNKNOWN_OID}: "
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_x5chain(chain, [root], NOW)
    assert type(caught.value) is ChainNotTrusted


_TCB_INFO = x509.UnrecognizedExtension(
    x509.ObjectIdentifier("2.23.133.5.4.1"), bytes.fromhex("3008800649726f6e726f")
)  # DiceTcbInfo {vendor "Ironro"}: only the OID matters on this path


@pytest.mark.parametrize("where", ["leaf", "intermediate", "both"])
def test_a_dice_chain_with_a_critical_tcb_info_validates(where: str) -> None:
    # Refused before: "invalid extension: 2.23.133.5.4.1: certificate contains
    # unaccounted-for critical extensions" (cryptography knows no DICE extension).
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root_name, inter_name = name(CN="Test Root"), name(CN="Test DICE CA")
    root = certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
    inter = certificate(inter_name, root_name, inter_key.public_key(), root_key, ca=True)
    leaf = certificate(name(CN="Alias"), inter_name, leaf_key.public_key(), inter_key, ca=False)
    if where in ("leaf", "both"):
        leaf = with_extension(leaf, inter_key, critical=True, extension=_TCB_INFO)
    if where in ("intermediate", "both"):
        inter = with_extension(inter, root_key, critical=True, extension=_TCB_INFO)
    chain = [_der(leaf), _der(inter)]
    assert verify_x5chain(chain, [root], NOW).raw == leaf_key.public_key()
    # an unknown critical extension beside it is still refused
    leaf = resigned(leaf, inter_key, add=[(UNKNOWN, True)])
    pattern = f"^x5chain does not validate to a trusted root: .*invalid extension: {UNKNOWN_OID}: "
    with pytest.raises(ChainNotTrusted, match=pattern) as caught:
        verify_x5chain([_der(leaf), _der(inter)], [root], NOW)
    assert type(caught.value) is ChainNotTrusted


@pytest.mark.vectors
def test_cerberus_dice_certificates_with_a_critical_tcb_info_validate(vectors: Path) -> None:
    # Project Cerberus' RIoT certificate and its self-signed root, both with a critical
    # tcg-dice-TcbInfo: refused before ("unaccounted-for critical extensions").
    root, riot = (
        x509.load_pem_x509_certificate((vectors / "cerberus" / f).read_bytes())
        for f in ("cass-tcbinfo-crit.crt", "ca-tcbinfo-crit.crt")
    )
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    # The path validates, critical TcbInfo and all; the RIoT certificate is a CA whose
    # KeyUsage is keyCertSign alone, so its key may still not sign statements (checked last).
    with pytest.raises(ChainNotTrusted, match=_LACKS_DIGITAL_SIGNATURE):
        verify_x5chain([_der(riot)], [root], when)
