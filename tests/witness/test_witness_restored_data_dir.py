"""A whole data directory restored from an older copy, witnesses configured: the service asks
them, at start, what they cosigned of its origin, and refuses to write when k of them
(the quorum) report a tree larger than its own.

``signed-checkpoint`` restored together with the database is no floor: the service would
start from the restored tree and sign a different tree at sizes it already published. Only
the witnesses remember. One witness's report (unsigned: a size in a 409) is only a warning,
so a faulty or malicious witness cannot stop a log on its own.

Real HTTP throughout: witnesses served by WitnessThread, the service by ServiceThread."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from witness_testkit import TS_ORIGIN, Witnesses, entries, grown, service_dir, statement

import http_calls
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StoreUnavailable
from ironroot.log import Checkpoint, Note, NoteVerifier
from ironroot.transparency import (
    CheckpointWitnessing,
    ServiceThread,
    TransparencyClient,
    TransparencyService,
    WitnessEndpoint,
)
from ironroot.witness import CosignatureVerifier

pytestmark = pytest.mark.integration

JSON = {"Accept": "application/json"}
COSE = {"Content-Type": "application/cose"}


@pytest.fixture
def log_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


@pytest.fixture
def vendor() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ES256)


@pytest.fixture
def three(log_key: PrivateKey) -> Iterator[Witnesses]:
    witnesses = Witnesses(3, NoteVerifier(TS_ORIGIN, log_key.public_key).vkey)
    yield witnesses
    witnesses.close()


def _register(data: Path, vendor: PrivateKey, witnesses: Witnesses, quorum: int, *subs: str) -> int:
    """Register ``subs`` through a service on ``data``, each witnessed; the witnessed size."""
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
        TransparencyClient(server.url, witnesses=witnesses.policy(quorum)) as client,
    ):
        for sub in subs:
            registration = client.register(statement(vendor, f"pkg:fw/{sub}"))
            assert registration.witnessed is not None
        assert service.witnessing is not None
        return service.witnessing.published_size


def _cosigned(witnesses: Witnesses) -> list[int]:
    """The size each witness last cosigned of the service's origin (0: none)."""
    sizes = []
    for witness in witnesses.witnesses:
        latest = witness.latest(TS_ORIGIN)
        sizes.append(0 if latest is None else latest.size)
    return sizes


def _restored(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses, ahead: int
) -> Path:
    """A data directory (3 witnesses, quorum 2) copied whole at size 2, then grown to 5 with
    only the first ``ahead`` witnesses configured (so only they cosigned size 5), then put
    back whole from the copy."""
    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 2, checkpoint_key=log_key)
    assert _register(data, vendor, three, 2, "a", "b") == 2
    assert _cosigned(three) == [2, 2, 2]
    backup = tmp_path / "backup"
    shutil.copytree(data, backup)
    # only the first `ahead` witnesses see the rest of the log
    service_dir(data, vendor, three.pairs()[:ahead], ahead, checkpoint_key=log_key)
    assert _register(data, vendor, three, ahead, "c", "d", "e") == 5
    assert _cosigned(three) == [5] * ahead + [2] * (3 - ahead)
    signed = Checkpoint.parse(Note.parse((data / "signed-checkpoint").read_bytes()).body)
    assert signed.size == 5
    shutil.rmtree(data)
    shutil.copytree(backup, data)  # the database, signed-checkpoint, witnessed-checkpoint
    return data


