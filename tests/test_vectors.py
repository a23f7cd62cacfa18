"""The known-good vectors of Ironroot's own formats (``tests/vectors/``), checked two ways.

Each file is parsed and verified here by an implementation that does not use the production
path: ``cbor2``, ``cryptography`` and ``hashlib`` directly, with the byte layouts written out
from the specifications (RFC 9052 Sig_structure, RFC 9162 inclusion proofs, C2SP signed notes
and cosignatures, JWS, DSP0274 messages, the layouts in ``docs/``). Then the production code
must accept the same file, and a file with one byte flipped must be refused by both, the
production code with the exact error class.

``test_the_generator_reproduces_the_committed_vectors`` runs ``scripts/gen_vectors.py``'s
check: a change to a wire format fails it until the vectors are regenerated (and the diff is
reviewed). ``docs/vectors.md`` is the catalogue.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.util
import itertools
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VECTORS = Path(__file__).resolve().parent / "vectors"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gen_vectors.py"
INDEX: dict[str, Any] = json.loads((VECTORS / "index.json").read_text())
NOW = dt.datetime.fromisoformat(INDEX["now"].replace("Z", "+00:00"))
BY_FILE: dict[str, dict[str, Any]] = {v["file"]: v for v in INDEX["vectors"]}


class Rejected(Exception):
    """The independent check refuses the file."""


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def expect(name: str) -> dict[str, Any]:
    return BY_FILE[name]["expect"]  # type: ignore[no-any-return]


def key_file(name: str) -> bytes:
    return (VECTORS / INDEX["keys"][name]["file"]).read_bytes()


def public_key(name: str) -> Any:
    return serialization.load_pem_public_key(key_file(name))


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def swap_char(text: bytes, at: int) -> bytes:
    """``text`` with the character at ``at`` replaced by another base64/base64url one."""
    return text[:at] + (b"B" if text[at : at + 1] != b"B" else b"C") + text[at + 1 :]


def check(condition: bool, why: str) -> None:
    if not condition:
        raise Rejected(why)


# --- independent primitives -------------------------------------------------------------------


def verify_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """A COSE/JWS ECDSA signature: fixed-width r ‖ s, big-endian (RFC 9053 §2.1, RFC 7518)."""
    size = (key.curve.key_size + 7) // 8
    check(len(signature) == 2 * size, "ECDSA signature length")
    digest = {256: hashes.SHA256(), 384: hashes.SHA384()}[key.curve.key_size]
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
    except InvalidSignature:
        raise Rejected("ECDSA signature does not verify") from None


def verify_any(key: Any, signature: bytes, data: bytes) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        verify_ecdsa(key, signature, data)
        return
    try:
        key.verify(signature, data)  # Ed25519, ML-DSA (pure, empty context)
    except InvalidSignature:
        raise Rejected(f"{type(key).__name__} signature does not verify") from None


def cose_sign1(data: bytes) -> tuple[bytes, dict[Any, Any], dict[Any, Any], bytes | None, bytes]:
    """RFC 9052 §4.2: tag 18 around [protected bstr, unprotected map, payload, signature]."""
    try:
        item = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise Rejected(f"not CBOR: {exc}") from None
    check(isinstance(item, cbor2.CBORTag) and item.tag == 18, "not a tagged COSE_Sign1")
    check(isinstance(item.value, list | tuple) and len(item.value) == 4, "a 4-array")
    protected, unprotected, payload, signature = item.value
    check(isinstance(protected, bytes) and isinstance(signature, bytes), "bstr fields")
    header = cbor2.loads(protected) if protected else {}
    return protected, header, unprotected, payload, signature


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """RFC 9052 §4.4 ToBeSigned for COSE_Sign1, empty external AAD."""
    return cbor2.dumps(["Signature1", protected, b"", payload])


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, verbatim."""
    check(index < size, "leaf index beyond the tree")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        check(sn != 0, "proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    check(sn == 0, "proof too short")
    return r


def log_entry(statement: bytes) -> bytes:
    """ARCHITECTURE "Log entry": the statement with an empty unprotected header, shortest form."""
    protected, _, _, payload, signature = cose_sign1(statement)
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))


