"""The witness's private key that is not a regular file is a ``ConfigError`` at once: a named
pipe must never hold ``ironroot witness serve`` waiting for a writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ironroot.errors import ConfigError
from ironroot.witness import init_witness_dir, load_witness_config

_COSIGNERS = """
import sys
from pathlib import Path
from ironroot.errors import ConfigError
from ironroot.witness import load_witness_config
try:
    load_witness_config(Path(sys.argv[1])).cosigners()
except ConfigError as exc:
    print(exc.detail)
"""


def test_a_key_that_is_a_named_pipe_is_not_waited_on(tmp_path: Path) -> None:
    init_witness_dir(tmp_path, name="witness.example/w1")
    key = tmp_path / "keys" / "witness-ed25519.key"
    key.unlink()
    os.mkfifo(key)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _COSIGNERS, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the witness waited on a named pipe for a writer")
    assert done.stdout.strip() == f"{key} is not a Ed25519 private key"


def test_a_key_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    init_witness_dir(tmp_path, name="witness.example/w1")
    key = tmp_path / "keys" / "witness-ed25519.key"
    key.unlink()
    key.mkdir()
    with pytest.raises(ConfigError) as caught:
        load_witness_config(tmp_path).cosigners()
    assert caught.value.detail == f"cannot read the witness key {key}: is a directory, not a file"


@pytest.mark.parametrize("port", ["0", "65536", "-1", "8300.0", "true", '"8300"'])
def test_a_port_that_is_not_a_tcp_port_is_refused_when_read(tmp_path: Path, port: str) -> None:
    """As keyrelease.toml's port: refused naming the setting, not later at the bind."""
    init_witness_dir(tmp_path, name="witness.example/w1")
    path = tmp_path / "witness.toml"
    path.write_text(path.read_text() + f"port = {port}\n")
    with pytest.raises(ConfigError) as caught:
        load_witness_config(tmp_path)
    assert caught.value.detail == f"{path}: witness.port must be a TCP port (1-65535)"


def test_every_error_names_the_file(tmp_path: Path) -> None:
    init_witness_dir(tmp_path, name="witness.example/w1")
    path = tmp_path / "witness.toml"
    path.write_text(path.read_text() + "max_request_bytes = 10\n")
    with pytest.raises(ConfigError) as caught:
        load_witness_config(tmp_path)
    assert caught.value.detail.startswith(f"{path}: witness.max_request_bytes must be in 1024..")
