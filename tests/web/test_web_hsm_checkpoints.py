"""The keys page's registered HSM audit checkpoints when the dashboard shows more than one HSM:
each HSM's section checks the checkpoints of that HSM, not every checkpoint on the logs.
Fails if its defence goes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx
import pytest
from tests.hsm_devices import self_signed_device
from tests.web.conftest import log_in
from tests.web.web_world import WebWorld

from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyType, Role
from ironroot.http import ServerThread
from ironroot.rot import MemoryCounter
from ironroot.transparency import ServiceThread, TransparencyClient, TransparencyService
from ironroot.web import Dashboard, create_dashboard_app

pytestmark = pytest.mark.integration


def _hsm_with_a_checkpoint(directory: Path) -> tuple[str, bytes, bytes]:
    """An HSM in ``directory`` that made a key and an audit checkpoint: its id (hex), its
    attestation public key (PEM) and the checkpoint statement."""
    storage = DirectoryStorage(directory, counter=MemoryCounter())
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(),
        config=HsmConfig(scrypt_n=2**10),
    )
    try:
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "auditor", Role.AUDITOR, b"auditor-credential")
        hsm.generate(officer, KeyType.EC_P256)
        statement = hsm.audit_checkpoint(hsm.login("auditor", b"auditor-credential"))
        hsm.flush()
        return hsm.hsm_id.hex(), hsm.attestation_public_key.to_pem(), statement
    finally:
        hsm.close()
        storage.close()


def _section(page: str, name: str) -> str:
    found = re.search(rf'<section[^>]*id="hsm-{name}">(.*?)</section>', page, re.S)
    assert found is not None, f"no section of HSM {name}"
    return found.group(1)


def _shown(world: WebWorld, root: Path, registered: list[str], others: list[str]) -> str:
    """The keys page of a dashboard in ``root`` showing the HSMs ``registered`` (each made an
    audit checkpoint, registered on a log) and ``others`` (each made one, not registered)."""
    hsms = {name: _hsm_with_a_checkpoint(root / name) for name in registered}
    for name in others:
        _hsm_with_a_checkpoint(root / name)
    log = root / "ops-log"
    log.mkdir()
    issuers = ""
    for name, (hsm_id, key, _statement) in hsms.items():
        (log / f"{name}.pub.pem").write_bytes(key)
        issuers += (
            f'[[transparency.issuers]]\niss = "urn:ironroot:hsm:{hsm_id}"\nkey = "{name}.pub.pem"\n'
        )
    (log / "ironroot.toml").write_text(
        '[transparency]\nservice_issuer = "https://ops.example"\nbatch_linger = 0.0\n'
        f'{issuers}[log]\norigin = "ops.example/log"\n'
    )
    with (
        TransparencyService.open(log) as service,
        ServiceThread(service) as running,
        TransparencyClient(running.url) as writer,
    ):
        for _hsm_id, _key, statement in hsms.values():
            writer.register(statement)
    state = root / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    shown = ", ".join(f'"{name}"' for name in [*registered, *others])
    (root / "dashboard.toml").write_text(f'[sources]\nlogs = ["ops-log"]\nhsm = [{shown}]\n')
    for name in registered:  # the test's own record of each id, beside the HSM
        (root / f"{name}.id").write_text(hsms[name][0])
    return _page(root)


def _page(root: Path) -> str:
    with (
        ServerThread(create_dashboard_app(Dashboard.open(root))) as server,
        httpx.Client(base_url=server.url) as operator,
    ):
        assert log_in(operator).status_code == 303
        page = operator.get("/keys")
    assert page.status_code == 200
    return page.text


def test_each_hsm_checks_its_own_registered_checkpoints(world: WebWorld, tmp_path: Path) -> None:
    # was: every HSM's section checked every HSM checkpoint on the logs against its own
    # chain, so with two HSMs each showed the other's checkpoint as a broken audit trail
    # ("the log holds them unchanged": failed), and named the first one's HSM id as its own
    page = _shown(world, tmp_path, ["hsm-a", "hsm-b"], ["hsm-c"])
    ids = {name: (tmp_path / f"{name}.id").read_text() for name in ("hsm-a", "hsm-b")}
    for name, hsm_id in ids.items():
        other = ids["hsm-b" if name == "hsm-a" else "hsm-a"]
        section = _section(page, name)
        assert f'<span class="mono muted">{hsm_id[:16]}…</span>' in section
        assert other[:16] not in section
        assert section.count("<td>ops-log #") == 1
        assert '<span class="badge ok">yes</span>' in section
        assert "badge bad" not in section
    alone = _section(page, "hsm-c")  # no checkpoint of its own is on the log
    assert "Registered audit checkpoints" not in alone
    assert "badge bad" not in alone


def test_a_trail_cut_after_its_only_checkpoint_is_still_shown_broken(
    world: WebWorld, tmp_path: Path
) -> None:
    # the checkpoint no longer matches its HSM's chain, so nothing says it is that HSM's:
    # it is checked there all the same, as no other HSM shown owns it
    _shown(world, tmp_path, ["hsm-a"], [])
    audit = tmp_path / "hsm-a" / "audit.jsonl"
    lines = audit.read_bytes().splitlines(keepends=True)
    audit.write_bytes(b"".join(lines[:-2]))
    section = _section(_page(tmp_path), "hsm-a")
    assert section.count("<td>ops-log #") == 1
    assert "were cut" in section
    assert '<span class="badge bad">audit-chain-broken:' in section