def cose_thumbprint(key: Any) -> bytes:
    """RFC 9679 COSE Key Thumbprint (EC2: kty, crv, x, y; AKP: kty, alg, pub), SHA-256."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        numbers = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {256: 1, 384: 2}[key.curve.key_size]
        members = {
            1: 2,
            -1: crv,
            -2: numbers.x.to_bytes(size, "big"),
            -3: numbers.y.to_bytes(size, "big"),
        }
    else:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {1: 7, 3: -50, -1: raw}  # ML-DSA-87
    return hashlib.sha256(cbor2.dumps(members)).digest()


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The DER TLVs of ``data``, one level: (tag byte, contents)."""
    out = []
    pos = 0
    while pos < len(data):
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[pos : pos + count], "big")
            pos += count
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def der_length(content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def tcb_info(data: bytes) -> dict[int, Any]:
    """A DiceTcbInfo SEQUENCE (TCG DICE Attestation Architecture §6.1.1) by context tag:
    [3] svn, [4] layer, [6] fwids (list of (hash OID DER, digest)), [9] type."""
    out: dict[int, Any] = {}
    for tag, content in der_items(data):
        number = tag & 0x1F
        if number == 6:
            out[6] = [tuple(c for _, c in der_items(fwid)) for _, fwid in der_items(content)]
        else:
            out[number] = content
    return out


def extension(cert: x509.Certificate, oid: str) -> bytes:
    return cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value.value  # type: ignore[attr-defined,no-any-return]


# --- firmware ---------------------------------------------------------------------------------

MANIFEST_FIXED = 16748
HEADER_AT, HEADER_SIZE, TOC_AT, TOC_ENTRY = 0x40CC, 160, 0x416C, 104


def check_bundle(bundle: bytes) -> dict[str, Any]:
    """docs/firmware.md#bundle-layout, field by field; returns what it found."""
    marker, size, version, pqc_type = struct.unpack_from("<4sIHB", bundle, 0)
    check(marker == b"IRMN" and version == 1, "marker and version")
    toc_len = struct.unpack_from("<I", bundle, 0x40E0)[0]
    check(size == MANIFEST_FIXED + TOC_ENTRY * toc_len, "manifest size")
    header = bundle[HEADER_AT : HEADER_AT + HEADER_SIZE]
    revision, ecc_index, pqc_index, _flags, _toc_len, _pauser = struct.unpack_from(
        "<QIIIII", header
    )
    toc_digest = header[28:76]
    svn = struct.unpack_from("<I", header, 76)[0]
    toc = bundle[TOC_AT : TOC_AT + TOC_ENTRY * toc_len]
    check(hashlib.sha384(toc).digest() == toc_digest, "TOC digest")
    components = []
    end = size
    for i in range(toc_len):
        entry = toc[i * TOC_ENTRY : (i + 1) * TOC_ENTRY]
        cid, _type = struct.unpack_from("<II", entry, 0)
        offset, length = struct.unpack_from("<II", entry, 48)
        digest = entry[56:104]
        check(offset == end, "components are contiguous")
        check(
            hashlib.sha384(bundle[offset : offset + length]).digest() == digest, "component digest"
        )
        components.append({"id": cid, "size": length, "sha384": digest.hex()})
        end = offset + length
    check(end == len(bundle), "the bundle ends with its last component")
    # Keys: the preamble's active keys, against the descriptors (whose hash is fused).
    ecc_key = bundle[0x06D8 : 0x06D8 + 96]
    pqc_key = bundle[0x073C : 0x073C + 2592]
    check(bundle[0x10 : 0x10 + 48] == hashlib.sha384(ecc_key).digest(), "ECC key hash")
    check(bundle[0xD4 : 0xD4 + 48] == hashlib.sha384(pqc_key).digest(), "PQC key hash")
    check(struct.unpack_from("<I", bundle, 0x06D4)[0] == ecc_index == 0, "ECC key index")
    check(struct.unpack_from("<I", bundle, 0x0738)[0] == pqc_index == 0, "PQC key index")
    # Signatures: ECDSA P-384 over the header; ML-DSA-87 over SHA-384(header), zero-padded slot.
    ecc = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), b"\x04" + ecc_key)
    verify_ecdsa(ecc, bundle[0x115C : 0x115C + 96], header)
    pqc_slot = bundle[0x11BC : 0x11BC + 4628]
    check(pqc_slot[4627:] == b"\0", "PQC signature padding")
    pqc = mldsa.MLDSA87PublicKey.from_public_bytes(pqc_key)
    verify_any(pqc, pqc_slot[:4627], hashlib.sha384(header).digest())
    return {
        "pqc_key_type": pqc_type,
        "manifest_size": size,
        "revision": revision,
        "svn": svn,
        "toc": components,
        "header_digest": hashlib.sha384(header).hexdigest(),
        "manifest_digest": hashlib.sha384(bundle[:size]).hexdigest(),
        "vendor_key_descriptor_hash": hashlib.sha384(bundle[0x0C:0x06D4]).hexdigest(),
        "not_before": header[80:95].decode(),
        "not_after": header[95:110].decode(),
        "ecc_key": ecc_key,
        "pqc_key": pqc_key,
    }


def test_firmware_bundle() -> None:
    from ironroot.errors import DigestMismatch
    from ironroot.firmware import BundlePolicy, verify_bundle

    bundle, want = vector("firmware-bundle.bin"), expect("firmware-bundle.bin")
    found = check_bundle(bundle)
    for name in ("pqc_key_type", "manifest_size", "revision", "svn", "toc", "header_digest"):
        assert found[name] == want[name], name
    assert found["manifest_digest"] == want["manifest_digest"]
    assert found["vendor_key_descriptor_hash"] == want["vendor_key_descriptor_hash"]
    assert (found["not_before"], found["not_after"]) == (want["not_before"], want["not_after"])
    vendor = public_key("vendor-es384").public_numbers()
    assert found["ecc_key"] == vendor.x.to_bytes(48, "big") + vendor.y.to_bytes(48, "big")
    assert found["pqc_key"] == public_key("vendor-mldsa87").public_bytes_raw()

    fused = bytes.fromhex(want["vendor_key_descriptor_hash"])
    verified = verify_bundle(
        bundle, BundlePolicy(now=NOW, vendor_key_descriptor_hash=fused, min_svn=3)
    )
    assert verified.manifest_digest.hex() == want["manifest_digest"]

    bad = flip(bundle, len(bundle) - 1)  # the runtime's last byte
    with pytest.raises(Rejected):
        check_bundle(bad)
    with pytest.raises(DigestMismatch):
        verify_bundle(bad, BundlePolicy(now=NOW, vendor_key_descriptor_hash=fused, min_svn=3))


# --- Signed Statement, receipt, Transparent Statement -----------------------------------------


def check_statement(data: bytes) -> dict[str, Any]:
    """RFC 9943 / RFC 9995: a hash-envelope Signed Statement, verified with the issuer key."""
    protected, header, unprotected, payload, signature = cose_sign1(data)
    check(isinstance(payload, bytes), "attached payload")
    check(header[1] == -35 and 3 not in header, "ES384, no content type with a hash envelope")
    check(header[258] == -43 and len(payload) == 48, "SHA-384 hash envelope")
    verify_ecdsa(public_key("vendor-es384"), signature, sig_structure(protected, payload))
    return {
        "alg": header[1],
        "kid": header[4].hex(),
        "iss": header[15][1],
        "sub": header[15][2],
        "payload_hash_alg": header[258],
        "preimage_content_type": header[259],
        "payload": payload.hex(),
        "unprotected": unprotected,
    }


def test_firmware_manifest_statement() -> None:
    from ironroot.cose import SignedStatement
    from ironroot.crypto import PublicKey
    from ironroot.errors import BadSignature

    data, want = (
        vector("firmware-manifest-statement.cose"),
        expect("firmware-manifest-statement.cose"),
    )
    found = check_statement(data)
    assert found.pop("unprotected") == {}
    for name, value in found.items():
        assert value == want[name], name
    assert found["kid"] == cose_thumbprint(public_key("vendor-es384")).hex()
    bundle = vector("firmware-bundle.bin")
    manifest = bundle[: expect("firmware-bundle.bin")["manifest_size"]]
    assert hashlib.sha384(manifest).hexdigest() == found["payload"]

    vendor = PublicKey.from_pem(key_file("vendor-es384"))
    parsed = SignedStatement.parse(data)
    parsed.sign1.verify(vendor)
    assert (parsed.claims.iss, parsed.claims.sub) == (want["iss"], want["sub"])

    bad = flip(data, len(data) - 100)  # inside the payload (the manifest digest)
    with pytest.raises(Rejected):
        check_statement(bad)
    with pytest.raises(BadSignature):
        SignedStatement.parse(bad).sign1.verify(vendor)


