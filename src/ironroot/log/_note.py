"""C2SP signed notes: signing, opening, key ids and verifier keys (vkeys).

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank line, then
one or more signature lines ``— <key name> <base64(4-byte key id || signature)>``. The key
id is ``SHA-256(name || 0x0A || signature type || public key)[:4]``; a verifier key string
is ``<name>+<8 hex digits of key id>+<base64(signature type || public key)>``.

Two signature types, both as C2SP assigns them:

* ``0x01`` Ed25519 (c2sp.org/signed-note): an RFC 8032 signature over the note text.
* ``0x06`` ML-DSA-44 checkpoint (co)signature (c2sp.org/tlog-cosignature and the editor's
  copy of c2sp.org/tlog-checkpoint, "ML-DSA-44 Checkpoint Cosignatures", which a log may use
  to authenticate itself): a ``timestamped_signature`` (u64 big-endian timestamp followed by
  the 2420-byte ML-DSA-44 signature, empty context) over the binary ``cosigned_message``::

      "subtree/v1\\n\\0" || u8 len || cosigner name || u64 timestamp
                         || u8 len || origin || u64 start (0) || u64 end (size) || root[32]

  C2SP assigns no other identifier to ML-DSA-44 note signatures, so this is the one used.
  The message covers only the first three checkpoint lines, so this type applies to
  checkpoint bodies only; Ironroot refuses to sign, and refuses to accept, an ML-DSA-44
  signature over a checkpoint with extension lines (they would be unauthenticated). The
  log signs its own checkpoints with timestamp 0, which the spec allows ("no statement as
  to the tree being the largest observed at time of signing"); verifiers accept any
  timestamp up to 2^63 - 1.

Opening follows the spec: signatures from unknown (name, key id) pairs are ignored, however
many and however often one repeats (parsing checks the structure only and cannot know which
keys are known); every signature from a known key is verified, and one that fails rejects
the whole note (:class:`BadSignature`), so a second line by a known key cannot hide a bad
one; a line identical to one that verified (name, key id and signature) is not verified
again, as it says nothing more (a note of 100 copies of one line costs one verification);
a known key counts once however many of its lines verify; a note with no signature
from a known key is rejected (:class:`UnknownIssuer`); an empty set of verifiers rejects
everything. Malformed notes raise :class:`MalformedInput`.

Hand-written because no maintained Python library implements C2SP notes; all signing and
verifying goes through :mod:`ironroot.crypto`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Self

from ironroot.crypto import Algorithm, PublicKey, Signer, Verifier
from ironroot.errors import (
    BadSignature,
    ConfigError,
    LimitExceeded,
    MalformedInput,
    UnknownIssuer,
    UnsupportedAlgorithm,
)
from ironroot.log._checkpoint import Checkpoint, b64decode_canonical

__all__ = [
    "SIGNATURE_TYPE_ED25519",
    "SIGNATURE_TYPE_MLDSA44",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "note_key_id",
    "open_checkpoint",
    "open_note",
    "sign_checkpoint",
    "sign_note",
]

# An ASCII control character other than newline: never in a note (c2sp.org/signed-note: "those
# below U+0020"; DEL, U+007F, is not one of them, and Go's note package accepts it too).
_CONTROL: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")

SIGNATURE_TYPE_ED25519: Final = 0x01
"""C2SP signed-note signature type of Ed25519 note signatures."""
SIGNATURE_TYPE_MLDSA44: Final = 0x06
"""C2SP signature type of ML-DSA-44 (timestamped, ``subtree/v1``) checkpoint signatures."""

MAX_NOTE_BYTES: Final = 1 << 20
MAX_SIGNATURES: Final = 100

_SIG_PREFIX: Final = "\u2014 "
_ED25519_KEY = 32
_ED25519_SIG = 64
_MLDSA44_KEY = 1312
_MLDSA44_SIG = 2420
_SUBTREE_LABEL: Final = b"subtree/v1\n\x00"
_MAX_TIMESTAMP = (1 << 63) - 1
_KEY_SIZES: Final = {SIGNATURE_TYPE_ED25519: _ED25519_KEY, SIGNATURE_TYPE_MLDSA44: _MLDSA44_KEY}


def _check_name(name: object, what: str = "note key name") -> str:
    if not isinstance(name, str) or not name:
        raise MalformedInput(f"a {what} must be a non-empty string")
    if any(c.isspace() or c == "+" or ord(c) < 0x20 for c in name):
        raise MalformedInput(f"a {what} must not contain spaces, '+' or control characters")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(f"a {what} must be valid Unicode text") from exc
    return name


def note_key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || signature type || public key)[:4]."""
    _check_name(name)
    if not 0 <= signature_type <= 0xFF:
        raise MalformedInput("a signature type is one byte")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([signature_type]) + public_key)
    return digest.digest()[:4]


