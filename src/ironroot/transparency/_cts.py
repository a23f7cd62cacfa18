"""The Microsoft Code Transparency Service (CTS) API, beside SCRAPI, for CTS clients unchanged.

With ``[transparency] cts_prefix = "/cts"`` the service also answers the registration API of
Microsoft's CTS (``scitt-ccf-ledger``) under that prefix, so its client library ``pyscitt``
(``Client(url + "/cts").submit_signed_statement_and_wait(...)``) works as it is. The wire
format, as CTS defines it (its ``operations_endpoints.h``, ``call_types.h``, ``cbor.h`` and
``constants.h``, and pyscitt 0.10's ``client.py``):

* ``POST <prefix>/entries`` (``application/cose``) answers ``202 Accepted`` with a CBOR map
  ``{"OperationId": tstr, "Status": "running"|"succeeded"}`` (``"EntryId"`` too once
  succeeded), ``Location: <prefix>/operations/<id>``;
* ``GET <prefix>/operations/<id>``: ``202`` with ``Status: "running"`` and ``Retry-After``
  while the entry waits for integration, ``200`` with ``Status: "succeeded"`` and the
  ``EntryId`` once its receipt can be served;
* ``GET <prefix>/entries/<id>``: the receipt (``application/cose``);
  ``GET <prefix>/entries/<id>/statement``: the transparent statement (receipts in header 394);
  while the entry waits, or while the store or a receipt signer fails for now
  (:class:`StorageError`, our code kept in ``code``): ``503`` with the title
  ``TransactionNotCached`` and ``Retry-After``, which pyscitt retries as it does against
  CTS (any other 503 title there ends its wait with an error);
* errors are concise problem details (``application/concise-problem-details+cbor``,
  ``{-1: title, -2: detail}``) whose title is the CTS error code: ``InvalidInput`` (a
  malformed statement, a bad signature, an unknown issuer, an untrusted chain),
  ``PolicyFailed`` (the registration policy), ``PayloadTooLarge``, ``NotFound``; pyscitt raises
  them as ``ServiceError(code=title, message=detail)``. Our own error code is kept in the
  problem's ``code`` member.

The operation id is the entry id (64 lowercase hex digits: SHA-256 of the log entry). A CTS
operation id is a CCF transaction id; clients treat both as opaque. So an operation's state is
the entry's state in the log: nothing is kept per operation, every replica and worker answers
for every operation, and a restart loses none. As in CTS, every check (signature, issuer,
policy, size) runs before ``202`` is answered, and a refusal is the problem of ``POST``
itself; the entry is durable before ``202``, and an accepted entry is never refused later, so
the ``"failed"`` status of the CTS format is never reported here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import cbor2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.cose import Problem
from ironroot.errors import (
    AlgorithmNotAccepted,
    IronrootError,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    PolicyRejected,
    StorageError,
    UnsupportedMediaType,
    VerificationFailed,
)
from ironroot.http import (
    PROBLEM_CBOR,
    REFUSAL_HEADERS,
    Handler,
    challenges,
    read_body,
    require_media_type,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from prometheus_client import Counter

    from ironroot.transparency._registrar import Registrar
    from ironroot.transparency._service import TransparencyService

__all__ = ["OPERATION_RUNNING", "OPERATION_SUCCEEDED", "check_cts_prefix", "cts_routes"]

OPERATION_RUNNING: Final = "running"
OPERATION_SUCCEEDED: Final = "succeeded"
_COSE: Final = "application/cose"
_CBOR: Final = "application/cbor"
_ID: Final = re.compile(r"[0-9a-f]{64}")
_PREFIX: Final = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")
# The first path segments the service itself uses: a prefix may not shadow them.
_RESERVED: Final = frozenset(
    {
        "entries",
        "operations",
        "tile",
        "checkpoint",
        ".well-known",
        "openapi.json",
        "health",
        "ready",
        "metrics",
    }
)
_RETRY_AFTER: Final = "1"
# CTS error codes (scitt-ccf-ledger constants.h), by our error class; the first match wins.
_CODES: Final[tuple[tuple[type[IronrootError], str], ...]] = (
    (PayloadTooLarge, "PayloadTooLarge"),
    (UnsupportedMediaType, "UnsupportedContentType"),  # CCF's code for a 415
    (PolicyRejected, "PolicyFailed"),
    (NotFound, "NotFound"),
    (MalformedInput, "InvalidInput"),
    (VerificationFailed, "InvalidInput"),
    (AlgorithmNotAccepted, "InvalidInput"),
)


def check_cts_prefix(prefix: str) -> str:
    """``prefix`` if it can carry the CTS API (``/cts``, ``/compat/cts``), else raise
    :class:`MalformedInput` saying why. The empty string (the API is off) is accepted."""
    if prefix == "":
        return prefix
    if not _PREFIX.fullmatch(prefix):
        raise MalformedInput(
            "the CTS prefix is a path such as /cts: '/' then letters, digits, '.', '_', '~' "
            "or '-', without a trailing '/'"
        )
    segments = prefix.split("/")[1:]
    if any(segment in (".", "..") for segment in segments):
        # a client resolves them away: <url>/cts/../entries is SCRAPI's /entries
        raise MalformedInput("the CTS prefix may not hold a '.' or '..' segment")
    if segments[0] in _RESERVED:
        raise MalformedInput(
            f"the CTS prefix may not start with /{segments[0]}: the service uses it"
        )
    return prefix


def cts_code(exc: IronrootError) -> str:
    """The CTS error code that names ``exc`` (its own title when CTS has none)."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return exc.title


