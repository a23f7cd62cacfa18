"""One SoftHSM2 token for the whole test process.

SoftHSM2 reads its configuration (``SOFTHSM2_CONF``) once, when the PKCS#11 library is first
initialized, and python-pkcs11 keeps the library initialized for the life of the process; a
token created later is invisible to it. So every test that needs a token shares this one,
created on first use in a temporary directory; keys are told apart by their random handles.
A uniquely named module (not `conftest`) so tests in any folder can import it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

LIBRARIES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
LABEL = "ironroot-test"
PIN = "1234"
SO_PIN = "123456"

_library: str | None = None


def shared_token() -> str:
    """Create (once) the process's token; returns the PKCS#11 library path. Skips without
    SoftHSM2."""
    global _library
    if _library is not None:
        return _library
    library = next((p for p in LIBRARIES if Path(p).exists()), None)
    if library is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed: run scripts/install-test-deps.sh")
    root = Path(tempfile.mkdtemp(prefix="ironroot-softhsm-"))
    atexit.register(shutil.rmtree, root, True)
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL,
         "--so-pin", SO_PIN, "--pin", PIN],
        check=True, capture_output=True,
    )  # fmt: skip
    _library = library
    return library


def pkcs11_keys_table(library: str, pin_file: str) -> str:
    """The ``[keys]`` TOML table for the shared token."""
    return (
        f'[keys]\nbackend = "pkcs11"\npkcs11_library = "{library}"\n'
        f'pkcs11_token = "{LABEL}"\npkcs11_pin_file = "{pin_file}"\n'
    )
