"""check_crl and crl_covers: which CRLs can decide revocation as a complete CRL of their
issuer, and which of the issuer's certificates a CRL's issuing distribution point covers
(RFC 5280 §5.2, §5.3, §6.3.3). Hostile CRLs are built with ``cryptography`` and signed."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ironroot.crypto import CRL_ENTRY_EXTENSIONS, CRL_EXTENSIONS, check_crl, crl_covers, load_crl
from ironroot.errors import ChainNotTrusted

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some CA")])
Extensions = tuple[tuple[x509.ExtensionType, bool], ...]


def _crl(
    extensions: Extensions = (), entry: Extensions | None = None
) -> x509.CertificateRevocationList:
    """A CRL of ISSUER with ``extensions``; with one entry (serial 7) carrying ``entry`` when
    it is given."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ISSUER)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    if entry is not None:
        revoked = x509.RevokedCertificateBuilder().serial_number(7).revocation_date(NOW)
        for extension, critical in entry:
            revoked = revoked.add_extension(extension, critical=critical)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(_KEY, hashes.SHA256())


def _point(**fields: object) -> x509.IssuingDistributionPoint:
    values: dict[str, object] = {
        "full_name": None,
        "relative_name": None,
        "only_contains_user_certs": False,
        "only_contains_ca_certs": False,
        "only_some_reasons": None,
        "indirect_crl": False,
        "only_contains_attribute_certs": False,
    }
    values.update(fields)
    return x509.IssuingDistributionPoint(**values)  # type: ignore[arg-type]


def _opaque(oid: str) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), b"\x05\x00")


def _reason(flag: x509.ReasonFlags) -> Extensions:
    return ((x509.CRLReason(flag), False),)


URL = x509.UniformResourceIdentifier("http://ca.example/part-1.crl")
OTHER_URL = x509.UniformResourceIdentifier("http://ca.example/part-2.crl")


def test_the_processed_extensions() -> None:
    assert {"2.5.29.20", "2.5.29.35", "2.5.29.28"} == CRL_EXTENSIONS
    assert {"2.5.29.21", "2.5.29.24"} == CRL_ENTRY_EXTENSIONS


def test_a_plain_crl_and_the_extensions_it_may_carry_pass() -> None:
    check_crl(_crl())
    check_crl(
        _crl(
            (
                (x509.CRLNumber(3), False),
                (x509.AuthorityKeyIdentifier(b"k" * 20, None, None), False),
                (_point(only_contains_user_certs=True, full_name=[URL]), True),
                (_opaque("1.2.3.4"), False),  # not critical: ignored, as the RFC says
            )
        )
    )
    for flag in (x509.ReasonFlags.key_compromise, x509.ReasonFlags.certificate_hold):
        check_crl(_crl(entry=_reason(flag)))
    check_crl(_crl(entry=((x509.InvalidityDate(NOW), True), (_opaque("1.2.3.4"), False))))


@pytest.mark.vectors
def test_intels_real_crls_pass(vectors: Path) -> None:
    for name in ("testing_testdata_rootcrl.der", "testing_testdata_pckcrl"):
        check_crl(load_crl((vectors / "tee" / "tdx" / name).read_bytes()))


