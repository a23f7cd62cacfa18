"""What scripts repeat comes from the environment; a secret in exactly one unambiguous form."""

from __future__ import annotations

import json
import os
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


def _register(tmp_path: Path, *extra: str) -> tuple[int, str]:
    import contextlib
    import io

    statement = tmp_path / "statement.cbor"
    statement.write_bytes(b"not a statement")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["statement", "register", str(statement), "--url", "http://127.0.0.1:9",
                     *extra])  # fmt: skip
    return code, err.getvalue()


@pytest.mark.parametrize(
    ("how", "where"),
    [
        ("flag", "--token"),
        ("value", "IRONROOT_TOKEN"),
        ("undecodable value", "IRONROOT_TOKEN"),
        ("undecodable file", "IRONROOT_TOKEN_FILE"),
        ("file with a line break", "IRONROOT_TOKEN_FILE"),
    ],
)
def test_a_token_that_cannot_be_a_bearer_header_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, where: str
) -> None:
    """A token is sent as ``Authorization: Bearer <token>``: one that is not printable ASCII
    (an é, a byte that is not UTF-8, a line break inside) is refused before any request, naming
    where it came from and never the token, not an ``internal-error`` from the encoder."""
    monkeypatch.delenv("IRONROOT_TOKEN", raising=False)
    monkeypatch.delenv("IRONROOT_TOKEN_FILE", raising=False)
    extra: tuple[str, ...] = ()
    file = tmp_path / "token"
    file.touch(mode=0o600)
    if how == "flag":
        extra = ("--token", "s3cr\u00e9t")
    elif how == "value":
        monkeypatch.setenv("IRONROOT_TOKEN", "s3cr\u00e9t")
    elif how == "undecodable value":
        monkeypatch.setenv("IRONROOT_TOKEN", os.fsdecode(b"s3cr\xfft"))
    elif how == "undecodable file":
        file.write_bytes(b"s3cr\xfft\n")
        monkeypatch.setenv("IRONROOT_TOKEN_FILE", str(file))
    else:
        file.write_bytes(b"s3cr\nt\n")
        monkeypatch.setenv("IRONROOT_TOKEN_FILE", str(file))
    code, err = _register(tmp_path, *extra)
    assert code == 2
    assert err == (
        f"ironroot: config: {where}: a bearer token is printable ASCII without spaces at "
        "either end (it is sent as 'Authorization: Bearer <token>')\n"
    )
    assert "s3cr" not in err


def test_a_url_that_is_not_text_is_malformed_not_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL holding bytes that are not UTF-8 (``--url $'\\xff'``, or such an IRONROOT_URL) is
    ``malformed`` (exit 2), as httpx's other refusals of a URL are."""
    monkeypatch.delenv("IRONROOT_TOKEN", raising=False)
    monkeypatch.delenv("IRONROOT_TOKEN_FILE", raising=False)
    statement = tmp_path / "statement.cbor"
    statement.write_bytes(b"not a statement")
    bad = os.fsdecode(b"http://127.0.0.1:9/\xff")
    assert main(["statement", "register", str(statement), "--url", bad]) == 2
    assert capsys.readouterr().err == (
        "ironroot: malformed: the URL of the transparency service is not valid: it is not "
        "UTF-8 text\n"
    )
    monkeypatch.setenv("IRONROOT_URL", bad)
    assert main(["keyrelease", "challenge"]) == 2
    assert capsys.readouterr().err == (
        "ironroot: malformed: the URL of the key service is not valid: it is not UTF-8 text\n"
    )
    ear = tmp_path / "ear.jwt"
    ear.write_bytes(b"x.y.z")
    assert main(["attest", "verify-result", str(ear), "--keys", bad]) == 2
    assert capsys.readouterr().err == (
        "ironroot: malformed: the URL of the verifier keys is not valid: it is not UTF-8 text\n"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1/", "its scheme is ftp, not http or https"),
        ("file:///etc/passwd", "its scheme is file, not http or https"),
        ("http://", "it names no host"),
        ("http://:80/", "it names no host"),
        ("http://127.0.0.1:65536/", "port 65536 is not 1-65535"),
        ("http://[::1]:99999/", "port 99999 is not 1-65535"),
        ("http://127.0.0.1:-5/", "port -5 is not 1-65535"),
        ("http://127.0.0.1:0/", "port 0 is not 1-65535"),
        # a password with a slash in it: httpx reads it as a port, and its error quoted it
        ("http://op:SECRET/@127.0.0.1/", "Invalid port"),
        ("http://[::1", "Invalid port"),
        ("http://a\x00b/", "Invalid non-printable ASCII character in URL"),
    ],
)
def test_a_url_no_request_can_be_sent_to_is_malformed_not_unreachable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    why: str,
) -> None:
    """A URL of another scheme, with no host, or with a port out of range is the command
    line's mistake (``malformed``, exit 2), not a service that cannot be reached (exit 1:
    httpx had taken 65536 and 99999 and connected elsewhere, to a port taken modulo 65536)."""
    monkeypatch.delenv("IRONROOT_TOKEN", raising=False)
    monkeypatch.delenv("IRONROOT_TOKEN_FILE", raising=False)
    statement = tmp_path / "statement.cbor"
    statement.write_bytes(b"not a statement")
    assert main(["statement", "register", str(statement), "--url", url]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: malformed: the URL of the transparency service is not valid: {why}\n"
    )
    assert main(["keyrelease", "challenge", "--url", url]) == 2
    assert capsys.readouterr().err == (
        f"ironroot: malformed: the URL of the key service is not valid: {why}\n"
    )
