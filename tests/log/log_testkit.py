"""Helpers shared by the log tests: keys, entries, data directories and a Log-backed fetcher."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import NotFound
from ironroot.log import (
    CONFIG_PATH,
    AuditableStore,
    Integrated,
    Log,
    NoteSigner,
    layout,
    parse_tile_path,
)
from ironroot_pg import TestStore

ORIGIN = "log.example/test"


def ed25519_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ED25519)


def mldsa_key() -> PrivateKey:
    return PrivateKey.generate(Algorithm.ML_DSA_44)


def signer(key: PrivateKey, name: str = ORIGIN) -> NoteSigner:
    return NoteSigner(name, key)


def entries(count: int, start: int = 0, tag: bytes = b"entry") -> list[bytes]:
    return [tag + b" %d " % i + bytes([i % 251]) * (i % 37) for i in range(start, start + count)]


def fill(log: Log, items: Sequence[bytes], timeout: float = 60.0) -> list[Integrated]:
    tickets = log.submit_many(items)
    return [t.integrated.result(timeout) for t in tickets]


def make_data_dir(path: Path, key: PrivateKey, origin: str = ORIGIN) -> Path:
    (path / "keys").mkdir(parents=True, exist_ok=True)
    layout.checkpoint_key_path(path).write_bytes(key.to_pem())
    layout.checkpoint_public_key_path(path).write_bytes(key.public_key.to_pem())
    layout.config_path(path).write_text(f'[log]\norigin = "{origin}"\n')
    return path


class LogBackedFetcher:
    """Serves a Log's C2SP read API by path, as the transparency service will."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.requests: list[str] = []

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        self.requests.append(path)
        if path == "checkpoint":
            return self.log.checkpoint()
        if path == CONFIG_PATH:
            config = {
                "checkpoint_origin": self.log.origin,
                "checkpoint_keys": [v.vkey for v in self.log.note_verifiers],
            }
            return json.dumps(config).encode()
        address = parse_tile_path(path)
        if address.entries:
            return self.log.read_entry_bundle(address.index, address.width)
        return self.log.read_tile(address.level, address.index, address.width)


class MissingFetcher:
    """A fetcher for which nothing exists."""

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        raise NotFound(path)


def fill_before_start(log: Log, items: Sequence[bytes], timeout: float = 60.0) -> None:
    """Queue everything, then start: batches are then exactly ``max_batch`` entries each."""
    tickets = log.submit_many(items)
    log.start()
    for ticket in tickets:
        ticket.integrated.result(timeout)


@dataclass(frozen=True)
class LogPlace:
    """A log's home for one test: a data directory, and the store its log lives in."""

    store: TestStore
    data_dir: Path

    @property
    def kind(self) -> str:
        return self.store.kind

    def open_store(self, **kwargs: Any) -> AuditableStore:
        return self.store.config().open(self.data_dir, **kwargs)

    def open_log(self, **kwargs: Any) -> Log:
        """A :class:`Log` on this place's store (the same log each time: reopening works)."""
        store = self.open_store()
        try:
            return Log(store, **kwargs)
        except BaseException:
            store.close()
            raise
