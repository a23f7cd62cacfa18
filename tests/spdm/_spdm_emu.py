"""Running DMTF's spdm-emu emulators from tests: where they are, their processes.

The binaries (``spdm_requester_emu``, ``spdm_responder_emu``) and libspdm's sample key folders
(``ecp256/``, ``ecp384/``, ...) sit together in one directory: ``IRONROOT_SPDM_EMU_DIR``, by
default ``/work/build/spdm-emu/bin`` (see docs/spdm.md for how to build them). The emulators
read their keys from their working directory. Their TCP port is chosen with ``--port``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving import start_server

DEFAULT_EMU_DIR = "/work/build/spdm-emu/bin"
REQUESTER, RESPONDER = "spdm_requester_emu", "spdm_responder_emu"
ASYM_DIRS = {"ECDSA_P256": "ecp256", "ECDSA_P384": "ecp384", "ECDSA_P521": "ecp521"}


def emu_dir() -> Path:
    """The emulator directory; skips the test, saying why, when the binaries are absent."""
    path = Path(os.environ.get("IRONROOT_SPDM_EMU_DIR", DEFAULT_EMU_DIR))
    missing = [name for name in (REQUESTER, RESPONDER) if not os.access(path / name, os.X_OK)]
    if missing or not (path / "ecp384" / "ca.cert.der").is_file():
        pytest.skip(
            f"DMTF spdm-emu not found in {path} ({', '.join(missing) or 'sample keys'} missing):"
            " build it (docs/spdm.md) or set IRONROOT_SPDM_EMU_DIR"
        )
    return path


def sample_keys_copy(emu: Path, into: Path) -> Path:
    """A working directory with copies of the ECDSA sample key folders (to replace a root)."""
    for sub in ASYM_DIRS.values():
        shutil.copytree(emu / sub, into / sub)
    return into


@contextmanager
def emu_responder(emu: Path, args: Sequence[str]) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start spdm_responder_emu on a free port (its cwd holds the sample keys); yield the port
    once it listens (it serves one connection: it is not connected to before).

    The process is ended by its own handle afterwards. A port taken in between makes the
    emulator exit at once, saying so: it is started again on another port.
    """
    started = start_server(
        lambda port: [str(emu / RESPONDER), "--port", str(port), *args],
        lambda process, ports: True,  # listening is all it needs
        cwd=emu,
    )
    port, process = started.port, started.process
    try:
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def run_emu_requester(
    emu: Path, port: int, args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run spdm_requester_emu against ``port``; its exit code is 0 when every step passed."""
    return subprocess.run(
        [str(emu / REQUESTER), "--port", str(port), *args],
        cwd=cwd or emu,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