def check_receipt(receipt: bytes, entry: bytes) -> dict[str, Any]:
    """RFC 9942: the inclusion proof gives the root; the signature covers it, detached."""
    protected, header, unprotected, payload, signature = cose_sign1(receipt)
    check(payload is None, "a receipt's payload is detached")
    check(header[395] == 1 and header[1] == -35, "vds RFC9162_SHA256, ES384")
    (proof_bytes,) = unprotected[396][-1]
    tree_size, leaf_index, path = cbor2.loads(proof_bytes)
    root = root_from_inclusion(leaf_index, tree_size, leaf_hash(entry), path)
    verify_ecdsa(public_key("receipt-es384"), signature, sig_structure(protected, root))
    return {
        "alg": header[1],
        "vds": header[395],
        "kid": header[4].hex(),
        "iss": header[15][1],
        "iat": header[15][6],
        "tree_size": tree_size,
        "leaf_index": leaf_index,
        "path": [h.hex() for h in path],
        "root": root.hex(),
    }


def test_receipt() -> None:
    from ironroot.cose import SignedStatement, verify_receipt
    from ironroot.crypto import PublicKey
    from ironroot.errors import BadSignature

    receipt, want = vector("receipt.cose"), expect("receipt.cose")
    entry = log_entry(vector("firmware-manifest-statement.cose"))
    assert leaf_hash(entry).hex() == want["leaf_hash"]
    found = check_receipt(receipt, entry)
    for name, value in found.items():
        assert value == want[name], name
    assert found["kid"] == cose_thumbprint(public_key("receipt-es384")).hex()
    assert found["root"] == expect("checkpoint.txt")["root"]  # the checkpoint of that tree

    key = PublicKey.from_pem(key_file("receipt-es384"))
    production_entry = SignedStatement.parse(vector("firmware-manifest-statement.cose")).log_entry()
    assert production_entry == entry
    verify_receipt(receipt, entry, {key.kid: key})

    path_byte = receipt.index(bytes.fromhex(want["path"][0]))
    bad = flip(receipt, path_byte)
    with pytest.raises(Rejected):
        check_receipt(bad, entry)
    with pytest.raises(BadSignature):
        verify_receipt(bad, entry, {key.kid: key})


def test_transparent_statement() -> None:
    from ironroot.cose import verify_transparent_statement
    from ironroot.crypto import PublicKey
    from ironroot.errors import BadSignature

    data = vector("transparent-statement.cose")
    protected, _, unprotected, payload, signature = cose_sign1(data)
    assert set(unprotected) == {394}
    (receipt,) = unprotected[394]
    assert (
        hashlib.sha256(receipt).hexdigest() == expect("transparent-statement.cose")["receipts"][0]
    )
    assert receipt == vector("receipt.cose")
    statement = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
    assert statement == vector("firmware-manifest-statement.cose")
    check_statement(statement)
    check_receipt(receipt, log_entry(data))

    key = PublicKey.from_pem(key_file("receipt-es384"))
    parsed = verify_transparent_statement(data, {key.kid: key})
    assert parsed.statement.claims.sub == expect("transparent-statement.cose")["sub"]

    bad = flip(data, data.index(signature) + 10)  # the statement's signature: another log entry
    _, _, unprotected, _, _ = cose_sign1(bad)
    with pytest.raises(Rejected):
        check_receipt(unprotected[394][0], log_entry(bad))
    with pytest.raises(BadSignature):
        verify_transparent_statement(bad, {key.kid: key})


# --- checkpoints (C2SP signed notes and cosignatures) -----------------------------------------


def parse_note(text: bytes) -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    """c2sp.org/signed-note: body, blank line, lines "— <name> <base64(key id ‖ signature)>"."""
    body, sep, signatures = text.partition(b"\n\n")
    check(sep == b"\n\n" and text.endswith(b"\n"), "note framing")
    lines = []
    for line in signatures.decode().splitlines():
        dash, name, blob = line.split(" ")
        check(dash == "\u2014", "signature line starts with an em dash")
        raw = base64.b64decode(blob, validate=True)
        lines.append((name, raw[:4], raw[4:]))
    return body + b"\n", lines


def parse_vkey(vkey: str) -> tuple[str, bytes, int, bytes]:
    name, key_id, blob = vkey.strip().split("+", 2)
    raw = base64.b64decode(blob)
    return name, bytes.fromhex(key_id), raw[0], raw[1:]


def note_key_id(name: str, kind: int, key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + key).digest()[:4]


def check_checkpoint(text: bytes) -> dict[str, Any]:
    """c2sp.org/tlog-checkpoint, Ed25519 log signature (type 0x01) over the body."""
    body, signatures = parse_note(text)
    origin, size, root = body.decode().splitlines()[:3]
    name, key_id, kind, key = parse_vkey(key_file("log-ed25519").decode())
    check(kind == 1 and key_id == note_key_id(name, kind, key), "Ed25519 vkey")
    ours = [(n, k, s) for n, k, s in signatures if (n, k) == (name, key_id)]
    check(len(ours) == 1, "one signature by the log's key")
    verify_any(ed25519.Ed25519PublicKey.from_public_bytes(key), ours[0][2], body)
    return {
        "origin": origin,
        "size": int(size),
        "root": base64.b64decode(root).hex(),
        "signatures": [{"name": n, "key_id": k.hex()} for n, k, _ in signatures],
        "body": body,
    }


