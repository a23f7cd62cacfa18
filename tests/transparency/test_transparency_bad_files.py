"""A trust anchor file that does not load is skipped, logged and listed; the service starts."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tx_helpers import VENDOR_ISS, make_root, write_config
from cryptography.hazmat.primitives.serialization import Encoding

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import ConfigError
from ironroot.transparency import TransparencyService, load_config


def test_bad_root_and_issuer_key_files_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    vendor = PrivateKey.generate(Algorithm.ES256)
    stranger = PrivateKey.generate(Algorithm.ES256)
    write_config(data, issuers=[(VENDOR_ISS, vendor), ("https://other", stranger)])
    (data / "issuer1.pub.pem").write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n")
    roots = data / "roots"
    roots.mkdir()
    good_root, _ = make_root()
    (roots / "a-good.pem").write_bytes(good_root.public_bytes(Encoding.PEM))
    version5 = bytearray(good_root.public_bytes(Encoding.DER))
    version5[version5.index(bytes.fromhex("a003020102")) + 4] = 5
    (roots / "b-version5.der").write_bytes(bytes(version5))
    (roots / "c-junk.crt").write_bytes(b"not a certificate")
    toml = data / "ironroot.toml"
    toml.write_text(
        toml.read_text().replace("[transparency]\n", '[transparency]\nx509_roots = ["roots"]\n')
    )
    with caplog.at_level(logging.WARNING, logger="ironroot.transparency"):
        config = load_config(data)
    assert config.x509_roots == (good_root,)
    assert [i.iss for i in config.issuers] == [VENDOR_ISS]
    rejected = sorted(config.rejected)
    assert len(rejected) == 3
    assert "b-version5.der: malformed-certificate" in rejected[1]
    assert "c-junk.crt: malformed-certificate" in rejected[2]
    assert "issuer1.pub.pem" in rejected[0]
    for name in ("b-version5.der", "c-junk.crt", "issuer1.pub.pem"):
        assert name in caplog.text
    with TransparencyService.open(data) as service:  # one bad file never stops the service
        assert service is not None


def test_missing_root_path_is_a_config_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_config(data)
    toml = data / "ironroot.toml"
    toml.write_text(
        toml.read_text().replace("[transparency]\n", '[transparency]\nx509_roots = ["nope"]\n')
    )
    with pytest.raises(ConfigError):
        load_config(data)


def _batching(tmp_path: Path, line: str) -> Path:
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "ironroot.toml").write_text(
        '[transparency]\nservice_issuer = "https://transparency.example"\n' + line + "\n"
    )
    return data


def test_batch_fill_defaults_and_is_read(tmp_path: Path) -> None:
    assert load_config(_batching(tmp_path / "a", "")).batch_fill == 32
    assert load_config(_batching(tmp_path / "b", "batch_fill = 8")).batch_fill == 8


@pytest.mark.parametrize("value", ["0", "65537", "-3"])
def test_batch_fill_out_of_range_is_a_config_error(tmp_path: Path, value: str) -> None:
    data = _batching(tmp_path, f"batch_fill = {value}")
    with pytest.raises(ConfigError, match=r"transparency\.batch_fill must be between 1 and 65536"):
        load_config(data)


def _ironroot(*argv: str) -> subprocess.CompletedProcess[str]:
    """In a process of its own: one that waits on a pipe is stopped, and fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "ironroot", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_configuration_that_is_a_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_config(data)
    (data / "log.sqlite3").touch()  # what `log verify DIR` looks for before the origin
    toml = data / "ironroot.toml"
    toml.unlink()
    os.mkfifo(toml)  # nobody writes to it
    run = _ironroot("log", "verify", str(data))
    assert (run.returncode, run.stderr) == (
        2,
        "ironroot: config: no [log] origin and no service issuer in the configuration\n",
    )
    run = _ironroot("serve", "--data", str(data), "--init-only")  # not read as empty: defaults
    assert (run.returncode, run.stderr) == (2, f"ironroot: config: {toml} is not a regular file\n")


def test_a_trust_anchor_that_is_a_pipe_is_skipped_not_waited_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_config(data)
    os.mkfifo(data / "root.pem")
    toml = data / "ironroot.toml"
    toml.write_text(
        toml.read_text().replace("[transparency]\n", '[transparency]\nx509_roots = ["root.pem"]\n')
    )
    run = _ironroot("serve", "--data", str(data), "--init-only")
    assert run.returncode == 0, run.stderr
    assert "root.pem left out" in run.stderr
