"""RIMs on the transparency log: registered as ``application/swid+xml`` statements whose
subject is the RIM id, and trusted back only with receipts that verify."""

from __future__ import annotations

import datetime as dt

import pytest
from _rim_helpers import (
    AFTER,
    DRIVER_FILE,
    DRIVER_ID,
    NOW,
    REGISTRANT,
    VBIOS_FILE,
    VBIOS_ID,
    RimLog,
    RimPki,
    strip_signature,
    vector_rim,
)

from ironroot.cose import TransparentStatement, create_statement
from ironroot.crypto import Algorithm, PrivateKey, Verifier
from ironroot.errors import (
    BadSignature,
    CertificateExpired,
    ChainNotTrusted,
    MalformedRim,
    MalformedStatement,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.rim import (
    RIM_CONTENT_TYPE,
    RimId,
    RimKind,
    logged_rim_from_statement,
    rim_statement,
)
from logged_elsewhere import logged_elsewhere


def test_a_registered_rim_comes_back_from_the_log(
    rim_log: RimLog, logged: dict[str, bytes]
) -> None:
    rim = logged_rim_from_statement(logged["vbios"], service_keys=rim_log.service_keys, now=NOW)
    assert str(rim) == VBIOS_ID
    assert rim.rim_id == RimId(RimKind.VBIOS, "96005E0001", project="1010", sku="0200", chip="882")
    assert rim.issuer == REGISTRANT
    assert rim.rim.colloquial_version == "96.00.5E.00.01"
    driver = logged_rim_from_statement(logged["driver"], service_keys=rim_log.service_keys, now=NOW)
    assert driver.rim_id == RimId(RimKind.DRIVER, "545.00", product="GH100")


def test_the_statement_carries_the_rim_byte_for_byte(logged: dict[str, bytes]) -> None:
    logged_statement = TransparentStatement.parse(logged["vbios"]).statement
    assert logged_statement.content_type == RIM_CONTENT_TYPE == "application/swid+xml"
    assert logged_statement.claims.sub == VBIOS_ID
    assert logged_statement.payload == vector_rim(VBIOS_FILE)


# --- must reject --------------------------------------------------------------------------


def test_a_bare_rim_is_not_on_the_log(rim_log: RimLog) -> None:
    with pytest.raises(VerificationFailed) as caught:
        logged_rim_from_statement(
            vector_rim(VBIOS_FILE), service_keys=rim_log.service_keys, now=NOW
        )
    assert caught.value.code == "no-receipt"


def test_a_signed_statement_without_receipt_is_refused(rim_log: RimLog) -> None:
    statement = rim_statement(
        vector_rim(VBIOS_FILE), rim_log.key, iss=REGISTRANT, rim_id=VBIOS_ID, now=NOW
    )
    with pytest.raises(VerificationFailed) as caught:
        logged_rim_from_statement(statement, service_keys=rim_log.service_keys, now=NOW)
    assert caught.value.code == "no-receipt"
    assert VBIOS_ID in caught.value.detail


def test_receipts_of_another_service_are_refused(logged: dict[str, bytes]) -> None:
    other = PrivateKey.generate(Algorithm.ES384).public_key
    with pytest.raises(UnknownIssuer):
        logged_rim_from_statement(logged["vbios"], service_keys={other.kid: other}, now=NOW)
    with pytest.raises(UnknownIssuer):
        logged_rim_from_statement(logged["vbios"], service_keys={}, now=NOW)


def test_a_logged_rim_that_has_expired_is_refused(
    rim_log: RimLog, logged: dict[str, bytes]
) -> None:
    with pytest.raises(CertificateExpired):
        logged_rim_from_statement(logged["vbios"], service_keys=rim_log.service_keys, now=AFTER)


def test_a_logged_rim_whose_receipt_is_from_the_future_is_refused(
    rim_log: RimLog, logged: dict[str, bytes]
) -> None:
    # logged at NOW: to a verifier whose clock reads a day earlier its receipt is from the future
    earlier = NOW - dt.timedelta(days=1)
    with pytest.raises(VerificationFailed) as caught:
        logged_rim_from_statement(logged["vbios"], service_keys=rim_log.service_keys, now=earlier)
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "receipt-from-the-future"


def test_a_logged_rim_with_a_bad_signature_is_refused(rim_log: RimLog) -> None:
    """The log accepts any statement its policy admits; the verifier still checks the RIM."""
    data = vector_rim(VBIOS_FILE).replace(b'index="9" active="True"', b'index="9" active="False"')
    statement = create_statement(
        rim_log.key, data, iss=REGISTRANT, sub=VBIOS_ID, content_type=RIM_CONTENT_TYPE
    )
    transparent = rim_log.client.register(statement).transparent_statement
    with pytest.raises(BadSignature):
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)


