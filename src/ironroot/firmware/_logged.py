"""LMS leaves read back from logged manifest statements: one-time key reuse seen on the log.

A release's manifest statement (:func:`~ironroot.firmware.manifest_statement`) names each of
its LMS signatures in the protected header :data:`~ironroot.firmware.LMS_LEAVES_HEADER`: the
key's hash, the leaf ``q``, the message (the header digest) and the signature's SHA-384. The
statement's payload stays the SHA-384 of the manifest (RFC 9995 hash envelope), so every
reader of the payload is unchanged; a statement registered before the header existed (or of
an ML-DSA-87 release) has no leaves to read, which is not an error.

:func:`find_lms_leaf_reuse` takes logged statements alone (no bundle) and reports each leaf
of one key that two of them (or one, as vendor and owner) used for different signatures:
two LM-OTS signatures of one leaf let anyone forge that leaf's signatures, and a device
accepts any leaf. Pure: statement bytes in. The statements' signatures and receipts are not
checked here: a relying party that acts on a report first checks they are logged
(``ironroot statement verify``) and by whom (the report names each statement's manifest).

:func:`verify_logged_statement` is that check, as ``ironroot statement verify --issuer-key``
makes it (the receipts by :func:`ironroot.cose.on_trusted_log`, every one of them, then the
issuer's signature): publication runs it on every statement it reads leaves from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from ironroot.cose import (
    HASH_SHA384,
    RECEIPTS,
    SignedStatement,
    TransparentStatement,
    on_trusted_log,
)
from ironroot.cose._sign1 import unchecked_protected_header
from ironroot.crypto import Verifier
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedStatement,
    PolicyRejected,
    UnknownIssuer,
)
from ironroot.firmware._leaves import LMS_LEAVES_HEADER, LmsLeafReuse, LoggedLmsLeaf, leaf_reuse
from ironroot.firmware._reference import MANIFEST_CONTENT_TYPE

__all__ = [
    "entry_lms_leaves",
    "find_lms_leaf_reuse",
    "logged_lms_leaves",
    "verify_logged_statement",
]

_DIGEST_SIZE: Final = 48
_FIELDS: Final = frozenset(("role", "key-hash", "leaf", "message", "signature-hash"))
_ROLES: Final = ("vendor", "owner")
_MAX_LEAF: Final = 0xFFFF_FFFF


def _statement(data: bytes) -> SignedStatement:
    """The Signed Statement in ``data``, a Transparent Statement (receipts not checked) or
    a Signed Statement; ``MalformedStatement`` (or ``LimitExceeded``) if neither."""
    try:
        return TransparentStatement.parse(data).statement
    except IronrootError:
        return SignedStatement.parse(data)


_WHAT: Final = "the manifest statement"


def verify_logged_statement(
    data: bytes,
    service_keys: Mapping[bytes, Verifier],
    issuer_keys: Iterable[Verifier],
    *,
    service_issuer: str | None = None,
    now: float | None = None,
) -> SignedStatement:
    """The Signed Statement of the Transparent Statement ``data``, once it is shown logged and
    by whom, as ``ironroot statement verify --issuer-key`` shows it: every receipt it carries
    proves its log entry under one of ``service_keys`` (:func:`ironroot.cose.on_trusted_log`
    with ``require_all``; with ``service_issuer`` each receipt names that service, and with
    ``now``, POSIX seconds, none is issued after it), then its COSE signature verifies under
    the one of ``issuer_keys`` its ``kid`` names (each key tried when it names none).

    ``ConfigError`` without a service or an issuer key (nothing to check against: never read
    as "checked"); the statement's own parse error for bytes that are no statement (truncated,
    say); ``PolicyRejected`` ``no-receipt`` for a Signed Statement that carries no receipt (its
    being logged is what is read from it); ``UnknownIssuer`` ``untrusted-service`` for a
    receipt of another service (a key not in ``service_keys``, another ``iss``);
    ``InvalidProof`` ``receipt-not-for-statement`` for a receipt of another statement (or a
    tampered one); ``UnknownIssuer`` ``unknown-issuer`` for a signer none of ``issuer_keys``
    is; ``BadSignature`` (or ``AlgorithmNotAccepted``) for a signature that does not verify.
    The statement's CWT validity is not judged: an expired release still used its leaves."""
    keys = tuple(issuer_keys)
    if not service_keys:
        raise ConfigError(
            f"no transparency service key to verify the receipts of {_WHAT} with: without"
            " one, a statement no service logged would be taken as logged"
        )
    if not keys:
        raise ConfigError(f"no issuer key to verify the signature of {_WHAT} with")
    try:
        TransparentStatement.parse(data)
    except IronrootError:
        signed = SignedStatement.parse(data)  # bytes that are no statement: its own error
        if RECEIPTS not in signed.sign1.unprotected:
            raise PolicyRejected(
                f"{_WHAT} is not shown on a transparency log: it carries no receipt (give"
                " the Transparent Statement, its .manifest.ts)",
                code="no-receipt",
            ) from None
        raise  # its receipts header is malformed: the Transparent Statement's error
    statement = on_trusted_log(
        data, service_keys, _WHAT, issuer=service_issuer, now=now, require_all=True
    ).statement
    kid = statement.kid
    candidates = [key for key in keys if kid is None or key.kid == kid]
    if not candidates:
        raise UnknownIssuer(
            f"{_WHAT} is signed by the key {kid.hex() if kid else ''}, none of the issuer"
            " keys its signature is checked against",
            code="unknown-issuer",
        )
    failures: list[IronrootError] = []
    for key in candidates:
        try:
            statement.sign1.verify(key)
        except IronrootError as exc:
            failures.append(exc)
        else:
            return statement
    failure = failures[0]
    raise type(failure)(
        f"the signature of {_WHAT} does not verify under its issuer key: {failure.detail}",
        code=failure.code,
    ) from failure


