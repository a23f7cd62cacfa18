"""``ironroot attest serve`` killed (SIGKILL) right after it answered, then started again on the
same data directory: the challenges it issued live in its memory only (``NonceStore``), so
none of them is accepted by the new process. Evidence it appraised is refused when replayed,
and a challenge issued before the kill and never answered is refused too: both with
``StaleNonce`` code ``nonce-unknown`` (the new process did not issue them), never an EAR."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _ar_helpers import World, make_verifier_dir

import http_calls
from ironroot.cose import Problem
from ironroot.crypto import b64url_decode, b64url_encode
from ironroot.errors import StaleNonce
from ironroot.rot import Device
from pause_points import child_env
from serving import Started, answers, start_server


def _serve(data: Path) -> Started:
    return start_server(
        lambda port: [
            sys.executable,
            "-m",
            "ironroot",
            "attest",
            "serve",
            "--data",
            str(data),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        answers("/health"),
        env=child_env(),
    )


def _challenge(url: str) -> bytes:
    issued = http_calls.post(f"{url}/attestation/challenge", timeout=30)
    assert issued.status_code == 201, issued.content
    return b64url_decode(issued.json()["nonce"], what="nonce")


def _kill(started: Started) -> None:
    started.process.kill()  # SIGKILL: no handler, no atexit, no flush
    started.process.wait(timeout=30)
    assert started.process.returncode == -9


@pytest.mark.integration
def test_a_nonce_answered_before_a_kill_is_refused_after_the_restart(
    tmp_path: Path, world: World, good_device: Device
) -> None:
    data = make_verifier_dir(tmp_path, world)
    first = _serve(data)
    try:
        url = f"http://127.0.0.1:{first.port}"
        answered, unused = _challenge(url), _challenge(url)
        body = {
            "evidence": b64url_encode(good_device.quote(answered)),
            "nonce": b64url_encode(answered),
        }
        ear = http_calls.post(f"{url}/attestation/verify", json=body, timeout=30)
        assert ear.status_code == 200, ear.content  # the nonce was redeemed, an EAR answered
    finally:
        _kill(first)
    second = _serve(data)
    try:
        url = f"http://127.0.0.1:{second.port}"
        replays = {
            "answered": body,
            "unused": {
                "evidence": b64url_encode(good_device.quote(unused)),
                "nonce": b64url_encode(unused),
            },
        }
        for name, replay in replays.items():
            refused = http_calls.post(f"{url}/attestation/verify", json=replay, timeout=30)
            assert refused.status_code == 400, (name, refused.content)
            problem = Problem.from_cbor(refused.content)
            assert problem.title == StaleNonce.title, name
            assert problem.extra["code"] == "nonce-unknown", name
        # the restarted verifier still answers its own challenges
        fresh = _challenge(url)
        body = {"evidence": b64url_encode(good_device.quote(fresh)), "nonce": b64url_encode(fresh)}
        assert (
            http_calls.post(f"{url}/attestation/verify", json=body, timeout=30).status_code == 200
        )
    finally:
        _kill(second)
