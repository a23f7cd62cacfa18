"""SPDM signatures: the 1.2+ signing contexts and the transcripts they cover.

From SPDM 1.2 (DSP0274 "Signature generation") a signer signs ``combined_spdm_prefix ‖
Hash(M)`` with the negotiated BaseAsymAlgo, whose ECDSA hashes that message again with the
negotiated BaseHashAlgo. ``combined_spdm_prefix`` is 100 bytes:

- 64 bytes: the version string ``dmtf-spdm-v1.2.*`` (``v1.3.*`` for 1.3) four times;
- 36 bytes: the signing context string, right-aligned behind zero padding — for MEASUREMENTS
  ``responder-measurements signing`` (30 bytes) after 6 zero bytes, for CHALLENGE_AUTH
  ``responder-challenge_auth signing`` (32 bytes) after 4.

For MEASUREMENTS, M is L1/L2: the VCA messages (GET_VERSION, VERSION, GET_CAPABILITIES,
CAPABILITIES, NEGOTIATE_ALGORITHMS, ALGORITHMS, as sent) followed by every GET_MEASUREMENTS
request and MEASUREMENTS response since L1/L2 was last reset, the last response without its
signature. Any request other than GET_MEASUREMENTS resets it, and so does a signed response.

SPDM 1.0 and 1.1 have no signing context: the responder signs L1/L2 itself (the base
asymmetric algorithm hashes it with the base hash), and L1/L2 is only the GET_MEASUREMENTS
requests and MEASUREMENTS responses since the last reset, the last without its signature
(no VCA messages: DSP0274 1.1 "Measurement signature", and DMTF libspdm's "standard
measurement report"). :func:`measurement_signing_message` returns that transcript unchanged
for those versions.

For CHALLENGE_AUTH, M is M1/M2 = A ‖ B ‖ C: A the VCA messages; B the GET_DIGESTS, DIGESTS,
GET_CERTIFICATE and CERTIFICATE messages (GET_DIGESTS starts B over; each certificate portion
is appended); C the CHALLENGE request and the CHALLENGE_AUTH response without its signature.
B is emptied by a new VCA, by a CHALLENGE (once M1/M2 is signed or verified), and by
GET_MEASUREMENTS while no CHALLENGE has completed — the rules DMTF's libspdm follows.

A :class:`Transcript` holds at most ``MAX_TRANSCRIPT_SIZE`` bytes (A, B and L1/L2 together): a
message that would take it past that raises :class:`~ironroot.errors.SpdmProtocolError` and is
not recorded, so a peer repeating requests cannot grow it without bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ironroot.crypto import Verifier
from ironroot.errors import BadSignature, MalformedSpdm, SpdmProtocolError
from ironroot.spdm._constants import MAX_TRANSCRIPT_SIZE, BaseHashAlgo, SpdmVersion, base_hash
from ironroot.spdm._measurements import AnyMeasurementBlock

__all__ = [
    "CHALLENGE_AUTH_SIGNING_CONTEXT",
    "MEASUREMENTS_SIGNING_CONTEXT",
    "Transcript",
    "challenge_auth_signing_message",
    "check_transcript_signature",
    "combined_spdm_prefix",
    "measurement_signing_message",
    "measurement_summary_hash",
]

MEASUREMENTS_SIGNING_CONTEXT: Final = b"responder-measurements signing"
CHALLENGE_AUTH_SIGNING_CONTEXT: Final = b"responder-challenge_auth signing"
_PREFIX_REPEAT: Final = 4
_CONTEXT_FIELD: Final = 36


def combined_spdm_prefix(version: SpdmVersion, context: bytes) -> bytes:
    """The 100-byte SPDM 1.2+ signing prefix for ``version`` and ``context``."""
    if version < SpdmVersion.V1_2:
        raise MalformedSpdm("signing contexts exist from SPDM 1.2")
    if len(context) > _CONTEXT_FIELD:
        raise MalformedSpdm("SPDM signing context string longer than 36 bytes")
    label = f"dmtf-spdm-v{version >> 4}.{version & 0xF}.*".encode("ascii")
    return label * _PREFIX_REPEAT + bytes(_CONTEXT_FIELD - len(context)) + context


def check_transcript_signature(
    key: Verifier, signature: bytes, message: bytes, response: str, transcript: str
) -> None:
    """``signature`` by ``key`` over ``message`` (the signing message of ``transcript``, e.g.
    ``L1/L2``); else ``BadSignature`` naming the ``response`` and the transcript."""
    try:
        key.verify(signature, message)
    except BadSignature as exc:
        raise BadSignature(f"the {response} signature does not verify over {transcript}") from exc


def measurement_signing_message(
    version: SpdmVersion, hash_algo: BaseHashAlgo, transcript: bytes
) -> bytes:
    """What the responder's key signs for MEASUREMENTS: prefix ‖ Hash(L1/L2) from SPDM 1.2,
    L1/L2 itself under 1.0 and 1.1."""
    if version < SpdmVersion.V1_2:
        return transcript
    return combined_spdm_prefix(version, MEASUREMENTS_SIGNING_CONTEXT) + base_hash(
        hash_algo, transcript
    )


def challenge_auth_signing_message(
    version: SpdmVersion, hash_algo: BaseHashAlgo, transcript: bytes
) -> bytes:
    """What the responder's key signs for CHALLENGE_AUTH: prefix ‖ Hash(M1/M2)."""
    return combined_spdm_prefix(version, CHALLENGE_AUTH_SIGNING_CONTEXT) + base_hash(
        hash_algo, transcript
    )


