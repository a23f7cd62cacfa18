"""A review provider's key given as a certificate counts only within the certificate's
validity: an expired (or not yet valid) provider certificate verifies no report, and a review
read while it was valid stops counting when it expires."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _safe_helpers import KID, SHA384, STATEMENT_ISS, report_bytes
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ironroot.attestation import Endorsements
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import CertificateExpired, ConfigError, VerificationFailed
from ironroot.platform import SafeRequirement
from ironroot.safe import (
    ProviderKeys,
    review_from_statement,
    reviews_for,
    sfr_statement,
    sign_report,
    verify_report,
)

START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
INSIDE = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
AFTER = END + dt.timedelta(seconds=1)


def _certificate(key: PrivateKey, folder: Path) -> Path:
    raw = key.raw
    assert isinstance(raw, ec.EllipticCurvePrivateKey)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KID)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(raw.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(START)
        .not_valid_after(END)
        .sign(raw, hashes.SHA512())
    )
    path = folder / "Example_Review_Provider" / "provider.crt"
    path.parent.mkdir(parents=True)
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def provider_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[PrivateKey, Path]:
    key = PrivateKey.generate(Algorithm.ES512)
    return key, _certificate(key, tmp_path_factory.mktemp("providers"))


def test_an_expired_provider_certificate_verifies_no_report(
    provider_cert: tuple[PrivateKey, Path],
) -> None:
    # The certificate's dates were never read: a provider certificate that expired (its key
    # retired, perhaps leaked) went on verifying reviews, old and new.
    key, path = provider_cert
    keys = ProviderKeys.load([path.parent.parent])
    sfr = sign_report(report_bytes(), key, KID)
    assert verify_report(sfr, keys, now=INSIDE).kid == KID
    assert verify_report(sfr, keys, now=END).kid == KID  # notAfter itself is inside
    for when in (AFTER, START - dt.timedelta(seconds=1)):
        with pytest.raises(CertificateExpired) as info:
            verify_report(sfr, keys, now=when)
        assert info.value.code == "certificate-expired"
    statement = sfr_statement(sfr, key, iss=STATEMENT_ISS, providers=keys, now=INSIDE)
    with pytest.raises(CertificateExpired):
        review_from_statement(statement, keys, now=AFTER)
    assert reviews_for(f"sha384:{SHA384}", [statement], providers=keys, now=AFTER) == []
    # the same key also given bare (no certificate) is the operator's choice: no dates apply
    bare = path.parent.parent / "bare.pem"
    bare.write_bytes(key.public_key.to_pem())
    both = ProviderKeys.load([path.parent.parent])
    assert verify_report(sfr, both, now=AFTER).kid == KID
    bare.unlink()


def test_a_review_read_while_the_certificate_was_valid_expires_with_it(
    provider_cert: tuple[PrivateKey, Path],
) -> None:
    key, path = provider_cert
    keys = ProviderKeys.load([path.parent.parent])
    statement = sfr_statement(sign_report(report_bytes(), key, KID), key, iss=STATEMENT_ISS)
    review = review_from_statement(statement, keys, now=INSIDE)
    assert review.expires_at == int(END.timestamp()) + 1
    endorsements = Endorsements(reviews=(review,))
    digest = bytes.fromhex(SHA384)
    assert endorsements.reviews_for("sha384", digest, now=END) == (review,)
    assert endorsements.reviews_for("sha384", digest, now=AFTER) == ()


def test_a_saved_safe_requirement_keeps_the_certificate_dates(
    provider_cert: tuple[PrivateKey, Path],
) -> None:
    key, path = provider_cert
    requirement = SafeRequirement(ProviderKeys.load([path.parent.parent]), "medium")
    doc = requirement.to_json()
    (entry,) = doc["providers"]
    assert entry["validity"] == [[START.isoformat(), END.isoformat()]]
    loaded = SafeRequirement.from_json(doc)
    assert loaded == requirement
    sfr = sign_report(report_bytes(), key, KID)
    with pytest.raises(CertificateExpired):
        verify_report(sfr, loaded.providers, now=AFTER)
    for bad in ([], [["2025-01-01T00:00:00", END.isoformat()]], [[START.isoformat()]], "x"):
        with pytest.raises(ConfigError):
            SafeRequirement.from_json(doc | {"providers": [entry | {"validity": bad}]})


def test_a_certificate_common_name_does_not_make_its_key_another_provider(
    tmp_path: Path,
) -> None:
    # The subject CN of a provider certificate (its chain is not checked: the provider wrote
    # it) was one of the key's provider identities: a certificate saying CN=KID in folder
    # Acme_Labs let Acme sign reviews in KID's name.
    key = PrivateKey.generate(Algorithm.ES512)
    path = _certificate(key, tmp_path)
    acme = tmp_path / "Acme_Labs"
    path.parent.rename(acme)
    keys = ProviderKeys.load([tmp_path])
    impersonating = sign_report(report_bytes(), key, KID)  # the CN still finds the key
    with pytest.raises(VerificationFailed) as info:
        verify_report(impersonating, keys, now=INSIDE)
    assert info.value.code == "srp-mismatch"
    own = sign_report(report_bytes(audit__srp="Acme Labs, Inc."), key, "Acme Labs")
    assert verify_report(own, keys, now=INSIDE).report.audit.srp == "Acme Labs, Inc."


def test_a_naive_now_is_a_configuration_error(provider_cert: tuple[PrivateKey, Path]) -> None:
    # A naive now was read as the machine's local time by the report's dates and compared
    # with the certificate's aware dates, which raised an untyped TypeError.
    key, path = provider_cert
    keys = ProviderKeys.load([path.parent.parent])
    sfr = sign_report(report_bytes(), key, KID)
    statement = sfr_statement(sfr, key, iss=STATEMENT_ISS, providers=keys, now=INSIDE)
    naive = INSIDE.replace(tzinfo=None)
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        verify_report(sfr, keys, now=naive)
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        review_from_statement(statement, keys, now=naive)
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        reviews_for(f"sha384:{SHA384}", [statement], providers=keys, now=naive)
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        review_from_statement(statement, keys).counts_at(naive)
    with pytest.raises(ConfigError, match="now must be a timezone-aware datetime"):
        keys.check_validity(keys.lookup(KID), naive)


def test_a_certificate_given_by_itself_signs_only_for_its_file_names(
    provider_cert: tuple[PrivateKey, Path],
) -> None:
    # A certificate file given by itself (``--provider-key acme.crt``, a platform.toml's or
    # verifier config's provider list) signed for any of its names, its subject CN among
    # them: Acme's certificate saying CN=KID let Acme sign reviews in KID's name.
    key, path = provider_cert
    acme = path.parent.parent / "keys" / "acme.crt"
    acme.parent.mkdir(exist_ok=True)
    acme.write_bytes(path.read_bytes())
    keys = ProviderKeys.load([acme])
    impersonating = sign_report(report_bytes(), key, KID)  # the CN still finds the key
    with pytest.raises(VerificationFailed) as info:
        verify_report(impersonating, keys, now=INSIDE)
    assert info.value.code == "srp-mismatch"
    entry = ProviderKeys.read_key_file(acme)
    assert KID in entry.names  # a kid naming the CN finds the key, as before
    assert KID not in entry.identities
    assert {"acme", "keys"} <= entry.identities
    own = sign_report(report_bytes(audit__srp="ACME Labs"), key, KID)
    assert verify_report(own, keys, now=INSIDE).report.audit.srp == "ACME Labs"


def test_a_persisted_safe_requirement_keeps_who_a_certificate_signs_for(
    provider_cert: tuple[PrivateKey, Path],
) -> None:
    # A platform keeps its trust as JSON (platform.json): a round trip that kept only the
    # names that find a key made a certificate's CN a provider identity again.
    key, path = provider_cert
    acme = path.parent.parent / "keys" / "acme.crt"
    acme.parent.mkdir(exist_ok=True)
    acme.write_bytes(path.read_bytes())
    requirement = SafeRequirement(ProviderKeys.load([acme]), "medium")
    again = SafeRequirement.from_json(requirement.to_json())
    impersonating = sign_report(report_bytes(), key, KID)
    with pytest.raises(VerificationFailed) as info:
        verify_report(impersonating, again.providers, now=INSIDE)
    assert info.value.code == "srp-mismatch"
    own = sign_report(report_bytes(audit__srp="ACME Labs"), key, KID)
    assert verify_report(own, again.providers, now=INSIDE).report.audit.srp == "ACME Labs"
    assert again == requirement
    # a trust persisted before identities were kept still loads (its names, as then)
    legacy = requirement.to_json()
    for entry in legacy["providers"]:
        del entry["identities"]
    assert verify_report(own, SafeRequirement.from_json(legacy).providers, now=INSIDE)
