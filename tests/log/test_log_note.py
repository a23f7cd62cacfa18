"""Signed notes: the Go sumdb/note vector, C2SP examples, vkeys, ML-DSA-44, and rejections."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_testkit import ORIGIN, ed25519_key, mldsa_key, signer

from hypothesis_budget import examples
from ironroot.crypto import Algorithm, PrivateKey, PublicKey
from ironroot.errors import (
    BadSignature,
    ConfigError,
    LimitExceeded,
    MalformedInput,
    UnknownIssuer,
    UnsupportedAlgorithm,
)
from ironroot.log import (
    SIGNATURE_TYPE_ED25519,
    SIGNATURE_TYPE_MLDSA44,
    Checkpoint,
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    note_key_id,
    open_checkpoint,
    open_note,
    sign_checkpoint,
    sign_note,
)

# golang.org/x/mod/sumdb/note note_test.go: the PeterNeumann key pair and signed note.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + b"\n" + GO_SIG.encode()

# c2sp.org/signed-note and c2sp.org/tlog-cosignature examples.
C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
).encode()
C2SP_COSIGNED = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 "
    "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZ"
    "qhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
).encode()

_PKCS8_ED25519_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


def _go_private_key() -> PrivateKey:
    name, key_hash, material = GO_SKEY.split("+", 4)[2:]
    assert (name, key_hash) == ("PeterNeumann", "c74f20a3")
    raw = base64.b64decode(material)
    assert raw[0] == SIGNATURE_TYPE_ED25519
    der = _PKCS8_ED25519_PREFIX + raw[1:]
    pem = (
        b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + b"-----END PRIVATE KEY-----\n"
    )
    return PrivateKey.from_pem(pem, Algorithm.EDDSA)


# --- interop vectors ------------------------------------------------------------------------


def test_go_vkey_parses_to_its_name_and_key_id() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == bytes.fromhex("c74f20a3")
    assert verifier.signature_type == SIGNATURE_TYPE_ED25519
    assert verifier.vkey == GO_VKEY


def test_go_note_signs_byte_for_byte_and_opens() -> None:
    note_signer = NoteSigner("PeterNeumann", _go_private_key())
    assert note_signer.verifier().vkey == GO_VKEY
    assert sign_note(GO_TEXT, [note_signer]) == GO_NOTE
    assert open_note(GO_NOTE, [NoteVerifier.from_vkey(GO_VKEY)]) == GO_TEXT


def test_go_note_with_changed_text_is_a_bad_signature() -> None:
    forged = GO_NOTE.replace(b"cryptography", b"cryptographY")
    with pytest.raises(BadSignature):
        open_note(forged, [NoteVerifier.from_vkey(GO_VKEY)])


def test_c2sp_signed_note_example_splits_at_the_last_blank_line() -> None:
    note = Note.parse(C2SP_NOTE)
    assert note.body.endswith("ed è subito sera.\n".encode())
    assert b"\n\n" in note.body
    assert [s.name for s in note.signatures] == ["quasimodo.example/salvatore"]
    assert note.encode() == C2SP_NOTE
    # Nobody we know signed it.
    with pytest.raises(UnknownIssuer):
        open_note(C2SP_NOTE, [NoteVerifier.from_vkey(GO_VKEY)])


def test_c2sp_cosigned_checkpoint_example_parses() -> None:
    note = Note.parse(C2SP_COSIGNED)
    checkpoint = Checkpoint.parse(note.body)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    log_sig, witness_sig = note.signatures
    assert log_sig.name == "example.com/behind-the-sofa"
    assert len(log_sig.signature) == 64
    assert witness_sig.key_id == bytes.fromhex("8d66cf3f")
    # timestamped_signature: the example's "time 1679315147" then 64 signature bytes.
    assert struct.unpack(">Q", witness_sig.signature[:8]) == (1679315147,)
    assert len(witness_sig.signature) == 72
    assert note.encode() == C2SP_COSIGNED


# --- key ids and vkeys ---------------------------------------------------------------------


def test_key_id_is_the_truncated_hash_of_name_type_and_key() -> None:
    key = ed25519_key()
    raw = key.public_key.raw_bytes()
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert note_key_id(ORIGIN, SIGNATURE_TYPE_ED25519, raw) == expected
    assert signer(key).key_id == expected


@pytest.mark.parametrize("make_key", [ed25519_key, mldsa_key])
def test_vkey_round_trip(make_key: object) -> None:
    key = make_key()  # type: ignore[operator]
    verifier = signer(key).verifier()
    again = NoteVerifier.from_vkey(verifier.vkey)
    assert again == verifier
    assert again.key_id == verifier.key_id
    assert again.public_key == key.public_key


def test_mldsa_vkey_uses_type_0x06_and_the_1312_byte_key() -> None:
    verifier = signer(mldsa_key()).verifier()
    name, key_id, material = verifier.vkey.split("+", 2)
    raw = base64.b64decode(material)
    assert (name, raw[0], len(raw)) == (ORIGIN, SIGNATURE_TYPE_MLDSA44, 1 + 1312)
    assert bytes.fromhex(key_id) == hashlib.sha256(ORIGIN.encode() + b"\n" + raw).digest()[:4]


def test_every_one_character_change_of_a_vkey_is_rejected() -> None:
    for i in range(len(GO_VKEY)):
        mangled = GO_VKEY[:i] + chr(ord(GO_VKEY[i]) + 1) + GO_VKEY[i + 1 :]
        with pytest.raises(MalformedInput):
            NoteVerifier.from_vkey(mangled)


@pytest.mark.parametrize(
    "vkey",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",
        "PeterNeumann+c74f20a3+",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(MalformedInput):
        NoteVerifier.from_vkey(vkey)


def test_vkey_of_an_unassigned_signature_type_is_unsupported() -> None:
    material = base64.b64encode(b"\x02" + bytes(32)).decode()
    key_id = note_key_id("x.example", 2, bytes(32)).hex()
    with pytest.raises(UnsupportedAlgorithm):
        NoteVerifier.from_vkey(f"x.example+{key_id}+{material}")


def test_only_ed25519_and_mldsa44_keys_can_sign_notes() -> None:
    with pytest.raises(UnsupportedAlgorithm):
        NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ES256))
    with pytest.raises(UnsupportedAlgorithm):
        NoteSigner(ORIGIN, PrivateKey.generate(Algorithm.ML_DSA_65))


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\tname", "\ud800"])
def test_bad_key_names_are_rejected(name: str) -> None:
    with pytest.raises(MalformedInput):
        NoteSigner(name, ed25519_key())


# --- ML-DSA-44 checkpoint signatures --------------------------------------------------------


def _cosigned_message(name: str, origin: str, size: int, root: bytes) -> bytes:
    """The tlog-cosignature struct, built from the spec independently of the library."""
    return (
        b"subtree/v1\n\x00"
        + bytes([len(name)])
        + name.encode()
        + (0).to_bytes(8, "big")
        + bytes([len(origin)])
        + origin.encode()
        + (0).to_bytes(8, "big")
        + size.to_bytes(8, "big")
        + root
    )


def test_mldsa44_signature_is_timestamped_over_the_cosigned_message() -> None:
    key = mldsa_key()
    checkpoint = Checkpoint(ORIGIN, 12345, hashlib.sha256(b"root").digest())
    note = Note.parse(sign_checkpoint(checkpoint, [signer(key)]))
    (sig,) = note.signatures
    assert sig.key_id == signer(key).key_id
    assert sig.signature[:8] == bytes(8)  # the log makes no time statement
    assert len(sig.signature) == 8 + 2420
    key.public_key.verify(
        sig.signature[8:], _cosigned_message(ORIGIN, ORIGIN, 12345, checkpoint.root)
    )
    assert open_checkpoint(note.encode(), [signer(key).verifier()], origin=ORIGIN) == checkpoint


def test_mldsa44_verifier_accepts_a_nonzero_timestamp() -> None:
    key = mldsa_key()
    checkpoint = Checkpoint(ORIGIN, 7, hashlib.sha256(b"seven").digest())
    message = bytearray(_cosigned_message(ORIGIN, ORIGIN, 7, checkpoint.root))
    stamp = (1679315147).to_bytes(8, "big")
    message[12 + 1 + len(ORIGIN) : 12 + 1 + len(ORIGIN) + 8] = stamp
    raw = stamp + key.sign(bytes(message))
    verifier = signer(key).verifier()
    verifier.verify(checkpoint.encode(), raw)
    with pytest.raises(BadSignature):
        verifier.verify(checkpoint.encode(), (1679315148).to_bytes(8, "big") + raw[8:])


def test_mldsa44_refuses_checkpoints_with_extension_lines() -> None:
    key = mldsa_key()
    body = Checkpoint(ORIGIN, 1, bytes(32), ("ext",)).encode()
    with pytest.raises(MalformedInput):
        sign_note(body, [signer(key)])
    # Nor does it accept one (its signature would not cover the extension line).
    plain = Checkpoint(ORIGIN, 1, bytes(32)).encode()
    sig = signer(key).sign(plain)
    with pytest.raises(BadSignature):
        signer(key).verifier().verify(body, sig)


def test_mldsa44_signature_over_a_non_checkpoint_is_a_bad_signature() -> None:
    key = mldsa_key()
    sig = signer(key).sign(Checkpoint(ORIGIN, 1, bytes(32)).encode())
    with pytest.raises(BadSignature):
        signer(key).verifier().verify(b"hello\n", sig)
    with pytest.raises(MalformedInput):
        signer(key).sign(b"hello\n")


def test_note_with_both_signatures_opens_with_either_key() -> None:
    ed, ml = ed25519_key(), mldsa_key()
    checkpoint = Checkpoint(ORIGIN, 3, hashlib.sha256(b"3").digest())
    text = sign_checkpoint(checkpoint, [signer(ed), signer(ml)])
    assert open_checkpoint(text, [signer(ed).verifier()]) == checkpoint
    assert open_checkpoint(text, [signer(ml).verifier()]) == checkpoint


# --- opening: trust decisions ---------------------------------------------------------------


def test_two_trusted_keys_whose_ids_collide_are_ambiguous() -> None:
    # A 4-byte key id collides after ~2**32 tries: an attacker who can get its key trusted
    # under the log's name (a second vkey in a configuration) must not stand in for the log's
    # key, nor hide it (keeping one of the two, the other's signatures went unchecked).
    genuine, colliding = signer(ed25519_key()), signer(ed25519_key())
    text = sign_note(b"hello\n", [genuine])
    forged = colliding.verifier()
    forged._key_id = genuine.verifier().key_id  # type: ignore[misc]  # the collision found
    assert forged != genuine.verifier()
    for order in ([genuine.verifier(), forged], [forged, genuine.verifier()]):
        with pytest.raises(ConfigError, match=r"share the key id .*: a signature by that id is"):
            open_note(text, order)
    # the same key given twice is one key
    assert open_note(text, [genuine.verifier(), genuine.verifier()]) == b"hello\n"


def test_unknown_key_is_ignored_and_no_known_key_is_unknown_issuer() -> None:
    text = sign_note(b"hello\n", [signer(ed25519_key())])
    other = signer(ed25519_key()).verifier()  # same name, other key id
    with pytest.raises(UnknownIssuer):
        open_note(text, [other])
    with pytest.raises(UnknownIssuer):
        open_note(text, [])


def test_one_failing_known_signature_rejects_the_note() -> None:
    good, bad = ed25519_key(), ed25519_key()
    text = sign_note(b"hello\n", [signer(good), signer(bad, "other.example")])
    note = Note.parse(text)
    broken = note.signatures[1].signature[:-1] + bytes([note.signatures[1].signature[-1] ^ 1])
    tampered = Note(
        note.body,
        (
            note.signatures[0],
            type(note.signatures[1])("other.example", note.signatures[1].key_id, broken),
        ),
    ).encode()
    assert open_note(text, [signer(good).verifier(), signer(bad, "other.example").verifier()])
    with pytest.raises(BadSignature):
        open_note(tampered, [signer(good).verifier(), signer(bad, "other.example").verifier()])


_KNOWN = ed25519_key()
_STRANGER = ed25519_key()


def _lines(*signers_: NoteSigner) -> tuple[NoteSignature, ...]:
    return Note.parse(sign_note(b"hello\n", list(signers_))).signatures


@pytest.mark.parametrize(
    "case", ["several unknown keys", "one unknown key twice", "a known name, another key id"]
)
def test_lines_by_unknown_keys_are_ignored_however_many_and_repeated(case: str) -> None:
    """c2sp.org/signed-note: verifiers MUST ignore signatures from unknown keys, even if they
    share a name or an id with a known key. A (name, key id) repeated by an unknown key was
    refused as malformed (a witness answered 403 to such a checkpoint)."""
    (known,) = _lines(signer(_KNOWN))
    a, b = _lines(signer(_STRANGER, "a.example"), signer(_STRANGER, "b.example"))
    (same_name,) = _lines(signer(_STRANGER))  # the known key's name, another key id
    unknown = {
        "several unknown keys": (a, b, a),
        "one unknown key twice": (a, a),
        "a known name, another key id": (same_name, same_name),
    }[case]
    verifiers = [signer(_KNOWN).verifier()]
    for lines in ((*unknown, known), (known, *unknown)):
        assert open_note(Note(b"hello\n", lines).encode(), verifiers) == b"hello\n"
    with pytest.raises(UnknownIssuer):  # and none of them stands for the known key
        open_note(Note(b"hello\n", unknown).encode(), verifiers)


def test_a_known_key_s_line_repeated_opens_and_every_one_of_them_must_verify() -> None:
    (known,) = _lines(signer(_KNOWN))
    text = Note(b"hello\n", (known, known)).encode()
    assert open_note(text, [signer(_KNOWN).verifier()]) == b"hello\n"
    bad = NoteSignature(known.name, known.key_id, bytes(64))
    for lines in ((known, bad), (bad, known)):
        with pytest.raises(BadSignature):
            open_note(Note(b"hello\n", lines).encode(), [signer(_KNOWN).verifier()])


class _Counting(NoteVerifier):
    """A note verifier that counts the signatures it checks (each is checked for real)."""

    def __init__(self, name: str, public_key: PublicKey) -> None:
        super().__init__(name, public_key)
        self.checked = 0

    def verify(self, body: bytes, signature: bytes) -> None:
        self.checked += 1
        super().verify(body, signature)


@pytest.mark.parametrize("make_key", [ed25519_key, mldsa_key], ids=["ed25519", "ml-dsa-44"])
def test_a_known_key_s_identical_lines_are_verified_once(make_key: object) -> None:
    """A note of 100 copies of one valid line had each copy verified (10-20 ms of CPU for
    nothing): an identical line says nothing its first copy did not, and is not checked
    again; a line that differs, among the copies, is still checked and still rejects."""
    key = make_key()  # type: ignore[operator]
    trusted = signer(key).verifier()
    checkpoint = Checkpoint(ORIGIN, 3, hashlib.sha256(b"3").digest())
    (line,) = Note.parse(sign_checkpoint(checkpoint, [signer(key)])).signatures
    counting = _Counting(trusted.name, trusted.public_key)
    copies = Note(checkpoint.encode(), (line,) * 100).encode()
    assert open_checkpoint(copies, [counting]) == checkpoint
    assert counting.checked == 1
    bad = NoteSignature(line.name, line.key_id, bytes(len(line.signature)))
    for lines in ((line,) * 99 + (bad,), (bad,) * 100):
        with pytest.raises(BadSignature) as caught:
            open_note(Note(checkpoint.encode(), lines).encode(), [trusted])
        assert caught.value.code == "bad-signature"


def test_checkpoint_for_another_origin_is_unknown_issuer() -> None:
    key = ed25519_key()
    text = sign_checkpoint(Checkpoint("other.example", 1, bytes(32)), [signer(key)])
    with pytest.raises(UnknownIssuer):
        open_checkpoint(text, [signer(key).verifier()], origin=ORIGIN)


@settings(max_examples=examples(40), deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)),
            max_size=40,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_sign_then_open_round_trips(lines: list[str]) -> None:
    body = ("\n".join(lines) + "\n").encode()
    key = _ROUND_TRIP_KEY
    assert open_note(sign_note(body, [signer(key)]), [signer(key).verifier()]) == body


_ROUND_TRIP_KEY = ed25519_key()


# --- malformed notes ------------------------------------------------------------------------


def _good_note() -> bytes:
    return sign_note(b"line one\nline two\n", [signer(_ROUND_TRIP_KEY)])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda n: n[:-1],  # no final newline
        lambda n: n.replace(b"\n\n", b"\n"),  # no blank line
        lambda n: n.split(b"\n\n")[0] + b"\n\n",  # no signatures
        lambda n: n.replace("\u2014 ".encode(), b"-- "),  # not an em dash
        lambda n: n.replace("\u2014 ".encode(), "\u2014".encode()),  # no space after the dash
        lambda n: n.replace(b"line one", b"line\x01one"),  # control character
        lambda n: n.replace(b"line one", b"line \xff"),  # not UTF-8
        lambda n: n[:-2] + b"!\n",  # not base64
        lambda n: n.replace(ORIGIN.encode() + b" ", ORIGIN.encode() + b"  "),  # empty field
        lambda n: n.split(b"\n\n")[0] + "\n\n\u2014 a AAAA\n".encode(),  # shorter than a key id
        lambda n: n.split(b"\n\n")[0] + "\n\n\u2014 a+b AAAAAAA=\n".encode(),  # '+' in name
        lambda n: n + b"\n",  # trailing blank line
    ],
)
def test_malformed_notes_are_rejected(mangle: object) -> None:
    bad = mangle(_good_note())  # type: ignore[operator]
    with pytest.raises(MalformedInput):
        open_note(bad, [signer(_ROUND_TRIP_KEY).verifier()])


def test_non_canonical_base64_signature_is_malformed() -> None:
    note = _good_note()
    body, sig_line = note.split(b"\n\n")
    blob = sig_line.rsplit(b" ", 1)[1].rstrip(b"\n")
    # 4 + 64 bytes: the last group is "XYZ=", whose last character has 2 unused low bits.
    assert len(base64.b64decode(blob)) == 68
    assert blob.endswith(b"=")
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    flipped = alphabet[alphabet.index(blob[-2:-1]) ^ 1]
    non_canonical = blob[:-2] + bytes([flipped]) + b"="
    assert base64.b64decode(non_canonical) == base64.b64decode(blob)
    bad = body + b"\n\n" + sig_line.replace(blob, non_canonical)
    with pytest.raises(MalformedInput):
        open_note(bad, [signer(_ROUND_TRIP_KEY).verifier()])


def test_too_many_signatures_is_a_limit() -> None:
    body = b"x\n"
    line = "\u2014 a.example AAAAAAA=\n"
    lines = "".join(line.replace("a.example", f"n{i}.example") for i in range(101))
    with pytest.raises(LimitExceeded):
        Note.parse(body + b"\n" + lines.encode())


def test_oversized_note_is_a_limit() -> None:
    with pytest.raises(LimitExceeded):
        Note.parse(b"x" * (1 << 20) + b"\n\n")


@pytest.mark.parametrize(
    "body", [b"", b"no newline", b"tab\there\n", "é".encode("latin-1") + b"\n"]
)
def test_sign_note_refuses_bad_bodies(body: bytes) -> None:
    with pytest.raises(MalformedInput):
        sign_note(body, [signer(_ROUND_TRIP_KEY)])


def test_sign_note_needs_distinct_signers() -> None:
    with pytest.raises(MalformedInput):
        sign_note(b"x\n", [])
    with pytest.raises(MalformedInput):
        sign_note(b"x\n", [signer(_ROUND_TRIP_KEY), signer(_ROUND_TRIP_KEY)])


def test_a_delete_is_no_control_character_of_a_note() -> None:
    """c2sp.org/signed-note forbids the ASCII control characters below U+0020 but newline:
    a note or checkpoint holding DEL (U+007F) was refused (``MalformedInput``), though Go's
    note package and the spec accept it; the characters below U+0020 still are."""
    key = _ROUND_TRIP_KEY
    body = b"line\x7fone\nline two\n"
    assert open_note(sign_note(body, [signer(key)]), [signer(key).verifier()]) == body
    checkpoint = Checkpoint("log.example/\x7f", 3, bytes(32), ("ext\x7fension",))
    assert open_checkpoint(
        sign_checkpoint(checkpoint, [signer(key)]), [signer(key).verifier()]
    ) == (checkpoint)
    for control in ("\x1f", "\x00", "\t", "\r"):
        with pytest.raises(MalformedInput) as info:
            open_note(_good_note().replace(b"line one", f"line{control}one".encode()), [])
        assert info.value.detail == "the signed note contains a control character"
        with pytest.raises(MalformedInput) as info:
            Checkpoint.parse(
                f"log.example/{control}\n1\n{base64.b64encode(bytes(32)).decode()}\n".encode()
            )
        assert info.value.detail == "checkpoint line 1 contains a control character"
