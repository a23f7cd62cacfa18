"""The Code Transparency Service: registration policy + log + receipts.

Receipts are signed once per integrated batch and per receipt algorithm: the log calls
:meth:`_ReceiptBatchSigner.sign_batch` with the new tree size and root inside its integration
transaction, and stores the protected header and signature with the batch. A receipt for any
entry of that batch is then the shared header and signature plus the entry's inclusion proof,
assembled on read (and cached: receipts are immutable).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from ironroot._fileio import write_atomic
from ironroot.cose import (
    InclusionProof,
    build_receipt,
    decode_cbor,
    encode_cbor,
    make_transparent,
    receipt_protected_header,
    receipt_to_be_signed,
)
from ironroot.crypto import PublicKey, Signer
from ironroot.errors import ConfigError, NotFound, StorageError
from ironroot.log import Integrated, Log, NoteSigner, Ticket
from ironroot.log.layout import checkpoint_public_key_path, load_checkpoint_signer
from ironroot.transparency._config import (
    TransparencyConfig,
    init_data_dir,
    load_config,
    load_pq_checkpoint_signer,
    load_receipt_signers,
)
from ironroot.transparency._policy import RegistrationPolicy

__all__ = ["TransparencyService"]

_RECEIPT_PREFIX: Final = "receipt:"
_CACHE_SIZE: Final = 65536


class _ReceiptBatchSigner:
    """Signs one receipt root per batch and per algorithm (called by the log's writer)."""

    def __init__(
        self, signers: Sequence[Signer], issuer: str, clock: Callable[[], datetime]
    ) -> None:
        self._signers = tuple(signers)
        self._issuer = issuer
        self._clock = clock

    def sign_batch(self, tree_size: int, root: bytes) -> Mapping[str, bytes]:
        iat = int(self._clock().timestamp())
        out: dict[str, bytes] = {}
        for signer in self._signers:
            protected = receipt_protected_header(signer.algorithm, signer.kid, self._issuer, iat)
            signature = signer.sign(receipt_to_be_signed(protected, root))
            out[_RECEIPT_PREFIX + signer.algorithm.label] = encode_cbor([protected, signature])
        return out


def _public(verifier: object) -> PublicKey:
    if not isinstance(verifier, PublicKey):
        raise ConfigError("a service signer must expose its public key (ironroot.crypto.PublicKey)")
    return verifier


def _publish_checkpoint_key(data_dir: Path, signer: NoteSigner) -> None:
    """Keep ``keys/checkpoint.pub.pem`` current, so `ironroot log verify DIR` works even when
    the private key lives in an HSM."""
    path = checkpoint_public_key_path(data_dir)
    pem = signer.verifier().public_key.to_pem()
    if path.exists() and path.read_bytes() == pem:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, pem, mode=0o644)