def _problem(status: int, title: str, detail: str, code: str, **headers: str) -> Response:
    """A CTS problem, with the headers every Ironroot problem carries (nosniff, no-store, …)."""
    body = Problem(title=title, detail=detail, status=status, extra={"code": code}).to_cbor()
    return Response(body, status, media_type=PROBLEM_CBOR, headers={**REFUSAL_HEADERS, **headers})


def _cts_errors(handler: Handler) -> Handler:
    """Typed errors as CTS problems (always CBOR, as CTS answers); every 429 and 503 says
    when to come back (``Retry-After``, the error's own delay), as the service's others do."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except IronrootError as exc:
            headers: dict[str, str] = {}
            if challenges(exc):  # a missing or wrong token: not a 403 or a 429
                headers["WWW-Authenticate"] = "Bearer"
            if exc.http_status in (429, 503):
                headers["Retry-After"] = str(retry_after_seconds(exc))
            return _problem(exc.http_status, cts_code(exc), exc.detail, exc.code, **headers)

    return run


def _encode(operation: dict[str, str]) -> bytes:
    """The operation map in CTS's key order (OperationId, Status, EntryId), as CTS writes it;
    nothing signs it, so it is not put in deterministic order."""
    return cbor2.dumps(operation)


def _shown(text: str, limit: int = 80) -> str:
    """A client's id as an error detail shows it: its first ``limit`` characters, those that
    are not printable (controls such as NUL and ESC, bidi overrides, …) and backslashes
    escaped as ``repr`` escapes them (``\\x00``, ``\\x1b``, ``\\u202e``, ``\\\\``); a CCF
    transaction id (``2.15``) shows as it is."""
    return "".join(c if c.isprintable() and c != "\\" else repr(c)[1:-1] for c in text[:limit])


def _operation_id(text: str) -> bytes:
    if not _ID.fullmatch(text):
        raise MalformedInput(f"Invalid Operation ID: {_shown(text)}")
    return bytes.fromhex(text)


def cts_routes(
    service: TransparencyService,
    prefix: str,
    check_token: Callable[[Request], None],
    guard: Callable[[Handler], Handler],
    registrar: Registrar | None = None,
    registrations: Counter | None = None,
) -> list[Route]:
    """The CTS routes under ``prefix``: ``guard`` (the app's) around CTS error answers;
    ``registrar`` registers (the app's: this process's log, or an HTTP worker's sequencer);
    ``registrations`` (the app's, by outcome) counts each ``202``: ``integrated`` when the
    operation already succeeded, ``pending`` while it runs, as SCRAPI's 201 and 303."""
    # imported here: _config imports this module, and _registrar imports _service (_config)
    from ironroot.transparency._registrar import LocalRegistrar

    register = registrar if registrar is not None else LocalRegistrar(service)
    config = service.config

    def operation(entry_id: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
        """(HTTP status, CBOR body, headers) of the operation that registered ``entry_id``."""
        text = entry_id.hex()
        # the receipts held in memory first (served while the store is away, as the
        # receipt itself is); else the log's: NotFound for an id it never accepted
        receipts = service.receipts(entry_id)
        if receipts is None:
            body = {"OperationId": text, "Status": OPERATION_RUNNING}
            return 202, body, {"Retry-After": _RETRY_AFTER}
        body = {"OperationId": text, "Status": OPERATION_SUCCEEDED, "EntryId": text}
        return 200, body, {"Location": f"{prefix}/entries/{text}"}

    async def post_entries(request: Request) -> Response:
        check_token(request)
        require_media_type(request, _COSE)
        body = await read_body(request, config.max_statement_bytes)
        # durable before 202; the operation reports the integration (no wait here)
        entry_id = (await register.register(body, 0.0)).entry_id
        try:
            _, answer, _ = operation(entry_id)
        except StorageError:  # stored, but its receipt is not servable yet: still running
            answer = {"OperationId": entry_id.hex(), "Status": OPERATION_RUNNING}
        if registrations is not None:
            succeeded = answer["Status"] == OPERATION_SUCCEEDED
            registrations.labels("integrated" if succeeded else "pending").inc()
        headers = {"Location": f"{prefix}/operations/{entry_id.hex()}"}
        return Response(_encode(answer), 202, media_type=_CBOR, headers=headers)

    async def get_operation(request: Request) -> Response:
        entry_id = _operation_id(request.path_params["operation_id"])
        try:
            status, body, headers = operation(entry_id)
        except NotFound:
            raise NotFound("Invalid operation ID") from None
        return Response(_encode(body), status, media_type=_CBOR, headers=headers)

    def entry_id_of(request: Request) -> bytes:
        text = request.path_params["entry_id"]
        if not _ID.fullmatch(text):
            raise MalformedInput(f"Invalid Entry ID: {_shown(text)}")
        return bytes.fromhex(text)

    def not_yet(
        detail: str = "the entry is not integrated yet; retry",
        code: str = "pending",
        retry_after: str = _RETRY_AFTER,
    ) -> Response:
        return _problem(503, "TransactionNotCached", detail, code, **{"Retry-After": retry_after})

    def unavailable(exc: StorageError) -> Response:
        """A store or receipt signer that fails for now: CTS's "retry later" for an entry,
        the one 503 pyscitt retries on ``/entries`` (any other title ends its wait at once)."""
        return not_yet(exc.detail, exc.code, str(retry_after_seconds(exc)))

    async def get_entry(request: Request) -> Response:
        entry_id = entry_id_of(request)
        try:
            receipts = service.receipts(entry_id)
        except StorageError as exc:
            return unavailable(exc)
        if receipts is None:
            return not_yet()
        return Response(receipts[0], 200, media_type=_COSE)

    async def get_statement(request: Request) -> Response:
        entry_id = entry_id_of(request)
        try:
            if service.receipts(entry_id) is None:
                return not_yet()
            statement = service.transparent_statement(entry_id)
        except StorageError as exc:
            return unavailable(exc)
        return Response(statement, 200, media_type=_COSE)

    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(prefix + path, guard(_cts_errors(handler)), methods=[method])

    return [
        route("/entries", post_entries, "POST"),
        route("/operations/{operation_id}", get_operation, "GET"),
        route("/entries/{entry_id}", get_entry, "GET"),
        route("/entries/{entry_id}/statement", get_statement, "GET"),
    ]
