"""The witness's ``GET /ready``, which anyone may ask: a failing check says its kind, and
never the detail that names where the witness keeps its files."""

from __future__ import annotations

import asyncio

import httpx
from witness_testkit import make_witness

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import StorageError
from ironroot.witness import MemoryWitnessStore, StoredCheckpoint, create_witness_app

SECRET = "/var/lib/ironroot/witness/witness.db"


class _UnreadableStore(MemoryWitnessStore):
    """A witness store whose database file cannot be read (as SQLite's answers when the
    disk fails under it), saying so with its path, as a store's own error may."""

    def all_latest(self) -> list[StoredCheckpoint]:
        raise StorageError(f"cannot read the witness database {SECRET}: disk I/O error")


def test_a_failing_store_check_names_no_path() -> None:
    witness = make_witness(PrivateKey.generate(Algorithm.ED25519), store=_UnreadableStore())
    app = create_witness_app(witness)

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://witness") as client:
            return await client.get("/ready")

    ready = asyncio.run(run())
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"store": "storage: Storage Error"}
    assert SECRET not in ready.text