@pytest.mark.parametrize(
    ("extensions", "entry", "why"),
    [
        (((_opaque("1.2.3.4"), True),), None, "unknown critical extension 1.2.3.4"),
        (
            ((_opaque("1.2.3.4"), True), (_opaque("1.2.3.5"), True)),
            None,
            "unknown critical extensions 1.2.3.4, 1.2.3.5",
        ),
        (
            ((x509.DeltaCRLIndicator(5), True),),
            None,
            "a delta CRL (base CRL number 5), not a complete CRL",
        ),
        (
            ((x509.DeltaCRLIndicator(5), False),),
            None,
            "a delta CRL (base CRL number 5), not a complete CRL",
        ),
        (
            ((_point(indirect_crl=True), True),),
            None,
            "an indirect CRL (issuing distribution point indirectCRL)",
        ),
        (
            (
                (
                    _point(
                        only_some_reasons=frozenset(
                            {x509.ReasonFlags.key_compromise, x509.ReasonFlags.ca_compromise}
                        )
                    ),
                    True,
                ),
            ),
            None,
            "it covers only some revocation reasons (cACompromise, keyCompromise)",
        ),
        (
            ((_point(only_contains_attribute_certs=True), True),),
            None,
            "it covers only attribute certificates",
        ),
        (
            (),
            ((x509.CertificateIssuer([x509.DirectoryName(ISSUER)]), True),),
            "the entry of serial 0x7 carries the critical extension 2.5.29.29",
        ),
        (
            (),
            ((_opaque("1.2.3.4"), True),),
            "the entry of serial 0x7 carries the critical extension 1.2.3.4",
        ),
        (
            (),
            _reason(x509.ReasonFlags.remove_from_crl),
            "the entry of serial 0x7 has the reason removeFromCRL (a delta CRL's)",
        ),
    ],
    ids=[
        "unknown-critical",
        "two-unknown-critical",
        "delta",
        "delta-not-critical",
        "indirect",
        "only-some-reasons",
        "attribute-certificates",
        "entry-certificate-issuer",
        "entry-unknown-critical",
        "remove-from-crl",
    ],
)
def test_a_crl_that_cannot_decide_revocation_is_refused(
    extensions: Extensions, entry: Extensions | None, why: str
) -> None:
    crl = _crl(extensions, entry)
    with pytest.raises(ChainNotTrusted) as caught:
        check_crl(crl, what="PCK CRL")
    assert caught.value.code == "crl-unusable"
    assert caught.value.detail == f"PCK CRL of 'CN=Some CA' cannot decide revocation: {why}"
    with pytest.raises(ChainNotTrusted):  # the remembered verdict
        check_crl(crl)


def test_a_crl_without_an_issuing_distribution_point_covers_every_certificate() -> None:
    crl = _crl()
    for is_ca in (False, True):
        for points in (None, [x509.DistributionPoint([URL], None, None, None)]):
            assert crl_covers(crl, is_ca=is_ca, distribution_points=points)


def test_only_end_entities_or_only_cas() -> None:
    users = _crl(((_point(only_contains_user_certs=True), True),))
    cas = _crl(((_point(only_contains_ca_certs=True), True),))
    assert crl_covers(users, is_ca=False, distribution_points=None)
    assert not crl_covers(users, is_ca=True, distribution_points=None)
    assert crl_covers(cas, is_ca=True, distribution_points=None)
    assert not crl_covers(cas, is_ca=False, distribution_points=None)


def test_a_named_distribution_point() -> None:
    crl = _crl(((_point(full_name=[URL]), True),))
    other = x509.DistributionPoint([OTHER_URL], None, None, None)
    this = x509.DistributionPoint([URL], None, None, None)
    assert not crl_covers(crl, is_ca=False, distribution_points=[other])
    assert crl_covers(crl, is_ca=False, distribution_points=[other, this])
    # a certificate naming no distribution point is in the issuer's default one
    assert not crl_covers(crl, is_ca=False, distribution_points=None)
    by_issuer = _crl(((_point(full_name=[x509.DirectoryName(ISSUER)]), True),))
    assert crl_covers(by_issuer, is_ca=False, distribution_points=None)


def test_a_distribution_point_named_relative_to_the_issuer() -> None:
    part = x509.RelativeDistinguishedName(
        [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "part 1")]
    )
    crl = _crl(((_point(relative_name=part), True),))
    full = x509.DirectoryName(x509.Name([*ISSUER.rdns, part]))
    assert crl_covers(
        crl, is_ca=False, distribution_points=[x509.DistributionPoint(None, part, None, None)]
    )
    assert crl_covers(
        crl, is_ca=False, distribution_points=[x509.DistributionPoint([full], None, None, None)]
    )
    assert not crl_covers(
        crl, is_ca=False, distribution_points=[x509.DistributionPoint([URL], None, None, None)]
    )
