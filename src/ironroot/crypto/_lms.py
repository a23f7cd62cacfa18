"""HSS/LMS stateful hash-based signatures (RFC 8554, NIST SP 800-208), COSE alg HSS-LMS (−46).

The hash arithmetic (LM-OTS chains, LMS trees, HSS chains) is the ``pyhsslms`` library's.
This module adds what a firmware signer needs around it:

* :class:`LmsPublicKey`, a :class:`~ironroot.crypto.Verifier` built from the HSS public key
  bytes alone (``u32(L) ‖ LMS public key``, RFC 8554 §6.1), any depth 1–8 and any SHA-256 or
  SHAKE parameter set ``pyhsslms`` knows, including the SP 800-208 192-bit (N24/M24) sets.
  Before handing bytes to ``pyhsslms`` it walks the signature itself (RFC 8554 Algorithm 6)
  and rejects what ``pyhsslms`` 2.0 lets through: trailing bytes (its length checks build
  ``ValueError`` objects without raising them), an ``Nspk`` that is not ``L − 1``, and an
  LM-OTS type in a signature that differs from the type of the key verifying it (§5.4.2).
* :class:`LmsPrivateKey`, a :class:`~ironroot.crypto.Signer` whose private key lives in a
  *state file*: one LMS tree (HSS with L = 1, the profile Caliptra uses for vendor keys) of
  height 5, 10 or 15 over SHA-256 with n = m = 24 or 32, and any Winternitz width. The private
  key is the RFC 8554 Appendix A seed and identifier ``I``; the state is the next unused
  leaf ``q``.

State safety (SP 800-208 §8.1): a leaf is *reserved before it is used*. ``sign`` takes an
exclusive ``fcntl.flock`` on the state file (re-opening if a concurrent writer replaced it),
reads ``q``, writes ``q + 1`` durably (temp file, fsync, rename, fsync of the directory), and
only then computes the signature with leaf ``q``. A crash after the reservation wastes one
leaf and never reuses one. An exhausted key, a missing state file, a state file holding a
different key, or one that went backwards under a live signer raise
:class:`~ironroot.errors.StateReuse`. Each signature is verified before it is returned.

State file: deterministic CBOR map ``{"kind": "ironroot-lms-state", "version": 1,
"lms": lms typecode, "ots": lmots typecode, "seed": SEED, "I": I, "q": next leaf,
"pub": HSS public key}``, mode 0600. Never copy it: two copies sign with the same leaves.

Older copies (SP 800-208 §8.1, a backup or snapshot restored): a state file alone cannot say it
is not the latest, so a key can be bound to a root-of-trust monotonic counter
(``generate(..., counter=)``, ``load(..., counter=)``: ``Device(dir).counter(name)``, the
mechanism the HSM binds its sealed store to, one counter per key). A bound state is version 2
and adds ``"ctr"`` (the counter value it was written with) and ``"rot_counter"`` (the counter's
name). Each reservation writes the state with ``ctr = c + 1`` and then increments the counter
to ``c + 1``, before the signature is computed; a state behind the counter is an older copy and
raises ``StateReuse``, one ahead (a crash between the write and the increment) is rolled
forward, its reserved leaf lost (:func:`_bind`).
A state file named through a symbolic link is advanced where it lives (the key resolves its
path when it is loaded), and one with a second name (a hard link) is refused at signing. A
signer or a ``generate`` killed inside its write leaves a temp file beside the state
(``.<name>.XXXXXXXX.tmp``, a whole copy of the key, or a second name of it); the next
signature deletes it.

Key generation computes all 2^h one-time public keys in pure Python: measured here at about
0.03 s for H5, 1.2 s for H10 and 38 s for H15 (N24/W4). The tree is built once per process
(lazily after :meth:`LmsPrivateKey.load`) and kept in memory; signing then takes about a
millisecond.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

import cbor2
from pyhsslms import pyhsslms as _hss

from ironroot._fileio import is_write_temporary, write_atomic
from ironroot.crypto._algorithms import Algorithm
from ironroot.crypto._keys import (
    ALG,
    KID,
    KTY,
    KTY_HSS_LMS,
    PUB,
    check_cbor_labels,
    cose_int,
    cose_key_thumbprint,
)
from ironroot.errors import (
    BadSignature,
    ConfigError,
    Conflict,
    MalformedInput,
    StateReuse,
    StorageError,
    UnsupportedAlgorithm,
)

__all__ = [
    "DEFAULT_LMS_PARAMETER_SET",
    "LMS_PARAMETER_SETS",
    "LmsParameterSet",
    "LmsPrivateKey",
    "LmsPublicKey",
]

_STATE_KIND: Final = "ironroot-lms-state"
_STATE_VERSION: Final = 1  # an unbound state
_BOUND_STATE_VERSION: Final = 2  # a state bound to a monotonic counter ("ctr", "rot_counter")
_MAX_COUNTER_NAME: Final = 64
_MAX_STATE_BYTES: Final = 4096
_MAX_SIGNATURE_BYTES: Final = 256 * 1024
_MAX_LEVELS: Final = 8
_LEN_I: Final = 16
_SIGNING_HEIGHTS: Final = (5, 10, 15)


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def _int32(data: bytes) -> int:
    return int.from_bytes(data, "big")


@dataclass(frozen=True, slots=True)
class LmsParameterSet:
    """One LMS + LM-OTS parameter pair (RFC 8554 §4.1/§5.1, SP 800-208 §4)."""

    name: str
    lms_type: int
    lmots_type: int
    m: int
    h: int
    n: int
    w: int
    p: int

    @property
    def max_signatures(self) -> int:
        return int(2**self.h)

    @property
    def public_key_size(self) -> int:
        """HSS public key bytes with L = 1: u32 L ‖ types ‖ I ‖ T[1]."""
        return 4 + 8 + _LEN_I + self.m

    @property
    def signature_size(self) -> int:
        """HSS signature bytes with L = 1: u32 Nspk ‖ q ‖ LM-OTS signature ‖ type ‖ path."""
        return 4 + 4 + (4 + self.n * (self.p + 1)) + 4 + self.m * self.h


def _build_parameter_sets() -> dict[str, LmsParameterSet]:
    sets: dict[str, LmsParameterSet] = {}
    for lms_code, (lms_alg, m, h) in _hss.lms_params.items():
        if lms_alg != "sha256" or h not in _SIGNING_HEIGHTS:
            continue
        for ots_code, (ots_alg, n, p, w, _ls) in _hss.lmots_params.items():
            if ots_alg != "sha256" or n != m:
                continue
            name = f"SHA256-N{n}-H{h}-W{w}"
            sets[name] = LmsParameterSet(name, _int32(lms_code), _int32(ots_code), m, h, n, w, p)
    return dict(sorted(sets.items(), key=lambda item: (item[1].n, item[1].h, item[1].w)))


LMS_PARAMETER_SETS: Final[Mapping[str, LmsParameterSet]] = _build_parameter_sets()
"""Parameter sets this module signs with, by name (``SHA256-N24-H15-W4``)."""

DEFAULT_LMS_PARAMETER_SET: Final = "SHA256-N24-H15-W4"

_BY_TYPES: Final[dict[tuple[int, int], LmsParameterSet]] = {
    (s.lms_type, s.lmots_type): s for s in LMS_PARAMETER_SETS.values()
}


def _lms_info(lms_type: bytes) -> tuple[str, int, int]:
    info = _hss.lms_params.get(lms_type)
    if info is None:
        raise BadSignature(f"unknown LMS type {lms_type.hex()}")
    alg, m, h = info
    return str(alg), int(m), int(h)


def _lmots_info(lmots_type: bytes) -> tuple[str, int, int]:
    info = _hss.lmots_params.get(lmots_type)
    if info is None:
        raise BadSignature(f"unknown LM-OTS type {lmots_type.hex()}")
    alg, n, p, _w, _ls = info
    return str(alg), int(n), int(p)


def _lms_signature_length(sig: bytes, pos: int, lms_type: bytes, lmots_type: bytes) -> int:
    """Length of the LMS signature at ``pos``, checked against the verifying key's types."""
    if len(sig) < pos + 8:
        raise BadSignature("HSS/LMS signature is truncated")
    if sig[pos + 4 : pos + 8] != lmots_type:
        raise BadSignature("LM-OTS type of the signature does not match the public key")
    _, n, p = _lmots_info(lmots_type)
    ots_end = pos + 4 + 4 + n * (p + 1)
    if sig[ots_end : ots_end + 4] != lms_type:
        raise BadSignature("LMS type of the signature does not match the public key")
    _, m, h = _lms_info(lms_type)
    if _int32(sig[pos : pos + 4]) >= 2**h:
        raise BadSignature("LMS leaf index out of range")
    end = ots_end + 4 + m * h
    if len(sig) < end:
        raise BadSignature("HSS/LMS signature is truncated")
    return end - pos


