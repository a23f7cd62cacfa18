"""A configuration or service key kept elsewhere and linked into the data directory (config
management, a separate mount) whose target is missing at start: the service must refuse, never
write a default configuration or a new key over the operator's link (it did: the link was
replaced by a file, and the service ran on the defaults, or signed with a new key)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.attestation import init_attestation_dir
from ironroot.cli import main
from ironroot.errors import ConfigError
from ironroot.transparency import init_data_dir
from ironroot.witness import init_witness_dir


def _dangling(path: Path, tmp_path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "unmounted" / path.name
    path.symlink_to(target)
    return target


def _refused(path: Path, target: Path, call: object) -> None:
    assert callable(call)
    with pytest.raises(ConfigError) as caught:
        call()
    assert caught.value.detail == f"{path} is a symbolic link to {target}, which does not exist"
    assert caught.value.exit_code == 2
    assert path.is_symlink()  # the operator's link is still there


def test_the_transparency_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "ts"
    path = data / "ironroot.toml"
    target = _dangling(path, tmp_path)
    assert main(["serve", "--data", str(data), "--init-only"]) == 2
    assert f"{path} is a symbolic link to {target}, which does not exist" in capsys.readouterr().err
    assert path.is_symlink()
    assert not (data / "keys").exists()


@pytest.mark.parametrize("key", ["receipt-es384.key", "checkpoint.key"])
def test_a_transparency_service_key(tmp_path: Path, key: str) -> None:
    data = tmp_path / "ts"
    path = data / "keys" / key
    target = _dangling(path, tmp_path)
    _refused(path, target, lambda: init_data_dir(data))


def test_the_witness_configuration_and_key(tmp_path: Path) -> None:
    data = tmp_path / "w"
    path = data / "witness.toml"
    target = _dangling(path, tmp_path)
    _refused(path, target, lambda: init_witness_dir(data, name="witness.example/w1"))
    path.unlink()
    key = data / "keys" / "witness-ed25519.key"
    target = _dangling(key, tmp_path)
    _refused(key, target, lambda: init_witness_dir(data, name="witness.example/w1"))


def test_the_attestation_configuration(tmp_path: Path) -> None:
    data = tmp_path / "v"
    path = data / "attestation.toml"
    target = _dangling(path, tmp_path)
    _refused(path, target, lambda: init_attestation_dir(data))


def test_the_dashboard_configuration(tmp_path: Path) -> None:
    """Read, not written: a link to nowhere is refused rather than read as no file (defaults)."""
    from ironroot.web import load_dashboard_config

    path = tmp_path / "dashboard.toml"
    _dangling(path, tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_dashboard_config(tmp_path)
    assert caught.value.detail.startswith(f"{path} is not readable TOML: ")