def _digest(item: Mapping[object, object], name: str) -> bytes:
    value = item[name]
    if not isinstance(value, bytes) or len(value) != _DIGEST_SIZE:
        raise MalformedStatement(f"an LMS leaf's {name} must be a 48-byte SHA-384")
    return value


def logged_lms_leaves(statement: bytes) -> tuple[LoggedLmsLeaf, ...]:
    """The LMS leaves a firmware manifest statement logs (Signed or Transparent Statement
    bytes); ``()`` when it carries none (an ML-DSA-87 release, or one registered before).

    ``MalformedStatement`` for bytes that are no statement, a statement that is no firmware
    manifest statement (a SHA-384 hash envelope of ``MANIFEST_CONTENT_TYPE``: a CoRIM
    statement given by mistake would otherwise compare nothing), a leaves header that is
    not exactly as :data:`LMS_LEAVES_HEADER` describes, and one in the unprotected header
    (unsigned: read as none, a reuse would pass unseen)."""
    parsed = _statement(statement)
    envelope = parsed.hash_envelope
    if (
        envelope is None
        or envelope.hash_alg != HASH_SHA384
        or envelope.preimage_content_type != MANIFEST_CONTENT_TYPE
    ):
        raise MalformedStatement(
            "not a firmware manifest statement (a SHA-384 hash envelope of"
            f" {MANIFEST_CONTENT_TYPE})"
        )
    if LMS_LEAVES_HEADER in parsed.sign1.unprotected:  # unsigned: never read as "none"
        raise MalformedStatement(
            f"{LMS_LEAVES_HEADER} must be in the protected header (signed with the statement),"
            " not the unprotected one"
        )
    protected = parsed.sign1.protected
    if LMS_LEAVES_HEADER not in protected:
        return ()
    value = protected[LMS_LEAVES_HEADER]
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= len(_ROLES):
        raise MalformedStatement(
            f"{LMS_LEAVES_HEADER} must be an array of one or two LMS leaf maps"
        )
    out: list[LoggedLmsLeaf] = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != _FIELDS:
            raise MalformedStatement(
                f"an LMS leaf of {LMS_LEAVES_HEADER} must be a map of exactly role, key-hash,"
                " leaf, message and signature-hash"
            )
        role, leaf = item["role"], item["leaf"]
        if role not in _ROLES or any(seen.role == role for seen in out):
            raise MalformedStatement('an LMS leaf\'s role must be "vendor" or "owner", each once')
        if isinstance(leaf, bool) or not isinstance(leaf, int) or not 0 <= leaf <= _MAX_LEAF:
            raise MalformedStatement(f"an LMS leaf's leaf must be an integer 0–{_MAX_LEAF}")
        out.append(
            LoggedLmsLeaf(
                role=role,
                key_hash=_digest(item, "key-hash"),
                leaf=leaf,
                message=_digest(item, "message"),
                signature_hash=_digest(item, "signature-hash"),
                manifest_digest=parsed.payload,
            )
        )
    return tuple(out)


def _names_leaves(entry: bytes) -> bool:
    """Whether ``entry``, read as a COSE_Sign1 by a plain CBOR decode and nothing else
    checked, has :data:`LMS_LEAVES_HEADER` in its protected header."""
    header = unchecked_protected_header(entry)
    return header is not None and LMS_LEAVES_HEADER in header


def entry_lms_leaves(entry: bytes) -> tuple[LoggedLmsLeaf, ...]:
    """The LMS leaves a log entry names (what a log monitor reads of every entry): ``()`` for
    an entry whose protected header has no :data:`LMS_LEAVES_HEADER` (any other statement,
    firmware or not, or bytes that are no statement at all); else as
    :func:`logged_lms_leaves`: ``MalformedStatement`` for an entry that has the header and
    is not a firmware manifest statement with the header exactly as described (including
    one whose COSE a stricter parse refuses: another reader may take it, and its leaves)."""
    try:
        parsed = _statement(entry)
    except IronrootError as exc:
        if _names_leaves(entry):
            raise MalformedStatement(
                f"a statement naming {LMS_LEAVES_HEADER} does not parse: {exc.detail}"
            ) from exc
        return ()
    if LMS_LEAVES_HEADER not in parsed.sign1.protected:
        return ()
    return logged_lms_leaves(entry)


def find_lms_leaf_reuse(statements: Iterable[bytes]) -> tuple[LmsLeafReuse, ...]:
    """Every LMS leaf that ``statements`` (firmware manifest statements, as logged) show one
    key using for two different signatures — over two headers, or over one with another
    randomizer, in two releases or as vendor and owner of one: an
    :class:`~ironroot.firmware.LmsLeafReuse` ``(first, later)`` for each later use, in the
    order given (its ``detail`` is what ``StateReuse`` says); ``()`` when none. A release
    logged twice (the same signature) is one use. ``MalformedStatement`` as
    :func:`logged_lms_leaves`."""
    return leaf_reuse(leaf for data in statements for leaf in logged_lms_leaves(data))
