"""``ironroot spdm device-init | responder | requester``: files, exit codes, both ends."""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _spdm_helpers import Device

from ironroot._text import shown
from ironroot.cli import main
from ironroot.crypto import Algorithm


def _init(capsys: pytest.CaptureFixture[str], directory: Path, *extra: str) -> dict[str, object]:
    assert main(["spdm", "device-init", str(directory), *extra, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out, dict)
    return out


def test_device_init_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "dev"
    doc = _init(capsys, device, "--algorithm", "p256", "--name", "Widget")
    assert doc["algorithm"] == "ES256"
    assert doc["subject"] == "CN=Widget"
    assert doc["leaf_warnings"] == []
    assert stat.S_IMODE((device / "device.key.pem").stat().st_mode) == 0o600
    assert (device / "chain.pem").read_bytes().count(b"BEGIN CERTIFICATE") == 3
    assert (device / "root.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    blocks = json.loads((device / "measurements.json").read_text())["measurements"]
    assert [b["index"] for b in blocks] == [1, 2, 3, 4, 5, 6, 254]
    # the key is never overwritten
    assert main(["spdm", "device-init", str(device)]) == 1
    assert "conflict" in capsys.readouterr().err


def test_device_init_imports_a_key_and_chain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = Device(Algorithm.ES384)
    (tmp_path / "key.pem").write_bytes(source.leaf_key.to_pem())
    (tmp_path / "chain.der").write_bytes(b"".join(source.chain))  # concatenated DER
    doc = _init(
        capsys,
        tmp_path / "dev",
        "--key",
        str(tmp_path / "key.pem"),
        "--chain",
        str(tmp_path / "chain.der"),
    )
    assert doc["subject"] == "CN=Ironroot Test Device"
    other = Device(Algorithm.ES384)
    (tmp_path / "other.pem").write_bytes(other.leaf_key.to_pem())
    args = ["spdm", "device-init", str(tmp_path / "dev2"), "--chain", str(tmp_path / "chain.der")]
    assert main([*args, "--key", str(tmp_path / "other.pem")]) == 2  # key not in the chain
    assert main(args) == 2  # --chain without --key
    assert main([*args[:3], "--key", str(tmp_path / "key.pem"), "--chain", __file__]) == 2
    capsys.readouterr()


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ({"index": 1, "type": "NOPE", "raw": True, "text": "x"}, "unknown measurement type"),
        ({"index": 0, "type": "VERSION", "raw": True, "text": "x"}, "outside 1..254"),
        ({"index": 1, "type": "VERSION", "raw": "yes", "text": "x"}, "raw is true or false"),
        ({"index": 1, "type": "VERSION", "raw": True}, "exactly one of value"),
        ({"index": 1, "type": "VERSION", "raw": True, "value": "zz"}, "not hex"),
        ({"index": 1, "type": 200, "raw": True, "value": "00"}, "0..127"),
        ({"index": 1, "type": "DEVICE_MODE", "raw": True, "value": "00"}, "16 bytes"),
        ({"index": 1, "type": "IMMUTABLE_ROM", "raw": False, "value": "00"}, "digest"),
    ],
)
def test_responder_refuses_bad_measurements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, object], why: str
) -> None:
    device = tmp_path / "dev"
    _init(capsys, device)
    (device / "measurements.json").write_text(json.dumps({"measurements": [entry]}))
    assert main(["spdm", "responder", "--device", str(device), "--listen", "127.0.0.1:0"]) == 2
    assert why in capsys.readouterr().err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "dev"
    _init(capsys, device)
    root = str(device / "root.pem")
    base = ["spdm", "requester", "--root", root]
    assert main([*base, "--connect", "nohost"]) == 2
    assert main([*base, "--connect", "h:99999"]) == 2
    assert main([*base, "--connect", "127.0.0.1:1", "--nonce", "abcd"]) == 2
    assert main([*base, "--connect", "127.0.0.1:1", "--nonce", "zz"]) == 2
    with pytest.raises(SystemExit) as info:
        main([*base, "--connect", "127.0.0.1:1", "--transport", "usb"])
    assert info.value.code == 2
    assert main(["spdm", "requester", "--connect", "127.0.0.1:1", "--root", __file__]) == 2
    capsys.readouterr()


@pytest.mark.parametrize("address", ["h\udcffh:9", "[::1", "::1]:9", "[::1]", "a..b:9"])
@pytest.mark.parametrize("verb", ["requester", "responder"])
def test_an_address_that_names_no_host_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str, address: str
) -> None:
    """A host that is no name (a byte that is not UTF-8, as ``os.fsdecode`` gives it; an
    empty label) or an unbalanced IPv6 bracket is refused as the address it is (exit 2),
    never looked up nor reported as a bug."""
    device = tmp_path / "dev"
    _init(capsys, device)
    if verb == "requester":
        argv = ["spdm", "requester", "--root", str(device / "root.pem"), "--connect", address]
    else:
        argv = ["spdm", "responder", "--device", str(device), "--listen", address]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"ironroot: config: {shown(repr(address))} is not HOST:PORT\n"
    )


