"""A class whose platform requires witnesses ships witnessed statements (docs/platform.md,
"Witnesses"): the fleet's verifier takes their Transparent Statements as the class's
endorsements, as a node keeps them as its evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from tests.fleet.fleet_world import node_class
from tests.platform.node_world import NOW, World, make_world

from ironroot.cose import encode_cbor
from ironroot.fleet import NodeClass
from ironroot.fleet._scan import _subjects
from ironroot.fleet._verifier import class_endorsements
from ironroot.transparency import WITNESSED_STATEMENT_FORMAT


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("fleet-witnessed-world")) as w:
        yield w


def _witnessed(statement: bytes) -> bytes:
    # The checkpoint and proof are the node's to check when it takes an update; what the
    # verifier appraises against is the statement in them.
    return encode_cbor(
        {
            "format": WITNESSED_STATEMENT_FORMAT,
            "statement": statement,
            "checkpoint": b"a cosigned checkpoint",
            "proof": [],
        }
    )


def _witnessed_class(world: World) -> NodeClass:
    klass = node_class(world)
    return dataclasses.replace(
        klass,
        statements={c: tuple(map(_witnessed, s)) for c, s in klass.statements.items()},
    )


def test_a_scan_follows_the_subjects_of_a_classes_witnessed_statements(world: World) -> None:
    # The products a class runs are the subjects of its statements: the log scan follows
    # them (new findings, revocations), witnessed or not.
    plain = _subjects(node_class(world))
    assert _subjects(_witnessed_class(world)) == plain
    assert len(plain) > 2


def test_a_classes_witnessed_statements_are_its_endorsements(world: World) -> None:
    klass = node_class(world)
    witnessed = _witnessed_class(world)
    plain = class_endorsements(klass, vendor_roots=(), now=NOW)
    assert plain.devices
    seen = class_endorsements(witnessed, vendor_roots=(), now=NOW)
    assert not [line for line in seen.rejected if "not a transparent statement" in line]
    assert seen.rejected == plain.rejected
    assert {n: list(v) for n, v in seen.devices.items()} == {
        n: list(v) for n, v in plain.devices.items()
    }
    assert all(len(v) for v in seen.devices.values())
