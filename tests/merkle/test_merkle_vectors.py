"""transparency-dev/merkle proof vectors: each case verifies or fails exactly as wantErr says."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ironroot.errors import InvalidProof
from ironroot.merkle import root_from_inclusion_proof, verify_consistency, verify_inclusion
from ironroot_vectors import vectors_missing

pytestmark = pytest.mark.vectors


def _vector_root() -> Path | None:
    # Same lookup as tests/conftest.py, done at collection time to name one test per file.
    env = os.environ.get("IRONROOT_VECTORS")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "vectors"
    path = path / "merkle"
    return path if path.is_dir() else None


def _cases(kind: str) -> list[str]:
    base = _vector_root()
    if base is None:
        return ["<vectors absent>"]
    found = sorted(p.relative_to(base).as_posix() for p in (base / kind).rglob("*.json"))
    return found or ["<vectors absent>"]


def _load(vectors: Path, rel: str) -> dict[str, Any]:
    path = vectors / "merkle" / rel
    if not path.is_file():
        vectors_missing(f"merkle vector {rel} not found under {vectors}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def _proof(value: list[str] | None) -> list[bytes]:
    return [_b64(p) for p in value or []]


def test_vector_sets_are_present(vectors: Path) -> None:
    # Guard against a silent zero-case run: the pinned commit ships 196 files.
    assert len(_cases("inclusion")) > 80
    assert len(_cases("consistency")) > 80


@pytest.mark.parametrize("rel", _cases("inclusion"))
def test_inclusion_vector(vectors: Path, rel: str) -> None:
    case = _load(vectors, rel)
    index, size = case["leafIdx"], case["treeSize"]
    leaf, root = _b64(case.get("leafHash")), _b64(case.get("root"))
    proof = _proof(case.get("proof"))
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_inclusion(index, size, leaf, proof, root)
    else:
        verify_inclusion(index, size, leaf, proof, root)
        assert root_from_inclusion_proof(index, size, leaf, proof) == root


@pytest.mark.parametrize("rel", _cases("consistency"))
def test_consistency_vector(vectors: Path, rel: str) -> None:
    case = _load(vectors, rel)
    size1, size2 = case["size1"], case["size2"]
    root1, root2 = _b64(case.get("root1")), _b64(case.get("root2"))
    proof = _proof(case.get("proof"))
    if case["wantErr"]:
        with pytest.raises(InvalidProof):
            verify_consistency(size1, size2, proof, root1, root2)
    else:
        verify_consistency(size1, size2, proof, root1, root2)