def test_checkpoint() -> None:
    from ironroot.errors import BadSignature
    from ironroot.log import NoteVerifier, open_checkpoint

    text, want = vector("checkpoint.txt"), expect("checkpoint.txt")
    found = check_checkpoint(text)
    found.pop("body")
    assert found == {k: want[k] for k in ("origin", "size", "root", "signatures")}

    verifier = NoteVerifier.from_vkey(key_file("log-ed25519").decode().strip())
    checkpoint = open_checkpoint(text, [verifier], origin=want["origin"])
    assert (checkpoint.size, checkpoint.root.hex()) == (want["size"], want["root"])

    bad = text.replace(f"\n{want['size']}\n".encode(), f"\n{want['size'] + 1}\n".encode(), 1)
    with pytest.raises(Rejected):
        check_checkpoint(bad)
    with pytest.raises(BadSignature):
        open_checkpoint(bad, [verifier])


def check_cosignatures(text: bytes) -> list[tuple[int, int]]:
    """c2sp.org/tlog-cosignature: (type, timestamp) of each verified witness cosignature."""
    found = check_checkpoint(text)
    body = found["body"]
    _, lines = parse_note(text)
    verified = []
    for vkey in key_file("witness").decode().splitlines():
        name, key_id, kind, key = parse_vkey(vkey)
        check(key_id == note_key_id(name, kind, key), "witness key id")
        (signature,) = [s for n, k, s in lines if (n, k) == (name, key_id)]
        timestamp = struct.unpack(">Q", signature[:8])[0]
        if kind == 0x04:  # Ed25519 cosignature/v1
            message = b"cosignature/v1\ntime %d\n" % timestamp + body
            verify_any(ed25519.Ed25519PublicKey.from_public_bytes(key), signature[8:], message)
        else:  # 0x06 ML-DSA-44 subtree/v1 cosigned_message
            check(kind == 0x06, "cosignature type")
            origin = found["origin"].encode()
            message = (
                b"subtree/v1\n\x00"
                + bytes([len(name)])
                + name.encode()
                + struct.pack(">Q", timestamp)
                + bytes([len(origin)])
                + origin
                + struct.pack(">QQ", 0, found["size"])
                + bytes.fromhex(found["root"])
            )
            verify_any(mldsa.MLDSA44PublicKey.from_public_bytes(key), signature[8:], message)
        verified.append((kind, timestamp))
    return verified


def test_cosigned_checkpoint() -> None:
    from ironroot.errors import BadSignature
    from ironroot.log import Note, NoteVerifier, open_checkpoint
    from ironroot.witness import CosignatureVerifier, verify_cosignatures

    text, want = vector("checkpoint-cosigned.txt"), expect("checkpoint-cosigned.txt")
    assert text.startswith(vector("checkpoint.txt"))  # the log's note, then the cosignatures
    found = check_cosignatures(text)
    assert found == [(kind, want["timestamp"]) for kind in want["cosignature_types"]]

    witnesses = [CosignatureVerifier.from_vkey(v) for v in key_file("witness").decode().split()]
    verifier = NoteVerifier.from_vkey(key_file("log-ed25519").decode().strip())
    open_checkpoint(text, [verifier])
    cosignatures = verify_cosignatures(Note.parse(text), witnesses)
    assert sorted(c.timestamp for c in cosignatures) == [want["timestamp"]] * 2

    bad = swap_char(text, len(text) - 20)  # inside the ML-DSA-44 cosignature (base64 text)
    with pytest.raises(Rejected):
        check_cosignatures(bad)
    with pytest.raises(BadSignature):
        verify_cosignatures(Note.parse(bad), witnesses)


# --- the root of trust: quote and DICE chain --------------------------------------------------


def check_chain(leaf_first: list[x509.Certificate], root: x509.Certificate) -> None:
    """Each certificate issued by the next, the last by the trusted root (signatures, names)."""
    for cert, issuer in zip(leaf_first, [*leaf_first[1:], root], strict=True):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError) as exc:
            raise Rejected(f"{cert.subject.rfc4514_string()}: {exc}") from None


