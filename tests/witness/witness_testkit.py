"""Helpers shared by the witness and monitor tests: logs (forked ones too), witnesses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.log import Log, NoteSigner, TileTree, parse_tile_path
from ironroot.witness import (
    Cosigner,
    MemoryWitnessStore,
    SqliteWitnessStore,
    Witness,
    WitnessedLog,
    WitnessPolicy,
    WitnessStore,
    WitnessThread,
)

ORIGIN = "log.example/witnessed"
WITNESS = "witness.example/w1"
NOW = 1_780_000_000


def entries(count: int, start: int = 0, tag: bytes = b"entry") -> list[bytes]:
    return [tag + b" %d" % i for i in range(start, start + count)]


def memory_log(key: PrivateKey, origin: str = ORIGIN) -> Log:
    return Log.open_memory(origin=origin, note_signers=[NoteSigner(origin, key)])


def fill(log: Log, items: Sequence[bytes]) -> None:
    """Append ``items`` as one batch (one checkpoint)."""
    for ticket in log.submit_many(list(items)):
        ticket.integrated.result(30)


def grown(key: PrivateKey, *batches: Sequence[bytes], origin: str = ORIGIN) -> Log:
    log = memory_log(key, origin)
    log.start()
    for batch in batches:
        fill(log, batch)
    return log


class LogFetcher:
    """A Log's C2SP read API by path (what a served log answers)."""

    def __init__(self, log: Log) -> None:
        self.log = log

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        if path == "checkpoint":
            return self.log.checkpoint()
        address = parse_tile_path(path)
        if address.entries:
            return self.log.read_entry_bundle(address.index, address.width)
        return self.log.read_tile(address.level, address.index, address.width)


def proof_for(log: Log, size: int | None = None):  # type: ignore[no-untyped-def]
    """``proof(old)`` for a witness client: the consistency proof from ``old`` to ``size``."""
    target = log.tree_size if size is None else size
    return lambda old: log.consistency_proof(old, target)


def tree(log: Log) -> TileTree:
    return TileTree(LogFetcher(log), log.tree_size)


def make_witness(
    log_key: PrivateKey,
    *,
    store: WitnessStore | None = None,
    algorithm: Algorithm = Algorithm.ED25519,
    key: PrivateKey | None = None,
    origin: str = ORIGIN,
    clock_start: int = NOW,
) -> Witness:
    key = key or PrivateKey.generate(algorithm)
    log = WitnessedLog(origin, (NoteSigner(origin, log_key).verifier(),))
    ticks = iter(range(clock_start, clock_start + 1_000_000))
    return Witness(
        WITNESS,
        [Cosigner(WITNESS, key)],
        [log],
        store if store is not None else MemoryWitnessStore(),
        clock=lambda: next(ticks),
    )


@contextmanager
def sqlite_witness(path: Path, log_key: PrivateKey, key: PrivateKey) -> Iterator[Witness]:
    witness = make_witness(log_key, store=SqliteWitnessStore(path), key=key)
    try:
        yield witness
    finally:
        witness.close()


# --- transparency services with witnesses -------------------------------------------------

VENDOR = "https://vendor.example"
TS_ORIGIN = "transparency.example/witnessed"


def service_dir(
    path: Path,
    vendor: PrivateKey,
    witnesses: Sequence[tuple[str, str]] = (),
    quorum: int | None = None,
    *,
    checkpoint_key: PrivateKey | None = None,
    origin: str = TS_ORIGIN,
) -> Path:
    """A transparency service data directory trusting ``vendor``, with ``witnesses``
    ((url, vkey) pairs) and ``quorum``; ``checkpoint_key`` pins the log's key (two
    directories with one key and one origin are one log's two forks)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "vendor.pub.pem").write_bytes(vendor.public_key.to_pem())
    lines = [
        "[transparency]",
        'service_issuer = "https://transparency.example"',
        'receipt_algorithms = ["ES384"]',
        "registration_wait = 5.0",
        "batch_linger = 0.0",
        "[[transparency.issuers]]",
        f'iss = "{VENDOR}"',
        'key = "vendor.pub.pem"',
        "[log]",
        f'origin = "{origin}"',
        "witness_timeout = 5.0",
    ]
    if quorum is not None:
        lines.append(f"witness_quorum = {quorum}")
    for url, vkey in witnesses:
        lines += ["[[log.witnesses]]", f'url = "{url}"', f'key = "{vkey}"']
    (path / "ironroot.toml").write_text("\n".join(lines) + "\n")
    if checkpoint_key is not None:
        (path / "keys").mkdir(exist_ok=True)
        (path / "keys" / "checkpoint.key").write_bytes(checkpoint_key.to_pem())
    return path


def statement(vendor: PrivateKey, sub: str, body: bytes = b"{}") -> bytes:
    from ironroot.cose import create_statement

    return create_statement(vendor, body, iss=VENDOR, sub=sub)


class Witnesses:
    """n witnesses of one log origin, each served over HTTP."""

    def __init__(self, count: int, log_vkey: str, store: WitnessStore | None = None) -> None:
        self.keys = [PrivateKey.generate(Algorithm.ED25519) for _ in range(count)]
        self.witnesses = [
            Witness(
                f"witness.example/w{i}",
                [Cosigner(f"witness.example/w{i}", key)],
                [WitnessedLog.from_vkeys(TS_ORIGIN, [log_vkey])],
                store if store is not None and i == 0 else MemoryWitnessStore(),
            )
            for i, key in enumerate(self.keys)
        ]
        self.threads = [WitnessThread(w) for w in self.witnesses]
        for thread in self.threads:
            thread.__enter__()

    @property
    def vkeys(self) -> list[str]:
        return [w.verifiers[0].vkey for w in self.witnesses]

    def pairs(self) -> list[tuple[str, str]]:
        return [(t.url, v) for t, v in zip(self.threads, self.vkeys, strict=True)]

    def policy(self, quorum: int) -> WitnessPolicy:
        return WitnessPolicy.from_vkeys(self.vkeys, quorum)

    def close(self) -> None:
        for thread in self.threads:
            thread.__exit__(None, None, None)
