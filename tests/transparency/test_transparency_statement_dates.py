"""A Signed Statement's own CWT ``exp`` (4) and ``nbf`` (5) at registration (RFC 8392: a CWT
is not accepted for processing at or after its ``exp``, nor before its ``nbf``).

Old behaviour: the service registered a statement whose ``exp`` had passed, one whose ``nbf``
was a year ahead, and one whose ``exp`` was text, and gave each a receipt."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from _tx_helpers import NOW, VENDOR_ISS, write_config

from ironroot.cose import CWT_CLAIMS, KID, SignedStatement, sign1
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError, MalformedStatement, PolicyRejected
from ironroot.transparency import TransparencyService

T = int(NOW.timestamp())
SKEW = 300  # the default max_clock_skew


def _statement(key: PrivateKey, **claims: object) -> bytes:
    cwt: dict[object, object] = {1: VENDOR_ISS, 2: "pkg:firmware/bmc@1.2.3"}
    cwt.update({{"exp": 4, "nbf": 5}[k]: v for k, v in claims.items()})
    return sign1(key, b'{"release": "1.2.3"}', {KID: key.kid, CWT_CLAIMS: cwt}).encode()


def _with(data: Path, line: str) -> None:
    text = (data / "ironroot.toml").read_text()
    (data / "ironroot.toml").write_text(
        text.replace("[transparency]\n", f"[transparency]\n{line}\n")
    )


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.mark.parametrize(
    ("claims", "code"),
    [
        ({"exp": T - 86_400}, "statement-expired"),
        ({"exp": T}, "statement-expired"),  # exp is now: valid before it, not at it
        ({"nbf": T + 365 * 86_400}, "statement-not-yet-valid"),
        ({"nbf": T + SKEW + 1}, "statement-not-yet-valid"),  # beyond max_clock_skew
    ],
    ids=["expired", "exp-is-now", "nbf-in-a-year", "nbf-past-the-skew"],
)
def test_a_statement_outside_its_own_dates_is_not_registered(
    tmp_path: Path, vendor: PrivateKey, claims: dict[str, int], code: str
) -> None:
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        with pytest.raises(PolicyRejected) as caught:
            service.check(_statement(vendor, **claims))
        assert type(caught.value) is PolicyRejected
        assert caught.value.code == code
        assert caught.value.detail.startswith(
            "Signed Statement not accepted by the current Registration Policy: statement "
        )


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": T + 1, "nbf": T - 86_400},
        {"nbf": T},  # nbf is now: reached
        {"nbf": T + SKEW},  # the issuer's clock up to max_clock_skew ahead of the service's
        {},
    ],
    ids=["in-force", "nbf-is-now", "nbf-within-the-skew", "no-dates"],
)
def test_a_statement_inside_its_dates_is_registered(
    tmp_path: Path, vendor: PrivateKey, claims: dict[str, int]
) -> None:
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        statement = _statement(vendor, **claims)
        entry = service.check(statement)
        assert entry == SignedStatement.parse(statement).log_entry()


@pytest.mark.parametrize("mode", ["refuse", "accept"])
@pytest.mark.parametrize("claims", [{"exp": "tomorrow"}, {"nbf": 1.5}, {"exp": True}])
def test_a_non_integer_exp_or_nbf_is_malformed_in_either_mode(
    tmp_path: Path, vendor: PrivateKey, claims: dict[str, object], mode: str
) -> None:
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _with(data, f'outside_validity = "{mode}"')
    with TransparencyService.open(data, clock=lambda: NOW) as service:
        with pytest.raises(MalformedStatement) as caught:
            service.check(_statement(vendor, **claims))
        assert type(caught.value) is MalformedStatement
        assert caught.value.detail.endswith("of the statement is not an integer")


def test_outside_validity_accept_registers_an_expired_statement(
    tmp_path: Path, vendor: PrivateKey
) -> None:
    # An archive of old releases: the operator chooses to log statements past their dates.
    data = write_config(tmp_path / "data", issuers=[(VENDOR_ISS, vendor)])
    _with(data, 'outside_validity = "accept"')
    later = NOW + dt.timedelta(days=400)
    with TransparencyService.open(data, clock=lambda: later) as service:
        ticket = service.submit(_statement(vendor, exp=T, nbf=T + 10 * 365 * 86_400))
        ticket.integrated.result(30)
        assert service.receipts(ticket.entry_id)


@pytest.mark.parametrize("value", ['"report"', '"Refuse"', "true"])
def test_outside_validity_is_refuse_or_accept(tmp_path: Path, value: str) -> None:
    data = write_config(tmp_path / "data")
    _with(data, f"outside_validity = {value}")
    with pytest.raises(ConfigError) as caught:
        TransparencyService.open(data)
    assert caught.value.code == "config"
