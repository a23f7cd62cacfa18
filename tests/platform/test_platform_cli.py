"""``ironroot platform`` on a node, as an operator runs it: init from files, show, boot, update
(with a fault drill), measure, recover, events, journal and a refused flash write — each with
its exit code and its JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.platform.node_world import NOW, SLOT, VENDOR, World, make_world, rw_region

from ironroot.cli import main
from ironroot.platform import COMPONENTS, DEVICES, chip_layout

AT = NOW.isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("platform-cli-world")) as w:
        yield w


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _files(world: World, root: Path) -> list[str]:
    """Write everything `platform init` takes; its arguments."""
    (root / "ecc.pub.pem").write_bytes(world.ecc.public_key.to_pem())
    (root / "pqc.pub.pem").write_bytes(world.pqc.public_key.to_pem())
    (root / "service-keys.cbor").write_bytes(world.trusted.service_keys_bytes())
    issuers = "\n".join(f'{c} = ["{VENDOR}"]' for c in (*COMPONENTS, "pfm"))
    (root / "platform.toml").write_text(
        f'platform = "pkg:platform/acme/node-7"\nhealthy_boots = 2\n\n'
        f'[vendor]\necc = ["ecc.pub.pem"]\npqc = ["pqc.pub.pem"]\n\n'
        f'[transparency]\nservice_keys = ["service-keys.cbor"]\n\n[issuers]\n{issuers}\n'
    )
    (root / "node.pfm").write_bytes(world.pfm)
    (root / "node.pfm.ts").write_bytes(world.pfm_ts)
    (root / "admin.pw").write_text("correct horse battery staple\n")
    args = [
        "--trust",
        str(root / "platform.toml"),
        "--pfm",
        str(root / "node.pfm"),
        "--pfm-statement",
        str(root / "node.pfm.ts"),
    ]
    for name in COMPONENTS:
        release = world.release(name, "1.0")
        (root / f"{name}.bin").write_bytes(release.bundle)
        args += ["--image", f"{name}={root / f'{name}.bin'}"]
        for i, statement in enumerate(release.statements):
            (root / f"{name}.{i}.ts").write_bytes(statement)
            args += ["--statement", f"{name}={root / f'{name}.{i}.ts'}"]
        args += ["--slot-size", f"{name}={SLOT}"]
    for name in DEVICES:
        args += ["--device", f"{name}={VENDOR},{world.model(name)}"]
    return args


def test_an_operator_runs_a_node_from_the_cli(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = tmp_path / "node"
    world.rot_device(tmp_path / "rot")
    args = _files(world, tmp_path)
    code, created = _run(
        capsys,
        "platform",
        "init",
        "--node",
        str(node),
        "--rot-device",
        str(tmp_path / "rot"),
        *args,
        "--admin",
        "admin",
        "--admin-password-file",
        str(tmp_path / "admin.pw"),
        "--at",
        AT,
    )
    assert code == 0, created
    assert created["platform"] == "pkg:platform/acme/node-7"
    code, accounts = _run(capsys, "platform", "account", "list", "--node", str(node))
    assert code == 0, accounts
    assert "admin" in json.dumps(accounts)
    code, booted = _run(capsys, "platform", "boot", "--node", str(node), "--at", AT)
    assert code == 0, booted
    assert all(c["state"] == "running" for c in booted["components"])  # type: ignore[union-attr,index]

    v2 = world.release("bmc", "2.0")
    (tmp_path / "bmc-2.0.bin").write_bytes(v2.bundle)
    (tmp_path / "bmc-2.0.ts").write_bytes(v2.statements[0])
    update = [
        "platform",
        "update",
        str(tmp_path / "bmc-2.0.bin"),
        "--component",
        "bmc",
        "--node",
        str(node),
        "--at",
        AT,
    ]
    code, refused = _run(capsys, *update)
    assert code == 1
    assert refused["error"] == {  # an unlogged (here: no statement at all) update
        "code": "no-receipt",
        "message": refused["error"]["message"],  # type: ignore[index]
        "check": "receipt",
    }
    code, lost = _run(
        capsys, *update, "--statement", str(tmp_path / "bmc-2.0.ts"), "--inject", "write"
    )
    assert code == 1
    assert lost["error"]["code"] == "power-lost"  # type: ignore[index]
    code, _ = _run(capsys, "platform", "boot", "--node", str(node), "--at", AT)
    assert code == 0
    code, shown = _run(capsys, "platform", "show", "--node", str(node))
    assert shown["components"]["bmc"]["active"]["version"] == "1.0"  # type: ignore[index]
    code, done = _run(capsys, *update, "--statement", str(tmp_path / "bmc-2.0.ts"))
    assert code == 0, done
    assert done["outcome"] == "committed"
    assert done["version"] == "2.0"

    code, measured = _run(capsys, "platform", "measure", "--node", str(node), "--at", AT)
    assert code == 0
    assert [d["ok"] for d in measured["devices"]] == [True, True, True]  # type: ignore[union-attr,index]

    slot0 = {r.name: r for r in chip_layout("host", SLOT)}["slot0"]
    (tmp_path / "junk").write_bytes(b"\xff" * 32)
    code, blocked = _run(
        capsys,
        "platform",
        "flash-write",
        "--node",
        str(node),
        "--chip",
        "host",
        "--offset",
        str(slot0.offset),
        "--data-file",
        str(tmp_path / "junk"),
        "--at",
        AT,
    )
    assert code == 1
    assert blocked["error"]["code"] == "flash-protected"  # type: ignore[index]
    code, wrote = _run(
        capsys,
        "platform",
        "flash-write",
        "--node",
        str(node),
        "--chip",
        "host",
        "--offset",
        str(rw_region("host")[0]),
        "--data-file",
        str(tmp_path / "junk"),
        "--at",
        AT,
    )
    assert code == 0, wrote

    code, recovered = _run(capsys, "platform", "recover", "host", "--node", str(node), "--at", AT)
    assert code == 0
    assert recovered["version"] == "1.0"
    code, events = _run(capsys, "platform", "events", "--node", str(node))
    ids = [e["message_id"] for e in events["events"]]  # type: ignore[union-attr,index]
    for expected in (
        "NodeCreated",
        "UpdateRefused",
        "UpdateAbandoned",
        "UpdateCommitted",
        "FlashWriteBlocked",
        "FlashRecovered",
    ):
        assert expected in ids
    code, journal = _run(capsys, "platform", "journal", "--node", str(node))
    assert "committed" in [r["step"] for r in journal["records"]]  # type: ignore[union-attr,index]


def test_node_verbs_without_a_node_are_usage_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IRONROOT_NODE", raising=False)
    code, failed = _run(capsys, "platform", "show")
    assert code == 2
    assert failed["error"]["code"] == "config"  # type: ignore[index]
    code, failed = _run(capsys, "platform", "show", "--node", str(tmp_path / "none"))
    assert code == 1
    assert failed["error"]["code"] == "not-found"  # type: ignore[index]


@pytest.mark.parametrize(
    "argv",
    [
        ("platform", "show"),
        ("platform", "account", "list", "--json"),
        ("platform", "serve", "--port", "1"),
    ],
    ids=["node-verb", "account-verb", "serve"],
)
def test_every_platform_verb_resolves_the_node_alike(
    argv: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--node`` and ``$IRONROOT_NODE`` mean the same to node verbs, account verbs and
    ``serve``: neither is a usage error with one message; an empty variable is none; the
    variable names the directory when the flag is absent (here one that is no node)."""
    monkeypatch.delenv("IRONROOT_NODE", raising=False)
    assert main(list(argv)) == 2
    assert capsys.readouterr().err == "ironroot: config: give --node DIR or set IRONROOT_NODE\n"
    monkeypatch.setenv("IRONROOT_NODE", "")
    assert main(list(argv)) == 2
    assert capsys.readouterr().err == "ironroot: config: give --node DIR or set IRONROOT_NODE\n"
    monkeypatch.setenv("IRONROOT_NODE", str(tmp_path / "none"))
    assert main(list(argv)) == 1
    assert str(tmp_path / "none") in capsys.readouterr().err