def _check_timestamp(timestamp: object) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise MalformedInput("a cosignature timestamp must be an integer")
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise MalformedInput("a cosignature timestamp must be between 0 and 2^63 - 1")
    return timestamp


def subtree_v1_message(name: str, timestamp: int, checkpoint: Checkpoint) -> bytes:
    """What an ML-DSA-44 ``subtree/v1`` (co)signature signs for a whole checkpoint (start 0,
    end = size): the binary ``cosigned_message`` of c2sp.org/tlog-cosignature."""
    cosigner = _check_name(name, "cosigner name").encode("utf-8")
    origin = checkpoint.origin.encode("utf-8")
    if len(cosigner) > 255 or len(origin) > 255:
        raise LimitExceeded("subtree/v1 needs a cosigner name and origin of 255 bytes or less")
    return b"".join(
        (
            _SUBTREE_LABEL,
            bytes([len(cosigner)]),
            cosigner,
            struct.pack(">Q", _check_timestamp(timestamp)),
            bytes([len(origin)]),
            origin,
            struct.pack(">QQ", 0, checkpoint.size),
            checkpoint.root,
        )
    )


def _cosigned_message(name: str, timestamp: int, body: bytes) -> bytes:
    """The ``subtree/v1`` message for a whole checkpoint body without extension lines."""
    checkpoint = Checkpoint.parse(body)
    if checkpoint.extensions:
        raise MalformedInput("ML-DSA-44 checkpoint signatures do not cover extension lines")
    return subtree_v1_message(name, timestamp, checkpoint)


