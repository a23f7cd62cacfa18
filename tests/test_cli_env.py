"""What scripts repeat comes from the environment; a secret in exactly one unambiguous form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.cli._serving import MAX_SECRET, hsm_credential, secret_env
from ironroot.errors import ConfigError, LimitExceeded


def test_a_secret_is_the_value_or_a_file_never_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONROOT_TEST_SECRET", raising=False)
    monkeypatch.delenv("IRONROOT_TEST_SECRET_FILE", raising=False)
    assert secret_env("IRONROOT_TEST_SECRET") is None
    monkeypatch.setenv("IRONROOT_TEST_SECRET", "the value")
    assert secret_env("IRONROOT_TEST_SECRET") == b"the value"
    path = tmp_path / "secret"
    path.write_bytes(b"in a file\n")
    path.chmod(0o600)
    monkeypatch.setenv("IRONROOT_TEST_SECRET_FILE", str(path))
    with pytest.raises(ConfigError, match="both IRONROOT_TEST_SECRET"):
        secret_env("IRONROOT_TEST_SECRET")
    monkeypatch.delenv("IRONROOT_TEST_SECRET")
    assert secret_env("IRONROOT_TEST_SECRET") == b"in a file"
    monkeypatch.setenv("IRONROOT_TEST_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="IRONROOT_TEST_SECRET_FILE"):
        secret_env("IRONROOT_TEST_SECRET")


def test_a_secret_file_is_read_within_a_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$NAME_FILE=/dev/zero`` was read until memory ran out; a large file, a device and a
    directory are each refused by name, before or at the cap."""
    monkeypatch.delenv("IRONROOT_TEST_SECRET", raising=False)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_SECRET + 1))
    for path, reason in (
        ("/dev/zero", "larger than 65536 bytes"),
        (str(big), "larger than 65536 bytes"),
        (str(tmp_path), "is a directory"),
    ):
        monkeypatch.setenv("IRONROOT_TEST_SECRET_FILE", path)
        with pytest.raises(ConfigError, match=reason) as refused:
            secret_env("IRONROOT_TEST_SECRET")
        assert refused.value.detail.startswith(f"IRONROOT_TEST_SECRET_FILE={path}: ")
    exact = tmp_path / "exact"
    exact.write_bytes(b"y" * MAX_SECRET)
    exact.chmod(0o600)
    monkeypatch.setenv("IRONROOT_TEST_SECRET_FILE", str(exact))
    assert secret_env("IRONROOT_TEST_SECRET") == b"y" * MAX_SECRET


def test_an_hsm_credential_file_is_read_within_a_cap(tmp_path: Path) -> None:
    with pytest.raises(LimitExceeded, match="larger than 65536 bytes"):
        hsm_credential(Path("/dev/zero"))
    path = tmp_path / "credential"
    path.write_bytes(b"the credential\r\n")
    path.chmod(0o600)
    assert hsm_credential(path) == b"the credential"


def test_an_ambiguous_hsm_credential_is_refused_not_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL", "a-credential")
    monkeypatch.setenv("IRONROOT_HSM_CREDENTIAL_FILE", str(tmp_path / "cred"))
    monkeypatch.setenv("IRONROOT_HSM_ROT_DEVICE", str(tmp_path / "rot"))
    secret = tmp_path / "sealing"
    secret.write_bytes(bytes(48))
    argv = ["hsm", "identity", "list", "--dir", str(tmp_path / "hsm")]
    code = main([*argv, "--sealing-secret-file", str(secret), "--identity", "co"])
    assert code == 2
    assert "ironroot:" in capsys.readouterr().err


def test_the_url_comes_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IRONROOT_URL", raising=False)
    assert main(["keyrelease", "challenge", "--json"]) == 2
    assert "give --url or set IRONROOT_URL" in capsys.readouterr().out
    monkeypatch.setenv("IRONROOT_URL", "http://127.0.0.1:9")  # nothing listens there
    code = main(["keyrelease", "challenge", "--json"])
    out = capsys.readouterr().out
    assert code == 1
    assert "IRONROOT_URL" not in out  # the URL was taken; the service is what is missing
    error = json.loads(out)["error"]
    assert error["code"] == "unreachable"  # not "storage": nothing is wrong with a store
    assert error["message"] == "cannot reach the key service: Connection refused"