def common_name(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def check_quote(data: bytes) -> dict[str, Any]:
    """docs/rot.md#quotes: a CBOR map of two COSE_Sign1 over one claims payload."""
    container = cbor2.loads(data)
    check(set(container) == {"format", "es384", "ml-dsa-87"}, "quote members")
    roots = {
        "es384": x509.load_pem_x509_certificate(key_file("vendor-ca-es384")),
        "ml-dsa-87": x509.load_pem_x509_certificate(key_file("vendor-ca-mldsa87")),
    }
    payloads, chains, headers = [], [], []
    for name, alg in (("es384", -35), ("ml-dsa-87", -50)):
        protected, header, unprotected, payload, signature = cose_sign1(container[name])
        check(header[1] == alg, "quote algorithm")
        chain = [x509.load_der_x509_certificate(c) for c in unprotected[33]]
        check_chain(chain, roots[name])
        leaf = chain[0].public_key()
        check(header[4] == cose_thumbprint(leaf), "kid = RFC 9679 thumbprint of the RT alias key")
        check(isinstance(payload, bytes), "attached payload")
        verify_any(leaf, signature, sig_structure(protected, payload))
        payloads.append(payload)
        chains.append(chain)
        headers.append(header)
    check(payloads[0] == payloads[1], "both halves sign the same claims")
    claims = cbor2.loads(payloads[0])
    pcrs = [bytes(48)] * 3
    for pcr, _name, event in claims["pcr-log"]:
        pcrs[pcr] = hashlib.sha384(pcrs[pcr] + event).digest()
    check(pcrs == claims["pcrs"], "the PCR log replays to the signed PCRs")
    return {
        "format": container["format"],
        "nonce": claims["nonce"].hex(),
        "ueid": claims["ueid"].hex(),
        "pcrs": [p.hex() for p in claims["pcrs"]],
        "pcr_log": [[p, n, d.hex()] for p, n, d in claims["pcr-log"]],
        "fwids": {k: v.hex() for k, v in claims["fwids"].items()},
        "svn": claims["svn"],
        "lifecycle": claims["lifecycle"],
        "debug_locked": claims["debug-locked"],
        "content_type": headers[0][3],
        "x5chain": [common_name(c).removeprefix("Ironroot Ecc384 ") for c in chains[0]],
    }


def test_rot_quote() -> None:
    from ironroot.errors import BadSignature
    from ironroot.rot import verify_quote

    data, want = vector("rot-quote.cbor"), expect("rot-quote.cbor")
    assert check_quote(data) == want

    anchors = [
        x509.load_pem_x509_certificate(key_file(n)).public_bytes(serialization.Encoding.DER)
        for n in ("vendor-ca-es384", "vendor-ca-mldsa87")
    ]
    nonce = bytes.fromhex(want["nonce"])
    claims = verify_quote(data, nonce=nonce, trust_anchors=anchors, now=NOW)
    assert claims.svn == want["svn"]
    assert claims.ueid.hex() == want["ueid"]

    message = cbor2.loads(data)["es384"]
    bad = flip(data, data.index(message) + len(message) - 1)  # the ECDSA signature's last byte
    with pytest.raises(Rejected):
        check_quote(bad)
    with pytest.raises(BadSignature):
        verify_quote(bad, nonce=nonce, trust_anchors=anchors, now=NOW)


def check_dice_chain(pem: bytes) -> dict[str, Any]:
    """docs/rot.md#dice-layers: RT alias → FMC alias → LDevID → IDevID → vendor root."""
    chain = x509.load_pem_x509_certificates(pem)
    check(len(chain) == 4, "four layers")
    root = x509.load_pem_x509_certificate(key_file("vendor-ca-es384"))
    check_chain(chain, root)
    path_lengths = [
        c.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length for c in chain
    ]
    check(path_lengths == [4, 5, 6, 7], "DICE path lengths")
    ueids = set()
    for cert in chain:
        ((tag, ueid),) = der_items(der_items(extension(cert, "2.23.133.5.4.4"))[0][1])
        check(tag == 0x04, "TcgUeid is an OCTET STRING")
        ueids.add(ueid.hex())
    check(len(ueids) == 1, "one Ueid across the chain")
    rt = tcb_info(der_items(extension(chain[0], "2.23.133.5.4.1"))[0][1])
    multi = [
        tcb_info(c) for _, c in der_items(der_items(extension(chain[1], "2.23.133.5.4.5"))[0][1])
    ]
    sha384_oid = bytes.fromhex("608648016503040202")  # 2.16.840.1.101.3.4.2.2
    check(all(f[0] == sha384_oid for t in [rt, *multi] for f in t[6]), "FWIDs are SHA-384")
    return {
        "subjects": [common_name(c) for c in chain],
        "ueid": ueids.pop(),
        "rt_alias_fwid": rt[6][0][1].hex(),
        "rt_alias_type": rt[9].decode(),
        "fmc_alias_fwids": [t[6][0][1].hex() for t in multi if t.get(9) == b"FMC_INFO"],
        "issuer_of_idevid": common_name(root),
    }


def test_dice_chain() -> None:
    from ironroot.errors import BadSignature
    from ironroot.rot import parse_certificate, parse_certificates, verify_chain

    pem, want = vector("dice-chain-es384.pem"), expect("dice-chain-es384.pem")
    found = check_dice_chain(pem)
    assert found.pop("rt_alias_type") == "RT_INFO"
    assert found == want
    assert found["ueid"] == expect("rot-quote.cbor")["ueid"]

    root = parse_certificate(key_file("vendor-ca-es384"))
    chain = parse_certificates(pem)
    verify_chain([root, *reversed(chain)])
    for cert in chain:
        cert.check_validity(NOW)
    assert chain[0].dice.tcb_infos[0].fwids[0].digest.hex() == want["rt_alias_fwid"]

    ders = [
        c.public_bytes(serialization.Encoding.DER) for c in x509.load_pem_x509_certificates(pem)
    ]
    name_at = ders[0].index(b"Rt Alias")  # the RT alias subject: its signature no longer holds
    ders[0] = flip(ders[0], name_at)
    bad = b"".join(
        x509.load_der_x509_certificate(d).public_bytes(serialization.Encoding.PEM) for d in ders
    )
    with pytest.raises(Rejected):
        check_dice_chain(bad)
    with pytest.raises(BadSignature):
        verify_chain([root, *reversed(parse_certificates(bad))])


# --- SPDM (DSP0274) ---------------------------------------------------------------------------


def check_spdm(data: bytes, nonce: bytes) -> dict[str, Any]:
    """DSP0274 1.2/1.3: VCA, certificate chain, GET_MEASUREMENTS, MEASUREMENTS, signature."""
    record = cbor2.loads(data)
    check(set(record) == {"format", "vca", "chain", "request", "response"}, "evidence members")
    vca, request, response = record["vca"], record["request"], record["response"]
    codes = [m[1] for m in vca]
    check(codes == [0x84, 0x04, 0xE1, 0x61, 0xE3, 0x63], "VCA message codes")
    version = response[0]
    algorithms = vca[5]
    check(algorithms[0] == version, "negotiated version")
    measurement_spec, _other, measurement_hash, base_asym, base_hash = struct.unpack_from(
        "<BBIII", algorithms, 6
    )
    check(measurement_spec == 0x01, "DMTF measurement specification")
    check(base_asym == 0x80 and base_hash == 0x02 and measurement_hash == 0x04, "P-384, SHA-384")
    # The SPDM certificate chain: Length, Reserved, RootHash, DER certificates (root first).
    chain = record["chain"]
    length = struct.unpack_from("<H", chain, 0)[0]
    check(length == len(chain), "certificate chain length")
    certs = [
        x509.load_der_x509_certificate(b"\x30" + der_length(c) + c)
        for _, c in der_items(chain[52:])
    ]
    root = x509.load_pem_x509_certificate(key_file("spdm-root"))
    check(certs[0] == root, "the chain starts at the trusted root")
    check(
        chain[4:52] == hashlib.sha384(root.public_bytes(serialization.Encoding.DER)).digest(),
        "RootHash",
    )
    check_chain(list(reversed(certs)), root)
    # GET_MEASUREMENTS: signature requested, all blocks, the verifier's nonce, slot, context.
    check(request[:4] == bytes([version, 0xE0, 0x01, 0xFF]), "a signed all-blocks request")
    check(request[4:36] == nonce, "the verifier's nonce")
    context = request[37:45] if version >= 0x13 else b""
    # MEASUREMENTS: blocks, responder nonce, opaque data, requester context, signature.
    check(response[1] == 0x60, "MEASUREMENTS")
    count = response[4]
    record_length = int.from_bytes(response[5:8], "little")
    blocks, pos = [], 8
    for _ in range(count):
        index, spec, size = struct.unpack_from("<BBH", response, pos)
        value_type, value_size = struct.unpack_from("<BH", response, pos + 4)
        check(spec == 0x01 and value_size == size - 3, "DMTF measurement block")
        value = response[pos + 7 : pos + 7 + value_size]
        blocks.append(
            {
                "index": index,
                "type": value_type & 0x7F,
                "raw": bool(value_type & 0x80),
                "value": value.hex(),
            }
        )
        pos += 4 + size
    check(pos == 8 + record_length, "measurement record length")
    pos += 32  # the responder's nonce
    opaque = struct.unpack_from("<H", response, pos)[0]
    pos += 2 + opaque
    check(response[pos : pos + len(context)] == context, "the requester context is echoed")
    pos += len(context)
    signature = response[pos:]
    check(len(signature) == 96, "an ECDSA P-384 signature ends the response")
    label = f"dmtf-spdm-v{version >> 4}.{version & 0xF}.*".encode() * 4
    prefix = label + bytes(6) + b"responder-measurements signing"
    transcript = b"".join(vca) + request + response[:pos]
    verify_ecdsa(certs[-1].public_key(), signature, prefix + hashlib.sha384(transcript).digest())
    return {
        "format": record["format"],
        "version": f"{version >> 4}.{version & 0xF}",
        "nonce": nonce.hex(),
        "base_asym": "ECDSA P-384",
        "base_hash": "SHA-384",
        "measurements": blocks,
    }


def test_spdm_evidence() -> None:
    from ironroot.errors import BadSignature
    from ironroot.spdm import verify_spdm_evidence

    data, want = vector("spdm-evidence.cbor"), expect("spdm-evidence.cbor")
    nonce = bytes.fromhex(want["nonce"])
    found = check_spdm(data, nonce)
    assert found == {k: v for k, v in want.items() if k != "verified_blocks"}

    root = x509.load_pem_x509_certificate(key_file("spdm-root")).public_bytes(
        serialization.Encoding.DER
    )
    verified = verify_spdm_evidence(data, nonce=nonce, root_certificate=root, now=NOW)
    assert len(verified.blocks) == want["verified_blocks"]

    value = bytes.fromhex(want["measurements"][0]["value"])
    bad = flip(data, data.index(value))  # a measured value the device signed
    with pytest.raises(Rejected):
        check_spdm(bad, nonce)
    with pytest.raises(BadSignature):
        verify_spdm_evidence(bad, nonce=nonce, root_certificate=root, now=NOW)


# --- EAR (JWT and CWT) ------------------------------------------------------------------------


def ear_view(claims: dict[Any, Any], *, cbor: bool) -> dict[str, Any]:
    """The EAR claims in the index's terms (draft-ietf-rats-ear labels for the CWT)."""
    if cbor:
        categories = ["instance-identity", "configuration", "executables", "file-system",
                      "hardware", "runtime-opaque", "storage-opaque", "sourced-data"]  # fmt: skip
        tiers = {0: "none", 2: "affirming", 32: "warning", 96: "contraindicated"}
        return {
            "eat_profile": claims[265],
            "iat": claims[6],
            "exp": claims[4],
            "nonce": claims[10].hex(),
            "verifier_id": {"developer": claims[1004][0], "build": claims[1004][1]},
            "submods": {
                name: {
                    "status": tiers[a[1000]],
                    "trust_vector": {categories[k]: v for k, v in a[1001].items()},
                    "policy_id": a[1003],
                }
                for name, a in claims[266].items()
            },
        }
    return {
        "eat_profile": claims["eat_profile"],
        "iat": claims["iat"],
        "exp": claims["exp"],
        "nonce": b64url(claims["eat_nonce"]).hex(),
        "verifier_id": claims["ear.verifier-id"],
        "submods": {
            name: {
                "status": a["ear.status"],
                "trust_vector": a["ear.trustworthiness-vector"],
                "policy_id": a["ear.appraisal-policy-id"],
            }
            for name, a in claims["submods"].items()
        },
    }


def check_jwt(token: bytes) -> dict[str, Any]:
    """RFC 7515 compact JWS, ES384 (r ‖ s), kid = base64url RFC 9679 thumbprint."""
    parts = token.decode("ascii").split(".")
    check(len(parts) == 3, "three segments")
    header = json.loads(b64url(parts[0]))
    check(header == {"alg": "ES384", "typ": "JWT", "kid": header.get("kid")}, "JWS header")
    key = public_key("ear-verifier-es384")
    verify_ecdsa(key, b64url(parts[2]), f"{parts[0]}.{parts[1]}".encode())
    return {
        **ear_view(json.loads(b64url(parts[1])), cbor=False),
        "kid": b64url(header["kid"]).hex(),
    }


def check_cwt(token: bytes) -> dict[str, Any]:
    """RFC 8392 CWT: COSE_Sign1 {1: -35, 4: kid} over the CBOR claims."""
    protected, header, _, payload, signature = cose_sign1(token)
    check(header[1] == -35, "ES384")
    assert isinstance(payload, bytes)
    verify_ecdsa(public_key("ear-verifier-es384"), signature, sig_structure(protected, payload))
    return {**ear_view(cbor2.loads(payload), cbor=True), "kid": header[4].hex()}


@pytest.mark.parametrize(("name", "checker"), [("ear.jwt", check_jwt), ("ear.cwt", check_cwt)])
def test_ear(name: str, checker: Callable[[bytes], dict[str, Any]]) -> None:
    from ironroot.crypto import PublicKey
    from ironroot.ear import verify_ear
    from ironroot.errors import BadSignature

    token, want = vector(name), expect(name)
    found = checker(token)
    assert found == want
    assert found["kid"] == cose_thumbprint(public_key("ear-verifier-es384")).hex()

    key = PublicKey.from_pem(key_file("ear-verifier-es384"))
    result = verify_ear(token, [key], now=NOW)
    assert result.status.value == "affirming"
    assert result.nonce.hex() == want["nonce"]

    if name == "ear.jwt":
        bad = swap_char(token, token.index(b".") + 20)  # a character of the claims
    else:
        bad = flip(token, token.index(b"veraison"))  # the eat_profile claim
    with pytest.raises(Rejected):
        checker(bad)
    with pytest.raises(BadSignature):
        verify_ear(bad, [key], now=NOW)


# --- the released key -------------------------------------------------------------------------


def check_released(data: bytes, want: dict[str, Any]) -> bytes:
    """docs/keyrelease.md: the CBOR map, then the ML-KEM-768 + AES-KWP unwrap by hand."""
    value = cbor2.loads(data)
    members = {"v", "kid", "key_type", "alg", "recipient", "nonce", "wrapped", "statement"}
    check(set(value) == members, "members")
    check(cbor2.dumps(value, canonical=True) == data, "deterministic encoding")
    private = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(want["tee_mlkem768_seed"]))
    spki = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    check(value["recipient"] == hashlib.sha256(spki).digest(), "recipient = SHA-256(SPKI)")
    wrapped = value["wrapped"]
    header, ciphertext, blob = wrapped[:8], wrapped[8:1096], wrapped[1096:]
    check(header == bytes.fromhex(want["wrapped_header"]), "IRKW header")
    shared = private.decapsulate(ciphertext)
    ek = private.public_key().public_bytes_raw()
    info = b"ironroot/hsm/kem-wrap/v1" + header + hashlib.sha384(ek).digest()
    kek = HKDF(hashes.SHA384(), 32, None, info).derive(shared)
    try:
        key = keywrap.aes_key_unwrap_with_padding(kek, blob)
    except keywrap.InvalidUnwrap:
        raise Rejected("AES-KWP does not unwrap") from None
    for name in ("v", "kid", "key_type", "alg"):
        check(value[name] == want[name], name)
    check(value["nonce"].hex() == want["nonce"], "nonce")
    check_release_statement(value, want)
    return key