class VerifierKey:
    """A named C2SP verifier key: name, signature type, public key and 4-byte key id
    (``SHA-256(name || 0x0A || type || key)[:4]``), its vkey string and the parser of one.

    Subclasses say which signature types they accept (``TYPES``, type → algorithm; an
    ``EdDSA`` key counts as Ed25519), what their names are called (``NAME``) and what a
    type is called in messages (``KIND``)."""

    __slots__ = ("_key", "_key_id", "_name", "_public", "_type")

    TYPES: ClassVar[Mapping[int, Algorithm]]
    NAME: ClassVar[str]
    KIND: ClassVar[str]

    def __init__(self, name: str, public_key: PublicKey) -> None:
        self._name = self.check_name(name)
        self._type = self.type_for(public_key.algorithm)
        self._key = public_key
        self._public = public_key.raw_bytes()
        self._key_id = note_key_id(self._name, self._type, self._public)

    @classmethod
    def check_name(cls, name: object) -> str:
        """``name`` if it can name a key of this kind; :class:`MalformedInput` otherwise."""
        return _check_name(name, cls.NAME)

    @classmethod
    def type_for(cls, algorithm: Algorithm) -> int:
        """The signature type of a key of ``algorithm``; :class:`UnsupportedAlgorithm` when
        this kind of key has none."""
        wanted = Algorithm.ED25519 if algorithm is Algorithm.EDDSA else algorithm
        for signature_type, accepted in cls.TYPES.items():
            if accepted is wanted:
                return signature_type
        raise UnsupportedAlgorithm(f"{algorithm.label} keys have no {cls.KIND}")

    @classmethod
    def from_vkey(cls, vkey: str) -> Self:
        """Parse a verifier key string; the key id must match the name and key."""
        name, hex_id, public = parse_vkey(vkey, cls.TYPES, cls.check_name, cls.KIND)
        verifier = cls(name, public)
        if verifier.key_id.hex() != hex_id:
            raise MalformedInput("the verifier key id does not match its name and key")
        return verifier

    @classmethod
    def of_signer(cls, name: str, signer: Signer, *, public_key: PublicKey | None = None) -> Self:
        """The verifier of ``signer``'s key named ``name``: what a signer of this kind signs
        with. ``public_key`` is needed only when ``signer.verifier()`` is not an in-memory
        :class:`~ironroot.crypto.PublicKey` (an HSM handle, for instance); it must be the
        signer's key (:class:`MalformedInput`) and of the signer's signature type
        (:class:`UnsupportedAlgorithm`, as is a signer of a type this kind has none of)."""
        if public_key is None:
            candidate: Verifier = signer.verifier()
            if not isinstance(candidate, PublicKey):
                raise UnsupportedAlgorithm("pass public_key for a signer without a PublicKey")
            public_key = candidate
        if cls.type_for(signer.algorithm) != cls.type_for(public_key.algorithm):
            raise UnsupportedAlgorithm("the public key does not match the signer's algorithm")
        if public_key.kid != signer.kid:
            raise MalformedInput("the public key is not the signer's key")
        return cls(name, public_key)

    @property
    def name(self) -> str:
        return self._name

    @property
    def key_id(self) -> bytes:
        """The 4-byte key id (big-endian uint32 on the wire)."""
        return self._key_id

    @property
    def signature_type(self) -> int:
        return self._type

    @property
    def public_key(self) -> PublicKey:
        return self._key

    @property
    def vkey(self) -> str:
        """The verifier key string ``<name>+<hex key id>+<base64(type || public key)>``."""
        material = base64.b64encode(bytes([self._type]) + self._public).decode("ascii")
        return f"{self._name}+{self._key_id.hex()}+{material}"

    def _verify_timestamped(
        self,
        signature: bytes,
        length: int,
        message: Callable[[int], bytes],
        *,
        what: str,
        uncovered: str,
    ) -> int:
        """Check a ``timestamped_signature`` (a u64 big-endian timestamp, then ``length``
        bytes of signature) over ``message(timestamp)``; returns its timestamp. Raises
        :class:`BadSignature` naming it ``what``, or saying ``uncovered`` (and why) when
        ``message`` finds nothing such a signature covers."""
        if len(signature) != 8 + length:
            raise BadSignature(f"{what} has the wrong length")
        (timestamp,) = struct.unpack(">Q", signature[:8])
        if timestamp > _MAX_TIMESTAMP:
            raise BadSignature(f"{what} has an invalid timestamp")
        try:
            signed = message(timestamp)
        except MalformedInput as exc:
            raise BadSignature(f"{uncovered}: {exc.detail}") from exc
        self._key.verify(signature[8:], signed)
        return int(timestamp)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, type(self)) and type(other) is type(self) and other.vkey == self.vkey
        )

    def __hash__(self) -> int:
        return hash((self._name, self._key_id))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self._name!r}, key_id={self._key_id.hex()}, "
            f"type=0x{self._type:02x})"
        )


class NoteVerifier(VerifierKey):
    """Verifies note signatures of one (name, key id): an Ed25519 or ML-DSA-44 public key."""

    __slots__ = ()

    TYPES: ClassVar[Mapping[int, Algorithm]] = {
        SIGNATURE_TYPE_ED25519: Algorithm.ED25519,
        SIGNATURE_TYPE_MLDSA44: Algorithm.ML_DSA_44,
    }
    NAME: ClassVar[str] = "note key name"
    KIND: ClassVar[str] = "note signature type"

    def verify(self, body: bytes, signature: bytes) -> None:
        """Check ``signature`` (without the key id) over the note text ``body``.

        Returns ``None`` or raises :class:`BadSignature`.
        """
        if self._type == SIGNATURE_TYPE_ED25519:
            if len(signature) != _ED25519_SIG:
                raise BadSignature(f"note signature by {self._name} has the wrong length")
            self._key.verify(signature, body)
            return
        self._verify_timestamped(
            signature,
            _MLDSA44_SIG,
            lambda timestamp: _cosigned_message(self._name, timestamp, body),
            what=f"note signature by {self._name}",
            uncovered=f"the ML-DSA-44 signature by {self._name} does not cover this note",
        )


