"""``attestation.toml``'s errors name the file, and its port is a TCP port when read (as
``keyrelease.toml``'s and ``witness.toml``'s), not refused later at the bind."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.attestation import init_attestation_dir, load_attestation_config
from ironroot.errors import ConfigError


@pytest.mark.parametrize("port", ["0", "65536", "8100.0", "true"])
def test_a_port_that_is_not_a_tcp_port_is_refused(tmp_path: Path, port: str) -> None:
    init_attestation_dir(tmp_path)
    path = tmp_path / "attestation.toml"
    path.write_text(path.read_text().replace("port = 8100\n", f"port = {port}\n"))
    with pytest.raises(ConfigError) as caught:
        load_attestation_config(tmp_path)
    assert caught.value.detail == f"{path}: attestation.port must be a TCP port (1-65535)"


def test_every_error_names_the_file(tmp_path: Path) -> None:
    init_attestation_dir(tmp_path)
    path = tmp_path / "attestation.toml"
    path.write_text(path.read_text().replace("result_lifetime = 3600\n", "result_lifetime = 0\n"))
    with pytest.raises(ConfigError) as caught:
        load_attestation_config(tmp_path)
    assert caught.value.detail == f"{path}: attestation.result_lifetime must be a positive integer"
