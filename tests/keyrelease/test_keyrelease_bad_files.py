"""A verifier key file that does not load is skipped, logged and listed, never fatal."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.keyrelease import load_keyrelease_config


def _write(tmp_path: Path, keys: dict[str, bytes]) -> None:
    lines = ["[keyrelease]"]
    for i, (name, data) in enumerate(keys.items()):
        (tmp_path / f"v{i}.pem").write_bytes(data)
        lines += ["[[keyrelease.verifiers]]", f'name = "{name}"', f'key = "v{i}.pem"']
    lines += [
        "[keyrelease.hsm]",
        'dir = "hsm"',
        'sealing_secret_file = "s"',
        'identity = "kr"',
        'credential_file = "c"',
    ]
    (tmp_path / "keyrelease.toml").write_text("\n".join(lines) + "\n")


def test_bad_verifier_key_file_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = PrivateKey.generate(Algorithm.ES384).public_key.to_pem()
    _write(tmp_path, {"https://good": good, "https://bad": b"-----BEGIN PUBLIC KEY-----\nzz\n"})
    with caplog.at_level(logging.WARNING, logger="ironroot.keyrelease"):
        config = load_keyrelease_config(tmp_path)
    assert [v.name for v in config.verifiers] == ["https://good"]
    assert len(config.rejected) == 1
    assert config.rejected[0].startswith(f"{tmp_path / 'v1.pem'}: ")
    assert "v1.pem" in caplog.text


def test_missing_verifier_key_file_is_still_a_config_error(tmp_path: Path) -> None:
    _write(tmp_path, {"https://good": b"x"})
    (tmp_path / "v0.pem").unlink()
    with pytest.raises(ConfigError):
        load_keyrelease_config(tmp_path)