class NoteSigner:
    """Signs notes as (name, key): wraps an :mod:`ironroot.crypto` Ed25519 or ML-DSA-44 signer.

    ``public_key`` is needed only when ``signer.verifier()`` is not an in-memory
    :class:`~ironroot.crypto.PublicKey` (an HSM handle, for instance).
    """

    __slots__ = ("_signer", "_verifier")

    def __init__(self, name: str, signer: Signer, *, public_key: PublicKey | None = None) -> None:
        self._verifier = NoteVerifier.of_signer(name, signer, public_key=public_key)
        self._signer = signer

    @property
    def name(self) -> str:
        return self._verifier.name

    @property
    def key_id(self) -> bytes:
        return self._verifier.key_id

    @property
    def signature_type(self) -> int:
        return self._verifier.signature_type

    def verifier(self) -> NoteVerifier:
        """The matching note verifier (also gives the vkey string to publish)."""
        return self._verifier

    def sign(self, body: bytes) -> bytes:
        """The signature over ``body`` as it goes after the key id in a signature line."""
        if self.signature_type == SIGNATURE_TYPE_ED25519:
            return self._signer.sign(body)
        timestamp = 0
        message = _cosigned_message(self.name, timestamp, body)
        return struct.pack(">Q", timestamp) + self._signer.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: key ``name``, 4-byte ``key_id`` and the ``signature`` after it."""

    name: str
    key_id: bytes
    signature: bytes

    def encode(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A parsed (not yet verified) signed note: the text ``body`` and its signature lines."""

    body: bytes
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> bytes:
        lines = "".join(s.encode() for s in self.signatures)
        return self.body + b"\n" + lines.encode("utf-8")

    @classmethod
    def parse(cls, text: bytes) -> Note:
        """Parse a signed note; structure only, no signature is checked. Lines that repeat
        a (name, key id) are kept: whether that key is known is for the verifier to say."""
        if not isinstance(text, bytes):
            raise MalformedInput("a signed note must be bytes")
        if len(text) > MAX_NOTE_BYTES:
            raise LimitExceeded("the signed note is too large")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput("the signed note is not UTF-8") from exc
        if _CONTROL.search(decoded):
            raise MalformedInput("the signed note contains a control character")
        if not decoded.endswith("\n"):
            raise MalformedInput("the signed note does not end with a newline")
        split = decoded.rfind("\n\n")
        if split < 0:
            raise MalformedInput("the signed note has no blank line before its signatures")
        body = decoded[: split + 1]
        sig_lines = decoded[split + 2 : -1].split("\n")
        if sig_lines == [""]:
            raise MalformedInput("the signed note has no signatures")
        if len(sig_lines) > MAX_SIGNATURES:
            raise LimitExceeded("the signed note has too many signatures")
        signatures: list[NoteSignature] = []
        for line in sig_lines:
            if not line.startswith(_SIG_PREFIX):
                raise MalformedInput("a note signature line must start with an em dash and space")
            name, sep, blob = line[len(_SIG_PREFIX) :].partition(" ")
            if not sep:
                raise MalformedInput("a note signature line needs a name and a signature")
            _check_name(name)
            raw = b64decode_canonical(blob, "a note signature")
            if len(raw) < 5:
                raise MalformedInput("a note signature is shorter than its key id")
            signatures.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
        return cls(body=body.encode("utf-8"), signatures=tuple(signatures))