def _check_key_types(lms_type: bytes, lmots_type: bytes) -> int:
    """Check an LMS public key's types agree on the hash; return m."""
    lms_alg, m, _ = _lms_info(lms_type)
    ots_alg, n, _ = _lmots_info(lmots_type)
    if lms_alg != ots_alg or m != n:
        raise BadSignature("LMS and LM-OTS types use different hashes")
    return m


class LmsPublicKey:
    """An HSS/LMS public key (any depth): a :class:`~ironroot.crypto.Verifier`."""

    __slots__ = ("_hss", "_kid", "_levels", "_lmots_type", "_lms_type", "_pub")

    def __init__(self, public_key: bytes) -> None:
        """Parse the HSS public key bytes ``u32(L) ‖ lms type ‖ lmots type ‖ I ‖ T[1]``."""
        if not isinstance(public_key, bytes) or len(public_key) < 12:
            raise MalformedInput("HSS public key is too short")
        levels = _int32(public_key[:4])
        if not 1 <= levels <= _MAX_LEVELS:
            raise MalformedInput(f"HSS public key has {levels} levels (1-8 allowed)")
        lms_type, lmots_type = public_key[4:8], public_key[8:12]
        try:
            m = _check_key_types(lms_type, lmots_type)
        except BadSignature as exc:
            raise UnsupportedAlgorithm(f"unsupported HSS/LMS public key: {exc.detail}") from exc
        if len(public_key) != 12 + _LEN_I + m:
            raise MalformedInput("HSS public key has the wrong length")
        try:
            self._hss = _hss.HssPublicKey.deserialize(public_key)
        except ValueError as exc:
            raise MalformedInput(f"invalid HSS public key: {exc}") from exc
        self._pub = public_key
        self._levels = levels
        self._lms_type = lms_type
        self._lmots_type = lmots_type
        self._kid = cose_key_thumbprint(self.to_cose_key(include_alg=False))

    @classmethod
    def from_bytes(cls, public_key: bytes) -> LmsPublicKey:
        """The same as the constructor: parse HSS public key bytes."""
        return cls(public_key)

    @classmethod
    def from_cose_key(cls, cose_key: Mapping[int, object]) -> LmsPublicKey:
        """Parse ``{1: 5, 3: -46, -1: pub}`` (alg optional)."""
        if not isinstance(cose_key, Mapping):
            raise MalformedInput("COSE_Key must be a map")
        check_cbor_labels(cose_key, "COSE_Key label")
        if cose_int(cose_key, KTY) != KTY_HSS_LMS:
            raise UnsupportedAlgorithm("not an HSS-LMS COSE_Key")
        alg = cose_key.get(ALG)
        if alg is not None and Algorithm.from_cose_id(alg) is not Algorithm.HSS_LMS:
            raise UnsupportedAlgorithm("HSS-LMS COSE_Key with a non-HSS-LMS alg")
        pub = cose_key.get(PUB)
        if not isinstance(pub, bytes):
            raise MalformedInput("HSS-LMS COSE_Key needs a byte-string pub")
        return cls(pub)

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.HSS_LMS

    @property
    def kid(self) -> bytes:
        return self._kid

    @property
    def levels(self) -> int:
        return self._levels

    @property
    def parameter_set(self) -> LmsParameterSet | None:
        """The top-level parameter set, when it is one this module signs with."""
        return _BY_TYPES.get((_int32(self._lms_type), _int32(self._lmots_type)))

    def raw_bytes(self) -> bytes:
        """The HSS public key bytes (RFC 8554 §6.1)."""
        return self._pub

    def verifier(self) -> LmsPublicKey:
        return self

    def to_cose_key(
        self, *, include_alg: bool = True, include_kid: bool = False
    ) -> dict[int, object]:
        out: dict[int, object] = {KTY: KTY_HSS_LMS, PUB: self._pub}
        if include_alg:
            out[ALG] = Algorithm.HSS_LMS.cose_id
        if include_kid:
            out[KID] = self._kid
        return out

    def _check_structure(self, sig: bytes) -> None:
        """RFC 8554 Algorithm 6 framing: exact length, Nspk = L − 1, matching types."""
        if len(sig) < 4:
            raise BadSignature("HSS signature is truncated")
        if _int32(sig[:4]) != self._levels - 1:
            raise BadSignature("HSS signature has the wrong number of levels")
        pos = 4
        lms_type, lmots_type = self._lms_type, self._lmots_type
        for level in range(self._levels):
            pos += _lms_signature_length(sig, pos, lms_type, lmots_type)
            if level < self._levels - 1:
                if len(sig) < pos + 8:
                    raise BadSignature("HSS signature is truncated")
                lms_type, lmots_type = sig[pos : pos + 4], sig[pos + 4 : pos + 8]
                pos += 8 + _LEN_I + _check_key_types(lms_type, lmots_type)
        if pos != len(sig):
            raise BadSignature("HSS signature has trailing bytes")

    def verify(self, signature: bytes, data: bytes) -> None:
        if not isinstance(signature, bytes) or len(signature) > _MAX_SIGNATURE_BYTES:
            raise BadSignature("HSS-LMS signature has the wrong size")
        self._check_structure(signature)
        try:
            valid = self._hss.verify(data, signature)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            raise BadSignature(f"HSS-LMS signature is malformed: {exc}") from exc
        if valid is not True:
            raise BadSignature("HSS-LMS signature does not verify")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LmsPublicKey) and other._pub == self._pub

    def __hash__(self) -> int:
        return hash(self._pub)

    def __repr__(self) -> str:
        return f"LmsPublicKey(L={self._levels}, kid={self._kid.hex()[:16]}…)"


