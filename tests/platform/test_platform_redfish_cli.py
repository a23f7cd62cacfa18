"""``ironroot platform account add|list|remove`` on a node whose Redfish service is stopped, and
refused while ``ironroot platform serve`` holds the node; ``platform serve``'s options."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import World, make_world

from ironroot._fileio import DirectoryLock
from ironroot.cli import main
from ironroot.cli._main import build_parser
from ironroot.platform._redfish_accounts import AccountStore


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("redfish-cli-world")) as w:
        yield w


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, object]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    if code != 0:
        return code, captured.err
    value = json.loads(captured.out)  # the CLI's envelope: {"ok": true, ...} or its "result"
    assert value.pop("ok") is True
    return code, value.get("result", value)


def test_accounts_are_added_listed_and_removed(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = str(world.node(tmp_path).directory)
    password = tmp_path / "pw"
    password.write_text("a long enough password\n")
    common = ["--node", node, "--password-file", str(password)]
    code, err = _run(capsys, "platform", "account", "add", "ops", "--role", "Operator", *common)
    assert code == 1
    assert "first is an Administrator" in str(err)
    code, out = _run(
        capsys, "platform", "account", "add", "root", "--role", "Administrator", *common
    )
    assert (code, out) == (0, {"id": "1", "name": "root", "role": "Administrator"})
    code, out = _run(capsys, "platform", "account", "add", "ops", "--role", "Operator", *common)
    assert (code, out) == (0, {"id": "2", "name": "ops", "role": "Operator"})
    code, out = _run(capsys, "platform", "account", "list", "--node", node)
    assert out == [
        {"id": "1", "name": "root", "role": "Administrator", "enabled": True, "locked": False},
        {"id": "2", "name": "ops", "role": "Operator", "enabled": True, "locked": False},
    ]
    assert AccountStore.open(node).authenticate("ops", "a long enough password").id == "2"
    code, out = _run(capsys, "platform", "account", "remove", "--node", node, "ops")
    assert (code, out) == (0, {"removed": "ops"})
    code, err = _run(capsys, "platform", "account", "remove", "--node", node, "root")
    assert code == 1
    assert "last-administrator" in str(err) or "last enabled Administrator" in str(err)
    code, err = _run(capsys, "platform", "account", "remove", "--node", node, "nobody")
    assert code == 1


def test_accounts_are_not_edited_under_a_running_service(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    platform = world.node(tmp_path)
    password = tmp_path / "pw"
    password.write_text("a long enough password\n")
    with DirectoryLock(platform.directory, ".redfish.lock"):  # what `platform serve` holds
        code, err = _run(
            capsys,
            "platform",
            "account",
            "add",
            "root",
            "--role",
            "Administrator",
            "--node",
            str(platform.directory),
            "--password-file",
            str(password),
        )
    assert code == 2
    assert "in use" in str(err)
    assert not (platform.directory / "redfish").exists()


def test_a_directory_that_is_not_a_node_gets_no_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = tmp_path / "pw"
    password.write_text("a long enough password\n")
    code, _ = _run(
        capsys,
        "platform",
        "account",
        "add",
        "root",
        "--role",
        "Administrator",
        "--node",
        str(tmp_path),
        "--password-file",
        str(password),
    )
    assert code == 1
    assert not (tmp_path / "redfish").exists()


def test_serve_takes_the_server_options_and_a_node() -> None:
    args = build_parser().parse_args(
        [
            "platform",
            "serve",
            "--node",
            "n",
            "--port",
            "8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--log-format",
            "json",
        ]
    )
    assert (str(args.node), args.port, args.log_format) == ("n", 8443, "json")


def test_serve_without_a_node_or_accounts_is_refused(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IRONROOT_NODE", raising=False)
    assert main(["platform", "serve", "--port", "1"]) == 2
    platform = world.node(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    code = main(["platform", "serve", "--node", str(platform.directory), "--port", port])
    assert code == 1
    assert "no Redfish accounts" in capsys.readouterr().err
