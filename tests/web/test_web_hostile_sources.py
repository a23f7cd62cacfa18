"""The dashboard fed by hostile outside parties through the project's own APIs: a
key-release client that asks again and again (every refusal is an audit record the keys page
lists), and hostile text in every field a source supplies. Each test fails if its defence
goes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from tests.hsm_devices import self_signed_device
from tests.web.conftest import log_in
from tests.web.web_world import WebWorld

from ironroot.errors import StaleNonce
from ironroot.hsm import DirectoryStorage, Hsm, HsmConfig, KeyAttributes, KeyType, Role
from ironroot.http import ServerThread
from ironroot.rot import MemoryCounter
from ironroot.web import Dashboard, create_dashboard_app
from ironroot.web._dashboard import RELEASES_SHOWN

pytestmark = pytest.mark.integration

_POLICY = {
    "version": "1.0.0",
    "anyOf": [{"authority": "verifier", "allOf": [{"claim": "ear.status", "equals": "affirming"}]}],
}


def _asked_again_and_again(directory: Path, asks: int) -> None:
    """An HSM whose one releasable key a client asked for ``asks`` times with a nonce the
    HSM never issued: each ask is refused (``StaleNonce``) and audited."""
    storage = DirectoryStorage(directory, counter=MemoryCounter())
    config = HsmConfig(scrypt_n=2**10, audit_group_commit=64)
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(),
        config=config,
    )
    try:
        officer = hsm.login("officer", b"officer-credential")
        hsm.add_identity(officer, "keyrelease", Role.USER, b"keyrelease-credential")
        handle = hsm.generate(
            officer,
            KeyType.AES_256,
            KeyAttributes.of(
                ["encrypt", "decrypt"], exportable=True, release_policy=json.dumps(_POLICY)
            ),
        )
        user = hsm.login("keyrelease", b"keyrelease-credential")
        for _ in range(asks):
            with pytest.raises(StaleNonce):
                hsm.release(user, handle, ear=b"not an EAR", nonce=bytes(32), recipient=b"")
    finally:
        hsm.close()
        storage.close()


def _own_dir(world: WebWorld, root: Path) -> Path:
    state = root / "dashboard"
    state.mkdir(mode=0o700)
    for name in ("operators.json", "session.key"):
        shutil.copy2(world.data / "dashboard" / name, state / name)
    return root


def test_the_keys_page_lists_the_latest_release_decisions_not_every_one(
    world: WebWorld, tmp_path: Path
) -> None:
    asks = RELEASES_SHOWN + 57
    _asked_again_and_again(tmp_path / "hsm", asks)
    dashboard = Dashboard.open(_own_dir(world, tmp_path))
    with (
        ServerThread(create_dashboard_app(dashboard)) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):
        assert log_in(client).status_code == 303
        answer = client.get("/keys")
    assert answer.status_code == 200
    table = answer.text.split('<table id="releases">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr class=\"row-bad\"><td>(\d+)</td>", table)
    assert len(rows) == RELEASES_SHOWN
    numbers = [int(n) for n in rows]
    assert numbers == sorted(numbers, reverse=True)  # the latest, newest first
    assert f"{asks} key release decisions; the latest {RELEASES_SHOWN} are shown" in answer.text
    assert f"refused {asks}" not in table  # the per-key counts still count them all:
    assert f"<td>{asks}</td>" in answer.text.split('<table id="releases">', 1)[0]