def test_the_node_s_printers_show_image_versions_and_details_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An image's version is the text its signed PFM gives it (any 1 to 256 characters), and
    a held component's detail may quote it: ``platform show``, ``init`` and ``boot`` printed
    them raw, an escape sequence reaching the terminal."""
    from types import SimpleNamespace

    from ironroot.cli._platform_node import _print_boot, _print_components

    version = "2.0\x1b[2J\u202e"
    image = {"version": version, "svn": 2}
    _print_components(
        {
            "components": {"bmc": {"active": image, "recovery": image, "healthy_boots": 1}},
            "pending": {"component": "bmc", "step": "verify\x1b[31m"},
        }
    )
    held = SimpleNamespace(
        name="bmc",
        running=False,
        recovered=False,
        code="not-in-pfm",
        detail=f"version {version} is not allowed",
        validity=None,
        image=SimpleNamespace(version=version),
    )
    _print_boot(
        SimpleNamespace(
            components=[held], update="failed\x1b[2J", update_component="bmc", recovery_replaced=[]
        )
    )
    spelt = "2.0[U+001B][2J[U+202E]"
    assert capsys.readouterr().out == (
        f"  bmc   active {spelt} svn 2   recovery {spelt} healthy boots 1\n"
        "  update in progress: bmc at verify[U+001B][31m\n"
        f"  bmc   {spelt} HELD IN RESET: not-in-pfm: version {spelt} is not allowed\n"
        "  update of bmc: failed[U+001B][2J\n"
    )
