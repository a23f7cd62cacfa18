"""The separate virtual environment Microsoft's CTS client ``pyscitt`` runs in.

pyscitt pins ``cryptography==44.*`` and ``cbor2==5.4.*``, so it never goes into the project's
environment: it gets its own, created once and kept in ``$IRONROOT_PYSCITT_VENV`` (default
``~/.cache/ironroot-pyscitt-venv``, under ``$XDG_CACHE_HOME`` when set). The tests create it on
first use; ``scripts/install-test-deps.sh`` (``make test``) creates it ahead, so CI has it::

    python tests/transparency/pyscitt_venv.py        # prints the venv's python

Standard library only: it runs before anything else is installed.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

PYSCITT = "pyscitt==0.10.1"
"""The release whose wire format ironroot's CTS API was checked against."""
_MARKER = ".ironroot-pyscitt"
_INSTALL_TIMEOUT = 900


class PyscittUnavailable(Exception):
    """pyscitt could not be installed (PyPI unreachable, no venv module, ...)."""


def venv_dir() -> Path:
    given = os.environ.get("IRONROOT_PYSCITT_VENV")
    if given:
        return Path(given)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "ironroot-pyscitt-venv"


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PyscittUnavailable(f"{' '.join(argv[:4])}: {exc}") from exc
    if done.returncode != 0:
        lines = [x for x in (done.stderr or done.stdout).splitlines() if "WARNING" not in x]
        raise PyscittUnavailable(f"{' '.join(argv[:4])} failed: {' / '.join(lines[-3:])}")


def ensure_venv() -> Path:
    """The python of a venv holding :data:`PYSCITT`, created if missing (one creator at a
    time: a lock beside the folder); raises :class:`PyscittUnavailable` saying why not."""
    folder = venv_dir()
    python = folder / "bin" / "python"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = folder / _MARKER
        if marker.is_file() and marker.read_text() == PYSCITT and python.exists():
            return python
        shutil.rmtree(folder, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(folder)])
            pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            _run([*pip, PYSCITT])
            _run([str(python), "-c", "import pyscitt.client, pyscitt.crypto"])
        except PyscittUnavailable:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        marker.write_text(PYSCITT)
    return python


if __name__ == "__main__":
    try:
        print(ensure_venv())
    except PyscittUnavailable as exc:
        print(f"pyscitt venv not created: {exc}", file=sys.stderr)
        sys.exit(1)
