"""Every service's configuration says what it trusts (issuer keys, roots, witnesses, verifier
keys): one its group or others may write lets them change that trust. Each loader warns, as it
already does for a secret readable beyond its owner, naming the file, its mode and the fix."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ironroot.attestation import init_attestation_dir, load_attestation_config
from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.keyrelease import load_keyrelease_config
from ironroot.platform import PlatformTrust
from ironroot.transparency import init_data_dir, load_config
from ironroot.web import load_dashboard_config
from ironroot.witness import init_witness_dir, load_witness_config


def _transparency(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    init_data_dir(tmp_path)
    return tmp_path / "ironroot.toml", lambda: load_config(tmp_path)


def _attestation(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    init_attestation_dir(tmp_path)
    return tmp_path / "attestation.toml", lambda: load_attestation_config(tmp_path)


def _witness(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    init_witness_dir(tmp_path, name="witness.example/w1")
    return tmp_path / "witness.toml", lambda: load_witness_config(tmp_path)


def _keyrelease(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    (tmp_path / "keyrelease.toml").write_text(
        '[keyrelease]\n[keyrelease.hsm]\ndir = "hsm"\nrot_device = "rot"\n'
        'sealing_secret_file = "s"\nidentity = "kr"\ncredential_file = "c"\n'
    )
    return tmp_path / "keyrelease.toml", lambda: load_keyrelease_config(tmp_path)


def _platform(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    (tmp_path / "ecc.pub.pem").write_bytes(PrivateKey.generate(Algorithm.ES384).public_key.to_pem())
    pqc = PrivateKey.generate(Algorithm.ML_DSA_87).public_key
    (tmp_path / "mldsa.pub.pem").write_bytes(pqc.to_pem())
    service = PrivateKey.generate(Algorithm.ES256).public_key
    (tmp_path / "service-keys.cbor").write_bytes(encode_key_set([service]))
    path = tmp_path / "platform.toml"
    path.write_text(
        'platform = "pkg:platform/acme/node-1"\n'
        '[vendor]\necc = ["ecc.pub.pem"]\npqc = ["mldsa.pub.pem"]\n'
        '[transparency]\nservice_keys = ["service-keys.cbor"]\n'
        '[issuers]\nbmc = ["https://vendor.example"]\n'
    )
    return path, lambda: PlatformTrust.load_toml(path)


def _dashboard(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    (tmp_path / "dashboard.toml").write_text('title = "Ironroot"\n')
    return tmp_path / "dashboard.toml", lambda: load_dashboard_config(tmp_path)


@pytest.mark.parametrize(
    "make", [_transparency, _attestation, _witness, _keyrelease, _platform, _dashboard]
)
def test_a_configuration_others_may_write_is_warned_of(
    make: Callable[[Path], tuple[Path, Callable[[], object]]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path, load = make(tmp_path)
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load()
    assert "writable beyond its owner" not in caplog.text
    path.chmod(0o664)
    with caplog.at_level(logging.WARNING, logger="ironroot.files"):
        load()
    assert (
        f"{path} holds what the service trusts but is writable beyond its owner (mode 0664): "
        f"chmod 644 {path}"
    ) in caplog.text