@pytest.mark.integration
def test_unreachable_responder_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    device = tmp_path / "dev"
    _init(capsys, device)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    args = ["spdm", "requester", "--connect", f"127.0.0.1:{port}"]
    assert main([*args, "--root", str(device / "root.pem")]) == 1
    assert "spdm-transport" in capsys.readouterr().err


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str], int]]:
    """``ironroot spdm responder`` as a process on a free port (PCI DOE, both versions)."""
    device = tmp_path / "dev"
    assert main(["spdm", "device-init", str(device), "--algorithm", "p521"]) == 0
    document = json.loads((device / "measurements.json").read_text())
    document["measurements"].append({"index": 32, "type": 51, "raw": True, "text": "future"})
    (device / "measurements.json").write_text(json.dumps(document))
    command = [sys.executable, "-m", "ironroot", "spdm", "responder", "--device", str(device)]
    process = subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0", "--transport", "pci-doe", "--version", "1.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving SPDM over pci-doe on 127.0.0.1:"), line
        yield device, process, int(line.rsplit(":", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.integration
def test_requester_and_responder_processes(
    responder: tuple[Path, subprocess.Popen[str], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    device, process, port = responder
    base = ["spdm", "requester", "--connect", f"127.0.0.1:{port}", "--transport", "pci-doe"]
    # a wrong trust anchor: verification fails (exit 1), the responder keeps serving
    other = tmp_path / "other"
    _init(capsys, other)
    wrong = [*base, "--root", str(other / "root.pem"), "--end", "continue", "--json"]
    assert main(wrong) == 1
    failed = json.loads(capsys.readouterr().out)
    assert failed["verdict"] == "failed"
    assert failed["error"]["code"] == "chain-not-trusted"
    # the right one: verified, evidence written, the responder told to stop
    nonce = "11" * 32
    evidence = tmp_path / "device.spdm"
    args = [*base, "--root", str(device / "root.pem"), "--nonce", nonce, "--out", str(evidence)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == "1.2"
    assert report["base_asym_algo"] == "ECDSA_P521"
    names = {check["name"]: check for check in report["checks"]}
    assert names["doe-discovery"]["ok"] is True
    assert names["challenge-auth"]["ran"] is True
    assert names["measurement-summary"]["ok"] is True
    future = next(b for b in report["blocks"] if b["index"] == 32)
    assert (future["type"], future["type_number"], future["value"]) == (
        "UNKNOWN",
        51,
        b"future".hex(),
    )
    assert process.wait(timeout=20) == 0
    verify = ["evidence", "verify", str(evidence), "--format", "spdm"]
    assert main([*verify, "--cert", str(device / "root.pem"), "--nonce", nonce]) == 0
    capsys.readouterr()


@pytest.mark.integration
def test_requester_human_output(
    responder: tuple[Path, subprocess.Popen[str], int], capsys: pytest.CaptureFixture[str]
) -> None:
    device, process, port = responder
    args = ["spdm", "requester", "--connect", f"127.0.0.1:{port}", "--transport", "pci-doe"]
    assert main([*args, "--root", str(device / "root.pem"), "--no-challenge"]) == 0
    out = capsys.readouterr().out
    assert "challenge: not run" in out
    assert "UNKNOWN(51)" in out
    assert out.rstrip().endswith("verdict:   verified")
    assert process.wait(timeout=20) == 0


@pytest.mark.integration
def test_requester_shows_the_device_s_certificate_subject_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The device's leaf certificate (a DICE alias certificate the device makes itself)
    names the device: its common name reached the terminal raw, escape sequences and all."""
    device = tmp_path / "dev"
    _init(capsys, device, "--name", "dev\x1b[2J\u202eice")
    command = [sys.executable, "-m", "ironroot", "spdm", "responder", "--device", str(device)]
    process = subprocess.Popen(
        [*command, "--listen", "127.0.0.1:0", "--transport", "pci-doe"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().rsplit(":", 1)[1])
        args = ["spdm", "requester", "--connect", f"127.0.0.1:{port}", "--transport", "pci-doe"]
        nonce, evidence = "11" * 32, tmp_path / "device.spdm"
        args += ["--root", str(device / "root.pem"), "--nonce", nonce, "--out", str(evidence)]
        assert main(args) == 0
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
    out = capsys.readouterr().out
    assert "\x1b" not in out, out
    assert "\u202e" not in out, out
    assert "device:    CN=dev[U+001B][2J[U+202E]ice\n" in out, out
    verify = ["evidence", "verify", str(evidence), "--format", "spdm", "--nonce", nonce]
    assert main([*verify, "--cert", str(device / "root.pem")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out, out
    assert "\u202e" not in out, out
    assert "signer:      CN=dev[U+001B][2J[U+202E]ice\n" in out, out
