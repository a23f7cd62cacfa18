"""Release requests refused together over HTTP share the HSM's commits.

Each refusal the HSM makes is durable and anchored before the service answers it, and each
anchor increments the root of trust's counter; any client that reaches the service can send
refused requests (a made-up nonce). The HSM group-commits them (docs/hsm.md, "Group commit"):
``N`` sent at once cost two commits, not ``N``. The HSM's storage holds the first commit until
every request has been audited, so the grouping does not depend on timing.
"""

from __future__ import annotations

import secrets
import threading

import httpx
from _kr_helpers import NOW, VERIFIER, assert_problem

from hsm_devices import self_signed_device
from ironroot.cose import encode_cbor
from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StaleNonce
from ironroot.hsm import Hsm, HsmConfig, KeyAttributes, KeyType, MemoryStorage, Role
from ironroot.keyrelease import (
    HsmVault,
    KeyReleaseServerThread,
    KeyReleaseService,
    ReleasableKey,
    create_keyrelease_app,
)
from ironroot.keyrelease.tee import TeeKeyPair

N = 24  # within Starlette's thread pool (40), so all reach the HSM at once
DEADLINE = 120.0


class HeldStorage(MemoryStorage):
    """Holds the next audit append, once armed, until ``go`` is set."""

    __slots__ = ("go", "held", "hold")

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.held = threading.Event()
        self.go = threading.Event()

    def append_audit(self, data: bytes) -> None:
        if self.hold:
            self.hold = False
            self.held.set()
            assert self.go.wait(DEADLINE)
        super().append_audit(data)


def test_release_requests_refused_together_cost_two_commits_not_one_each() -> None:
    storage = HeldStorage()
    hsm = Hsm.initialize(
        storage,
        bytes(range(48)),
        officer="officer",
        credential=b"officer-credential",
        device=self_signed_device(NOW),
        config=HsmConfig(scrypt_n=2**10),
        clock=lambda: NOW.timestamp(),
    )
    officer = hsm.login("officer", b"officer-credential")
    hsm.add_identity(officer, "keyrelease", Role.USER, b"user-credential")
    verifier = PrivateKey.generate(Algorithm.ES384)
    hsm.add_release_verifier(officer, VERIFIER, verifier.public_key.to_pem())
    handle = hsm.generate(
        officer,
        KeyType.AES_256,
        KeyAttributes.of(["encrypt"], exportable=True, release_policy='status == "affirming"'),
    )
    service = KeyReleaseService(
        keys=[ReleasableKey("k", handle)],
        vault=HsmVault(hsm, hsm.login("keyrelease", b"user-credential")),
    )
    audited = threading.Semaphore(0)
    hsm.add_listener(lambda operation, result: audited.release() if result != "ok" else None)
    spki = TeeKeyPair.generate("ML-KEM-768").public_spki
    answers: list[httpx.Response] = []
    with KeyReleaseServerThread(create_keyrelease_app(service)) as server:

        def post() -> None:
            body = encode_cbor(
                {"ear": b"not an EAR", "wrapping_key": spki, "nonce": secrets.token_bytes(32)}
            )
            with httpx.Client(timeout=DEADLINE) as http:
                answers.append(
                    http.post(
                        f"{server.url}/keys/k/release",
                        content=body,
                        headers={"Content-Type": "application/cbor"},
                    )
                )

        before = storage.counter.value()
        storage.hold = True
        first = threading.Thread(target=post)
        first.start()
        assert storage.held.wait(DEADLINE)
        others = [threading.Thread(target=post) for _ in range(N - 1)]
        for thread in others:
            thread.start()
        for _ in range(N):  # every request audited (the first one's commit still held)
            if not audited.acquire(timeout=10):
                break
        storage.go.set()
        for thread in [first, *others]:
            thread.join(DEADLINE)
    assert len(answers) == N
    for response in answers:
        assert_problem(response, StaleNonce, "nonce-unknown")
    assert storage.counter.value() - before <= 2
