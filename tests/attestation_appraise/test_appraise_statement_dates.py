"""A logged statement's own CWT ``exp`` (4) and ``nbf`` (5) (the Signed Statement's protected
header, RFC 9597), read where the statement is taken for a trust decision.

Old behaviour: reference values and SAFE reviews were read from a statement whose own ``exp``
had passed (or whose ``nbf`` was not reached) as from any other; only a signed CoRIM's inner
CWT dates were read. Each statement here is logged while valid, on a service whose clock is
``NOW``, and read later (or earlier)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

import pytest
from _ar_helpers import NOW, PRODUCT, PROVIDER, SAFE_ISS, VENDOR_ISS, World, sfr_json

from ironroot.attestation import Endorsements, reference_values_from_statement
from ironroot.corim import CORIM_CONTENT_TYPE
from ironroot.cose import create_statement
from ironroot.crypto import PrivateKey, Verifier
from ironroot.errors import MalformedStatement, VerificationFailed
from ironroot.firmware import FirmwareBundle, reference_corim
from ironroot.safe import SFR_JWS_CONTENT_TYPE, review_from_statement, sign_report
from ironroot.transparency import TransparencyService, init_data_dir
from logged_elsewhere import logged_elsewhere

T = int(NOW.timestamp())
DAY = 86_400


def _at(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


def _logged(
    tmp_path: Path, issuers: Mapping[str, PrivateKey], statement: bytes
) -> tuple[bytes, dict[bytes, Verifier]]:
    """``statement`` registered on a service whose clock is ``NOW``, and its receipt keys."""
    data = tmp_path / "ts"
    init_data_dir(data)
    config = (data / "ironroot.toml").read_text()
    for n, (iss, key) in enumerate(issuers.items()):
        (data / f"issuer{n}.pub.pem").write_bytes(key.public_key.to_pem())
        config += f'\n[[transparency.issuers]]\niss = "{iss}"\nkey = "issuer{n}.pub.pem"\n'
    (data / "ironroot.toml").write_text(config)
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        ticket = service.submit(statement)
        ticket.integrated.result(30)
        return service.transparent_statement(ticket.entry_id), dict(service.known_receipt_keys())


def _reference(
    world: World, tmp_path: Path | None, **dates: object
) -> tuple[bytes, dict[bytes, Verifier]]:
    """A logged statement of reference values (``tmp_path`` ``None``: logged elsewhere)."""
    corim = reference_corim(world.bundle(svn=5), vendor=VENDOR_ISS, model=PRODUCT)
    statement = create_statement(
        world.vendor_key,
        corim.encode(),
        iss=VENDOR_ISS,
        sub=PRODUCT,
        content_type=CORIM_CONTENT_TYPE,
        **dates,  # type: ignore[arg-type]
    )
    if tmp_path is None:
        return logged_elsewhere(statement, T)
    return _logged(tmp_path, {VENDOR_ISS: world.vendor_key}, statement)


@pytest.mark.parametrize(
    ("dates", "now", "refused"),
    [
        ({"exp": T + DAY, "nbf": T - DAY}, T, False),
        ({"exp": T + DAY}, T + DAY - 1, False),  # the last second before exp
        ({"exp": T + DAY}, T + DAY, True),  # exp is now: valid before it, not at it
        ({"exp": T + DAY}, T + 2 * DAY, True),
        # the log (its clock at T) takes an nbf up to 300 s ahead; a verifier's clock may be
        # up to 300 s behind the receipt's iat (before that, the receipt is from its future)
        ({"nbf": T + 200}, T + 200, False),  # nbf is now: reached
        ({"nbf": T + 200}, T + 199, True),
    ],
    ids=["in-force", "last-second", "exp-is-now", "expired", "nbf-is-now", "before-nbf"],
)
def test_reference_values_count_only_inside_their_statement_s_own_dates(
    world: World,
    tmp_path: Path,
    dates: dict[str, int],
    now: int,
    refused: bool,
) -> None:
    data, keys = _reference(world, tmp_path, **dates)

    def values(mode: str) -> object:
        return reference_values_from_statement(
            data,
            service_keys=keys,
            publishers=world.publishers,
            now=_at(now),
            outside_validity=mode,
        )

    if not refused:
        assert values("refuse")
    else:
        with pytest.raises(VerificationFailed) as caught:
            values("refuse")
        assert type(caught.value) is VerificationFailed
        assert caught.value.code == "rim-expired"
        assert "the statement of the reference values" in caught.value.detail
    # outside_validity="report" takes them, carrying the statement's span (exp exclusive)
    taken = values("report")
    assert taken
    assert all(v.valid_at(_at(now)) is not refused for v in taken)  # type: ignore[attr-defined]
    if "exp" in dates:
        assert all(v.not_after == dates["exp"] - 1 for v in taken)  # type: ignore[attr-defined]
    if "nbf" in dates:
        assert all(v.not_before == dates["nbf"] for v in taken)  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["refuse", "report"])
def test_reference_values_whose_receipt_is_from_the_future_are_refused(
    world: World, tmp_path: Path, mode: str
) -> None:
    # logged at T: to a verifier whose clock reads a day earlier the receipt is from the future
    data, keys = _reference(world, tmp_path)
    with pytest.raises(VerificationFailed) as caught:
        reference_values_from_statement(
            data,
            service_keys=keys,
            publishers=world.publishers,
            now=_at(T - DAY),
            outside_validity=mode,
        )
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "receipt-from-the-future"


@pytest.mark.parametrize("mode", ["refuse", "report"])
@pytest.mark.parametrize("dates", [{"exp": "tomorrow"}, {"nbf": 1.5}, {"exp": False}])
def test_reference_values_of_a_statement_with_a_non_integer_date_are_malformed(
    world: World, dates: dict[str, object], mode: str
) -> None:
    data, keys = _reference(world, None, **dates)
    with pytest.raises(MalformedStatement) as caught:
        reference_values_from_statement(
            data, service_keys=keys, publishers=world.publishers, now=NOW, outside_validity=mode
        )
    assert type(caught.value) is MalformedStatement
    assert caught.value.detail.endswith("of the statement is not an integer")


def _review(
    world: World, tmp_path: Path | None, **dates: object
) -> tuple[bytes, dict[bytes, Verifier]]:
    """A logged SAFE review statement (``tmp_path`` ``None``: logged elsewhere)."""
    digest = FirmwareBundle.parse(world.bundle(svn=5)).manifest_digest()
    sfr = sign_report(sfr_json(digest), world.provider_key, PROVIDER)
    statement = create_statement(
        world.safe_key,
        sfr,
        iss=SAFE_ISS,
        sub=f"sha384:{digest.hex()}",
        content_type=SFR_JWS_CONTENT_TYPE,
        **dates,  # type: ignore[arg-type]
    )
    if tmp_path is None:
        return logged_elsewhere(statement, T)
    return _logged(tmp_path, {SAFE_ISS: world.safe_key}, statement)


def test_a_review_counts_only_inside_its_statement_s_own_dates(
    world: World, tmp_path: Path
) -> None:
    data, keys = _review(world, tmp_path, exp=T + DAY, nbf=T - DAY)
    review = review_from_statement(data, world.providers, service_keys=keys, now=NOW)
    assert (review.not_before, review.expires_at) == (T - DAY, T + DAY)
    with pytest.raises(VerificationFailed) as caught:
        review_from_statement(data, world.providers, service_keys=keys, now=_at(T + DAY))
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "report-expired"
    assert "(the statement's CWT" in caught.value.detail
    # Before its nbf: the log (its clock at NOW) takes an nbf up to 300 s ahead, and a
    # verifier's clock may be up to 300 s behind the receipt's iat.
    soon, soon_keys = _review(world, tmp_path / "soon", nbf=T + 200)
    with pytest.raises(VerificationFailed) as caught:
        review_from_statement(soon, world.providers, service_keys=soon_keys, now=_at(T + 100))
    assert type(caught.value) is VerificationFailed
    assert caught.value.code == "report-not-yet-valid"
    assert "(the statement's CWT" in caught.value.detail
    # A day before it was logged, its receipt is from the verifier's future: refused first.
    with pytest.raises(VerificationFailed) as caught:
        review_from_statement(data, world.providers, service_keys=keys, now=_at(T - DAY - 1))
    assert caught.value.code == "receipt-from-the-future"
    # Read once when the verifier starts, a review stops counting at its statement's exp.
    endorsements = Endorsements(reviews=(review,))
    digest = review.report.firmware_hashes()["sha384"]
    assert endorsements.reviews_for("sha384", digest, now=_at(T + DAY - 1)) == (review,)
    assert endorsements.reviews_for("sha384", digest, now=_at(T + DAY)) == ()
    assert endorsements.reviews_for("sha384", digest, now=_at(T - DAY - 1)) == ()
    assert endorsements.validity_epoch(_at(T + DAY)) == endorsements.validity_epoch(NOW) + 1


def test_a_review_statement_with_a_non_integer_date_is_malformed(world: World) -> None:
    data, keys = _review(world, None, exp="never")
    with pytest.raises(MalformedStatement) as caught:
        review_from_statement(data, world.providers, service_keys=keys)
    assert type(caught.value) is MalformedStatement
    assert caught.value.detail == "CWT claim 4 of the statement is not an integer"
