"""A review is in the name of the provider whose key signed it (``srp-mismatch``), and no review
comes from the future (``report-future-dated``), in every path that verifies one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _safe_helpers import KID, SHA384, STATEMENT_ISS, ocp_safe, report_bytes

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import VerificationFailed
from ironroot.safe import (
    CLOCK_SKEW,
    ProviderKey,
    ProviderKeys,
    review_from_statement,
    reviews_for,
    sfr_statement,
    sign_report,
    verify_report,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
EVIL = "Evil Review Labs"


@pytest.fixture(scope="module")
def keys() -> tuple[PrivateKey, PrivateKey, ProviderKeys]:
    """The honest provider (``KID``) and another provider in the same store (``EVIL``)."""
    honest = PrivateKey.generate(Algorithm.ES512)
    evil = PrivateKey.generate(Algorithm.ES384)
    store = ProviderKeys(
        [
            ProviderKey(honest.public_key, frozenset((KID,))),
            ProviderKey(evil.public_key, frozenset((EVIL,))),
        ]
    )
    return honest, evil, store


def _mismatch(info: pytest.ExceptionInfo[VerificationFailed], srp: str, signer: str) -> None:
    assert type(info.value) is VerificationFailed
    assert info.value.code == "srp-mismatch"
    assert repr(srp) in info.value.detail
    assert repr(signer) in info.value.detail


# --- srp bound to the signer ------------------------------------------------------------


@pytest.mark.parametrize("form", ["jws", "cose"])
def test_a_provider_cannot_sign_a_review_in_another_providers_name(
    form: str, keys: tuple[PrivateKey, PrivateKey, ProviderKeys]
) -> None:
    _honest, evil, store = keys
    forged = sign_report(report_bytes(audit__srp=KID), evil, EVIL, format=form)  # type: ignore[arg-type]
    with pytest.raises(VerificationFailed) as info:
        verify_report(forged, store, now=NOW)
    _mismatch(info, KID, EVIL)
    # its own name, or its name with a company suffix, is its own review
    for srp in (EVIL, "evil review labs, Inc.", "EVIL  Review-Labs GmbH"):
        own = sign_report(report_bytes(audit__srp=srp), evil, EVIL, format=form)  # type: ignore[arg-type]
        assert verify_report(own, store, now=NOW).kid == EVIL


@pytest.mark.parametrize(
    "srp",
    [
        "Evil Review",  # a prefix of the provider's words is not the provider
        "Evil Review Labsx",  # nor a longer word
        "Example Evil Review Labs",
        "Evil Review Labs\u202e",  # a bidirectional override could display as anything
        "Evil\u200b Review Labs",  # a zero-width space
        "",
    ],
)
def test_near_names_are_not_the_provider(
    srp: str, keys: tuple[PrivateKey, PrivateKey, ProviderKeys]
) -> None:
    _honest, evil, store = keys
    signed = sign_report(report_bytes(audit__srp=srp or " "), evil, EVIL)
    with pytest.raises(VerificationFailed) as info:
        verify_report(signed, store)
    _mismatch(info, srp or " ", EVIL)


def test_a_key_file_named_after_another_provider_signs_only_for_its_folder(
    tmp_path: Path,
) -> None:
    """The file name is the provider's choice; the folder is the operator's."""
    evil = PrivateKey.generate(Algorithm.ES512)
    folder = tmp_path / "Evil_Labs"
    folder.mkdir()
    (folder / "Example Review Provider.pem").write_bytes(evil.public_key.to_pem())
    store = ProviderKeys.load([tmp_path])
    forged = sign_report(report_bytes(audit__srp=KID), evil, KID)  # the kid resolves...
    with pytest.raises(VerificationFailed) as info:
        verify_report(forged, store)
    _mismatch(info, KID, "Evil Labs")  # ...but the key is Evil Labs'
    own = sign_report(report_bytes(audit__srp="Evil Labs Ltd"), evil, KID)
    assert verify_report(own, store).report.audit.srp == "Evil Labs Ltd"


def test_an_explicit_alias_names_the_provider_too(tmp_path: Path) -> None:
    key = PrivateKey.generate(Algorithm.ES512)
    (tmp_path / "k.pem").write_bytes(key.public_key.to_pem())
    store = ProviderKeys.load([], {"Wile E Coyote": tmp_path / "k.pem"})
    good = sign_report(report_bytes(audit__srp="Wile E. Coyote"), key, "Wile E Coyote")
    assert verify_report(good, store).kid == "Wile E Coyote"
    bad = sign_report(report_bytes(audit__srp="Road Runner"), key, "Wile E Coyote")
    with pytest.raises(VerificationFailed) as info:
        verify_report(bad, store)
    _mismatch(info, "Road Runner", "Wile E Coyote")


def test_the_statement_and_query_paths_go_through_the_same_check(
    keys: tuple[PrivateKey, PrivateKey, ProviderKeys],
) -> None:
    """The attestation verifier and the audit verifier read reviews with
    ``review_from_statement``, the fleet scanner with ``reviews_for``: both refuse it."""
    _honest, evil, store = keys
    forged = sign_report(report_bytes(audit__srp=KID), evil, EVIL)
    publisher = PrivateKey.generate(Algorithm.ES384)
    statement = sfr_statement(forged, publisher, iss=STATEMENT_ISS)  # published unverified
    with pytest.raises(VerificationFailed) as info:
        review_from_statement(statement, store, now=NOW)
    _mismatch(info, KID, EVIL)
    assert reviews_for(f"sha384:{SHA384}", [statement], providers=store, now=NOW) == []
    with pytest.raises(VerificationFailed) as info:
        sfr_statement(forged, publisher, iss=STATEMENT_ISS, providers=store)
    _mismatch(info, KID, EVIL)


def test_the_ocp_samples_name_a_provider_their_test_keys_are_not_known_as() -> None:
    """Real data: OCP's samples are signed by kid "Wile E Coyote" for srp "My Pentest
    Corporation"; a store that knows the key only by its kid refuses them."""
    folder = ocp_safe()
    if folder is None:
        pytest.skip("the OCP SAFE vectors are absent")
    sample = folder / "shortform_report-main/samples/manifest"
    store = ProviderKeys.load([], {"Wile E Coyote": sample / "testkey_ecdsa_p521.pub"})
    with pytest.raises(VerificationFailed) as info:
        verify_report((sample / "manifest.jws").read_bytes(), store)
    _mismatch(info, "My Pentest Corporation", "Wile E Coyote")
    # NCC Group's key, were the operator to file it as IOActive's, signs no NCC review
    ncc = ProviderKeys.load([folder / "SRP_certificates/Active/NCC_Group"])
    entry = next(iter(ncc))
    moved = ProviderKeys([ProviderKey(entry.key, entry.names, identities=frozenset(["IOActive"]))])
    amd = folder / "Reports/AMD/2023/MI300X_GPU/Prototype"
    report = amd / "OCP_SAFE_-_amd_mi300x_-_BL_-_Boot_Access_Module.jws"
    assert verify_report(report.read_bytes(), ncc).report.audit.srp == "NCC Group"
    with pytest.raises(VerificationFailed) as info:
        verify_report(report.read_bytes(), moved)
    _mismatch(info, "NCC Group", "IOActive")