class TransparencyService:
    """One service instance over one data directory. Thread-safe; start() before use."""

    def __init__(
        self,
        config: TransparencyConfig,
        log: Log,
        receipt_signers: Sequence[Signer],
        checkpoint_vkeys: Sequence[str],
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.log = log
        self.policy = RegistrationPolicy(config)
        self.receipt_keys: tuple[PublicKey, ...] = tuple(
            _public(s.verifier()) for s in receipt_signers
        )
        self._labels: tuple[str, ...] = tuple(
            _RECEIPT_PREFIX + s.algorithm.label for s in receipt_signers
        )
        self.checkpoint_vkeys = tuple(checkpoint_vkeys)
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[bytes, ...]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def open(
        cls,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] | None = None,
        init: bool = True,
        receipt_signers: Sequence[Signer] | None = None,
        checkpoint_signers: Sequence[Signer] | None = None,
    ) -> TransparencyService:
        """Open (creating on first use) the service in ``data_dir``; call :meth:`start` next.

        By default the service keys are the PEM files under ``keys/``. A deployment that keeps
        them in an HSM passes the signers (one receipt signer per configured receipt algorithm,
        in order; the Ed25519 checkpoint signer first, then any ML-DSA-44 cosigner).
        """
        if init:
            init_data_dir(data_dir)
        config = load_config(data_dir)
        now = clock or (lambda: datetime.now(UTC))
        if receipt_signers is None:
            receipt_signers = load_receipt_signers(config)
        if [s.algorithm for s in receipt_signers] != list(config.receipt_algorithms):
            raise ConfigError("the receipt signers do not match receipt_algorithms, in order")
        if checkpoint_signers is None:
            note_signers = [load_checkpoint_signer(data_dir, config.origin)]
            pq = load_pq_checkpoint_signer(config)
            if pq is not None:
                note_signers.append(NoteSigner(config.origin, pq))
        else:
            note_signers = [NoteSigner(config.origin, s) for s in checkpoint_signers]
        _publish_checkpoint_key(data_dir, note_signers[0])
        batch_signer = _ReceiptBatchSigner(receipt_signers, config.service_issuer, now)
        log = Log.open(
            data_dir,
            origin=config.origin,
            note_signers=note_signers,
            batch_signer=batch_signer,
            max_batch=config.max_batch,
            linger=config.batch_linger,
        )
        return cls(config, log, receipt_signers, [n.verifier().vkey for n in note_signers], now)

    def start(self) -> None:
        self.log.start()

    def close(self) -> None:
        self.log.close()

    def __enter__(self) -> TransparencyService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- registration -----------------------------------------------------------------------

    def submit(self, statement: bytes) -> Ticket:
        """Check the registration policy, then hand the log entry to the log (not yet durable:
        wait on ``ticket.durable`` before acknowledging)."""
        parsed = self.policy.check(statement, self._clock())
        return self.log.submit(parsed.log_entry())

    def status(self, entry_id: bytes) -> Integrated | None:
        """``None`` while pending; raises ``NotFound`` for an unknown id."""
        return self.log.status(entry_id)

    # --- receipts ---------------------------------------------------------------------------

    def receipts(
        self, entry_id: bytes, integrated: Integrated | None = None
    ) -> tuple[bytes, ...] | None:
        """Every receipt of an entry (one per receipt algorithm), ``None`` while pending.

        ``integrated`` is where the entry landed when the caller already knows it (saves a
        look-up on the registration path)."""
        with self._cache_lock:
            cached = self._cache.get(entry_id)
            if cached is not None:
                self._cache.move_to_end(entry_id)
                return cached
        if integrated is None:
            integrated = self.log.status(entry_id)
        if integrated is None:
            return None
        receipts = self._build_receipts(integrated)
        with self._cache_lock:
            self._cache[entry_id] = receipts
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return receipts

    def _build_receipts(self, integrated: Integrated) -> tuple[bytes, ...]:
        batch = self.log.batch_data(integrated.tree_size)
        path = tuple(self.log.inclusion_proof(integrated.index, integrated.tree_size))
        proof = InclusionProof(integrated.tree_size, integrated.index, path)
        # Configured algorithms first (the primary receipt leads), then any a batch was signed
        # with under an earlier configuration.
        labels = [k for k in self._labels if k in batch]
        labels += sorted(k for k in batch if k.startswith(_RECEIPT_PREFIX) and k not in labels)
        out: list[bytes] = []
        for label in labels:
            item = decode_cbor(batch[label])
            if not (
                isinstance(item, list)
                and len(item) == 2
                and all(isinstance(x, bytes) for x in item)
            ):
                raise StorageError(f"stored receipt signature {label} is damaged")
            out.append(build_receipt(item[0], item[1], proof))
        if not out:
            raise StorageError(f"no receipt signature stored for tree size {integrated.tree_size}")
        return tuple(out)

    def transparent_statement(self, entry_id: bytes) -> bytes:
        """The registered statement with all its receipts in unprotected header 394."""
        receipts = self.receipts(entry_id)
        if receipts is None:
            raise NotFound("the entry is not integrated yet")
        integrated = self.log.status(entry_id)
        assert integrated is not None
        return make_transparent(self.log.entry(integrated.index), receipts)