def check_release_statement(value: dict[str, Any], want: dict[str, Any]) -> None:
    """docs/keyrelease.md: the HSM's release statement, a COSE_Sign1 over the release, its
    x5chain [attestation certificate, device certificate, root] ending in the HSM root."""
    protected, header, _, payload, signature = cose_sign1(value["statement"])
    check(header[1] == -35 and header[3] == want["statement_content_type"], "alg, type")
    chain = [x509.load_der_x509_certificate(der) for der in header[33]]
    check(chain[-1].public_bytes(serialization.Encoding.DER).hex() == want["hsm_root"], "root")
    for child, parent in itertools.pairwise(chain):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise Rejected("the release statement's chain does not link") from None
    attestation_key = chain[0].public_key()
    check(isinstance(attestation_key, ec.EllipticCurvePublicKey), "P-384 attestation key")
    assert isinstance(attestation_key, ec.EllipticCurvePublicKey)
    assert isinstance(payload, bytes)
    verify_ecdsa(attestation_key, signature, sig_structure(protected, payload))
    claims = cbor2.loads(payload)
    check(claims["hsm"].hex() == want["statement_hsm"], "hsm")
    serial = chain[0].subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value
    check(serial == want["statement_hsm"], "the attestation certificate names the HSM")
    check(claims["handle"] == want["statement_handle"], "handle")
    check(claims["type"] == value["key_type"], "type")
    check(claims["recipient"] == value["recipient"], "recipient")
    check(claims["nonce"] == value["nonce"], "nonce")
    check(claims["ear"].hex() == want["statement_ear_sha256"], "ear")
    check(claims["wrapped"] == hashlib.sha256(value["wrapped"]).digest(), "wrapped")
    check(claims["iat"] == want["statement_iat"], "iat")