def test_a_logged_rim_chaining_to_another_root_is_refused(rim_log: RimLog, pki: RimPki) -> None:
    data = pki.sign(strip_signature(vector_rim(VBIOS_FILE)))
    statement = create_statement(
        rim_log.key, data, iss=REGISTRANT, sub=VBIOS_ID, content_type=RIM_CONTENT_TYPE
    )
    transparent = rim_log.client.register(statement).transparent_statement
    with pytest.raises(ChainNotTrusted):
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)
    # trusted when the verifier is told to trust that root
    taken = logged_rim_from_statement(
        transparent, service_keys=rim_log.service_keys, now=NOW, roots=[pki.root]
    )
    assert str(taken) == VBIOS_ID


def test_a_rim_logged_under_another_id_is_refused(rim_log: RimLog) -> None:
    wrong = "NV_GPU_VBIOS_1010_0200_882_96005E0003"
    with pytest.raises(VerificationFailed) as caught:
        rim_statement(vector_rim(VBIOS_FILE), rim_log.key, iss=REGISTRANT, rim_id=wrong, now=NOW)
    assert caught.value.code == "rim-id-mismatch"
    statement = create_statement(
        rim_log.key,
        vector_rim(VBIOS_FILE),
        iss=REGISTRANT,
        sub=wrong,
        content_type=RIM_CONTENT_TYPE,
    )
    transparent = rim_log.client.register(statement).transparent_statement
    with pytest.raises(VerificationFailed) as caught:
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)
    assert caught.value.code == "rim-id-mismatch"


def test_a_driver_rim_is_not_a_vbios_rim(rim_log: RimLog) -> None:
    with pytest.raises(VerificationFailed) as caught:
        rim_statement(
            vector_rim(DRIVER_FILE),
            rim_log.key,
            iss=REGISTRANT,
            rim_id="NV_GPU_VBIOS_1010_0200_882_5450000000",
            now=NOW,
        )
    assert caught.value.code == "rim-id-mismatch"
    with pytest.raises(VerificationFailed):
        rim_statement(
            vector_rim(DRIVER_FILE),
            rim_log.key,
            iss=REGISTRANT,
            rim_id="NV_GPU_DRIVER_GB100_545.00",
            now=NOW,
        )
    assert rim_statement(
        vector_rim(DRIVER_FILE), rim_log.key, iss=REGISTRANT, rim_id=DRIVER_ID, now=NOW
    )


def test_other_content_is_not_a_rim(rim_log: RimLog) -> None:
    statement = create_statement(
        rim_log.key,
        vector_rim(VBIOS_FILE),
        iss=REGISTRANT,
        sub=VBIOS_ID,
        content_type="application/xml",
    )
    transparent = rim_log.client.register(statement).transparent_statement
    with pytest.raises(MalformedRim):
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)
    hashed = create_statement(
        rim_log.key,
        vector_rim(VBIOS_FILE),
        iss=REGISTRANT,
        sub=VBIOS_ID,
        hash_envelope=True,
        preimage_content_type=RIM_CONTENT_TYPE,
    )
    transparent = rim_log.client.register(hashed).transparent_statement
    with pytest.raises(MalformedRim):
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)


