"""The Redfish service's HTTP plumbing: URIs, refusals, resource JSON and ETags.

:class:`Refusal` is a Redfish error answer (status, registry messages, headers) raised by a
handler; :func:`refusal_of` turns a typed error from below the HTTP layer into one. The JSON
helpers give every resource its ``@odata.id``, ``@odata.type`` and ``@odata.context``
(:func:`odata`), answer with ``OData-Version``, ``ETag`` and ``Allow`` (:func:`json_response`,
``304`` for a matching ``If-None-Match``), hold ``PATCH``/``DELETE`` to ``If-Match`` and
``If-None-Match`` (:func:`precondition`), and read request bodies and properties with the Base
registry's messages for what is wrong (:func:`json_body`, :func:`prop`, :func:`only`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from ironroot._json import DECODER
from ironroot.errors import (
    Conflict,
    IdentityLocked,
    IronrootError,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RoleNotPermitted,
    TooManyAttempts,
    Unauthorized,
)
from ironroot.http import read_body
from ironroot.platform._redfish_csdl import SCHEMA_VERSIONS
from ironroot.platform._redfish_messages import error_body, message
from ironroot.platform._redfish_tasks import Task

__all__ = [
    "ACCOUNTS",
    "INVENTORY",
    "JSON",
    "JSON_LIMIT",
    "LOG",
    "MANAGER",
    "MONITORS",
    "MULTIPART_PARTS",
    "MULTIPART_URI",
    "PFM_PART",
    "PFM_STATEMENT_PART",
    "REALM",
    "REDFISH_VERSION",
    "ROLES_URI",
    "ROOT",
    "SESSIONS",
    "SIMPLE_UPDATE",
    "SIMPLE_UPDATE_ACTION",
    "STATEMENT_PART",
    "TASKS",
    "RedfishLimits",
    "Refusal",
    "collection",
    "entity_tags",
    "error_response",
    "etag_matches",
    "etag_of",
    "json_body",
    "json_object",
    "json_response",
    "link",
    "odata",
    "only",
    "precondition",
    "prop",
    "refusal_of",
    "refuse",
    "task_body",
    "utc",
]

ROOT: Final = "/redfish/v1"
SESSIONS: Final = f"{ROOT}/SessionService/Sessions"
ACCOUNTS: Final = f"{ROOT}/AccountService/Accounts"
ROLES_URI: Final = f"{ROOT}/AccountService/Roles"
INVENTORY: Final = f"{ROOT}/UpdateService/FirmwareInventory"
MULTIPART_URI: Final = f"{ROOT}/UpdateService/update-multipart"
SIMPLE_UPDATE: Final = f"{ROOT}/UpdateService/Actions/UpdateService.SimpleUpdate"
TASKS: Final = f"{ROOT}/TaskService/Tasks"
MONITORS: Final = f"{ROOT}/TaskService/TaskMonitors"
MANAGER: Final = f"{ROOT}/Managers/bmc"
LOG: Final = f"{MANAGER}/LogServices/RoT"
REDFISH_VERSION: Final = "1.21.0"
JSON: Final = "application/json; charset=utf-8"
STATEMENT_PART: Final = "OemIronrootStatement"
PFM_PART: Final = "OemIronrootPfm"
PFM_STATEMENT_PART: Final = "OemIronrootPfmStatement"
MULTIPART_PARTS: Final = (
    "UpdateParameters",
    "UpdateFile",
    STATEMENT_PART,
    PFM_PART,
    PFM_STATEMENT_PART,
)
"""The part names of a multipart update (the last three are Ironroot's OEM parts)."""
JSON_LIMIT: Final = 64 * 1024
REALM: Final = 'Basic realm="Ironroot Redfish", charset="UTF-8"'
"""The challenge of a ``401`` where HTTP Basic is taken: over HTTPS, or with
``basic_over_http`` (:meth:`~ironroot.platform._redfish.RedfishService.offers_basic`)."""
SIMPLE_UPDATE_ACTION: Final = "UpdateService.SimpleUpdate"


@dataclass(frozen=True, slots=True)
class RedfishLimits:
    """What one update may bring: the image and statement sizes (bytes), the number of
    statements, how long a ``SimpleUpdate`` fetch may take (seconds), and how long a request
    waits for the RoT's verification before answering ``202`` anyway (seconds); and how many
    passwords (logins, HTTP Basic requests) are checked at once: each check is an scrypt hash
    of about 32 MiB and a worker thread, whoever sends it, so one more is ``503``."""

    max_image_bytes: int = 64 * 1024 * 1024
    max_statement_bytes: int = 1024 * 1024
    max_statements: int = 16
    fetch_timeout: float = 60.0
    verify_wait: float = 600.0
    max_password_checks: int = 4

    @property
    def max_request_bytes(self) -> int:
        return self.max_image_bytes + (self.max_statements + 2) * self.max_statement_bytes + 65536


# --- refusals -------------------------------------------------------------------------------


class Refusal(Exception):
    """A Redfish error answer: status, registry messages, headers (internal to the app)."""

    def __init__(
        self,
        status: int,
        *messages: dict[str, Any],
        text: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(text or (messages[0]["Message"] if messages else ""))
        self.status = status
        self.messages = messages
        self.text = text
        self.headers = dict(headers or {})


def refuse(key: str, *args: object, related: str | None = None, status: int = 400) -> Refusal:
    return Refusal(status, message(key, *args, related=(related,) if related else ()))


def error_response(refusal: Refusal) -> Response:
    body = json.dumps(error_body(refusal.messages, refusal.text)).encode()
    headers = {"OData-Version": "4.0", "Cache-Control": "no-store", **refusal.headers}
    return Response(body, refusal.status, headers=headers, media_type=JSON)


def refusal_of(exc: IronrootError, path: str) -> Refusal:
    """The Redfish answer for a typed error raised below the HTTP layer."""
    oem = {"Check": exc.check or "", "Code": exc.code, "Detail": exc.detail}
    if isinstance(exc, RoleNotPermitted):
        return Refusal(403, message("InsufficientPrivilege"), text=exc.detail)
    if isinstance(exc, TooManyAttempts):  # an Unauthorized too: before it
        # RFC 6585 §4; the Base registry's message that says when to retry
        return Refusal(
            429,
            message("ServiceTemporarilyUnavailable", exc.retry_after),
            text=exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, Unauthorized | IdentityLocked):
        # its challenge (Basic where Basic is taken) is the app's, which knows the transport
        return Refusal(401, message("NoValidSession"))
    if isinstance(exc, NotFound):
        return Refusal(404, message("ResourceMissingAtURI", path), text=exc.detail)
    if isinstance(exc, PayloadTooLarge):
        return Refusal(413, message("PayloadTooLarge"), text=exc.detail)
    if isinstance(exc, Overloaded):
        return Refusal(
            503,
            message("ServiceTemporarilyUnavailable", exc.retry_after),
            text=exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, Conflict):
        return Refusal(409, message("ResourceInUse", oem=oem), text=exc.detail)
    status = exc.http_status if 400 <= exc.http_status < 600 else 500
    headers = {}
    if status in (429, 503):  # every "not now" says when to come back (RFC 9110 §10.2.3)
        headers["Retry-After"] = str(max(1, int(getattr(exc, "retry_after", 1))))
    return Refusal(status, message("GeneralError", oem=oem), text=exc.detail, headers=headers)


def utc(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# --- JSON helpers ---------------------------------------------------------------------------


def odata(path: str, kind: str) -> dict[str, Any]:
    """``@odata.id``, ``@odata.type`` and ``@odata.context`` of a resource of type ``kind``
    (a collection when it ends with ``Collection``)."""
    if kind.endswith("Collection"):
        full = f"#{kind}.{kind}"
    else:
        full = f"#{kind}.{SCHEMA_VERSIONS[kind]}.{kind}"
    return {
        "@odata.id": path,
        "@odata.type": full,
        "@odata.context": f"{ROOT}/$metadata#{kind}.{kind}",
    }


def link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def collection(path: str, kind: str, name: str, members: Sequence[str]) -> dict[str, Any]:
    return {
        **odata(path, kind),
        "Name": name,
        "Members@odata.count": len(members),
        "Members": [link(m) for m in members],
    }


def etag_of(body: Mapping[str, Any], version: str = "") -> str:
    """The ETag of a resource: a digest of its ``body`` and of ``version``, what the resource
    holds but does not show (an account's password) and must change its ETag all the same."""
    canonical = json.dumps(
        {k: v for k, v in body.items() if k != "@odata.etag"}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(canonical.encode() + b"\0" + version.encode())
    return f'W/"{digest.hexdigest()[:32]}"'


_TAG: Final = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"')


def entity_tags(request: Request, name: str) -> tuple[str, ...] | None:
    """The condition in the request's ``name`` field (``If-Match``, ``If-None-Match``), all
    its fields read as one list (RFC 9110 §5.3): ``None`` without one, ``("*",)`` for ``*``,
    otherwise its entity tags without ``W/`` (compared weakly, as every ETag here is weak);
    empty list members are ignored (§5.6.1.2). A field that is neither ``"*"`` nor a list of
    quoted entity tags (§13.1.1: ``*, "a"``, an unquoted tag, ``W/`` apart from its tag) is
    a condition that cannot hold, never a match: ``412`` (what DMTF's protocol validator
    asks of an ``If-Match`` it spoils, ``W/"…"foobar``) with ``HeaderInvalid`` naming it,
    as for an ``OData-Version`` this service does not speak."""
    values = request.headers.getlist(name)
    if not values:
        return None
    joined = ",".join(values)
    if joined.strip(" \t") == "*":
        return ("*",)
    tags: list[str] = []
    at = _past_spaces(joined, 0)
    while at < len(joined):
        if joined[at] == ",":  # an empty member, or the end of one
            at = _past_spaces(joined, at + 1)
            continue
        tag = _TAG.match(joined, at)
        at = _past_spaces(joined, tag.end()) if tag else at
        if tag is None or joined[at : at + 1] not in ("", ","):
            raise Refusal(
                412,
                message("HeaderInvalid", name),
                text=f'{name} is "*" or a list of quoted entity tags (RFC 9110 §13.1)',
            )
        tags.append(tag.group().removeprefix("W/"))
    return tuple(tags)


def _past_spaces(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t":
        at += 1
    return at


def etag_matches(tags: tuple[str, ...] | None, etag: str | None) -> bool:
    """Whether a condition read by :func:`entity_tags` holds for a resource whose current
    ETag is ``etag`` (``None``: the target has no representation, which nothing matches,
    ``*`` included; RFC 9110 §13.1.1)."""
    if tags is None or etag is None:
        return False
    return tags == ("*",) or etag.removeprefix("W/") in tags


def json_response(
    request: Request,
    body: dict[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    version: str = "",
) -> Response:
    etag = etag_of(body, version)
    body = {**body, "@odata.etag": etag} if "@odata.id" in body else body
    out = {"OData-Version": "4.0", "ETag": etag, "Cache-Control": "no-cache", **(headers or {})}
    allow = request.scope.get("ironroot.allow")
    if allow:
        out["Allow"] = allow
    kind = body.get("@odata.type")
    if isinstance(kind, str) and kind.startswith("#") and not kind.startswith("#Ironroot."):
        name, _, version = kind[1:].rpartition(".")[0].partition(".")
        schema = f"{name}.{version}" if version else name
        out["Link"] = f"<http://redfish.dmtf.org/schemas/v1/{schema}.json>; rel=describedby"
    if (
        request.method in ("GET", "HEAD")
        and status == 200
        and etag_matches(entity_tags(request, "If-None-Match"), etag)
    ):
        return Response(status_code=304, headers=out)
    return Response(json.dumps(body).encode(), status, headers=out, media_type=JSON)


def precondition(request: Request, current: Mapping[str, Any] | None, *, version: str = "") -> None:
    """``If-Match`` against the target resource's current ETag (``412`` when it does not
    match), and ``If-None-Match`` (``412`` when it does: ``*`` or the current ETag; RFC 9110
    §13.1.2, a condition for a change, not only for a ``304``). ``current`` is the target's
    representation, ``None`` when it has none (a push URI): any ``If-Match`` is ``412``."""
    etag = None if current is None else etag_of(current, version)
    wanted = entity_tags(request, "If-Match")
    if wanted is not None and not etag_matches(wanted, etag):
        raise refuse("PreconditionFailed", status=412)
    if etag_matches(entity_tags(request, "If-None-Match"), etag):
        raise refuse("PreconditionFailed", status=412)


async def json_body(request: Request) -> dict[str, Any]:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise Refusal(
            415,
            message("UnrecognizedRequestBody"),
            text=f"the request body must be application/json, not {kind}",
        )
    return json_object(await read_body(request, JSON_LIMIT))


def json_object(body: bytes | str) -> dict[str, Any]:
    """A JSON object read strictly (``ironroot._json``): a member given twice (kept last here,
    first by another reader, such as a proxy that checked the request), ``NaN``, ``Infinity``
    or a number past a double is ``MalformedJSON``, and so are bytes other than UTF-8 without
    a byte order mark (RFC 8259 §8.1; a reader of UTF-8 sees other JSON, or none, in UTF-16
    or UTF-32); another JSON value is ``UnrecognizedRequestBody``."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if text.startswith("\ufeff"):
            raise ValueError("a byte order mark")
        value = DECODER.decode(text)
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise refuse("MalformedJSON") from None
    if not isinstance(value, dict):
        raise refuse("UnrecognizedRequestBody")
    return value


_SECRET_PROPERTIES: Final = frozenset({"Password", "NewPassword", "SessionAccountPassword"})
"""Properties and action parameters whose values an error never shows."""


def prop(
    doc: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    *,
    action: str | None = None,
) -> Any:
    """``doc[name]`` when it is of ``kind``; ``PropertyValueTypeError`` (or the action
    parameter message) otherwise. Booleans are not integers here. A refused value of a
    property in :data:`_SECRET_PROPERTIES` is shown ``(hidden)``: a password sent as a list or
    a number is a secret still."""
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        shown = "(hidden)" if name in _SECRET_PROPERTIES else json.dumps(value)[:100]
        if action:
            raise refuse("ActionParameterValueTypeError", shown, name, action, related=f"/{name}")
        raise refuse("PropertyValueTypeError", shown, name, related=f"/{name}")
    return value


def only(doc: Mapping[str, Any], allowed: Sequence[str], read_only: Collection[str] = ()) -> None:
    """Refuse the members of ``doc`` that are not ``allowed``, each named in a message of the
    one ``400`` (DSP0266): ``PropertyNotWritable`` when it is one of ``read_only`` (for a
    ``PATCH``, every property the resource shows), otherwise ``PropertyUnknown``.
    ``@odata.`` annotations are ignored."""
    refused = [
        message(
            "PropertyNotWritable" if name in read_only else "PropertyUnknown",
            name,
            related=(f"/{name}",),
        )
        for name in doc
        if not name.startswith("@odata.") and name not in allowed
    ]
    if refused:
        raise Refusal(400, *refused)


def task_body(task: Task, *, payload: bool) -> dict[str, Any]:
    """The ``Task`` resource; its ``Payload`` (the request that started it) only with
    ``payload``, otherwise ``HidePayload: true`` and no ``Payload``, as the Task schema
    has it."""
    body: dict[str, Any] = {
        **odata(f"{TASKS}/{task.id}", "Task"),
        "Id": task.id,
        "Name": task.name,
        "TaskState": task.state,
        "TaskStatus": task.status,
        "StartTime": task.start,
        "PercentComplete": task.percent,
        "TaskMonitor": f"{MONITORS}/{task.id}",
        "Messages": list(task.messages),
        "HidePayload": not payload,
    }
    if payload:
        body["Payload"] = dict(task.payload)
    if task.end is not None:
        body["EndTime"] = task.end
    return body