def measurement_summary_hash(
    blocks: Iterable[AnyMeasurementBlock], hash_algo: BaseHashAlgo
) -> bytes:
    """The CHALLENGE_AUTH MeasurementSummaryHash over ``blocks``: the base hash of the
    measurement blocks concatenated in index order, as MEASUREMENTS carries them."""
    ordered = sorted(blocks, key=lambda block: block.index)
    return base_hash(hash_algo, b"".join(block.encode() for block in ordered))


class Transcript:
    """The VCA messages (A), the certificate messages (B) and the running L1/L2 measurement
    messages of one connection."""

    __slots__ = ("_b", "_m", "_vca")

    def __init__(self) -> None:
        self._vca = bytearray()
        self._b = bytearray()
        self._m = bytearray()

    def start_vca(self, get_version: bytes, version: bytes) -> None:
        """GET_VERSION starts over: the transcript is that exchange and nothing else."""
        self._vca = bytearray(get_version + version)
        self._b = bytearray()
        self._m = bytearray()

    def reset_b(self) -> None:
        self._b = bytearray()

    def _room_for(self, message: bytes) -> None:
        if len(self._vca) + len(self._b) + len(self._m) + len(message) > MAX_TRANSCRIPT_SIZE:
            raise SpdmProtocolError(f"the SPDM transcript would exceed {MAX_TRANSCRIPT_SIZE} bytes")

    def add_b(self, message: bytes) -> None:
        self._room_for(message)
        self._b += message

    def m1m2(self, challenge: bytes, challenge_auth_unsigned: bytes) -> bytes:
        """M1/M2 = A ‖ B ‖ C for the CHALLENGE exchange ``challenge`` / its response."""
        return bytes(self._vca + self._b) + challenge + challenge_auth_unsigned

    def add_vca(self, message: bytes) -> None:
        self._room_for(message)
        self._vca += message

    def add_measurement(self, message: bytes) -> None:
        self._room_for(message)
        self._m += message

    def reset_measurements(self) -> None:
        self._m = bytearray()

    @property
    def has_measurements(self) -> bool:
        """Whether L1/L2 holds measurement messages after the VCA."""
        return bool(self._m)

    @property
    def vca(self) -> bytes:
        return bytes(self._vca)

    def l1l2(self) -> bytes:
        """L1/L2 for SPDM 1.2+: VCA followed by the measurement messages."""
        return bytes(self._vca + self._m)