def test_a_subject_that_is_not_a_rim_id_is_refused(rim_log: RimLog) -> None:
    statement = create_statement(
        rim_log.key,
        vector_rim(VBIOS_FILE),
        iss=REGISTRANT,
        sub="pkg:firmware/nvidia/gh100",
        content_type=RIM_CONTENT_TYPE,
    )
    transparent = rim_log.client.register(statement).transparent_statement
    with pytest.raises(MalformedRim):
        logged_rim_from_statement(transparent, service_keys=rim_log.service_keys, now=NOW)


def test_a_registrant_cannot_log_an_expired_rim(rim_log: RimLog) -> None:
    with pytest.raises(CertificateExpired):
        rim_statement(
            vector_rim(VBIOS_FILE), rim_log.key, iss=REGISTRANT, rim_id=VBIOS_ID, now=AFTER
        )


def test_a_rim_counts_only_inside_its_statement_s_own_dates() -> None:
    # The statement's own CWT exp (4) and nbf (5) were never read: a RIM whose registrant
    # said "until T" still counted after T, from load and at every appraisal.
    t = int(NOW.timestamp())
    key = PrivateKey.generate(Algorithm.ES384)

    def logged(**dates: object) -> tuple[bytes, dict[bytes, Verifier]]:
        statement = create_statement(
            key,
            vector_rim(VBIOS_FILE),
            iss=REGISTRANT,
            sub=VBIOS_ID,
            content_type=RIM_CONTENT_TYPE,
            **dates,  # type: ignore[arg-type]
        )
        return logged_elsewhere(statement, t)

    at = lambda s: dt.datetime.fromtimestamp(s, dt.UTC)  # noqa: E731
    data, keys = logged(exp=t + 60, nbf=t - 60)
    rim = logged_rim_from_statement(data, service_keys=keys, now=NOW)
    assert (rim.not_before, rim.expires_at) == (t - 60, t + 60)
    for now in (t + 60, t - 61):
        with pytest.raises(VerificationFailed) as caught:
            logged_rim_from_statement(data, service_keys=keys, now=at(now))
        assert type(caught.value) is VerificationFailed
        assert caught.value.code == "rim-expired"
        assert "outside its validity (its CWT exp/nbf" in caught.value.detail
    # Taken at NOW, the RIM stops counting at its statement's exp (LoggedRims asks valid_at
    # at each appraisal).
    assert rim.valid_at(at(t + 59))
    assert not rim.valid_at(at(t + 60))
    assert not rim.valid_at(at(t - 61))
    bad, bad_keys = logged(nbf="soon")
    with pytest.raises(MalformedStatement) as malformed:
        logged_rim_from_statement(bad, service_keys=bad_keys, now=NOW)
    assert malformed.value.detail == "CWT claim 5 of the statement is not an integer"


SERVICE = "https://transparency.example"  # init_data_dir's issuer: what the log's receipts name


def test_a_pinned_service_issuer_refuses_a_receipt_naming_another_service(
    rim_log: RimLog, logged: dict[str, bytes]
) -> None:
    keys = rim_log.service_keys
    # the right issuer passes, and no issuer pinned is the key alone deciding, as before
    pinned = logged_rim_from_statement(
        logged["vbios"], service_keys=keys, now=NOW, service_issuer=SERVICE
    )
    assert (
        pinned.rim_id
        == logged_rim_from_statement(logged["vbios"], service_keys=keys, now=NOW).rim_id
    )
    # a receipt signed by the trusted key, but the verifier knows its service by another iss
    other = "https://another-ts.example"
    with pytest.raises(UnknownIssuer) as caught:
        logged_rim_from_statement(logged["vbios"], service_keys=keys, now=NOW, service_issuer=other)
    assert type(caught.value) is UnknownIssuer
    assert caught.value.code == "untrusted-service"
    assert caught.value.detail == (
        f"no receipt of RIM statement {VBIOS_ID!r} is by a trusted transparency service (the "
        f"receipt is issued by {SERVICE!r}, not by the transparency service {other!r})"
    )
