"""An export reads the node in several steps; a boot, update or recovery between them would
give a bundle showing two states of the node (its verify then fails far from the cause). The
seal holds the node and is made only when the node's journal is where it was when the
collection began (``Conflict`` ``node-changed-during-export`` otherwise);
:func:`ironroot.audit.export_sealed` (``export_bundle``, ``ironroot audit export``) collects
again when that happens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.audit.audit_world import EXPORTED, NODE, AuditWorld, audit_world

from ironroot.audit import NODE_CHANGED, AuditExport, check_bundle, export_sealed
from ironroot.errors import Conflict


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    yield from audit_world(tmp_path_factory.mktemp("audit-consistency"))


def _boot(aw: AuditWorld) -> None:
    aw.fleet.node(NODE).boot(now=EXPORTED)


def test_a_node_booted_after_the_collection_began_is_not_sealed(aw: AuditWorld) -> None:
    export = aw.collect()
    _boot(aw)
    with pytest.raises(Conflict) as caught:
        export.seal(aw.fleet.rot(NODE), node=aw.fleet.node(NODE))
    assert caught.value.code == NODE_CHANGED == "node-changed-during-export"
    assert caught.value.detail.startswith(f"{NODE} changed while it was exported (journal at ")
    assert caught.value.detail.endswith("a boot, update or recovery ran): export again")


def test_an_unchanged_node_is_sealed_and_verifies(aw: AuditWorld) -> None:
    export = aw.collect()
    data = export.seal(aw.fleet.rot(NODE), node=aw.fleet.node(NODE))
    assert check_bundle(data, aw.trust()).ok


def test_an_export_the_node_changed_under_is_collected_again(aw: AuditWorld) -> None:
    """A boot in the middle of the first collection (at its SPDM step): the first attempt is
    not sealed, the second is, and its bundle verifies."""
    steps: list[str] = []

    def progress(what: str) -> None:
        steps.append(what)
        if what == "SPDM measurements" and steps.count(what) == 1:
            _boot(aw)

    data = aw.export(progress=progress)
    assert steps.count("SPDM measurements") == 2
    assert steps.count("seal") == 2
    assert check_bundle(data, aw.trust()).ok


def test_a_node_that_keeps_changing_gives_the_conflict(aw: AuditWorld) -> None:
    attempts = 0

    def collect() -> AuditExport:
        nonlocal attempts
        attempts += 1
        export = aw.collect()
        _boot(aw)
        return export

    with pytest.raises(Conflict) as caught:
        export_sealed(aw.fleet, NODE, collect)
    assert caught.value.code == "node-changed-during-export"
    assert attempts == 3


def test_an_export_without_the_node_seals_as_before(aw: AuditWorld) -> None:
    """``seal(rot)`` alone (a caller that changed the members on purpose) checks nothing."""
    export = aw.collect()
    _boot(aw)
    assert export.seal(aw.fleet.rot(NODE))
