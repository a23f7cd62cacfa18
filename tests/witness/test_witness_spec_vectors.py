"""The examples of c2sp.org/tlog-witness and c2sp.org/tlog-cosignature, byte for byte.

The spec's add-checkpoint request and response bodies are illustrative (their proof hashes and
signatures are placeholders: a proof from 20852014 to 20852163 has 18 hashes, not 4), so they
are checked for what they do fix: the wire syntax, round trips to the same bytes, key ids,
the timestamp of the tlog-cosignature example, and the signed message format."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest

from ironroot.crypto import Algorithm, PrivateKey
from ironroot.errors import BadSignature, MalformedInput
from ironroot.log import Checkpoint, Note, NoteSigner, sign_checkpoint
from ironroot.witness import (
    COSIGNATURE_TYPE_ED25519,
    COSIGNATURE_TYPE_MLDSA44,
    TLOG_SIZE_MEDIA_TYPE,
    AddCheckpoint,
    CosignatureVerifier,
    Cosigner,
    cosignature_v1_message,
    monitoring_path,
    parse_cosignatures,
)
from ironroot.witness._protocol import encode_cosignatures, encode_size, parse_size

DASH = "\u2014"
SOFA = b"example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
LOG_LINE_1 = (
    f"{DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
    "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)
LOG_LINE_2 = (
    f"{DASH} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks"
    "+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
# c2sp.org/tlog-witness, "add-checkpoint", the example request body.
REQUEST = (
    (
        b"old 20852014\n"
        b"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        b"jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
        b"5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
        b"/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
        b"\n"
    )
    + SOFA
    + b"\n"
    + (LOG_LINE_1 + LOG_LINE_2).encode()
)
# ... and the example response body.
RESPONSE = (
    f"{DASH} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvV"
    "jyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
    f"{DASH} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64v"
    "WhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n"
    f"{DASH} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbY"
    "KA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
).encode()
# c2sp.org/tlog-cosignature: the example cosigned checkpoint's witness line and signed message.
COSIG_LINE = (
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)
SIGNED_MESSAGE = (
    b"cosignature/v1\n"
    b"time 1679315147\n"
    b"example.com/behind-the-sofa\n"
    b"20852163\n"
    b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)


def test_the_cosignature_v1_message_is_the_spec_s_text() -> None:
    assert cosignature_v1_message(SOFA, 1679315147) == SIGNED_MESSAGE


def test_the_spec_s_cosigned_checkpoint_parses_and_its_timestamp_is_the_message_s() -> None:
    note = Note.parse(SOFA + b"\n" + LOG_LINE_1.encode() + COSIG_LINE.encode())
    assert note.body == SOFA
    log_sig, cosig = note.signatures
    assert log_sig.name == "example.com/behind-the-sofa"
    assert cosig.name == "witness.example.com/w1"
    assert cosig.key_id.hex() == "8d66cf3f"
    # timestamped_signature: u64 big-endian timestamp, then the 64-byte Ed25519 signature.
    assert len(cosig.signature) == 8 + 64
    (timestamp,) = struct.unpack(">Q", cosig.signature[:8])
    assert timestamp == 1679315147
    assert cosignature_v1_message(note.body, timestamp) == SIGNED_MESSAGE


def test_the_example_request_parses_and_encodes_to_the_same_bytes() -> None:
    request = AddCheckpoint.parse(REQUEST)
    assert request.old_size == 20852014
    assert [base64.b64encode(h).decode() for h in request.proof] == [
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=",
        "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=",
        "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=",
        "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=",
    ]
    note = Note.parse(request.checkpoint)
    assert Checkpoint.parse(note.body) == Checkpoint(
        "example.com/behind-the-sofa",
        20852163,
        base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="),
    )
    assert len(note.signatures) == 2  # "The submitted checkpoint MAY include multiple signatures"
    assert request.encode() == REQUEST


def test_the_example_response_parses_and_encodes_to_the_same_bytes() -> None:
    lines = parse_cosignatures(RESPONSE)
    assert [line.name for line in lines] == [
        "witness.example/w1",
        "witness.example/w1",
        "witness.example/w2",
    ]
    assert all(len(line.signature) == 8 + 64 for line in lines)  # timestamped Ed25519
    assert encode_cosignatures(lines) == RESPONSE


def test_conflict_body_and_media_type() -> None:
    assert TLOG_SIZE_MEDIA_TYPE == "text/x.tlog.size"
    assert encode_size(20852014) == b"20852014\n"
    assert parse_size(b"0\n") == 0
    for bad in (b"20852014", b"020\n", b"-1\n", b" 1\n", b"1\r\n"):
        with pytest.raises(MalformedInput):
            parse_size(bad)


def test_monitoring_path_is_the_lowercase_hex_sha256_of_the_origin() -> None:
    digest = hashlib.sha256(b"example.com/behind-the-sofa").hexdigest()
    assert monitoring_path("example.com/behind-the-sofa") == f"{digest}/checkpoint"
    assert digest == digest.lower()


@pytest.mark.parametrize(
    ("algorithm", "sig_type"),
    [
        (Algorithm.ED25519, COSIGNATURE_TYPE_ED25519),
        (Algorithm.ML_DSA_44, COSIGNATURE_TYPE_MLDSA44),
    ],
)
def test_key_ids_follow_the_spec_formula(algorithm: Algorithm, sig_type: int) -> None:
    key = PrivateKey.generate(algorithm)
    verifier = Cosigner("witness.example/w1", key).verifier()
    raw = key.public_key.raw_bytes()
    want = hashlib.sha256(b"witness.example/w1\n" + bytes([sig_type]) + raw).digest()[:4]
    assert verifier.key_id == want
    assert verifier.vkey == (
        f"witness.example/w1+{want.hex()}+{base64.b64encode(bytes([sig_type]) + raw).decode()}"
    )
    assert CosignatureVerifier.from_vkey(verifier.vkey) == verifier


def test_a_cosignature_at_the_spec_s_time_signs_the_spec_s_message() -> None:
    key = PrivateKey.generate(Algorithm.ED25519)
    line = Cosigner("witness.example.com/w1", key).cosign(SOFA, 1679315147)
    assert line.signature[:8] == struct.pack(">Q", 1679315147)
    key.public_key.verify(line.signature[8:], SIGNED_MESSAGE)  # raises if not this message
    verifier = Cosigner("witness.example.com/w1", key).verifier()
    assert verifier.verify(SOFA, line.signature) == 1679315147
    with pytest.raises(BadSignature):
        verifier.verify(SOFA.replace(b"20852163", b"20852164"), line.signature)


def test_the_logs_ml_dsa_44_signature_is_a_subtree_v1_cosignature() -> None:
    """Two implementations of one format agree: the log's own ML-DSA-44 checkpoint signature
    (ironroot.log, timestamp 0) verifies as a tlog-cosignature 0x06 cosignature."""
    key = PrivateKey.generate(Algorithm.ML_DSA_44)
    checkpoint = Checkpoint.parse(SOFA)
    note = Note.parse(sign_checkpoint(checkpoint, [NoteSigner("example.com/behind-the-sofa", key)]))
    verifier = CosignatureVerifier("example.com/behind-the-sofa", key.public_key)
    (line,) = note.signatures
    assert verifier.matches(line)
    assert verifier.verify(note.body, line.signature) == 0
