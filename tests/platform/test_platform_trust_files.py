"""``platform.toml`` and the key files it names: a public key file that also holds a private
key, a folder or an oversized file where a file is named, are ``ConfigError``s naming the file
(exit 2) — never a trust file quietly carrying a secret, never another error type."""

from __future__ import annotations

from pathlib import Path

import pytest

from ironroot.cose import encode_key_set
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import ConfigError, MalformedInput
from ironroot.platform import PlatformTrust

_ECC = PrivateKey.generate(Algorithm.ES384)
_PQC = PrivateKey.generate(Algorithm.ML_DSA_87)
_SERVICE = PrivateKey.generate(Algorithm.ES256)


def _write(tmp_path: Path) -> Path:
    (tmp_path / "ecc.pub.pem").write_bytes(_ECC.public_key.to_pem())
    (tmp_path / "mldsa.pub.pem").write_bytes(_PQC.public_key.to_pem())
    (tmp_path / "service-keys.cbor").write_bytes(encode_key_set([_SERVICE.public_key]))
    config = tmp_path / "platform.toml"
    config.write_text(
        'platform = "pkg:platform/acme/node-1"\n'
        '[vendor]\necc = ["ecc.pub.pem"]\npqc = ["mldsa.pub.pem"]\n'
        '[transparency]\nservice_keys = ["service-keys.cbor"]\n'
        '[issuers]\nbmc = ["https://vendor.example"]\n'
    )
    return config


def test_a_public_key_file_that_also_holds_a_private_key_is_refused(tmp_path: Path) -> None:
    """The file a trust names is copied and shown to anyone; a private key in it is a leak
    the operator must learn of, not a block that the PEM reader skips."""
    pem = _ECC.public_key.to_pem() + _ECC.to_pem()
    with pytest.raises(MalformedInput) as caught:
        PublicKey.from_pem(pem)
    assert caught.value.detail == "not a public key: the PEM also holds a private key"
    config = _write(tmp_path)
    (tmp_path / "ecc.pub.pem").write_bytes(pem)
    with pytest.raises(ConfigError) as refused:
        PlatformTrust.load_toml(config)
    assert refused.value.detail == (
        f"{tmp_path / 'ecc.pub.pem'}: not a public key: the PEM also holds a private key"
    )


def test_a_plain_trust_loads(tmp_path: Path) -> None:
    trust = PlatformTrust.load_toml(_write(tmp_path))
    assert trust.ecc_keys == (_ECC.public_key,)


def test_a_folder_named_as_a_key_file_is_a_config_error(tmp_path: Path) -> None:
    config = _write(tmp_path)
    (tmp_path / "ecc.pub.pem").unlink()
    (tmp_path / "ecc.pub.pem").mkdir()
    with pytest.raises(ConfigError) as caught:
        PlatformTrust.load_toml(config)
    assert caught.value.detail == (
        f"cannot read {tmp_path / 'ecc.pub.pem'}: is a directory, not a file"
    )


def test_an_oversized_trust_file_is_a_config_error(tmp_path: Path) -> None:
    config = _write(tmp_path)
    config.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError) as caught:
        PlatformTrust.load_toml(config)
    assert caught.value.detail == f"{config} is larger than 1048576 bytes"
