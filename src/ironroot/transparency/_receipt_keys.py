"""Receipt signatures at rest: the receipt public keys a data directory publishes, and the check
of each batch's stored signature — before the service serves a receipt made from it, and when
``ironroot log verify DIR`` checks the log offline.

The service signs one receipt root per batch and per algorithm and stores
``[protected header, signature]`` under ``receipt:<alg>`` with the batch. Nothing else
protects those bytes at rest, so the service checks each stored signature against the root the
log's own tree gives at the batch's size (once per batch, then cached) and refuses to serve a
receipt whose signature does not verify. The public keys live in ``keys/receipt-keys.cbor``
(a COSE Key Set, ``ironroot.log.layout.RECEIPT_KEYS``): every key the service has signed with,
kept across rotations so old batches stay checkable, and never a private key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ironroot._fileio import make_dirs, read_limited, write_atomic
from ironroot.cose import (
    CWT_CLAIMS,
    decode_cbor,
    decode_key_set,
    encode_key_set,
    receipt_to_be_signed,
)
from ironroot.crypto import Algorithm, PublicKey, Verifier, load_verifier
from ironroot.errors import (
    AlgorithmNotAccepted,
    ConfigError,
    IronrootError,
    MalformedInput,
    StorageError,
    UnknownIssuer,
)
from ironroot.log.layout import receipt_keys_path

__all__ = [
    "RECEIPT_PREFIX",
    "ReceiptBatchVerifier",
    "check_receipt_signature",
    "load_receipt_keys",
    "publish_receipt_keys",
]

RECEIPT_PREFIX: Final = "receipt:"
_MAX_KEY_SET: Final = 1 << 20
_ALG: Final = 1
_KID: Final = 4
_CWT_IAT: Final = 6  # the iat claim's label in a receipt's CWT claims (15)

_log = logging.getLogger("ironroot.transparency")


def publish_receipt_keys(data_dir: Path, keys: Sequence[PublicKey]) -> dict[bytes, PublicKey]:
    """Add ``keys`` to ``keys/receipt-keys.cbor`` (keeping every key listed before) and return
    every key it lists. A damaged file is rewritten with ``keys`` alone, with a warning: the
    keys it held before are gone, so batches they signed no longer verify offline."""
    path = receipt_keys_path(data_dir)
    known: dict[bytes, PublicKey] = {}
    damaged = False
    if path.exists():
        try:
            known = decode_key_set(read_limited(path, _MAX_KEY_SET))
        except (IronrootError, OSError) as exc:
            damaged = True
            _log.warning(
                "%s is damaged (%s): rewritten with the current receipt keys only",
                path,
                exc.detail if isinstance(exc, IronrootError) else exc,
            )
    merged = dict(known)
    for key in keys:
        merged.setdefault(key.kid, key)
    if damaged or merged.keys() != known.keys():
        make_dirs(path.parent)
        write_atomic(path, encode_key_set(list(merged.values())), mode=0o644)
    return merged


def load_receipt_keys(paths: Sequence[Path]) -> dict[bytes, Verifier]:
    """Receipt verifiers by kid from files: COSE Key Sets (``keys/receipt-keys.cbor``, or what
    ``/.well-known/scitt-keys`` serves) or single public keys (PEM, DER, JWK, COSE_Key).
    Raises :class:`ConfigError` naming a file that is missing or holds no usable key."""
    out: dict[bytes, Verifier] = {}
    for path in paths:
        try:
            data = read_limited(path, _MAX_KEY_SET)
        except OSError as exc:
            raise ConfigError(f"cannot read receipt keys from {path}: {exc.strerror}") from exc
        except IronrootError as exc:
            raise ConfigError(f"{path}: {exc.detail}") from exc
        try:
            if data and 0x80 <= data[0] <= 0x9F:  # a CBOR array: a COSE Key Set
                out.update(decode_key_set(data))
            else:
                verifier = load_verifier(data)
                out[verifier.kid] = verifier
        except IronrootError as exc:
            raise ConfigError(f"{path} holds no receipt public key: {exc.detail}") from exc
    return out


def check_receipt_signature(
    label: str, value: bytes, root: bytes, keys: Mapping[bytes, Verifier]
) -> tuple[bytes, bytes]:
    """Check one stored ``[protected, signature]`` pair against the tree root it must cover.

    Returns ``(protected, signature)``. Raises :class:`MalformedInput` (not the stored shape,
    or a header without a known ``alg`` and a ``kid``), :class:`AlgorithmNotAccepted` (the
    label, header and key disagree on the algorithm), :class:`UnknownIssuer` (no key with the
    header's kid) or :class:`BadSignature`.
    """
    item = decode_cbor(value)
    if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, bytes) for x in item)):
        raise MalformedInput(f"the stored {label} is not [protected header, signature]")
    protected, signature = item
    header = decode_cbor(protected)
    if not isinstance(header, dict):
        raise MalformedInput(f"the protected header of {label} is not a map")
    kid = header.get(_KID)
    if not isinstance(kid, bytes) or not kid:
        raise MalformedInput(f"the protected header of {label} has no kid")
    algorithm = Algorithm.from_cose_id(header.get(_ALG))
    if RECEIPT_PREFIX + algorithm.label != label:
        raise AlgorithmNotAccepted(f"{label} holds a {algorithm.label} signature")
    key = keys.get(kid)
    if key is None:
        raise UnknownIssuer(f"no receipt public key has the kid {kid.hex()} that {label} names")
    if key.algorithm is not algorithm:
        raise AlgorithmNotAccepted(f"the key {kid.hex()} is not a {algorithm.label} key")
    key.verify(signature, receipt_to_be_signed(protected, root))
    return protected, signature


@dataclass(frozen=True, slots=True)
class ReceiptTimeBack:
    """A batch whose receipt time (``iat``) is earlier than the batch before it: a finding, not
    a failure (``reset_receipt_time_from`` moves receipt times back once, on purpose)."""

    size: int
    iat: int
    previous_size: int
    previous_iat: int

    def __str__(self) -> str:
        return (
            f"receipt time goes back at tree size {self.size}: iat {self.iat}, "
            f"{self.previous_iat - self.iat} s before the batch at size {self.previous_size} "
            f"(iat {self.previous_iat}); expected only after reset_receipt_time_from"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "code": "receipt-time-back",
            "size": self.size,
            "iat": self.iat,
            "previous_size": self.previous_size,
            "previous_iat": self.previous_iat,
            "detail": str(self),
        }


class ReceiptBatchVerifier:
    """:class:`ironroot.log.BatchVerifier` for receipt signatures (``ironroot log verify``).

    With keys, every batch must carry at least one receipt signature and each must verify.
    Without keys, a log that holds receipt signatures cannot be checked: :class:`ConfigError`
    (``source`` says where keys were looked for); a log without any verifies as a plain log.

    Batches are given in tree-size order; every batch whose receipt time (the ``iat`` of its
    verified receipt headers, the earliest when they differ) is earlier than the previous
    batch's (the latest of its) is kept in :attr:`times_back`.
    """

    def __init__(self, keys: Mapping[bytes, Verifier], *, source: str) -> None:
        self._keys = dict(keys)
        self._source = source
        self._last: tuple[int, int] | None = None
        self.times_back: list[ReceiptTimeBack] = []
        """The batches whose receipt time went back, in tree-size order (findings)."""

    def verify_batch(self, tree_size: int, root: bytes, data: Mapping[str, bytes]) -> int:
        labels = sorted(k for k in data if k.startswith(RECEIPT_PREFIX))
        if not labels:
            if self._keys:
                raise StorageError(f"no receipt signature is stored for tree size {tree_size}")
            return 0
        if not self._keys:
            raise ConfigError(
                f"the log holds receipt signatures but there are no receipt public keys to "
                f"check them with ({self._source})"
            )
        iats = []
        for label in labels:
            protected, _signature = check_receipt_signature(label, data[label], root, self._keys)
            iat = receipt_iat(protected)
            if iat is not None:
                iats.append(iat)
        if iats:
            if self._last is not None and min(iats) < self._last[1]:
                self.times_back.append(ReceiptTimeBack(tree_size, min(iats), *self._last))
            self._last = (tree_size, max(iats))
        return len(labels)


def receipt_iat(protected: bytes) -> int | None:
    """The ``iat`` of a receipt's protected header (its CWT claims), if it carries one;
    ``MalformedInput`` when the header is not CBOR."""
    header = decode_cbor(protected)
    claims = header.get(CWT_CLAIMS) if isinstance(header, dict) else None
    iat = claims.get(_CWT_IAT) if isinstance(claims, dict) else None
    return iat if isinstance(iat, int) and not isinstance(iat, bool) else None
