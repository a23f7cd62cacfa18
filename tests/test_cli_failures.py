"""How ``ironroot`` reports failures that are not the verb's own: a peer that cannot be reached,
a usage error under ``--json``, a library's error text, a bug. One line on stderr each, the
exit code the README gives, and with ``--json`` one failure object on stdout."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ironroot.cli import main
from ironroot.crypto import Algorithm, library_error_text, load_signer


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])


def _statement(tmp_path: Path) -> Path:
    assert main(["key", "generate", "--alg", "ES256", "--out", str(tmp_path / "k")]) == 0
    (tmp_path / "p.json").write_text("{}")
    out = tmp_path / "s.cose"
    argv = ["statement", "sign", str(tmp_path / "p.json"), "--key", str(tmp_path / "k.key"),
            "--iss", "https://i.example", "--sub", "s", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_a_service_that_cannot_be_reached_is_unreachable_not_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = _statement(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}"
    capsys.readouterr()
    assert main(["statement", "register", str(statement), "--url", url, "--json"]) == 1
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["code"] == "unreachable"
    assert error["message"].lower() == "cannot reach the transparency service: connection refused"
    assert "storage" not in captured.err
    assert "Errno" not in captured.err
    assert main(["log", "verify", url]) == 1
    assert "unreachable: cannot reach" in capsys.readouterr().err
    assert main(["keyrelease", "challenge", "--url", url]) == 1
    assert "cannot reach the key service" in capsys.readouterr().err


def test_a_usage_error_under_json_is_one_failure_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "e.bin").write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_:
        main(["evidence", "verify", str(tmp_path / "e.bin"), "--at", "yesterday", "--json"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["ok"] is False
    assert document["error"]["code"] == "usage"
    assert "--at" in document["error"]["message"]
    assert "usage:" in captured.err  # the human form still goes to stderr
    with pytest.raises(SystemExit):  # no --json: nothing on stdout
        main(["key", "generate", "--alg", "ES256"])
    assert capsys.readouterr().out == ""


def test_a_bug_is_one_line_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ironroot.cli.keys as keys

    def broken(args: object) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(keys, "_show", broken)
    (tmp_path / "k").write_text("x")
    assert main(["key", "show", str(tmp_path / "k"), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"]["code"] == "internal-error"
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1


def test_library_error_texts_are_short_reasons_not_parser_reprs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography import x509

    with pytest.raises(ValueError) as caught:  # noqa: PT011  (cryptography's own error)
        x509.load_der_x509_certificate(b"\x30\x03\x02\x01\x01")
    assert library_error_text(caught.value) == "bad DER (unexpected tag, in Certificate.tbs_cert)"
    bad = tmp_path / "bad.der"
    bad.write_bytes(b"\x30\x03\x02\x01\x01")
    assert main(["rot", "inspect-cert", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "ParseError" not in err
    assert "bad DER (unexpected tag" in err
    png = tmp_path / "x.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "p").write_text("{}")
    argv = ["statement", "sign", str(tmp_path / "p"), "--key", str(png), "--iss", "i",
            "--sub", "s", "--x5chain", str(png), "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cryptography.io" not in err
    assert "Could not deserialize" not in err


def test_a_file_that_is_no_key_is_not_called_an_exposed_private_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a key at all")
    junk.chmod(0o644)
    with pytest.raises(Exception, match="not a PKCS#8 PEM key"):
        load_signer(junk)
    assert "private key" not in caplog.text


def test_a_directory_that_is_not_a_device_is_unusable_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rot", "show", "--device", str(tmp_path), "--json"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "input-unavailable"
    assert "not a device directory" in error["message"]


def test_binary_input_is_named_not_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "policy.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert main(["keyrelease", "policy", "check", str(png)]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text: not a release policy" in err
    assert "PNG" not in err


def test_a_jws_that_does_not_parse_says_why() -> None:
    from ironroot.crypto import PrivateKey
    from ironroot.ear import verify_ear
    from ironroot.errors import MalformedInput

    key = PrivateKey.generate(Algorithm.ES384).public_key
    with pytest.raises(MalformedInput) as caught:
        verify_ear(b"a.b.c", [key], now=datetime.now(UTC))
    assert "decode_error" not in caught.value.detail  # the library's code, not a reason


@pytest.mark.parametrize(
    "url",
    ["http://user:secret@[::1", "http://user:secret@127.0.0.1:9/\x00x"],
    ids=["open-bracket", "control-character"],
)
def test_a_url_that_does_not_parse_is_malformed_not_a_bug(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    statement = _statement(tmp_path)
    capsys.readouterr()
    for argv in (
        ["statement", "register", str(statement), "--url", url],
        ["log", "verify", url],
        ["log", "export-tiles", str(tmp_path / "tiles"), "--url", url],
        ["keyrelease", "challenge", "--url", url],
    ):
        assert main([*argv, "--json"]) == 2, argv
        captured = capsys.readouterr()
        error = json.loads(captured.out)["error"]
        assert error["code"] == "malformed", argv
        assert "URL of" in error["message"], argv
        assert "secret" not in captured.err, argv  # the URL may carry a password
        assert "Traceback" not in captured.err, argv


_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
from ironroot.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.integration
def test_a_write_that_fails_part_way_leaves_no_half_written_output(tmp_path: Path) -> None:
    import subprocess
    import sys

    statement = _statement(tmp_path)
    payload = tmp_path / "big.bin"
    payload.write_bytes(b"\x01" * 60000)  # its statement is larger than the limit
    before = b"the previous output\n"
    (tmp_path / "kept.cose").write_bytes(before)
    for out, expected in (
        (tmp_path / "fresh.cose", None),
        (tmp_path / "kept.cose", before),
        (payload, payload.read_bytes()),  # the output named the same as the input
    ):
        argv = ["statement", "sign", str(payload), "--key", str(tmp_path / "k.key"),
                "--iss", "https://i.example", "--sub", "s", "--out", str(out)]  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-c", _UNDER_A_FILE_SIZE_LIMIT, *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode in (1, 2), run.stderr
        assert run.stderr.startswith("ironroot: "), run.stderr
        assert "Traceback" not in run.stderr
        assert (out.read_bytes() if out.exists() else None) == expected, out.name
        assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"
    assert statement.exists()


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["key", "generate", "--alg", "ES256", "--out", ""], "--out"),
        (["keyrelease", "tee-key", "--out", ""], "--out"),
        (["key", "show", ""], "file"),
        (["witness", "show", "--data", ""], "--data"),
    ],
)
def test_an_empty_path_is_a_usage_error_not_the_current_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    option: str,
) -> None:
    """``--out ""`` (an unset shell variable) names no file: argparse's ``Path("")`` is the
    current folder, which verbs took as a folder, or failed on as a bug (``internal-error``:
    ``PosixPath('.') has an empty name``)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--json"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    message = f"argument {option}: an empty path names no file"
    assert captured.err.splitlines()[-1] == f"ironroot: error: {message}"
    assert json.loads(captured.out)["error"] == {"code": "usage", "message": message, "check": None}
    assert list(tmp_path.iterdir()) == []
