"""``keyrelease.toml`` holds nothing that decides a release: those settings live in the HSM,
and a file that still carries them is refused with a message that says where they went."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.errors import ConfigError
from ironroot.keyrelease import load_keyrelease_config

_HSM = [
    "[keyrelease.hsm]",
    'dir = "hsm"',
    'rot_device = "rot"',
    'sealing_secret_file = "s"',
    'identity = "kr"',
    'credential_file = "c"',
]


def _write(tmp_path: Path, lines: list[str]) -> None:
    (tmp_path / "keyrelease.toml").write_text("\n".join(lines) + "\n")


def test_a_plain_config_loads(tmp_path: Path) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM, "[keyrelease.keys.db]", 'handle = "h"'])
    config = load_keyrelease_config(tmp_path)
    assert [(k.name, k.handle) for k in config.keys] == [("db", "h")]


def test_the_admin_reach_is_loopback_unless_set(tmp_path: Path) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM])
    assert load_keyrelease_config(tmp_path).admin == "loopback"
    for reach in ("off", "any"):
        _write(tmp_path, ["[keyrelease]", f'admin = "{reach}"', *_HSM])
        assert load_keyrelease_config(tmp_path).admin == reach
    _write(tmp_path, ["[keyrelease]", 'admin = "everyone"', *_HSM])
    with pytest.raises(ConfigError, match=r"keyrelease\.admin is one of off, loopback, any"):
        load_keyrelease_config(tmp_path)


def test_verifiers_in_the_config_are_refused(tmp_path: Path) -> None:
    _write(
        tmp_path,
        ["[keyrelease]", "[[keyrelease.verifiers]]", 'name = "v"', 'key = "v.pem"', *_HSM],
    )
    with pytest.raises(ConfigError, match="installed in the HSM by a crypto officer"):
        load_keyrelease_config(tmp_path)


def test_a_minimum_status_in_the_config_is_refused(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [
            "[keyrelease]",
            *_HSM,
            "[keyrelease.keys.db]",
            'handle = "h"',
            'minimum_status = "warning"',
        ],
    )
    with pytest.raises(ConfigError, match="release-on-warning"):
        load_keyrelease_config(tmp_path)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["[keyrelease]", "nonce_lifetme = 600", *_HSM], r"\[keyrelease\]: unknown settings"),
        (["[keyrelease]", *_HSM, 'credentials_file = "c"'], r"\[keyrelease\.hsm\]: unknown"),
        (["[keyrelease]", *_HSM, "[chalenges]", "max_outstanding = 1"], r"section \[chalenges\]"),
        (["[keyrelease]", *_HSM, "counter = 5"], r"keyrelease\.hsm\.counter must be"),
        (["[keyrelease]", *_HSM, "counter = {a = 1}"], r"keyrelease\.hsm\.counter must be"),
    ],
)
def test_an_unknown_or_mistyped_setting_is_refused(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    """A misspelt setting is not silently its default, nor a table a counter's name."""
    _write(tmp_path, lines)
    with pytest.raises(ConfigError, match=message):
        load_keyrelease_config(tmp_path)


def test_serve_with_an_unknown_setting_exits_2(tmp_path: Path) -> None:
    _write(tmp_path, ["[keyrelease]", "nonce_lifetme = 600", *_HSM])
    assert main(["keyrelease", "serve", "--data", str(tmp_path)]) == ConfigError.exit_code == 2


def test_the_known_sections_and_settings_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        [
            "[keyrelease]",
            'host = "127.0.0.1"',
            "port = 8201",
            "nonce_lifetime = 60",
            'admin = "off"',
            *_HSM,
            'counter = "kr"',
            "[keyrelease.keys.db]",
            'handle = "h"',
            "[server]",
            "max_connections = 8",
            "[challenges]",
            "max_outstanding = 10",
        ],
    )
    config = load_keyrelease_config(tmp_path)
    assert (config.port, config.nonce_lifetime, config.counter) == (8201, 60, "kr")
    assert config.server.max_connections == 8


def test_the_hsm_audit_segment_size_is_the_hsms_default_unless_set(tmp_path: Path) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM])
    assert load_keyrelease_config(tmp_path).audit_segment_records is None  # sealed in it
    _write(tmp_path, ["[keyrelease]", *_HSM, "audit_segment_records = 500"])
    assert load_keyrelease_config(tmp_path).audit_segment_records == 500


@pytest.mark.parametrize("value", ["1", "250001", "0", "-5", '"500"', "true", "5.0"])
def test_an_hsm_audit_segment_size_out_of_range_is_refused(tmp_path: Path, value: str) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM, f"audit_segment_records = {value}"])
    with pytest.raises(
        ConfigError,
        match=r"keyrelease\.toml: keyrelease\.hsm\.audit_segment_records must be an integer "
        r"from 2 to 250000$",
    ):
        load_keyrelease_config(tmp_path)


def test_the_hsm_refusal_budget_is_the_hsms_default_unless_set(tmp_path: Path) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM])
    config = load_keyrelease_config(tmp_path)
    assert (config.refusal_commit_rate, config.refusal_commit_burst) == (20.0, 64)
    _write(
        tmp_path, ["[keyrelease]", *_HSM, "refusal_commit_rate = 2.5", "refusal_commit_burst = 8"]
    )
    config = load_keyrelease_config(tmp_path)
    assert (config.refusal_commit_rate, config.refusal_commit_burst) == (2.5, 8)


@pytest.mark.parametrize(
    ("setting", "detail"),
    [
        ("refusal_commit_rate = 0", "refusal_commit_rate must be a positive number"),
        ("refusal_commit_rate = nan", "refusal_commit_rate must be a positive number"),
        ("refusal_commit_rate = inf", "refusal_commit_rate must be a positive number"),
        ('refusal_commit_rate = "5"', "refusal_commit_rate must be a positive number"),
        ("refusal_commit_burst = 0", "refusal_commit_burst must be a positive integer"),
        ("refusal_commit_burst = 2.0", "refusal_commit_burst must be a positive integer"),
    ],
)
def test_an_hsm_refusal_budget_out_of_range_is_refused(
    tmp_path: Path, setting: str, detail: str
) -> None:
    _write(tmp_path, ["[keyrelease]", *_HSM, setting])
    with pytest.raises(ConfigError, match=rf"keyrelease\.toml: keyrelease\.hsm\.{detail}"):
        load_keyrelease_config(tmp_path)
