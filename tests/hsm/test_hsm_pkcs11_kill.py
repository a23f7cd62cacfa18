"""A real ``kill -9`` of a service making its key on a PKCS#11 token (SoftHSM2), at each kind
of file operation around the key's creation: the key is made on the token, then its handle is
recorded in the data directory (``keys/handles.json``). Killed in between, the token used to
keep a key object no record names — an orphan, never used, never deleted, one more for every
crash — and the next start made another. Whatever the kill, the next start leaves the token
holding exactly the objects of the handles recorded: one key pair, under the handle the
service uses."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkcs11_kill_step import LABEL, PIN, PURPOSE

from ironroot_softhsm import LIBRARIES
from kill_points import KillServer, some_points
from scratch import in_memory

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).with_name("pkcs11_kill_step.py")
SO_PIN = "123456"


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """On tmpfs (``scratch.in_memory``): a SIGKILL leaves the page cache as it was."""
    with in_memory("hsm-pkcs11-kill-") as directory:
        yield directory


@pytest.fixture
def library() -> str:
    found = next((p for p in LIBRARIES if Path(p).exists()), None)
    if found is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed: run scripts/install-test-deps.sh")
    return found


# What the step script imports, once for the module's runs (kill_points.KillServer;
# ``ironroot.hsm`` is a lazy package: its modules are named). The server imports the
# python-pkcs11 module only: each run loads the SoftHSM2 library itself, under its own
# SOFTHSM2_CONF, as a fresh interpreter did.
_PRELOAD = ("ironroot.hsm._service_keys", "ironroot.hsm._pkcs11", "pkcs11")


@pytest.fixture(scope="module")
def killer() -> Iterator[KillServer]:
    with in_memory("hsm-pkcs11-kill-server-") as directory, KillServer(directory, _PRELOAD) as s:
        yield s


def _configure(root: Path) -> Path:
    """``root``'s SoftHSM2 configuration, naming ``root``'s token folder (written again for
    each copy of a template)."""
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    return conf


def _template(root: Path) -> None:
    """A new token, and a service data directory holding its PIN and no key yet."""
    (root / "tokens").mkdir(parents=True)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL,
         "--so-pin", SO_PIN, "--pin", PIN],
        check=True, capture_output=True, env={"SOFTHSM2_CONF": str(_configure(root))},
    )  # fmt: skip
    (root / "data").mkdir()
    (root / "data" / "token.pin").write_text(PIN + "\n")


def _run(root: Path, killer: KillServer, library: str, step: str, **env: str) -> tuple[int, bytes]:
    done = killer.run(
        [str(root / "data"), library, step],
        script=SCRIPT,
        SOFTHSM2_CONF=str(_configure(root)),
        **env,
    )
    return done.returncode, done.stdout


def _token(root: Path, killer: KillServer, library: str) -> tuple[list[str], dict[str, str]]:
    code, out = _run(root, killer, library, "list")
    assert code == 0
    found = json.loads(out)
    return found["objects"], found["handles"]


def test_a_kill_while_a_key_is_made_on_the_token_leaves_no_orphan_object(
    tmp_path: Path, killer: KillServer, library: str
) -> None:
    template = tmp_path / "template"
    _template(template)
    tallies = []
    for step in ("open", "create"):
        counted = tmp_path / step
        shutil.copytree(template, counted)
        tally = tmp_path / f"{step}.tally"
        assert _run(counted, killer, library, step, IRONROOT_TEST_KILL_TALLY=str(tally))[0] == 0
        tallies.append(int(tally.read_text()))
    objects, handles = _token(counted, killer, library)
    (handle,) = handles.values()
    assert objects == [f"PRIVATE_KEY:{handle}", f"PUBLIC_KEY:{handle}"]
    first, points = tallies
    assert points - first >= 4  # the handle's temporary file, its mode, its rename, …
    for kill_at in some_points(first, points - 1, 4):
        run = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, run)
        killed = _run(run, killer, library, "create", IRONROOT_TEST_KILL_AT=str(kill_at))
        assert killed[0] == -9, kill_at
        assert _run(run, killer, library, "create")[0] == 0, kill_at
        objects, handles = _token(run, killer, library)
        assert list(handles) == [PURPOSE], kill_at
        handle = handles[PURPOSE]
        assert objects == [f"PRIVATE_KEY:{handle}", f"PUBLIC_KEY:{handle}"], kill_at
        kept = sorted(p.name for p in (run / "data" / "keys").iterdir())
        assert kept == [".handles.lock", "handles.json"], kill_at  # the lock file stays
        shutil.rmtree(run)
