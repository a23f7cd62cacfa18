"""``[server]`` timeouts are finite numbers of seconds: ``nan`` and ``inf`` are valid TOML, but
a NaN timeout disables nothing predictably (uvicorn's keep-alive rounding raised an untyped
``ValueError`` at start) and an infinite one switches the slow-client guard off without saying
so. Both, and a timeout over a day, are ``ConfigError`` (exit 2) in every service."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.errors import ConfigError
from ironroot.http import ServerLimits

_TIMEOUTS = (
    "header_timeout",
    "body_timeout",
    "keep_alive_timeout",
    "send_timeout",
    "shutdown_timeout",
)


@pytest.mark.parametrize("name", _TIMEOUTS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 86400.5, 10**30])
def test_a_timeout_that_is_not_a_finite_number_of_seconds_is_refused(
    name: str, value: float
) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerLimits.from_table({name: value}, "[server]")
    assert (
        caught.value.detail == f"server.{name} must be a number of seconds above 0, at most 86400"
    )


@pytest.mark.parametrize("name", _TIMEOUTS)
def test_a_day_is_the_longest_timeout(name: str) -> None:
    assert getattr(ServerLimits.from_table({name: 86400}, "[server]"), name) == 86400


def test_serve_refuses_a_nan_timeout_in_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    assert main(["serve", "--data", str(data), "--init-only"]) == 0
    with (data / "ironroot.toml").open("a") as f:
        f.write("[server]\nkeep_alive_timeout = nan\n")
    capsys.readouterr()
    assert main(["serve", "--data", str(data), "--init-only"]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: config: {data / 'ironroot.toml'}: server.keep_alive_timeout must be a "
        "number of seconds above 0, at most 86400\n"
    )
