"""A key deleted in the HSM while the service answers a release it granted.

The gap: the service asked the HSM for the key's type (to put in the released-key envelope)
only after the HSM had released it, and the first time it asked for a key's type, a key an
officer deleted in between was ``NotFound``: the HSM's audit recorded the release as granted,
its statement was kept, and the TEE got a ``404`` for a key that had left the boundary. The
HSM's release now says the type it released (``HsmRelease.key_type``), so the service asks
the HSM nothing after it granted.
"""

from __future__ import annotations

from collections.abc import Callable

from _kr_helpers import build_harness

from ironroot.hsm import HsmRelease, KeyType, Role, WrappingKey
from ironroot.keyrelease import HsmVault, KeyReleaseService, ReleaseStatements


class _DeletedAfterTheDecision:
    """The service's HSM vault, with an officer's delete of the key committing just after
    the HSM released it (what another thread's ``DELETE`` does in that window)."""

    def __init__(self, vault: HsmVault, delete: Callable[[str], None]) -> None:
        self.vault, self.delete = vault, delete

    def challenge(self, client: str | None = None) -> tuple[bytes, int]:
        return self.vault.challenge(client)

    def release(
        self,
        handle: str,
        *,
        ear: bytes,
        nonce: bytes,
        recipient: WrappingKey,
        gate: Callable[[], None] | None = None,
    ) -> HsmRelease:
        released = self.vault.release(handle, ear=ear, nonce=nonce, recipient=recipient, gate=gate)
        self.delete(handle)
        return released

    def key_type(self, handle: str) -> KeyType:
        return self.vault.key_type(handle)


def test_a_key_deleted_once_the_hsm_released_it_is_still_handed_out() -> None:
    harness = build_harness()
    statements = ReleaseStatements(":memory:")
    service = KeyReleaseService(
        keys=harness.service.keys.values(),
        vault=_DeletedAfterTheDecision(
            HsmVault(harness.hsm, harness.user),
            lambda handle: harness.hsm.delete(harness.officer, handle),
        ),
        statements=statements,
    )
    nonce = service.challenge()[0]
    released = service.release("cel-key", harness.request(harness.ear(nonce), nonce))
    assert released.key_type is KeyType.AES_256
    assert len(statements.statements()) == 1
    assert harness.unwrap(released, nonce)  # the TEE takes it
    harness.hsm.add_identity(harness.officer, "auditor", Role.AUDITOR, b"auditor-credential")
    auditor = harness.hsm.login("auditor", b"auditor-credential")
    results = [
        r.result for r in harness.hsm.audit_records(auditor) if r.operation in ("release", "delete")
    ]
    assert results == ["ok", "ok"]
