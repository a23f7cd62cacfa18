"""Key files: load a signer or a verifier from whatever format it is in, save a signer safely.

Formats are detected from the bytes, not the file name:

* private: PKCS#8 PEM (optionally encrypted), a private JWK (JSON), or an LMS state file;
* public: SubjectPublicKeyInfo as PEM or DER, a COSE_Key (CBOR map), or a JWK (JSON).

A DER SPKI starts with 0x30 (SEQUENCE), which as CBOR would be the integer −17, never a map, so
DER and COSE_Key cannot be confused. Key files are read with a size limit and written atomically
with mode 0600. An LMS key is never copied: its state file is the key.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import cbor2
from cryptography.exceptions import UnsupportedAlgorithm as _LibraryUnsupported
from cryptography.hazmat.primitives import serialization

from ironroot._fileio import read_limited, warn_if_exposed, write_atomic
from ironroot.crypto._interface import Signer, Verifier
from ironroot.crypto._keys import KTY, KTY_HSS_LMS, PrivateKey, PublicKey
from ironroot.crypto._lms import LmsCounter, LmsPrivateKey, LmsPublicKey, is_lms_state
from ironroot.errors import (
    ConfigError,
    LimitExceeded,
    MalformedInput,
    StateReuse,
    UnsupportedAlgorithm,
)

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "holds_private_key",
    "load_signer",
    "load_verifier",
    "save_signer",
    "verifier_from_cose_key",
]

MAX_KEY_FILE_BYTES: Final = 1024 * 1024

_PEM: Final = b"-----BEGIN"
_PEM_PRIVATE: Final = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def _keep_bignum(value: object, immutable: bool) -> cbor2.CBORTag:
    return cbor2.CBORTag(2, value)


def _keep_negative_bignum(value: object, immutable: bool) -> cbor2.CBORTag:
    return cbor2.CBORTag(3, value)


# COSE_Key labels and values are CBOR integers: a bignum (tags 2, 3) stays a tag, never an int
# of any size (one of 20,000 bits made the error message naming it raise ValueError).
_BIGNUMS_RAW: Final[dict[int, cbor2.SemanticDecoderCallback]] = {
    2: _keep_bignum,
    3: _keep_negative_bignum,
}


def verifier_from_cose_key(cose_key: Mapping[int, object] | bytes) -> Verifier:
    """A verifier for a COSE_Key (a map, or its CBOR bytes), whatever its key type.

    Bytes must be exactly one definite-length CBOR map without a repeated label
    (``MalformedInput`` otherwise)."""
    if isinstance(cose_key, bytes):
        if len(cose_key) > MAX_KEY_FILE_BYTES:
            raise LimitExceeded("COSE_Key is too large")
        # RFC 9052 §7: a map with a label twice is not processed (first or last copy: two
        # parsers would see two keys); and the key is the whole input, nothing after it.
        fp = io.BytesIO(cose_key)
        decoder = cbor2.CBORDecoder(
            fp,
            semantic_decoders=_BIGNUMS_RAW,
            allow_indefinite=False,
            allow_duplicate_keys=False,
        )
        try:
            decoded = decoder.decode()
        except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
            raise MalformedInput(f"COSE_Key is not CBOR: {exc}") from exc
        if fp.tell() != len(cose_key):
            raise MalformedInput("trailing bytes after the COSE_Key")
        if not isinstance(decoded, dict):
            raise MalformedInput("COSE_Key must be a CBOR map")
        cose_key = decoded
    if not isinstance(cose_key, Mapping):
        raise MalformedInput("COSE_Key must be a map")
    if cose_key.get(KTY) == KTY_HSS_LMS:
        return LmsPublicKey.from_cose_key(cose_key)
    return PublicKey.from_cose_key(cose_key)


def _verifier_from_bytes(data: bytes) -> Verifier:
    stripped = data.lstrip()
    if stripped.startswith(_PEM):
        return PublicKey.from_pem(data)
    if stripped.startswith(b"{"):
        return PublicKey.from_jwk(data)
    if data[:1] == b"\x30":
        return PublicKey.from_der(data)
    if data and 0xA0 <= data[0] <= 0xBF:
        return verifier_from_cose_key(data)
    raise MalformedInput("not a PEM or DER public key, a COSE_Key or a JWK")


def load_verifier(source: str | os.PathLike[str] | bytes) -> Verifier:
    """A verifier from a file path, or from the key bytes themselves (``bytes``)."""
    if isinstance(source, bytes):
        if len(source) > MAX_KEY_FILE_BYTES:
            raise LimitExceeded("public key is too large")
        return _verifier_from_bytes(source)
    return _verifier_from_bytes(read_limited(Path(source), MAX_KEY_FILE_BYTES))


def load_signer(
    path: str | os.PathLike[str],
    password: bytes | None = None,
    *,
    lms_counter: LmsCounter | None = None,
) -> Signer:
    """A signer from a PKCS#8 PEM file, a private JWK file, or an LMS state file (opened with
    ``lms_counter``, the root-of-trust counter it is bound to: ``LmsPrivateKey.load``)."""
    data = read_limited(Path(path), MAX_KEY_FILE_BYTES)
    if lms_counter is not None and not is_lms_state(data):
        raise ConfigError(f"{path} is not an LMS state file: a counter binds LMS keys only")
    signer: Signer
    if data.lstrip().startswith(_PEM):
        signer = PrivateKey.from_pem(data, password=password)
    elif password is not None:
        raise UnsupportedAlgorithm("only PEM key files can be encrypted with a password")
    elif is_lms_state(data):
        signer = LmsPrivateKey.load(path, counter=lms_counter)
    elif data.lstrip().startswith(b"{"):
        signer = PrivateKey.from_jwk(data)
    else:
        raise MalformedInput("not a PKCS#8 PEM key, a private JWK or an LMS state file")
    warn_if_exposed(Path(path), "a private key")  # once it is known to hold one
    return signer


def holds_private_key(data: bytes) -> bool:
    """Whether ``data`` is (or holds) private key material: any PEM private key (PKCS#8,
    encrypted or not, SEC1, RSA, OpenSSH), a PKCS#8 DER private key (encrypted or not), a
    private JWK or a JWK Set with one, a COSE_Key (or COSE_KeySet) with a private member, a
    PKCS#12 file (whose keys, encrypted, cannot be told from its certificates), or an LMS
    state file. A file of this kind is never replaced by another verb's output."""
    if len(data) > MAX_KEY_FILE_BYTES or not data:
        return False
    if _PEM_PRIVATE.search(data) or is_lms_state(data):
        return True
    if data[0] == 0x30:
        return _der_private(data) or _pkcs12(data)
    if 0x80 <= data[0] <= 0xBF:
        return _cose_private(data)
    if not data.lstrip().startswith(b"{"):
        return False
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return False
    keys = value.get("keys") if isinstance(value, dict) else None
    members = keys if isinstance(keys, list) else [value]
    return any(isinstance(key, dict) and "d" in key for key in members)


