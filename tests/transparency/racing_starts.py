"""The child of ``test_transparency_first_start_race``: ``racing_starts.py ROOT ROUNDS`` makes
``ROUNDS`` pairs of first starts, each pair two processes forked from this one and let go at
once (a pipe both wait on is closed) on ``ROOT/<round>/data``. Each writes to
``ROOT/<round>/<n>.json`` the keys its service signs with (receipt key ids, checkpoint vkeys),
or the code of the typed error that stopped it (or what else did)."""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from ironroot.errors import IronrootError
from ironroot.transparency import TransparencyService


def _start(data: Path) -> dict[str, object]:
    try:
        service = TransparencyService.open(data)
    except IronrootError as exc:
        return {"error": exc.code}
    except Exception as exc:  # what the test names as failing: a start's traceback
        return {"untyped": f"{type(exc).__name__}: {exc}"}
    try:
        return {
            "receipt": [key.kid.hex() for key in service.receipt_keys],
            "checkpoint": list(service.checkpoint_vkeys),
        }
    finally:
        service.close()


def _race(folder: Path) -> None:
    gate, release = os.pipe()
    children = []
    for n in (1, 2):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(release)
                os.read(gate, 1)  # until the parent closes its end: both go at once
                result = _start(folder / "data")
                (folder / f"{n}.json").write_text(json.dumps(result))
                code = 0
            except BaseException:
                traceback.print_exc()  # an untyped error: the test fails on its traceback
            finally:
                os._exit(code)
        children.append(pid)
    os.close(gate)
    os.close(release)
    for pid in children:
        status = os.waitpid(pid, 0)[1]
        assert os.waitstatus_to_exitcode(status) == 0, folder


root, rounds = Path(sys.argv[1]), int(sys.argv[2])
for number in range(rounds):
    folder = root / str(number)
    folder.mkdir(parents=True)
    _race(folder)
