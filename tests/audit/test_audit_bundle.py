"""Export and offline verification of a real node's audit bundle, and what it must reject."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.audit.audit_world import AuditWorld, audit_world

from ironroot.audit import check_bundle


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def bundle(aw: AuditWorld) -> bytes:
    return aw.export()


def test_export_and_verify_of_a_real_node(aw: AuditWorld, bundle: bytes) -> None:
    report = check_bundle(bundle, aw.trust())
    for step in report.steps:
        print(step.name, step.status, step.lines, step.error)
    assert report.ok