# --- no review from the future ------------------------------------------------------------


def _iat(when: dt.datetime) -> int:
    return int(when.timestamp())


def test_a_review_issued_after_now_plus_the_skew_is_refused(
    keys: tuple[PrivateKey, PrivateKey, ProviderKeys],
) -> None:
    honest, _evil, store = keys
    assert dt.timedelta(minutes=5) == CLOCK_SKEW
    late = sign_report(report_bytes(iat=_iat(NOW + CLOCK_SKEW) + 1), honest, KID)
    with pytest.raises(VerificationFailed) as info:
        verify_report(late, store, now=NOW)
    assert type(info.value) is VerificationFailed
    assert info.value.code == "report-future-dated"
    assert "JWT iat" in info.value.detail
    within = sign_report(report_bytes(iat=_iat(NOW + CLOCK_SKEW)), honest, KID)
    assert verify_report(within, store, now=NOW).report.issued_at == _iat(NOW + CLOCK_SKEW)
    assert verify_report(late, store).report.issued_at  # no clock, no check


@pytest.mark.parametrize("form", ["jws", "cose"])
def test_a_completion_date_that_has_begun_nowhere_is_refused(
    form: str, keys: tuple[PrivateKey, PrivateKey, ProviderKeys]
) -> None:
    honest, _evil, store = keys
    # 12:00 UTC on 1 June: 2 June has begun at UTC+14 (02:00 there), 3 June nowhere
    tomorrow = sign_report(
        report_bytes(audit__completion_date="2026-06-02"), honest, KID, format=form
    )  # type: ignore[arg-type]
    assert verify_report(tomorrow, store, now=NOW).report.audit.completion_date == dt.date(
        2026, 6, 2
    )
    ahead = sign_report(report_bytes(audit__completion_date="2026-06-03"), honest, KID, format=form)  # type: ignore[arg-type]
    with pytest.raises(VerificationFailed) as info:
        verify_report(ahead, store, now=NOW)
    assert type(info.value) is VerificationFailed
    assert info.value.code == "report-future-dated"
    assert "2026-06-03" in info.value.detail
    with pytest.raises(VerificationFailed) as info:  # at 09:00 UTC, 2 June has begun nowhere
        verify_report(tomorrow, store, now=NOW.replace(hour=9))
    assert info.value.code == "report-future-dated"