# --- the state file --------------------------------------------------------------------------


class LmsCounter(Protocol):
    """The monotonic counter an LMS state is bound to: :class:`ironroot.rot.MonotonicCounter`
    (``Device(dir).counter(name)``, the counter the HSM binds its sealed store to). ``value()``
    reads it; ``increment()`` adds one, durably, and returns the new value. A ``name``
    attribute, when the counter has one, is recorded in the state and checked on opening."""

    def value(self) -> int: ...

    def increment(self) -> int: ...


def _counter_name(counter: LmsCounter) -> str:
    name = getattr(counter, "name", "")
    return name if isinstance(name, str) else ""


@dataclass(frozen=True, slots=True)
class _State:
    params: LmsParameterSet
    seed: bytes
    identifier: bytes
    next_leaf: int
    public_key: bytes
    counter: int | None = None  # the counter value this state was written with (bound keys)
    counter_name: str = ""

    def encode(self) -> bytes:
        value: dict[str, object] = {
            "kind": _STATE_KIND,
            "version": _STATE_VERSION,
            "lms": self.params.lms_type,
            "ots": self.params.lmots_type,
            "seed": self.seed,
            "I": self.identifier,
            "q": self.next_leaf,
            "pub": self.public_key,
        }
        if self.counter is not None:
            value.update(
                version=_BOUND_STATE_VERSION, ctr=self.counter, rot_counter=self.counter_name
            )
        return cbor2.dumps(value, canonical=True)

    def same_key(self, other: _State) -> bool:
        return (
            self.params == other.params
            and secrets.compare_digest(self.seed, other.seed)
            and self.identifier == other.identifier
            and self.public_key == other.public_key
        )


