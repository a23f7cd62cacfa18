"""``keyrelease.toml`` that is not a regular file is a ``ConfigError`` at once: a named pipe
nobody writes to must never hold ``ironroot keyrelease serve`` (or the dashboard that reads
the file) waiting for a writer, and a folder or an oversized file is named as such."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ironroot.errors import ConfigError
from ironroot.keyrelease import load_keyrelease_config

# A child process: a load that hangs must fail the test, not hang the suite.
_LOAD = """
import sys
from ironroot.errors import ConfigError
from ironroot.keyrelease import load_keyrelease_config
try:
    load_keyrelease_config(sys.argv[1])
except ConfigError as exc:
    print(exc.detail)
"""


def test_a_named_pipe_is_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "keyrelease.toml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _LOAD, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=20,
            env=env,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("load_keyrelease_config waited on a named pipe for a writer")
    # An empty read: no [keyrelease] table, refused like any empty file.
    path = tmp_path / "keyrelease.toml"
    assert done.stdout.strip() == f"{path}: keyrelease.toml needs a [keyrelease] table"


def test_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keyrelease.toml").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_keyrelease_config(tmp_path)
    assert caught.value.detail == (
        f"cannot read {tmp_path / 'keyrelease.toml'}: is a directory, not a file"
    )


def test_an_oversized_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keyrelease.toml").write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError) as caught:
        load_keyrelease_config(tmp_path)
    assert caught.value.detail == f"{tmp_path / 'keyrelease.toml'} is larger than 1048576 bytes"


def test_every_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keyrelease.toml"
    path.write_text(
        '[keyrelease]\nport = 0\n[keyrelease.hsm]\ndir = "hsm"\nrot_device = "rot"\n'
        'sealing_secret_file = "s"\nidentity = "kr"\ncredential_file = "c"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_keyrelease_config(tmp_path)
    assert caught.value.detail == f"{path}: keyrelease.port must be a TCP port"
