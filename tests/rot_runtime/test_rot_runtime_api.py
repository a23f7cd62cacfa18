"""The public surface of the RoT runtime, and its place in the layering."""

from __future__ import annotations

import ast
from pathlib import Path

import ironroot.rot
import ironroot.rot.dice

RUNTIME_NAMES = {
    "PCR_COUNT",
    "PFM_EVENT",
    "BootResult",
    "BootState",
    "ChildIdentity",
    "Device",
    "DeviceCounter",
    "DiceLayer",
    "DiceLayers",
    "Fuses",
    "Lifecycle",
    "MemoryCounter",
    "MonotonicCounter",
    "OpenDiceCertificate",
    "parse_open_dice_cbor",
    "PcrEvent",
    "ProvisionResult",
    "QuoteClaims",
    "VendorCA",
    "check_quote_log",
    "check_quote_nonce",
    "cold_boot",
    "create_quote",
    "derive_child_identity",
    "derive_ecc_p384",
    "derive_layers",
    "derive_mldsa87",
    "kdf",
    "measured_pfm",
    "check_booted_pfm",
    "verify_quote",
}
# Lower layers only: the RoT may use crypto, cose and firmware, nothing above.
ALLOWED = {
    "ironroot._fileio",
    "ironroot._lazy",
    "ironroot._memo",
    "ironroot.crypto",
    "ironroot.cose",
    "ironroot.errors",
    "ironroot.firmware",
    "ironroot.rot",
}


def test_the_runtime_names_are_public_and_importable() -> None:
    assert set(ironroot.rot.__all__) == set(ironroot.rot.dice.__all__) | RUNTIME_NAMES
    for name in ironroot.rot.__all__:
        assert getattr(ironroot.rot, name) is not None
    assert all(not name.startswith("_") for name in ironroot.rot.__all__)


def test_the_runtime_imports_only_lower_layers() -> None:
    package = Path(ironroot.rot.__file__).parent
    for path in package.glob("_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("ironroot")
            ):
                top = ".".join(node.module.split(".")[:2])
                assert top in ALLOWED, f"{path.name} imports {node.module}"