_STATE_FIELDS: Final = frozenset({"kind", "version", "lms", "ots", "seed", "I", "q", "pub"})
_BOUND_STATE_FIELDS: Final = _STATE_FIELDS | {"ctr", "rot_counter"}


def _field(state: Mapping[Any, Any], name: str, kind: type) -> Any:
    value = state.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedInput(f"LMS state field {name!r} has the wrong type")
    return value


def is_lms_state(data: bytes) -> bool:
    """Whether ``data`` looks like an LMS state file (CBOR map with the state ``kind``)."""
    if not data or data[0] & 0xE0 != 0xA0 or len(data) > _MAX_STATE_BYTES:
        return False
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("kind") == _STATE_KIND


def _decode_state(data: bytes) -> _State:
    if len(data) > _MAX_STATE_BYTES:
        raise MalformedInput("LMS state file is too large")
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise MalformedInput(f"LMS state file is not CBOR: {exc}") from exc
    if not isinstance(value, dict) or value.get("kind") != _STATE_KIND:
        raise MalformedInput("not an Ironroot LMS state file")
    version = value.get("version")
    fields = {_STATE_VERSION: _STATE_FIELDS, _BOUND_STATE_VERSION: _BOUND_STATE_FIELDS}
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or frozenset(value) != fields.get(version)
    ):
        raise MalformedInput("LMS state file has unknown fields or version")
    counter: int | None = None
    counter_name = ""
    if version == _BOUND_STATE_VERSION:
        counter = _field(value, "ctr", int)
        counter_name = _field(value, "rot_counter", str)
        if counter < 1 or len(counter_name) > _MAX_COUNTER_NAME:
            raise MalformedInput("LMS state file has an invalid counter binding")
    params = _BY_TYPES.get((_field(value, "lms", int), _field(value, "ots", int)))
    if params is None:
        raise UnsupportedAlgorithm("LMS state file uses an unsupported parameter set")
    seed = _field(value, "seed", bytes)
    identifier = _field(value, "I", bytes)
    next_leaf = _field(value, "q", int)
    public_key = _field(value, "pub", bytes)
    if len(seed) != params.n or len(identifier) != _LEN_I:
        raise MalformedInput("LMS state file has a seed or identifier of the wrong size")
    if not 0 <= next_leaf <= params.max_signatures:
        raise MalformedInput("LMS state file has an out-of-range leaf index")
    prefix = _u32(1) + _u32(params.lms_type) + _u32(params.lmots_type) + identifier
    if len(public_key) != params.public_key_size or not public_key.startswith(prefix):
        raise MalformedInput("LMS state file public key does not match its parameters")
    return _State(params, seed, identifier, next_leaf, public_key, counter, counter_name)


