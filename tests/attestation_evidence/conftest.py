"""Fixtures for the evidence tests: vector folders and self-made AMD-like chains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from evidence_fakes import FakeAmd, make_fake_amd

from ironroot.attestation.evidence import SnpProduct


@pytest.fixture(scope="session")
def snp_dir(vectors: Path) -> Path:
    return vectors / "tee" / "snp"


@pytest.fixture(scope="session")
def tdx_dir(vectors: Path) -> Path:
    return vectors / "tee" / "tdx"


@pytest.fixture(scope="session")
def fake_amd() -> Callable[[SnpProduct], FakeAmd]:
    made: dict[SnpProduct, FakeAmd] = {}

    def get(product: SnpProduct) -> FakeAmd:
        if product not in made:
            made[product] = make_fake_amd(product)
        return made[product]

    return get
