"""The ``releases`` step of an audit check (16 in :mod:`ironroot.audit._verify`).

Each release statement the key service kept verifies to a trusted HSM vendor root, is of the
HSM whose audit chain the ``hsm`` step verified, and is bound by exactly one granted release
record of that chain with the statement's key, wrapping key and EAR.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from ironroot.audit._bundle import items_within
from ironroot.audit._context import Context, NotRun, not_present, posix_time
from ironroot.cose import Limits, decode_cbor
from ironroot.crypto import load_certificate
from ironroot.errors import (
    IronrootError,
    LimitExceeded,
    MalformedInput,
    UnknownIssuer,
    VerificationFailed,
)
from ironroot.hsm import open_release_statement

__all__ = ["check_releases"]


_RELEASE_LIMITS: Final = Limits(max_bytes=256 * 1024 * 1024, max_depth=2, max_items=10_000)


def _release_statements(data: bytes) -> list[bytes]:
    """``hsm/releases.cbor``: a CBOR array of release statements (bytes), its items counted
    before any is built (256 MiB of one-byte empty arrays would take some 16 GB)."""
    if not items_within(data, _RELEASE_LIMITS.max_items + 1):
        raise LimitExceeded(
            f"hsm/releases.cbor holds more than {_RELEASE_LIMITS.max_items} release statements"
        )
    value = decode_cbor(data, _RELEASE_LIMITS)
    if not isinstance(value, list) or not all(isinstance(s, bytes) for s in value):
        raise MalformedInput("hsm/releases.cbor is an array of release statements")
    return value


def check_releases(ctx: Context) -> list[str]:
    name = "hsm/releases.cbor"
    if name not in ctx.bundle.members:
        raise not_present(
            ctx.index.absent, name, "hsm", default="the bundle holds no release statements"
        )
    if ctx.hsm_releases is None:
        raise NotRun("the HSM audit chain did not verify")
    statements = _release_statements(ctx.member(name))
    if not ctx.trust.hsm_roots:
        raise UnknownIssuer(
            "the trust names no HSM vendor root ([hsm] roots): no release statement verifies"
        )
    roots = [load_certificate(der, der_only=True) for der in ctx.trust.hsm_roots]
    lines = [
        f"{len(statements)} release statement(s) verify to a trusted HSM vendor root, each "
        "bound by one granted release record of the verified audit chain"
    ]
    if not ctx.hsm_ids:
        lines.append("no signed checkpoint names the HSM: statements are tied to it by the chain")
    matched: dict[bytes, int] = {}
    for number, statement in enumerate(statements):
        try:
            line = _release_statement(ctx, roots, statement, number, matched)
        except IronrootError as exc:
            exc.check = f"statement-{number}"
            raise
        if number < 20:
            lines.append(line)
    if len(statements) > 20:
        lines.append(f"… and {len(statements) - 20} more, each matched")
    unmatched = len(ctx.hsm_releases) - len(matched)
    if unmatched:
        lines.append(
            f"{unmatched} bound release record(s) of the chain have no statement in the bundle "
            "(older than what the key service keeps, or released through another service)"
        )
    return lines


def _release_statement(
    ctx: Context,
    roots: list[Any],
    statement: bytes,
    number: int,
    matched: dict[bytes, int],
) -> str:
    try:
        opened = open_release_statement(statement, roots=roots, now=ctx.at)
    except IronrootError as exc:
        exc.detail = f"release statement {number}: {exc.detail}"
        raise
    if ctx.hsm_ids and opened.hsm_id not in ctx.hsm_ids:
        raise VerificationFailed(
            f"release statement {number} was signed by HSM {opened.hsm_id.hex()[:16]}…, not "
            "the HSM whose audit chain the bundle holds",
            code="release-other-hsm",
        )
    digest = hashlib.sha256(statement).digest()
    if digest in matched:
        raise VerificationFailed(
            f"release statement {number} is statement {matched[digest]} again",
            code="release-not-audited",
        )
    matched[digest] = number
    assert ctx.hsm_releases is not None
    record = ctx.hsm_releases.get(digest)
    if record is None:
        raise VerificationFailed(
            f"release statement {number} (SHA-256 {digest.hex()[:16]}…) is bound by no "
            "release record of the HSM's audit chain",
            code="release-not-audited",
        )
    binding = record.release
    assert binding is not None  # release_records returns bound records only
    if (
        record.key != opened.handle
        or binding.recipient != opened.recipient
        or binding.ear != opened.ear_digest
    ):
        raise VerificationFailed(
            f"audit record {record.seq} binds release statement {number}, but not its key, "
            "wrapping key and EAR",
            code="release-record-mismatch",
        )
    return (
        f"{posix_time(opened.issued_at)} {opened.handle} ({opened.key_type.value}) to wrapping "
        f"key {opened.recipient.hex()[:16]}…, EAR {opened.ear_digest.hex()[:16]}…: audit "
        f"record {record.seq}"
    )
