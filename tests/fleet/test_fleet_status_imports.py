"""``ironroot fleet status`` reads the registry and the credential store: it lists the admitted
nodes whose credential files are missing or not current (``unusable_credentials``) without
importing admission's verifier and its policy engine (CEL), which cost it as much again as
the rest of its imports.

Checked in a fresh interpreter (``python -c``: this process has imported everything): it
imports the status command's module, runs the status verb on a fleet of two admitted nodes,
one of which lost its data-plane credential files, and reports which modules it loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fleet.admission_world import admission_world
from tests.platform.node_world import NOW, make_world

from ironroot.fleet import attest_node

_STATUS = """
import argparse, contextlib, io, json, sys
from pathlib import Path
from ironroot.cli.fleet import _status
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    code = _status(argparse.Namespace(fleet=Path(sys.argv[1]), node=None, json=True))
loaded = [m for m in ("ironroot.fleet._verifier", "ironroot._cel", "ironroot.fleet._admission")
          if m in sys.modules]
print(json.dumps({"code": code, "status": json.loads(printed.getvalue()), "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def fleet_dir() -> Iterator[Path]:
    """Two admitted nodes; node-0002 holds its control-plane credential, not its data-plane
    one (its files removed, as an ``attest`` killed between the planes leaves them)."""
    with tempfile.TemporaryDirectory(prefix="status-imports-") as scratch:
        root = Path(scratch)
        with make_world(root / "world") as world:
            fleet, authority = admission_world(world).fleet(root / "fleet", 2)
            for node in fleet.node_ids():
                assert attest_node(fleet, node, now=NOW, authority=authority).status == "admitted"
        for name in ("data.cert.pem", "data.key.sealed"):
            (root / "fleet" / "nodes" / "node-0002" / "credentials" / name).unlink()
        shutil.rmtree(root / "world")
        yield root / "fleet"


def test_fleet_status_lists_unusable_credentials_without_importing_the_verifier(
    fleet_dir: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", _STATUS, str(fleet_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["code"] == 0
    status = seen["status"]
    assert status["counts"] == {"pending": 0, "admitted": 2, "quarantined": 0}
    assert status["unusable_credentials"] == {
        "node-0002": {
            "code": "not-found",
            "detail": "node-0002 holds no data-plane credential: attest it",
        }
    }
    assert seen["loaded"] == []  # neither the verifier, nor CEL, nor admission itself