def _check_body(body: bytes) -> None:
    if not isinstance(body, bytes):
        raise MalformedInput("a note body must be bytes")
    if len(body) > MAX_NOTE_BYTES // 2:
        raise LimitExceeded("the note body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInput("a note body must be UTF-8") from exc
    if not text.endswith("\n"):
        raise MalformedInput("a note body must end with a newline")
    if _CONTROL.search(text):
        raise MalformedInput("a note body must not contain control characters")


def sign_note(body: bytes, signers: Sequence[NoteSigner]) -> bytes:
    """Sign ``body`` with every signer; returns the signed note text (UTF-8 bytes)."""
    _check_body(body)
    if not signers:
        raise MalformedInput("a signed note needs at least one signer")
    seen: set[tuple[str, bytes]] = set()
    signatures = []
    for signer in signers:
        key = (signer.name, signer.key_id)
        if key in seen:
            raise MalformedInput("two signers share a name and key id")
        seen.add(key)
        signatures.append(NoteSignature(signer.name, signer.key_id, signer.sign(body)))
    return Note(body=body, signatures=tuple(signatures)).encode()


def open_note(text: bytes, verifiers: Iterable[NoteVerifier]) -> bytes:
    """Verify a signed note and return its body (the text the signatures cover).

    Raises :class:`MalformedInput` for a malformed note, :class:`BadSignature` if a signature
    by a known key fails, :class:`UnknownIssuer` if no known key signed it, and
    :class:`ConfigError` when two of ``verifiers`` share the name and key id a signature names.
    """
    note = Note.parse(text)
    known: dict[tuple[str, bytes], set[NoteVerifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), set()).add(v)
    verified = False
    for sig in dict.fromkeys(note.signatures):  # a repeated line says nothing more (module docs)
        candidates = known.get((sig.name, sig.key_id))
        if not candidates:
            continue
        if len(candidates) > 1:
            # two trusted keys of one name whose 4-byte ids collide: which one signed is
            # unknowable, and trying each would let either stand for the other (as Go's
            # note package, refused as ambiguous)
            raise ConfigError(
                f"two trusted keys of {sig.name} share the key id {sig.key_id.hex()}: "
                "a signature by that id is ambiguous"
            )
        (verifier,) = candidates
        verifier.verify(note.body, sig.signature)
        verified = True
    if not verified:
        raise UnknownIssuer("the note carries no signature from a trusted key")
    return note.body


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> bytes:
    """The signed note of ``checkpoint``."""
    return sign_note(checkpoint.encode(), signers)


def open_checkpoint(
    text: bytes, verifiers: Iterable[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note and parse its body; check the origin when given."""
    checkpoint = Checkpoint.parse(open_note(text, verifiers))
    if origin is not None and checkpoint.origin != origin:
        raise UnknownIssuer(f"the checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


_VKEY_SIZES: Final = {Algorithm.ED25519: _ED25519_KEY, Algorithm.ML_DSA_44: _MLDSA44_KEY}


def parse_vkey(
    vkey: object,
    types: Mapping[int, Algorithm],
    check_name: Callable[[object], str],
    kind: str,
) -> tuple[str, str, PublicKey]:
    """Split a C2SP verifier key ``<name>+<hex key id>+<base64(type || public key)>`` into
    its name, key id (hex) and public key; ``types`` maps the signature types accepted (of
    ``kind``, for the message) to Ed25519 or ML-DSA-44. The caller checks the key id against
    the name and key (its derivation depends on the kind of key)."""
    if not isinstance(vkey, str):
        raise MalformedInput("a verifier key must be a string")
    if len(vkey) > 8192:
        raise LimitExceeded("the verifier key is too long")
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        raise MalformedInput("a verifier key has the form <name>+<key id>+<key>")
    name, hex_id, material = parts
    check_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise MalformedInput("a verifier key id must be 8 lowercase hex digits")
    raw = b64decode_canonical(material, "the verifier key material")
    if not raw:
        raise MalformedInput("the verifier key material is empty")
    sig_type, key = raw[0], raw[1:]
    algorithm = types.get(sig_type)
    if algorithm is None:
        accepted = " or ".join(f"0x{t:02x}" for t in sorted(types))
        raise UnsupportedAlgorithm(f"unsupported {kind} 0x{sig_type:02x} (accepted: {accepted})")
    size = _VKEY_SIZES[algorithm]
    if len(key) != size:
        raise MalformedInput(f"a type 0x{sig_type:02x} public key must be {size} bytes")
    try:
        if algorithm is Algorithm.ED25519:
            public = PublicKey.from_cose_key({1: 1, -1: 6, -2: key})
        else:
            public = PublicKey.from_cose_key({1: 7, 3: Algorithm.ML_DSA_44.cose_id, -1: key})
    except UnsupportedAlgorithm as exc:
        raise MalformedInput("the verifier key material is not a valid public key") from exc
    return name, hex_id, public
