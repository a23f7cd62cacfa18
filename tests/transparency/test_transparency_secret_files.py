"""Files holding secrets are written 0600, and reading one that others may read warns."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from _tx_helpers import write_config

from ironroot._fileio import warn_if_exposed
from ironroot.crypto import Algorithm, PrivateKey, load_signer, save_signer
from ironroot.transparency import init_data_dir, load_config
from ironroot.transparency._config import receipt_key_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_configuration_is_written_0600(tmp_path: Path) -> None:
    init_data_dir(tmp_path / "data")
    assert _mode(tmp_path / "data" / "ironroot.toml") == 0o600
    assert _mode(receipt_key_path(tmp_path / "data", Algorithm.ES384)) == 0o600
    assert _mode(tmp_path / "data" / "keys" / "checkpoint.key") == 0o600


def test_a_readable_configuration_with_tokens_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_config(tmp_path / "data", tokens=["s3cret"])
    config = data / "ironroot.toml"
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load_config(data)
    assert f"{config} holds auth.write_tokens but is readable beyond its owner (mode 0644)" in (
        caplog.text
    )
    caplog.clear()
    config.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load_config(data)
    assert "readable beyond its owner" not in caplog.text


def test_a_readable_configuration_without_tokens_is_quiet(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_config(tmp_path / "data")
    (data / "ironroot.toml").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load_config(data)
    assert "readable beyond its owner" not in caplog.text


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_other_access_is_exposed(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    path.chmod(mode)
    assert warn_if_exposed(path, "a secret")


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_owner_only_access_is_not_exposed(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    path.chmod(mode)
    assert not warn_if_exposed(path, "a secret")


def test_a_missing_file_is_left_to_its_reader(tmp_path: Path) -> None:
    assert not warn_if_exposed(tmp_path / "absent", "a secret")


def test_a_readable_private_key_warns_when_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vendor.key"
    save_signer(PrivateKey.generate(Algorithm.ES256), path)
    assert _mode(path) == 0o600
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load_signer(path)
    assert "readable beyond its owner" not in caplog.text
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load_signer(path)
    assert f"{path} holds a private key" in caplog.text


def test_the_configuration_s_repr_never_shows_the_write_tokens(tmp_path: Path) -> None:
    """A configuration in a log line, an error or a traceback's locals (``%r``) names no
    write token: each is a credential that registers statements."""
    data = write_config(tmp_path / "data", tokens=["s3cret-one", "s3cret-two"])
    (data / "ironroot.toml").chmod(0o600)
    config = load_config(data)
    assert config.write_tokens == ("s3cret-one", "s3cret-two")
    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config)
