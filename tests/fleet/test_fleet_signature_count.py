"""One admission verifies exactly the signatures it must, once each: what ``bench/fleet.py``
counts as the raw cost of an admission (``RAW_COUNTS``), so a change that verifies a
signature twice (or skips one) shows here, not only as a slower benchmark.

Counted at the seams every verification goes through: :meth:`ironroot.crypto.PublicKey.verify`
(quote, DICE links, SPDM transcripts: ECDSA P-384 and ML-DSA-87) and the SPDM requester's
and verifier's X.509 path validation (``ironroot.spdm._certchain._verified_path``: a device
chain of two certificates below its pinned root, two signatures each time). The CSRs'
self-signatures are read through ``cryptography`` (two more), not counted here."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.fleet.admission_world import AdmissionWorld, admission_world
from tests.platform.node_world import NOW, World, make_world

from ironroot.crypto import PublicKey
from ironroot.fleet import attest_node
from ironroot.spdm import _certchain


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("signature-count-world")) as w:
        yield w


def _counting(counts: collections.Counter[str], key: Callable[..., str], f: Any) -> Any:
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[key(*args, **kwargs)] += 1
        return f(*args, **kwargs)

    return counted


def test_one_admission_verifies_each_signature_once(
    world: World, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    aw: AdmissionWorld = admission_world(world)
    fleet, authority = aw.fleet(tmp_path_factory.mktemp("signature-count") / "fleet", 2)
    # the first admission warms what every node shares (the class's endorsements, roots)
    assert attest_node(fleet, "node-0001", now=NOW, authority=authority).status == "admitted"
    counts: collections.Counter[str] = collections.Counter()
    monkeypatch.setattr(
        PublicKey,
        "verify",
        _counting(counts, lambda key, *_, **__: key.algorithm.name, PublicKey.verify),
    )
    monkeypatch.setattr(
        _certchain,
        "_verified_path",
        _counting(counts, lambda *_, **__: "x509 path", _certchain._verified_path),
    )
    result = attest_node(fleet, "node-0002", now=NOW, authority=authority)
    assert result.status == "admitted"
    devices = len(fleet.node("node-0002").config.devices)
    assert devices == 3
    # The node: its RoT quote is made, not verified; for each device the BMC verifies the
    # chain to the pinned root (one path), CHALLENGE_AUTH and MEASUREMENTS (two P-384).
    # The authority: the quote (P-384 and ML-DSA-87), each DICE chain's four links (IDevID,
    # LDevID, FMC alias, RT alias: four P-384, four ML-DSA-87), and for each device its chain
    # (one path) and its signed measurements (one P-384).
    assert counts == {
        "ES384": 2 * devices + 1 + 4 + devices,
        "ML_DSA_87": 1 + 4,
        "x509 path": 2 * devices,
    }