def test_released_key() -> None:
    from ironroot.errors import VerificationFailed
    from ironroot.keyrelease.tee import TeeKeyPair

    data, want = vector("released-key.cbor"), expect("released-key.cbor")
    assert check_released(data, want).hex() == want["unwrapped_key"]
    assert len(cbor2.loads(data)["wrapped"]) == want["wrapped_size"]

    seed = bytes.fromhex(want["tee_mlkem768_seed"])
    tee = TeeKeyPair(mlkem.MLKEM768PrivateKey.from_seed_bytes(seed))
    roots = [x509.load_der_x509_certificate(bytes.fromhex(want["hsm_root"]))]
    nonce, now = (
        bytes.fromhex(want["nonce"]),
        dt.datetime.fromtimestamp(want["statement_iat"], dt.UTC),
    )
    unwrapped = tee.unwrap(data, nonce=nonce, hsm_roots=roots, now=now)
    assert (unwrapped.kid, unwrapped.material.hex()) == (want["kid"], want["unwrapped_key"])

    value = cbor2.loads(data)
    at = data.index(value["wrapped"]) + len(value["wrapped"]) - 5  # inside the AES-KWP output
    bad = flip(data, at)
    with pytest.raises(Rejected):
        check_released(bad, want)
    with pytest.raises(VerificationFailed):  # the statement is of other wrapped bytes
        tee.unwrap(bad, nonce=nonce, hsm_roots=roots, now=now)


# --- the HSM audit chain ----------------------------------------------------------------------

AUDIT_FIELDS = ("seq", "time", "identity", "operation", "key", "result")


def check_audit(data: bytes) -> tuple[list[dict[str, Any]], bytes]:
    """docs/hsm.md#audit-log: hash = SHA-256(CBOR [seq, time, identity, operation, key,
    result, prev]); prev chains from 32 zero bytes; seq counts from 0."""
    previous = bytes(32)
    records = []
    for seq, line in enumerate(data.decode().splitlines()):
        record = json.loads(line)
        check(set(record) == {*AUDIT_FIELDS, "prev", "mac"}, "record fields")
        check(record["seq"] == seq, "seq counts without gaps")
        check(bytes.fromhex(record["prev"]) == previous, f"record {seq} chains to the one before")
        check(len(bytes.fromhex(record["mac"])) == 32, "HMAC-SHA-256")
        items = [record[f] for f in AUDIT_FIELDS] + [previous]
        previous = hashlib.sha256(cbor2.dumps(items)).digest()
        records.append({f: record[f] for f in AUDIT_FIELDS})
    return records, previous