def _bind(
    path: Path, state: _State, counter: LmsCounter | None, *, roll_forward: bool = True
) -> int | None:
    """Check ``state`` against the counter it is bound to; return the value its next write
    takes (``None`` for an unbound key opened without a counter).

    The state is written with value ``c + 1`` *before* the counter is incremented to ``c + 1``
    (as the HSM writes its anchor before incrementing), so a state found at the counter's value
    ``v`` is the latest, one at ``v + 1`` is the latest after a writer died between its write
    and its increment (rolled forward here: the counter is incremented now; the leaf that
    writer reserved stays reserved, lost and never reused), and one below ``v`` is an older
    copy: refused, since it would sign with one-time keys the latest state has spent."""
    name = state.counter_name
    if counter is None:
        if state.counter is not None:
            raise StateReuse(
                f"LMS state file {path} is bound to the root-of-trust counter {name!r}: open "
                "it with that counter, or an older copy of it could not be told apart"
            )
        return None
    given = _counter_name(counter)
    if state.counter is not None and name != given:
        raise StateReuse(
            f"LMS state file {path} is bound to the root-of-trust counter {name!r}, not {given!r}"
        )
    current = counter.value()
    written = 0 if state.counter is None else state.counter
    if state.counter is None and current != 0:
        raise StateReuse(
            f"LMS state file {path} is not bound to a counter and counter {given!r} is at "
            f"{current}: an unbound state binds only to a counter never used (one per key)"
        )
    if written == current + 1:
        # the last writer died before its increment (without ``roll_forward``: a check that
        # writes nothing, of a state the next reservation rolls forward)
        current = counter.increment() if roll_forward else written
    if written != current:
        raise StateReuse(
            f"LMS state file {path} is an older copy (restored from a backup, snapshot or "
            f"copied directory?): written at counter {written}, the counter is at {current} "
            f"(root-of-trust counter {given!r}). Signing with it would reuse one-time keys "
            "already spent. Put the latest state file back; if it is lost, retire this key "
            "and sign with a new one"
        )
    return current + 1


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """An exclusive flock on the current inode of ``path``; yields the locked descriptor."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise StateReuse(f"LMS state file {path} is gone") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held, current = os.fstat(fd), os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
            break
        os.close(fd)  # replaced while we waited: lock the new file instead
    try:
        yield fd
    finally:
        os.close(fd)


def _remove_stale_copies(path: Path) -> None:
    """Delete the temp files a signer killed inside :func:`write_atomic` left beside ``path``.

    Each is ``.<name>.<8 random characters>.tmp`` (:func:`is_write_temporary`) and a whole
    copy of the key, seed and all: a clone that would sign with leaves the real file goes on
    to use. Only this file's: another file's beside it may be a write under way. Called with
    the state file locked, when no write of it is under way (a writer holds the lock until
    its temp file has been renamed into place)."""
    own = f".{path.name}"
    try:
        with os.scandir(path.parent) as entries:
            stale = [
                entry.path
                for entry in entries
                if is_write_temporary(entry.name)
                # less ".XXXXXXXX.tmp" (whose 8 characters hold no dot): ".<name>"
                and entry.name.rpartition(".")[0].rpartition(".")[0] == own
                and entry.is_file(follow_symlinks=False)
            ]
    except PermissionError:  # a folder its owner may write but not list: nothing to find
        return
    for name in stale:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def _read_fd(fd: int) -> bytes:
    with os.fdopen(os.dup(fd), "rb") as handle:
        handle.seek(0)
        return handle.read(_MAX_STATE_BYTES + 1)


class LmsPrivateKey:
    """An LMS signing key (HSS, L = 1) kept in a state file: a :class:`~ironroot.crypto.Signer`."""

    __slots__ = ("_counter", "_floor", "_mutex", "_path", "_public", "_state", "_tree")

    def __init__(
        self, path: Path, state: _State, tree: Any = None, counter: LmsCounter | None = None
    ) -> None:
        # Where the state file lives, not a symbolic link to it: each signature replaces the
        # file at this path, and replacing a link would leave the real file behind, unadvanced.
        self._path = Path(path).resolve()
        self._state = state
        self._public = LmsPublicKey(state.public_key)
        self._tree = tree
        self._floor = state.next_leaf
        self._mutex = threading.Lock()
        self._counter = counter

    @classmethod
    def generate(
        cls,
        path: str | os.PathLike[str],
        parameter_set: str = DEFAULT_LMS_PARAMETER_SET,
        *,
        counter: LmsCounter | None = None,
    ) -> LmsPrivateKey:
        """Create a new key and its state file at ``path`` (which must not exist), bound to
        ``counter`` when one is given (a root-of-trust counter of its own: one per key)."""
        params = LMS_PARAMETER_SETS.get(parameter_set)
        if params is None:
            raise UnsupportedAlgorithm(f"unsupported LMS parameter set {parameter_set!r}")
        if counter is not None and (current := counter.value()) != 0:
            # Binding would put the counter's other user's state behind it (an "older copy").
            raise Conflict(
                f"counter {_counter_name(counter)!r} is at {current}: it is in use; give each "
                "LMS key a counter of its own"
            )
        seed = secrets.token_bytes(params.n)
        identifier = secrets.token_bytes(_LEN_I)
        tree = _hss.LmsPrivateKey(
            lms_type=_u32(params.lms_type),
            lmots_type=_u32(params.lmots_type),
            SEED=seed,
            I=identifier,
            q=0,
        )
        public_key = _u32(1) + tree.publicKey().serialize()
        state = _State(params, seed, identifier, 0, public_key)
        if counter is not None:
            state = replace(state, counter=counter.value() + 1, counter_name=_counter_name(counter))
        write_atomic(Path(path), state.encode(), exclusive=True)
        if counter is not None:
            counter.increment()
        return cls(Path(path), state, tree, counter)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, counter: LmsCounter | None = None
    ) -> LmsPrivateKey:
        """Open an existing state file (the tree is rebuilt on first use). A state bound to a
        counter must be opened with it, and one behind it (an older copy) raises
        ``StateReuse``; an unbound state given a counter that was never used binds to it.
        Without a counter a bound state opens for what needs no leaf (its public key,
        :meth:`remaining`) and refuses to sign."""
        path = Path(path).resolve()
        with _locked(path) as fd:
            state = _decode_state(_read_fd(fd))
            if counter is not None:
                _bind(path, state, counter)
        return cls(path, state, counter=counter)

    @property
    def algorithm(self) -> Algorithm:
        return Algorithm.HSS_LMS

    @property
    def kid(self) -> bytes:
        return self._public.kid

    @property
    def public_key(self) -> LmsPublicKey:
        return self._public

    @property
    def parameter_set(self) -> LmsParameterSet:
        return self._state.params

    @property
    def path(self) -> Path:
        return self._path

    def verifier(self) -> LmsPublicKey:
        return self._public

    def remaining(self) -> int:
        """Signatures left, as the state file says now."""
        with _locked(self._path) as fd:
            state = _decode_state(_read_fd(fd))
        return state.params.max_signatures - state.next_leaf

    def check_ready(self, signatures: int = 1) -> None:
        """``StateReuse`` unless this key can make ``signatures`` more signatures now: the
        checks :meth:`sign` makes before it reserves a leaf (the state file holds this key, is
        not behind the counter it is bound to nor opened without it, has not gone backwards,
        and has the leaves, it has one name), reserving none and writing nothing to it (the
        leftover temp copies of a killed signer are deleted, as a signature deletes them first).
        For a caller about to make several signatures, so that one refused after another was
        made spends no leaf."""
        if isinstance(signatures, bool) or not isinstance(signatures, int) or signatures < 1:
            raise ConfigError("signatures must be a positive integer")
        with _locked(self._path) as fd:
            state, _ = self._checked_state(fd, roll_forward=False)
            left = state.params.max_signatures - state.next_leaf
        if left == 0:
            raise StateReuse("LMS key is exhausted")
        if left < signatures:
            raise StateReuse(
                f"LMS key has {left} one-time key{'s' if left > 1 else ''} left,"
                f" {signatures} needed"
            )

    def counter_binding(self) -> tuple[str, int] | None:
        """The root-of-trust counter the state file is bound to, as it says now: its name
        (``""`` for a counter without one) and the counter value the state was written with;
        ``None`` for an unbound key. Reads the file only (the counter is not read)."""
        with _locked(self._path) as fd:
            state = _decode_state(_read_fd(fd))
        return None if state.counter is None else (state.counter_name, state.counter)

    def _ensure_tree(self) -> Any:
        if self._tree is None:
            params = self._state.params
            tree = _hss.LmsPrivateKey(
                lms_type=_u32(params.lms_type),
                lmots_type=_u32(params.lmots_type),
                SEED=self._state.seed,
                I=self._state.identifier,
                q=0,
            )
            if _u32(1) + tree.publicKey().serialize() != self._state.public_key:
                raise StorageError("LMS state file: seed does not produce its public key")
            self._tree = tree
        return self._tree

    def _checked_state(self, fd: int, *, roll_forward: bool) -> tuple[_State, int | None]:
        """The state file open on ``fd`` (locked), once it is this key's and may sign: the
        leftovers of killed writes deleted first (one may be a second name of this very file:
        ``generate`` killed between linking it into place and unlinking), one name only (a
        hard link would keep a leaf after the rename), the same key, not behind the counter
        it is bound to (:func:`_bind`, which returns the value its next write takes), and not
        behind what this object signed with (a restored copy); else ``StateReuse``."""
        _remove_stale_copies(self._path)
        names = os.fstat(fd).st_nlink
        if names != 1:
            raise StateReuse(
                f"LMS state file {self._path} has {names} names (hard links); "
                "a second name is a copy that would sign with used leaves"
            )
        state = _decode_state(_read_fd(fd))
        if not state.same_key(self._state):
            raise StateReuse("LMS state file now holds a different key")
        written = _bind(self._path, state, self._counter, roll_forward=roll_forward)
        if state.next_leaf < self._floor:
            raise StateReuse("LMS state file went backwards (restored copy?)")
        return state, written

    def _reserve(self) -> int:
        """Durably advance the state file past one leaf and return that leaf."""
        with _locked(self._path) as fd:
            state, written = self._checked_state(fd, roll_forward=True)
            leaf = state.next_leaf
            if leaf >= state.params.max_signatures:
                raise StateReuse("LMS key is exhausted")
            advanced = replace(state, next_leaf=leaf + 1)
            if written is not None and self._counter is not None:
                name = _counter_name(self._counter)
                advanced = replace(advanced, counter=written, counter_name=name)
            write_atomic(self._path, advanced.encode())
            # Only now is an older copy behind the counter: the leaf is used after this. A
            # crash before the increment leaves the state one ahead, which _bind rolls forward.
            if self._counter is not None and self._counter.increment() != written:
                raise StateReuse(
                    "the LMS key's counter moved while the state was written: another "
                    "user shares it (give each LMS key a counter of its own)"
                )
            self._floor = leaf + 1
        return leaf

    def _sign_leaf(self, tree: Any, leaf: int, data: bytes) -> bytes:
        tree.q = leaf
        try:
            lms_signature = tree.sign(data)
        except ValueError as exc:
            raise StateReuse(f"LMS leaf {leaf} was already used") from exc
        return _u32(0) + bytes(lms_signature)

    def sign(self, data: bytes) -> bytes:
        """Reserve the next leaf in the state file, then sign with it (HSS, Nspk = 0)."""
        with self._mutex:
            tree = self._ensure_tree()
            leaf = self._reserve()
            signature = self._sign_leaf(tree, leaf, data)
        try:
            self._public.verify(signature, data)
        except BadSignature as exc:
            raise StorageError("LMS signature failed its own check; withheld") from exc
        return signature

    def __repr__(self) -> str:
        return f"LmsPrivateKey({self._state.params.name}, kid={self.kid.hex()[:16]}…)"