def _der_private(data: bytes) -> bool:
    try:
        serialization.load_der_private_key(data, password=None)
    except TypeError:  # encrypted: a private key all the same
        return True
    except (ValueError, _LibraryUnsupported):
        return False
    return True


_PKCS7_DATA: Final = bytes.fromhex("06092a864886f70d010701")
"""DER of the OID 1.2.840.113549.1.7.1 (PKCS#7 data): a password-protected PFX's content."""
_PKCS7_SIGNED: Final = bytes.fromhex("06092a864886f70d010702")
"""DER of the OID 1.2.840.113549.1.7.2 (PKCS#7 signedData): a key-protected PFX's content."""


def _der_header(data: bytes, at: int) -> tuple[int, int, int] | None:
    """The tag, the offset of the content and its length of the DER element at ``at``."""
    if at + 2 > len(data):
        return None
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, at + 2, first
    count = first & 0x7F
    if not 1 <= count <= 4 or at + 2 + count > len(data):
        return None
    return tag, at + 2 + count, int.from_bytes(data[at + 2 : at + 2 + count], "big")


def _pkcs12(data: bytes) -> bool:
    """Whether ``data`` is a PKCS#12 PFX (RFC 7292): ``SEQUENCE { INTEGER 3, ContentInfo
    (data or signedData) ... }``."""
    outer = _der_header(data, 0)
    if outer is None or outer[0] != 0x30:
        return False
    if data[outer[1] : outer[1] + 3] != b"\x02\x01\x03":  # version 3
        return False
    content = _der_header(data, outer[1] + 3)
    if content is None or content[0] != 0x30:
        return False
    oid = data[content[1] : content[1] + len(_PKCS7_DATA)]
    return oid in (_PKCS7_DATA, _PKCS7_SIGNED)


_COSE_KTY_SYMMETRIC: Final = 4
_COSE_D: Final = -4  # OKP, EC2, RSA private exponent / scalar
_COSE_K: Final = -1  # a symmetric key's value (for other key types, a curve or modulus)


def _cose_private(data: bytes) -> bool:
    try:
        value = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
        return False
    members = value if isinstance(value, list) else [value]
    return any(
        isinstance(key, dict)
        and (_COSE_D in key or (key.get(KTY) == _COSE_KTY_SYMMETRIC and _COSE_K in key))
        for key in members
    )


def save_signer(
    signer: Signer,
    path: str | os.PathLike[str],
    *,
    password: bytes | None = None,
    overwrite: bool = False,
) -> None:
    """Write a private key as PKCS#8 PEM, atomically, mode 0600.

    Without ``overwrite`` an existing file is never replaced (``Conflict``). An LMS key already
    lives in its state file; saving it anywhere else would clone its one-time keys, so that
    raises ``StateReuse``.
    """
    target = Path(path)
    if isinstance(signer, LmsPrivateKey):
        if target.resolve() == signer.path.resolve():
            return
        raise StateReuse("an LMS state file must not be copied: two copies reuse one-time keys")
    if not isinstance(signer, PrivateKey):
        raise UnsupportedAlgorithm(f"{type(signer).__name__} keys cannot be exported")
    write_atomic(target, signer.to_pem(password), mode=0o600, exclusive=not overwrite)