def test_hsm_audit_chain() -> None:
    from ironroot.errors import AuditChainBroken
    from ironroot.hsm import parse_audit_log, verify_audit

    data, want = vector("hsm-audit.jsonl"), expect("hsm-audit.jsonl")
    records, head = check_audit(data)
    assert records == want["records"]
    assert head.hex() == want["head"]
    assert [r["result"] for r in records].count("unauthorized") == 1  # the refused login

    parsed = parse_audit_log(data)
    verify_audit(parsed)
    assert parsed[-1].digest().hex() == want["head"]

    second = data.index(b"\n") + 1
    bad = flip(data, data.index(b'"operation":"', second) + 14)  # record 1's operation name
    with pytest.raises(Rejected):
        check_audit(bad)
    with pytest.raises(AuditChainBroken):
        verify_audit(parse_audit_log(bad))


# --- the fleet credential extensions -----------------------------------------------------------

FLEET_CREDENTIAL_FIELDS = (0x02, 0x0C, 0x0C, 0x0A, 0x16)  # version, node, nodeClass, plane, earId
FLEET_OPERATOR_FIELDS = (0x02, 0x0C)  # version, operator


def der_sequence(data: bytes, tags: tuple[int, ...]) -> list[bytes]:
    """The contents of the fields of ``data``, one DER SEQUENCE of primitive fields of these
    tags, every length in its shortest form and nothing after the SEQUENCE (X.690 §10.1)."""
    try:
        ((tag, content),) = der_items(data)
        fields = der_items(content)
    except (IndexError, ValueError):
        raise Rejected("not one TLV") from None
    check(tag == 0x30, "a SEQUENCE")
    check(tuple(t for t, _ in fields) == tags, "the fields' tags")
    body = b"".join(bytes([t]) + der_length(c) + c for t, c in fields)
    check(b"\x30" + der_length(body) + body == data, "DER: shortest lengths, no trailing bytes")
    return [c for _, c in fields]


def check_fleet_credential(data: bytes) -> dict[str, str]:
    """docs/fleet.md: FleetCredential ::= SEQUENCE { version INTEGER (1), node UTF8String,
    nodeClass UTF8String, plane ENUMERATED { control (0), data (1) }, earId IA5String }."""
    version, node, node_class, plane, ear_id = der_sequence(data, FLEET_CREDENTIAL_FIELDS)
    check(version == b"\x01", "version 1")
    check(plane in (b"\x00", b"\x01"), "plane control (0) or data (1)")
    check(all(0 < len(n) <= 64 for n in (node, node_class)) and 0 < len(ear_id) <= 128, "sizes")
    check(ear_id.isascii(), "earId is IA5")
    return {
        "node": node.decode(),
        "class": node_class.decode(),
        "plane": ("control", "data")[plane[0]],
        "ear_id": ear_id.decode(),
    }


def check_fleet_operator(data: bytes) -> dict[str, str]:
    """docs/fleet.md: FleetOperator ::= SEQUENCE { version INTEGER (1), operator UTF8String }."""
    version, operator = der_sequence(data, FLEET_OPERATOR_FIELDS)
    check(version == b"\x01", "version 1")
    check(0 < len(operator) <= 64, "size")
    return {"operator": operator.decode()}


def fleet_certificate(oid: str, value: bytes, common_name: str) -> bytes:
    """A certificate under a throwaway key carrying ``value`` as the extension ``oid``."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=1))
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical=False
        )
        .sign(key, hashes.SHA384())
        .public_bytes(serialization.Encoding.DER)
    )


def test_fleet_credential_extensions() -> None:
    from ironroot.errors import MalformedCertificate
    from ironroot.fleet import FLEET_CREDENTIAL_OID, FLEET_OPERATOR_OID, parse_credential
    from ironroot.fleet._credentials import _decode_operator

    document = json.loads(vector("fleet-credential-extensions.json"))
    want = expect("fleet-credential-extensions.json")
    credentials = document["fleet-credential"]
    operators = document["fleet-operator"]
    assert (credentials["oid"], operators["oid"]) == (FLEET_CREDENTIAL_OID, FLEET_OPERATOR_OID)
    values = [bytes.fromhex(v) for v in credentials["values"]]
    assert [check_fleet_credential(v) for v in values] == want["fleet-credential"]
    names = [bytes.fromhex(v) for v in operators["values"]]
    assert [check_fleet_operator(v) for v in names] == want["fleet-operator"]

    for value, found in zip(values, want["fleet-credential"], strict=True):
        read = parse_credential(fleet_certificate(FLEET_CREDENTIAL_OID, value, found["node"]))
        assert {
            "node": read.node,
            "class": read.node_class,
            "plane": read.plane,
            "ear_id": read.ear_id,
        } == found
        bad = flip(value, value.index(b"\x02\x01\x01") + 2)  # version 1 becomes 0
        with pytest.raises(Rejected):
            check_fleet_credential(bad)
        with pytest.raises(MalformedCertificate):
            parse_credential(fleet_certificate(FLEET_CREDENTIAL_OID, bad, found["node"]))
    for value, found in zip(names, want["fleet-operator"], strict=True):
        assert _decode_operator(value) == found["operator"]
        bad = flip(value, 4)  # version 1 becomes 0
        with pytest.raises(Rejected):
            check_fleet_operator(bad)
        with pytest.raises(MalformedCertificate):
            _decode_operator(bad)


# --- the set as a whole -----------------------------------------------------------------------


def test_the_index_names_every_file_and_key() -> None:
    listed = {v["file"] for v in INDEX["vectors"]} | {k["file"] for k in INDEX["keys"].values()}
    present = {p.relative_to(VECTORS).as_posix() for p in VECTORS.rglob("*") if p.is_file()} - {
        "index.json",
        "pq-signatures.json",
    }
    assert listed == present
    for entry in INDEX["vectors"]:
        assert set(entry["keys"]) <= set(INDEX["keys"]), entry["file"]
        assert entry["reproducible"] in ("exact", "structure")
        assert (entry["reproducible"] == "structure") == ("varies" in entry), entry["file"]


def test_the_generator_reproduces_the_committed_vectors() -> None:
    spec = importlib.util.spec_from_file_location("gen_vectors", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    problems = module.check(VECTORS)
    assert not problems, "\n".join(
        [
            "the vectors no longer match what the code writes (regenerate and review the diff:",
            "python scripts/gen_vectors.py):",
            *problems,
        ]
    )