def test_a_restored_data_directory_is_refused_when_the_quorum_of_witnesses_is_ahead(
    tmp_path: Path,
    vendor: PrivateKey,
    log_key: PrivateKey,
    three: Witnesses,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = _restored(tmp_path, vendor, log_key, three, ahead=2)
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
    ):
        assert service.log.tree_size == 2
        stalled = service.log.stalled
        assert stalled is not None
        assert stalled.code == "store-rolled-back"
        assert stalled.detail.startswith(
            f"2 of the 3 witnesses (the quorum is 2) have cosigned a tree of {TS_ORIGIN} "
            "that the local one (size 2) does not extend: "
        )
        for thread in three.threads[:2]:
            assert f"{thread.url} (size 5)" in stalled.detail
        assert three.threads[2].url not in stalled.detail
        answer = http_calls.post(
            f"{server.url}/entries",
            content=statement(vendor, "pkg:fw/x"),
            headers={**COSE, **JSON},
            timeout=10,
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "store-rolled-back"
        assert answer.json()["detail"] == stalled.detail
        assert int(answer.headers["Retry-After"]) >= 1
        published = http_calls.get(f"{server.url}/checkpoint", headers=JSON, timeout=10)
        assert published.status_code == 503, published.text
        assert published.json()["code"] == "store-rolled-back"
        ready = http_calls.get(f"{server.url}/ready", timeout=10)
        assert ready.status_code == 503, ready.text
        metrics = http_calls.get(f"{server.url}/metrics", timeout=10).text
        assert "ironroot_log_witnesses_ahead 2.0" in metrics
        assert service.log.tree_size == 2  # nothing signed at 3, 4 or 5 again
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(stalled.detail in message for message in errors), errors
    assert _cosigned(three) == [5, 5, 2]


def test_one_witness_ahead_is_a_warning_and_the_service_serves(
    tmp_path: Path,
    vendor: PrivateKey,
    log_key: PrivateKey,
    three: Witnesses,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fewer than the quorum ahead: an unsigned size from one witness stops nothing; it is
    logged (an error naming the witness and its size) and counted in a metric."""
    data = _restored(tmp_path, vendor, log_key, three, ahead=1)
    with (
        caplog.at_level(logging.WARNING, logger="ironroot.transparency"),
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
    ):
        assert service.log.stalled is None
        metrics = http_calls.get(f"{server.url}/metrics", timeout=10).text
        assert "ironroot_log_witnesses_ahead 1.0" in metrics
        answer = http_calls.post(
            f"{server.url}/entries",
            content=statement(vendor, "pkg:fw/x"),
            headers={**COSE, **JSON},
            timeout=10,
        )
        assert answer.status_code == 201, answer.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    first = three.threads[0].url
    assert any(
        f"the witness {first} has cosigned size 5 of {TS_ORIGIN}, more than the log's 2" in m
        for m in warnings
    ), warnings
    assert any("1 of the 3 witnesses" in m and "fewer than the quorum (2)" in m for m in warnings)


def test_a_fresh_log_with_fresh_witnesses_starts_and_is_witnessed(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    data = service_dir(tmp_path / "ts", vendor, three.pairs(), 2, checkpoint_key=log_key)
    with (
        TransparencyService.open(data) as service,
        ServiceThread(service) as server,
        TransparencyClient(server.url, witnesses=three.policy(2)) as client,
    ):
        assert service.log.stalled is None
        metrics = http_calls.get(f"{server.url}/metrics", timeout=10).text
        assert "ironroot_log_witnesses_ahead 0.0" in metrics
        registration = client.register(statement(vendor, "pkg:fw/a"))
        assert registration.witnessed is not None
    assert sorted(_cosigned(three))[1] >= 1  # the quorum cosigned the registration's tree


def test_witnesses_that_cannot_be_reached_at_start_stop_nothing(
    tmp_path: Path, vendor: PrivateKey, log_key: PrivateKey, three: Witnesses
) -> None:
    """The check fails open when witnesses do not answer (it cannot tell): the service
    starts, and the witnessing rounds keep asking."""
    data = _restored(tmp_path, vendor, log_key, three, ahead=2)
    three.close()
    with TransparencyService.open(data) as service:
        assert service.log.stalled is None


def test_a_quorum_ahead_seen_only_by_a_later_round_still_holds_the_log(log_key: PrivateKey) -> None:
    """Witnesses that did not answer at start (the check could not tell) and answer a later
    round: the round counts the same answers and holds the log (``refuse``), and publishes
    nothing."""
    first = grown(log_key, entries(2), entries(3, 2), origin=TS_ORIGIN)  # what was cosigned
    restored = grown(log_key, entries(2), origin=TS_ORIGIN)  # an older copy of it
    witnesses = Witnesses(3, NoteVerifier(TS_ORIGIN, log_key.public_key).vkey)
    endpoints = [
        WitnessEndpoint(url, CosignatureVerifier.from_vkey(vkey)) for url, vkey in witnesses.pairs()
    ]
    try:
        ahead = CheckpointWitnessing(first, endpoints[:2], 2)
        try:
            assert ahead.witness_once()
        finally:
            ahead.close()
        witnessing = CheckpointWitnessing(restored, endpoints, 2, refuse=restored.refuse_writes)
        try:
            assert restored.stalled is None
            assert witnessing.witness_once() is False  # no check_witnesses() before
            assert witnessing.witnesses_ahead == 2
            refused = witnessing.refused
            assert refused is not None
            assert refused.startswith(
                f"2 of the 3 witnesses (the quorum is 2) have cosigned a tree of {TS_ORIGIN} "
                "that the local one (size 2) does not extend: "
            )
            stalled = restored.stalled
            assert stalled is not None
            assert (stalled.code, stalled.detail) == ("store-rolled-back", refused)
            with pytest.raises(StoreUnavailable) as info:
                restored.submit(b"after the restore").integrated.result(30)
            assert (info.value.code, info.value.detail) == ("store-rolled-back", refused)
            assert witnessing.published() is None
        finally:
            witnessing.close()
    finally:
        witnesses.close()
        first.close()
        restored.close()
