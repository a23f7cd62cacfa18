"""The platform's management API in the shape operators know: DMTF Redfish (DSP0266).

``ironroot platform serve --node DIR`` serves this Starlette app for the node in ``DIR``
(:func:`serve_redfish`). Resources (all under ``/redfish/v1``; a trailing slash is accepted):

================================================  ============================================
URI (under ``/redfish/v1``)                       what
================================================  ============================================
``/redfish``, ``/redfish/v1``                     version document; service root
``$metadata``, ``odata``                          CSDL; OData service document
``Schemas/Ironroot_v1.xml``                       the CSDL of the ``Oem.Ironroot`` objects
``SessionService``, ``…/Sessions[/{id}]``         sessions: ``POST`` logs in, ``DELETE`` out
``AccountService``, ``…/Accounts[/{id}]``         accounts, and ``…/Roles[/{role}]``: the three
                                                  predefined roles
``UpdateService``                                 ``MultipartHttpPushUri``, ``SimpleUpdate``
``UpdateService/FirmwareInventory[/{c}-{role}]``  every image the RoT holds
``TaskService``, ``…/Tasks[/{id}]``               update tasks, and ``…/TaskMonitors/{id}``
``Managers/bmc``, ``…/LogServices/RoT/Entries``   the BMC and the RoT's event log
================================================  ============================================

**Authentication.** Everything but ``/redfish``, the service root, ``$metadata``, ``odata``,
the OEM schema and ``POST …/Sessions`` needs a session token (``X-Auth-Token``) or HTTP Basic
credentials. No or a wrong credential: ``401`` ``Base.1.22.NoValidSession`` (with
``WWW-Authenticate: Basic``). A role without the privilege the operation needs (Redfish's
privilege registry: reads need ``Login``, updates ``ConfigureComponents``, accounts
``ConfigureUsers``, other sessions and the session service ``ConfigureManager``; changing one's
own password ``ConfigureSelf``): ``403`` ``Base.1.22.InsufficientPrivilege``.

**Updates.** ``POST /redfish/v1/UpdateService/update-multipart`` (``multipart/form-data``):

* ``UpdateParameters`` (JSON, required): ``{"Targets": [URI]}`` with exactly one target, a
  ``FirmwareInventory`` member of the component (``…/FirmwareInventory/bmc-active``) or
  ``/redfish/v1/Managers/bmc``; optionally ``"@Redfish.OperationApplyTime": "Immediate"`` and
  ``"ForceUpdate": false`` (the checks are never bypassed);
* ``UpdateFile`` (required): the firmware bundle;
* ``OemIronrootStatement`` (repeat, up to 16): the bundle's transparent statements (the
  manifest statement with its receipt; for a device its CoRIM; SAFE reviews when required);
* ``OemIronrootPfm`` and/or ``OemIronrootPfmStatement`` (optional): a new signed PFM to
  activate with the image, and its transparent statement.

``POST /redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate`` takes JSON
``{"ImageURI": "https://…/bmc-2.0.bin", "Targets": [URI], "TransferProtocol": "HTTPS",
"Username": …, "Password": …, "Oem": {"Ironroot": {"StatementURIs": [URI, …], "PfmURI": URI,
"PfmStatementURI": URI}}}``: the service fetches the image and each statement over HTTP(S)
(``httpx``; the same limits as a push), then updates as above.

Either way the update runs in a worker thread (never on the event loop) as a task; the request
is answered once the RoT has verified the image: ``202 Accepted`` with ``Location`` (the task
monitor) and the ``Task``, whose ``TaskState``, ``PercentComplete`` and ``Messages`` follow the
update's steps (``Update.1.3.*`` messages) to ``Completed`` (committed) or ``Exception``
(rolled back, power lost); or ``400`` when a check refused it: ``Update.1.3.VerificationFailed``
whose ``Oem.Ironroot`` names the failing ``Check`` (``receipt``, ``svn``, ``not-in-pfm``'s
``pfm``, …), its ``Code`` and ``Detail``; the error's ``message`` names the check too. One
update at a time: another while one runs is ``409`` ``Base.1.22.ResourceInUse``.

**Conventions.** Every resource has ``@odata.id``, ``@odata.type`` (the versions of
:data:`~ironroot.platform._redfish_csdl.SCHEMA_VERSIONS`) and ``@odata.context``; answers carry
``OData-Version: 4.0``, an ``ETag`` (also ``@odata.etag``; ``If-None-Match`` gives ``304``)
and ``Allow``; ``PATCH`` and ``DELETE`` honour ``If-Match`` (``412``
``Base.1.22.PreconditionFailed``). Errors are Redfish error bodies
(``{"error": {"code", "message", "@Message.ExtendedInfo": [...]}}``, messages of the Base,
Update and TaskEvent registries): ``400`` (``MalformedJSON``, ``PropertyValueFormatError``,
``PropertyUnknown``, ``ActionParameterMissing``, …), ``401``, ``403``, ``404``
(``ResourceMissingAtURI``), ``405`` (``OperationNotAllowed``, with ``Allow``), ``409``, ``412``,
``413`` (``PayloadTooLarge``), ``415``, ``501`` (``$``-query parameters are not supported) and
``503``. An unexpected failure is a ``500`` ``Base.1.22.InternalError`` whose message carries a
correlation id that the log line (with the traceback) repeats. Besides Redfish, the app serves
``/health``, ``/ready``, ``/metrics`` and ``/`` like every Ironroot service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import secrets
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ironroot.errors import (
    Conflict,
    IdentityLocked,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RoleNotPermitted,
    Unauthorized,
)
from ironroot.http import ServiceInfo, operational_routes, read_body
from ironroot.http._ops import Observed
from ironroot.platform._node import COMPONENTS, InventoryItem, Platform
from ironroot.platform._redfish_accounts import (
    PRIVILEGES,
    ROLES,
    SETTING_LIMITS,
    Account,
    AccountStore,
    Session,
    SessionStore,
    check_username,
)
from ironroot.platform._redfish_csdl import (
    OEM_SCHEMA,
    OEM_SCHEMA_PATH,
    SCHEMA_VERSIONS,
    metadata_document,
)
from ironroot.platform._redfish_messages import error_body, message
from ironroot.platform._redfish_tasks import Task, TaskStore

if TYPE_CHECKING:
    import ssl

    from ironroot.http import ServerLimits, ServerTls
    from ironroot.platform._update import UpdateResult

__all__ = [
    "MULTIPART_PARTS",
    "RedfishLimits",
    "RedfishService",
    "create_redfish_app",
    "redfish_info",
    "serve_redfish",
]

_log = logging.getLogger("ironroot.platform.redfish")

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
_JSON_LIMIT: Final = 64 * 1024
_REALM: Final = 'Basic realm="Ironroot Redfish", charset="UTF-8"'
_ACTION: Final = "UpdateService.SimpleUpdate"
_PROGRESS: Final = {  # step just finished -> what the update does next
    "receive": "TransferringToComponent",
    "stage": "VerifyingAtComponent",
    "verify": "InstallingOnComponent",
    "write": "VerifyingAtComponent",
    "verify-write": "ApplyingOnComponent",
}


@dataclass(frozen=True, slots=True)
class RedfishLimits:
    """What one update may bring: the image and statement sizes (bytes), the number of
    statements, how long a ``SimpleUpdate`` fetch may take (seconds), and how long a request
    waits for the RoT's verification before answering ``202`` anyway (seconds)."""

    max_image_bytes: int = 64 * 1024 * 1024
    max_statement_bytes: int = 1024 * 1024
    max_statements: int = 16
    fetch_timeout: float = 60.0
    verify_wait: float = 600.0

    @property
    def max_request_bytes(self) -> int:
        return self.max_image_bytes + (self.max_statements + 2) * self.max_statement_bytes + 65536


# --- refusals -------------------------------------------------------------------------------


class _Refusal(Exception):
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


def _bad(key: str, *args: object, related: str | None = None, status: int = 400) -> _Refusal:
    return _Refusal(status, message(key, *args, related=(related,) if related else ()))


def _error_response(refusal: _Refusal) -> Response:
    body = json.dumps(error_body(refusal.messages, refusal.text)).encode()
    headers = {"OData-Version": "4.0", "Cache-Control": "no-store", **refusal.headers}
    return Response(body, refusal.status, headers=headers, media_type=JSON)


def _refusal_of(exc: IronrootError, path: str) -> _Refusal:
    """The Redfish answer for a typed error raised below the HTTP layer."""
    oem = {"Check": exc.check or "", "Code": exc.code, "Detail": exc.detail}
    if isinstance(exc, RoleNotPermitted):
        return _Refusal(403, message("InsufficientPrivilege"), text=exc.detail)
    if isinstance(exc, Unauthorized | IdentityLocked):
        return _Refusal(401, message("NoValidSession"), headers={"WWW-Authenticate": _REALM})
    if isinstance(exc, NotFound):
        return _Refusal(404, message("ResourceMissingAtURI", path), text=exc.detail)
    if isinstance(exc, PayloadTooLarge):
        return _Refusal(413, message("PayloadTooLarge"), text=exc.detail)
    if isinstance(exc, Overloaded):
        return _Refusal(
            503,
            message("ServiceTemporarilyUnavailable", exc.retry_after),
            text=exc.detail,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, Conflict):
        return _Refusal(409, message("ResourceInUse", oem=oem), text=exc.detail)
    status = exc.http_status if 400 <= exc.http_status < 600 else 500
    return _Refusal(status, message("GeneralError", oem=oem), text=exc.detail)


# --- the service ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Principal:
    account: Account
    session: Session | None

    def can(self, privilege: str) -> bool:
        return privilege in self.account.privileges

    def require(self, privilege: str) -> None:
        if not self.can(privilege):
            raise RoleNotPermitted(
                f"the role {self.account.role} does not have the privilege {privilege}"
            )


@dataclass(frozen=True, slots=True)
class _UpdateRequest:
    """What an update brings, however it came (multipart or fetched)."""

    component: str
    image_name: str
    bundle: bytes
    statements: tuple[bytes, ...]
    pfm: bytes | None
    pfm_statement: bytes | None


def _utc(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RedfishService:
    """A node's Redfish service: its platform, accounts, sessions and tasks.

    ``clock`` gives the time updates and boots are judged at (UTC); ``fetch_verify`` is what
    ``SimpleUpdate``'s HTTPS fetches trust (``True``: the system's CAs, or an ``SSLContext``).
    """

    def __init__(
        self,
        platform: Platform,
        accounts: AccountStore,
        *,
        limits: RedfishLimits | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        fetch_verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.platform = platform
        self.accounts = accounts
        self.sessions = SessionStore(accounts)
        self.limits = limits or RedfishLimits()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.tasks = TaskStore(self.clock)
        self.fetch_verify = fetch_verify
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ironroot:{platform.config_digest.hex()}"))
        self._updating = threading.Lock()

    # --- authentication ---------------------------------------------------------------------

    async def principal(self, request: Request) -> _Principal:
        """Who sent ``request``: its session (``X-Auth-Token``) or Basic credentials;
        ``Unauthorized`` otherwise."""
        token = request.headers.get("x-auth-token")
        if token:
            session = self.sessions.lookup(token)
            try:
                account = self.accounts.get(session.account_id)
            except NotFound:
                self.sessions.end_account(session.account_id)
                raise Unauthorized("the session's account was removed", code="session") from None
            if not account.enabled or account.locked(self.accounts.now()):
                self.sessions.end_account(account.id)
                raise Unauthorized("the session's account is disabled or locked", code="session")
            return _Principal(account, session)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                user, sep, password = (
                    base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("malformed Basic credentials", code="login") from None
            if not sep:
                raise Unauthorized("malformed Basic credentials", code="login")
            account = await self._login(user, password, request)
            return _Principal(account, None)
        raise Unauthorized("no session token or credentials", code="login")

    async def _login(self, user: str, password: str, request: Request) -> Account:
        client = request.client.host if request.client else "-"
        try:
            account = await run_in_threadpool(self.accounts.authenticate, user, password)
        except IronrootError as exc:
            _log.warning("redfish login refused for %r from %s: %s", user[:64], client, exc.code)
            raise
        return account


# --- JSON helpers ---------------------------------------------------------------------------


def _odata(path: str, kind: str) -> dict[str, Any]:
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


def _link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def _collection(path: str, kind: str, name: str, members: Sequence[str]) -> dict[str, Any]:
    return {
        **_odata(path, kind),
        "Name": name,
        "Members@odata.count": len(members),
        "Members": [_link(m) for m in members],
    }


def _etag(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {k: v for k, v in body.items() if k != "@odata.etag"}, sort_keys=True, separators=(",", ":")
    )
    return f'W/"{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"'


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in tags or any(t.removeprefix("W/") == bare for t in tags)


def _json_response(
    request: Request,
    body: dict[str, Any],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    etag = _etag(body)
    body = {**body, "@odata.etag": etag} if "@odata.id" in body else body
    out = {"OData-Version": "4.0", "ETag": etag, "Cache-Control": "no-cache", **(headers or {})}
    allow = request.scope.get("ironroot.allow")
    if allow:
        out["Allow"] = allow
    if (
        request.method in ("GET", "HEAD")
        and status == 200
        and _matches(request.headers.get("if-none-match", "") or "-", etag)
    ):
        return Response(status_code=304, headers=out)
    return Response(json.dumps(body).encode(), status, headers=out, media_type=JSON)


def _precondition(request: Request, current: Mapping[str, Any]) -> None:
    """``If-Match`` against the resource's current ETag (``412`` when it does not match)."""
    wanted = request.headers.get("if-match")
    if wanted is not None and not _matches(wanted, _etag(current)):
        raise _bad("PreconditionFailed", status=412)


async def _json_body(request: Request) -> dict[str, Any]:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", ""):
        raise _Refusal(
            415,
            message("UnrecognizedRequestBody"),
            text=f"the request body must be application/json, not {kind}",
        )
    body = await read_body(request, _JSON_LIMIT)
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _bad("MalformedJSON") from None
    if not isinstance(value, dict):
        raise _bad("UnrecognizedRequestBody")
    return value


def _property(
    doc: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    *,
    action: str | None = None,
) -> Any:
    """``doc[name]`` when it is of ``kind``; ``PropertyValueTypeError`` (or the action
    parameter message) otherwise. Booleans are not integers here."""
    value = doc[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        shown = json.dumps(value)[:100]
        if action:
            raise _bad("ActionParameterValueTypeError", shown, name, action, related=f"/{name}")
        raise _bad("PropertyValueTypeError", shown, name, related=f"/{name}")
    return value


def _only(doc: Mapping[str, Any], allowed: Sequence[str], read_only: Sequence[str] = ()) -> None:
    for name in doc:
        if name.startswith("@odata."):
            continue
        if name in read_only:
            raise _bad("PropertyNotWritable", name, related=f"/{name}")
        if name not in allowed:
            raise _bad("PropertyUnknown", name, related=f"/{name}")


# --- the app --------------------------------------------------------------------------------

_Handler = Callable[[Request, "_Principal | None"], Awaitable[Response]]


class _Resource:
    """One URI: a handler per method and the privilege each needs (``None``: no login)."""

    def __init__(self, path: str, **methods: tuple[_Handler, str | None]) -> None:
        self.path = path
        self.methods = methods
        allowed = set(methods) | ({"HEAD"} if "GET" in methods else set())
        self.allow = ", ".join(sorted(allowed))


def _route(service: RedfishService, resource: _Resource) -> Route:
    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        handler, privilege = resource.methods[method]
        request.scope["ironroot.allow"] = resource.allow
        try:
            _check_request(request)
            principal = None
            if privilege is not None:
                principal = await service.principal(request)
                principal.require(privilege)
            elif request.headers.get("x-auth-token") or request.headers.get("authorization"):
                try:  # a public resource answers the same, logged in or not
                    principal = await service.principal(request)
                except Unauthorized:
                    principal = None
            return await handler(request, principal)
        except _Refusal as refused:
            return _answer(request, refused, resource.allow)
        except IronrootError as exc:
            _log.debug("%s %s refused: %s: %s", request.method, request.url.path, exc.code, exc)
            return _answer(request, _refusal_of(exc, request.url.path), resource.allow)
        except ClientDisconnect:
            _log.debug("%s %s: the client disconnected", request.method, request.url.path)
            return Response(status_code=400)
        except Exception:  # a bug: a 500 whose correlation id finds the traceback in the log
            incident = secrets.token_hex(8)
            _log.exception(
                "unexpected error in %s %s [correlation id %s]",
                request.method,
                request.url.path,
                incident,
            )
            refusal = _Refusal(
                500,
                message("InternalError"),
                text=f"the Redfish service failed unexpectedly; correlation id {incident}",
            )
            return _answer(request, refusal, resource.allow)

    methods = [m for m in resource.methods if m != "HEAD"]
    return Route(resource.path, endpoint, methods=methods)


def _answer(request: Request, refusal: _Refusal, allow: str) -> Response:
    response = _error_response(refusal)
    if refusal.status == 405:
        response.headers["Allow"] = allow
    if request.method == "HEAD":
        response.body = b""
    return response


def _check_request(request: Request) -> None:
    version = request.headers.get("odata-version")
    if version is not None and version.strip() != "4.0":
        raise _Refusal(
            412,
            message("HeaderInvalid", "OData-Version"),
            text="this service speaks OData-Version 4.0",
        )
    for name in request.query_params:
        if name.startswith(("$", "*")):
            raise _Refusal(501, message("QueryParameterUnsupported", name))


class _Slashes:
    """ASGI: ``/redfish/v1/`` and ``/redfish/v1`` are the same resource (DSP0266 §6.2)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if len(path) > 1 and path.endswith("/"):
                scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)


def redfish_info(service: RedfishService) -> ServiceInfo:
    """The service as its operator sees it: ready when the node's RoT state opens and the
    account store holds an enabled Administrator."""

    def node() -> None:  # reads the node's configuration without waiting for its RoT lock
        Platform.open(service.platform.directory)

    def accounts() -> None:
        if not any(a.enabled and a.role == "Administrator" for a in service.accounts.accounts()):
            raise NotFound("no enabled Administrator account", code="accounts")

    return ServiceInfo(
        name="platform-redfish",
        description="Ironroot platform management: DMTF Redfish over the node's root of trust",
        checks={"node": node, "accounts": accounts},
        links={"redfish": f"{ROOT}/", "metadata": f"{ROOT}/$metadata"},
        docs="docs/platform.md",
        details=lambda: {"platform": service.platform.config.trust.platform},
    )


def create_redfish_app(service: RedfishService) -> Starlette:
    """The ASGI app of ``service``: the Redfish resources, ``/``, ``/health``, ``/ready``,
    ``/metrics`` and the access log."""
    resources = _resources(service)
    routes: list[BaseRoute] = [_route(service, r) for r in resources]
    info = redfish_info(service)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow", "")
            refusal = _Refusal(405, message("OperationNotAllowed"), headers={"Allow": allow})
        elif exc.status_code == 404:
            refusal = _Refusal(404, message("ResourceMissingAtURI", request.url.path))
        else:
            refusal = _Refusal(exc.status_code, message("GeneralError"), text=str(exc.detail))
        return _error_response(refusal)

    app = Starlette(
        routes=[*routes, *operational_routes(info, routes)],
        middleware=[Middleware(Observed, info=info), Middleware(_Slashes)],
        exception_handlers={HTTPException: http_error},
    )
    return app


# --- resources ------------------------------------------------------------------------------


def _resources(service: RedfishService) -> list[_Resource]:
    accounts = service.accounts
    sessions = service.sessions
    limits = service.limits

    async def versions(request: Request, who: _Principal | None) -> Response:
        return _json_response(request, {"v1": f"{ROOT}/"})

    async def root(request: Request, who: _Principal | None) -> Response:
        body = {
            **_odata(ROOT, "ServiceRoot"),
            "Id": "RootService",
            "Name": "Ironroot Platform Redfish Service",
            "RedfishVersion": REDFISH_VERSION,
            "UUID": service.uuid,
            "Product": "Ironroot platform",
            "Vendor": "Ironroot",
            "ProtocolFeaturesSupported": {
                "ExpandQuery": {
                    "ExpandAll": False,
                    "Levels": False,
                    "Links": False,
                    "NoLinks": False,
                },
                "FilterQuery": False,
                "SelectQuery": False,
                "OnlyMemberQuery": False,
                "ExcerptQuery": False,
                "TopSkipQuery": False,
            },
            "SessionService": _link(f"{ROOT}/SessionService"),
            "AccountService": _link(f"{ROOT}/AccountService"),
            "UpdateService": _link(f"{ROOT}/UpdateService"),
            "TaskService": _link(f"{ROOT}/TaskService"),
            "Managers": _link(f"{ROOT}/Managers"),
            "Links": {"Sessions": _link(SESSIONS)},
        }
        return _json_response(request, body)

    async def metadata(request: Request, who: _Principal | None) -> Response:
        text = metadata_document()
        return Response(text, headers={"OData-Version": "4.0"}, media_type="application/xml")

    async def oem_schema(request: Request, who: _Principal | None) -> Response:
        return Response(OEM_SCHEMA, headers={"OData-Version": "4.0"}, media_type="application/xml")

    async def odata(request: Request, who: _Principal | None) -> Response:
        entries = [("Service", f"{ROOT}/")] + [
            (name, f"{ROOT}/{name}")
            for name in (
                "SessionService",
                "AccountService",
                "UpdateService",
                "TaskService",
                "Managers",
            )
        ]
        body = {
            "@odata.context": f"{ROOT}/$metadata",
            "value": [{"name": n, "kind": "Singleton", "url": u} for n, u in entries],
        }
        return _json_response(request, body)

    # --- sessions ---------------------------------------------------------------------------

    def session_body(session: Session) -> dict[str, Any]:
        body: dict[str, Any] = {
            **_odata(f"{SESSIONS}/{session.id}", "Session"),
            "Id": session.id,
            "Name": f"Session {session.id}",
            "UserName": session.username,
            "Password": None,
            "SessionType": "Redfish",
            "CreatedTime": _utc(dt.datetime.fromtimestamp(session.created, dt.UTC)),
        }
        if session.client:
            body["ClientOriginIPAddress"] = session.client
        return body

    def session_service_body() -> dict[str, Any]:
        return {
            **_odata(f"{ROOT}/SessionService", "SessionService"),
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": True,
            "SessionTimeout": accounts.settings.session_timeout,
            "Status": {"State": "Enabled", "Health": "OK"},
            "Sessions": _link(SESSIONS),
        }

    async def session_service(request: Request, who: _Principal | None) -> Response:
        return _json_response(request, session_service_body())

    async def patch_session_service(request: Request, who: _Principal | None) -> Response:
        doc = await _json_body(request)
        _precondition(request, session_service_body())
        _only(doc, ("SessionTimeout", "ServiceEnabled"))
        changes: dict[str, int] = {}
        if "ServiceEnabled" in doc and _property(doc, "ServiceEnabled", bool) is not True:
            raise _bad(
                "PropertyValueNotInList", "false", "ServiceEnabled", related="/ServiceEnabled"
            )
        if "SessionTimeout" in doc:
            value = _property(doc, "SessionTimeout", int)
            low, high = SETTING_LIMITS["session_timeout"]
            if not low <= value <= high:
                raise _bad(
                    "PropertyValueOutOfRange", value, "SessionTimeout", related="/SessionTimeout"
                )
            changes["session_timeout"] = value
        await run_in_threadpool(accounts.configure, **changes)
        return _json_response(request, session_service_body())

    async def session_list(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        members = [
            f"{SESSIONS}/{s.id}"
            for s in sessions.sessions()
            if who.can("ConfigureManager") or s.account_id == who.account.id
        ]
        return _json_response(
            request, _collection(SESSIONS, "SessionCollection", "Sessions", members)
        )

    async def login(request: Request, who: _Principal | None) -> Response:
        doc = await _json_body(request)
        for name in ("UserName", "Password"):
            if name not in doc:
                raise _bad("PropertyMissing", name, related=f"/{name}")
        _only(doc, ("UserName", "Password", "Context"))
        user = _property(doc, "UserName", str)
        password = _property(doc, "Password", str)
        account = await service._login(user, password, request)
        client = request.client.host if request.client else None
        session, token = sessions.create(account, client)
        _log.info(
            "redfish session %s opened for %s from %s", session.id, account.username, client or "-"
        )
        location = f"{SESSIONS}/{session.id}"
        return _json_response(
            request,
            session_body(session),
            201,
            {"X-Auth-Token": token, "Location": location, "Cache-Control": "no-store"},
        )

    def own_session(who: _Principal | None, ident: str) -> Session:
        assert who is not None
        session = sessions.get(ident)
        if session.account_id != who.account.id:
            who.require("ConfigureManager")
        return session

    async def session_get(request: Request, who: _Principal | None) -> Response:
        session = own_session(who, request.path_params["session_id"])
        return _json_response(request, session_body(session))

    async def logout(request: Request, who: _Principal | None) -> Response:
        session = own_session(who, request.path_params["session_id"])
        _precondition(request, session_body(session))
        sessions.delete(session.id)
        _log.info("redfish session %s closed", session.id)
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    # --- accounts ---------------------------------------------------------------------------

    def account_service_body() -> dict[str, Any]:
        s = accounts.settings
        return {
            **_odata(f"{ROOT}/AccountService", "AccountService"),
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "LocalAccountAuth": "Enabled",
            "MinPasswordLength": s.min_password_length,
            "MaxPasswordLength": s.max_password_length,
            "AccountLockoutThreshold": s.lockout_threshold,
            "AccountLockoutDuration": s.lockout_duration,
            "AccountLockoutCounterResetAfter": s.lockout_reset_after,
            "AccountLockoutCounterResetEnabled": s.lockout_reset_after > 0,
            "Accounts": _link(ACCOUNTS),
            "Roles": _link(ROLES_URI),
        }

    settings_of = {
        "MinPasswordLength": "min_password_length",
        "MaxPasswordLength": "max_password_length",
        "AccountLockoutThreshold": "lockout_threshold",
        "AccountLockoutDuration": "lockout_duration",
        "AccountLockoutCounterResetAfter": "lockout_reset_after",
    }

    conflicts = {
        "min_password_length": ("MinPasswordLength", "MaxPasswordLength"),
        "lockout_reset_after": ("AccountLockoutCounterResetAfter", "AccountLockoutDuration"),
    }

    async def account_service(request: Request, who: _Principal | None) -> Response:
        return _json_response(request, account_service_body())

    async def patch_account_service(request: Request, who: _Principal | None) -> Response:
        doc = await _json_body(request)
        _precondition(request, account_service_body())
        _only(doc, list(settings_of), read_only=("Accounts", "Roles", "Id", "Name", "Status"))
        changes: dict[str, int] = {}
        for name, setting in settings_of.items():
            if name in doc:
                value = _property(doc, name, int)
                low, high = SETTING_LIMITS[setting]
                if not low <= value <= high:
                    raise _bad("PropertyValueOutOfRange", value, name, related=f"/{name}")
                changes[setting] = value
        try:
            await run_in_threadpool(accounts.configure, **changes)
        except MalformedInput as exc:  # a combination of settings that does not hold
            name, other = conflicts.get(exc.code, ("MinPasswordLength", "MaxPasswordLength"))
            raise _Refusal(
                400,
                message("PropertyValueConflict", name, other, related=(f"/{name}",)),
                text=exc.detail,
            ) from None
        return _json_response(request, account_service_body())

    def account_body(account: Account) -> dict[str, Any]:
        return {
            **_odata(f"{ACCOUNTS}/{account.id}", "ManagerAccount"),
            "Id": account.id,
            "Name": "User Account",
            "UserName": account.username,
            "Password": None,
            "RoleId": account.role,
            "Enabled": account.enabled,
            "Locked": account.locked(accounts.now()),
            "AccountTypes": ["Redfish"],
            "Links": {"Role": _link(f"{ROLES_URI}/{account.role}")},
        }

    def own_account(who: _Principal | None, ident: str) -> Account:
        assert who is not None
        if ident != who.account.id:
            who.require("ConfigureUsers")
        return accounts.get(ident)

    async def account_list(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        members = [
            f"{ACCOUNTS}/{a.id}"
            for a in accounts.accounts()
            if who.can("ConfigureUsers") or a.id == who.account.id
        ]
        return _json_response(
            request, _collection(ACCOUNTS, "ManagerAccountCollection", "Accounts", members)
        )

    def checked_username(doc: Mapping[str, Any]) -> str:
        value = _property(doc, "UserName", str)
        try:
            return check_username(value)
        except MalformedInput:
            raise _bad(
                "PropertyValueFormatError", value[:64], "UserName", related="/UserName"
            ) from None

    def checked_role(doc: Mapping[str, Any]) -> str:
        value = _property(doc, "RoleId", str)
        if value not in ROLES:
            raise _bad("PropertyValueNotInList", value[:64], "RoleId", related="/RoleId")
        return str(value)

    def checked_password(doc: Mapping[str, Any]) -> str:
        value = _property(doc, "Password", str)
        try:
            accounts.check_password(value)
        except MalformedInput:
            raise _Refusal(
                400,
                message("PasswordIncorrectLength", related=("/Password",)),
                text="the password's length is outside the account service's limits",
            ) from None
        return str(value)

    def account_refusal(exc: IronrootError, doc: Mapping[str, Any]) -> _Refusal:
        if exc.code == "username-taken":
            return _bad(
                "ResourceAlreadyExists",
                "ManagerAccount",
                "UserName",
                str(doc.get("UserName", ""))[:64],
                related="/UserName",
            )
        if exc.code == "last-administrator":
            return _Refusal(
                409,
                message("ResourceCannotBeDeleted")
                if "RoleId" not in doc and "Enabled" not in doc
                else message(
                    "PropertyValueConflict", "RoleId" if "RoleId" in doc else "Enabled", "RoleId"
                ),
                text=exc.detail,
            )
        if exc.code == "accounts-full":
            return _bad("CreateLimitReachedForResource")
        return _refusal_of(exc, ACCOUNTS)

    async def account_create(request: Request, who: _Principal | None) -> Response:
        doc = await _json_body(request)
        for name in ("UserName", "Password", "RoleId"):
            if name not in doc:
                raise _bad("PropertyMissing", name, related=f"/{name}")
        _only(
            doc,
            ("UserName", "Password", "RoleId", "Enabled", "AccountTypes"),
            read_only=("Id", "Locked", "Links"),
        )
        if "AccountTypes" in doc and _property(doc, "AccountTypes", list) != ["Redfish"]:
            raise _bad(
                "PropertyValueNotInList",
                json.dumps(doc["AccountTypes"])[:64],
                "AccountTypes",
                related="/AccountTypes",
            )
        enabled = _property(doc, "Enabled", bool) if "Enabled" in doc else True
        username = checked_username(doc)
        role = checked_role(doc)
        password = checked_password(doc)
        try:
            account = await run_in_threadpool(
                accounts.add, username, password, role, enabled=enabled
            )
        except (Conflict, LimitExceeded) as exc:
            raise account_refusal(exc, doc) from None
        _log.info("redfish account %s (%s) created", account.username, account.role)
        return _json_response(
            request, account_body(account), 201, {"Location": f"{ACCOUNTS}/{account.id}"}
        )

    async def account_get(request: Request, who: _Principal | None) -> Response:
        account = own_account(who, request.path_params["account_id"])
        return _json_response(request, account_body(account))

    async def account_patch(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        doc = await _json_body(request)
        account = own_account(who, request.path_params["account_id"])
        _precondition(request, account_body(account))
        _only(
            doc,
            ("UserName", "Password", "RoleId", "Enabled", "Locked"),
            read_only=("Id", "AccountTypes", "Links"),
        )
        if not who.can("ConfigureUsers") and set(doc) - {"Password"}:
            who.require("ConfigureUsers")  # one's own password only, with ConfigureSelf
        changes: dict[str, Any] = {}
        if "UserName" in doc:
            changes["username"] = checked_username(doc)
        if "RoleId" in doc:
            changes["role"] = checked_role(doc)
        if "Enabled" in doc:
            changes["enabled"] = _property(doc, "Enabled", bool)
        if "Locked" in doc:
            if _property(doc, "Locked", bool):
                raise _bad("PropertyValueNotInList", "true", "Locked", related="/Locked")
            changes["locked"] = False
        if "Password" in doc:
            changes["password"] = checked_password(doc)
        try:
            account = await run_in_threadpool(lambda: accounts.update(account.id, **changes))
        except Conflict as exc:
            raise account_refusal(exc, doc) from None
        _log.info("redfish account %s changed: %s", account.username, ", ".join(sorted(doc)))
        return _json_response(request, account_body(account))

    async def account_delete(request: Request, who: _Principal | None) -> Response:
        account = accounts.get(request.path_params["account_id"])
        _precondition(request, account_body(account))
        try:
            await run_in_threadpool(accounts.remove, account.id)
        except Conflict as exc:
            raise account_refusal(exc, {}) from None
        _log.info("redfish account %s removed", account.username)
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def role_body(role: str) -> dict[str, Any]:
        return {
            **_odata(f"{ROLES_URI}/{role}", "Role"),
            "Id": role,
            "Name": f"{role} Role",
            "RoleId": role,
            "IsPredefined": True,
            "AssignedPrivileges": [p for p in PRIVILEGES if p in ROLES[role]],
            "OemPrivileges": [],
        }

    async def role_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{ROLES_URI}/{r}" for r in ROLES]
        return _json_response(request, _collection(ROLES_URI, "RoleCollection", "Roles", members))

    async def role_get(request: Request, who: _Principal | None) -> Response:
        role = request.path_params["role_id"]
        if role not in ROLES:
            raise NotFound(f"no role {role!r}")
        return _json_response(request, role_body(role))

    # --- firmware inventory, manager, log ---------------------------------------------------

    async def inventory() -> list[InventoryItem]:
        return await run_in_threadpool(service.platform.inventory)

    def item_body(item: InventoryItem, last_boot: Mapping[str, str]) -> dict[str, Any]:
        state = {
            "active": "Enabled",
            "previous": "StandbyOffline",
            "staged": "Updating",
            "recovery": "StandbySpare",
        }.get(item.role, "Enabled")
        health = "OK"
        if item.role == "active" and last_boot.get(item.component) == "held-in-reset":
            state, health = "UnavailableOffline", "Critical"
        body: dict[str, Any] = {
            **_odata(f"{INVENTORY}/{item.id}", "SoftwareInventory"),
            "Id": item.id,
            "Name": f"{item.component} firmware ({item.role})",
            "Version": item.version,
            "SoftwareId": item.component,
            "Updateable": item.updateable,
            "Status": {"State": state, "Health": health},
            "Oem": {
                "Ironroot": {
                    "@odata.type": "#Ironroot.v1_0_0.SoftwareInventory",
                    "Component": item.component,
                    "Role": item.role,
                    "SVN": item.svn,
                    "SHA384": item.sha384.hex(),
                }
            },
        }
        if item.component == "bmc":
            body["RelatedItem"] = [_link(MANAGER)]
        return body

    async def inventory_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{INVENTORY}/{i.id}" for i in await inventory()]
        return _json_response(
            request,
            _collection(INVENTORY, "SoftwareInventoryCollection", "Firmware Inventory", members),
        )

    async def inventory_get(request: Request, who: _Principal | None) -> Response:
        ident = request.path_params["item_id"]
        items = {i.id: i for i in await inventory()}
        if ident not in items:
            raise NotFound(f"no firmware image {ident!r}")
        show = await run_in_threadpool(service.platform.show)
        return _json_response(request, item_body(items[ident], show.get("last_boot", {})))

    async def managers(request: Request, who: _Principal | None) -> Response:
        return _json_response(
            request, _collection(f"{ROOT}/Managers", "ManagerCollection", "Managers", [MANAGER])
        )

    async def manager(request: Request, who: _Principal | None) -> Response:
        items = await inventory()
        show = await run_in_threadpool(service.platform.show)
        running = show.get("last_boot", {}).get("bmc", "running") == "running"
        active = next((i for i in items if i.component == "bmc" and i.role == "active"), None)
        body: dict[str, Any] = {
            **_odata(MANAGER, "Manager"),
            "Id": "bmc",
            "Name": "BMC",
            "ManagerType": "BMC",
            "Description": "The BMC of the DC-SCM, booted by the platform's root of trust",
            "UUID": service.uuid,
            "ServiceEntryPointUUID": service.uuid,
            "Model": show.get("platform", ""),
            "DateTime": _utc(service.clock()),
            "DateTimeLocalOffset": "+00:00",
            "Status": {
                "State": "Enabled" if running else "UnavailableOffline",
                "Health": "OK" if running else "Critical",
            },
            "LogServices": _link(f"{MANAGER}/LogServices"),
            "Links": {
                "SoftwareImages": [
                    _link(f"{INVENTORY}/{i.id}") for i in items if i.component == "bmc"
                ],
                "SoftwareImages@odata.count": sum(1 for i in items if i.component == "bmc"),
            },
        }
        if active is not None:
            body["FirmwareVersion"] = active.version
            body["Links"]["ActiveSoftwareImage"] = _link(f"{INVENTORY}/{active.id}")
        return _json_response(request, body)

    async def log_services(request: Request, who: _Principal | None) -> Response:
        return _json_response(
            request,
            _collection(f"{MANAGER}/LogServices", "LogServiceCollection", "Log Services", [LOG]),
        )

    async def log_service(request: Request, who: _Principal | None) -> Response:
        body = {
            **_odata(LOG, "LogService"),
            "Id": "RoT",
            "Name": "Root of trust event log",
            "Description": "The events the platform's root of trust logged in its flash: "
            "boots, updates, refusals, recoveries and blocked writes",
            "ServiceEnabled": True,
            "OverWritePolicy": "WrapsWhenFull",
            "LogEntryType": "OEM",
            "DateTime": _utc(service.clock()),
            "DateTimeLocalOffset": "+00:00",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Entries": _link(f"{LOG}/Entries"),
        }
        return _json_response(request, body)

    def entry_body(event: Any) -> dict[str, Any]:
        severity = event.severity if event.severity in ("OK", "Warning", "Critical") else "Warning"
        return {
            **_odata(f"{LOG}/Entries/{event.seq}", "LogEntry"),
            "Id": str(event.seq),
            "Name": f"RoT event {event.seq}",
            "EntryType": "Oem",
            "OemRecordFormat": "Ironroot",
            "Created": event.at,
            "Severity": severity,
            "Message": event.message,
            "MessageId": event.message_id,
            "MessageArgs": list(event.args),
        }

    async def entries(request: Request, who: _Principal | None) -> Response:
        events = await run_in_threadpool(service.platform.events)
        members = [f"{LOG}/Entries/{e.seq}" for e in events]
        return _json_response(
            request,
            _collection(f"{LOG}/Entries", "LogEntryCollection", "RoT event log entries", members),
        )

    async def entry(request: Request, who: _Principal | None) -> Response:
        ident = request.path_params["entry_id"]
        events = await run_in_threadpool(service.platform.events)
        found = next((e for e in events if str(e.seq) == ident), None)
        if found is None:
            raise NotFound(f"no log entry {ident!r}")
        return _json_response(request, entry_body(found))

    # --- updates and tasks ------------------------------------------------------------------

    def update_service_body() -> dict[str, Any]:
        return {
            **_odata(f"{ROOT}/UpdateService", "UpdateService"),
            "Id": "UpdateService",
            "Name": "Update Service",
            "Description": "Firmware updates verified and written by the platform's root of "
            "trust: signed, in the PFM, and logged on a trusted transparency service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "MultipartHttpPushUri": MULTIPART_URI,
            "MaxImageSizeBytes": limits.max_image_bytes,
            "FirmwareInventory": _link(INVENTORY),
            "Actions": {
                f"#{_ACTION}": {
                    "target": SIMPLE_UPDATE,
                    "TransferProtocol@Redfish.AllowableValues": ["HTTP", "HTTPS"],
                }
            },
            "Oem": {
                "Ironroot": {
                    "@odata.type": "#Ironroot.v1_0_0.UpdateService",
                    "StatementPart": STATEMENT_PART,
                    "PfmPart": PFM_PART,
                    "PfmStatementPart": PFM_STATEMENT_PART,
                    "MaxStatements": limits.max_statements,
                }
            },
        }

    async def update_service(request: Request, who: _Principal | None) -> Response:
        return _json_response(request, update_service_body())

    async def push(request: Request, who: _Principal | None) -> Response:
        update, payload = await _multipart_update(request, service)
        return await _start_update(request, service, update, payload, lambda: update)

    async def simple_update(request: Request, who: _Principal | None) -> Response:
        doc = await _json_body(request)
        plan = _simple_update_plan(doc, service)
        payload = {
            "HttpOperation": "POST",
            "TargetUri": SIMPLE_UPDATE,
            "JsonBody": json.dumps({k: v for k, v in doc.items() if k != "Password"}),
        }

        def fetch() -> _UpdateRequest:
            return plan.fetch(service)

        return await _start_update(
            request,
            service,
            None,
            payload,
            fetch,
            component=plan.component,
            image_name=plan.image_uri,
        )

    def task_service_body() -> dict[str, Any]:
        return {
            **_odata(f"{ROOT}/TaskService", "TaskService"),
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": True,
            "CompletedTaskOverWritePolicy": "Oldest",
            "LifeCycleEventOnTaskStateChange": False,
            "DateTime": _utc(service.clock()),
            "Status": {"State": "Enabled", "Health": "OK"},
            "Tasks": _link(TASKS),
        }

    async def task_service(request: Request, who: _Principal | None) -> Response:
        return _json_response(request, task_service_body())

    async def task_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{TASKS}/{t.id}" for t in service.tasks.tasks()]
        return _json_response(request, _collection(TASKS, "TaskCollection", "Tasks", members))

    async def task_get(request: Request, who: _Principal | None) -> Response:
        task = service.tasks.get(request.path_params["task_id"])
        return _json_response(request, _task_body(task))

    async def monitor(request: Request, who: _Principal | None) -> Response:
        task = service.tasks.get(request.path_params["task_id"])
        if task.running or task.result is None:
            headers = {"Location": f"{MONITORS}/{task.id}", "Retry-After": "2"}
            return _json_response(request, _task_body(task), 202, headers)
        status, body = task.result
        return Response(
            json.dumps(body).encode(), status, media_type=JSON, headers={"OData-Version": "4.0"}
        )

    login_ = "Login"
    return [
        _Resource("/redfish", GET=(versions, None)),
        _Resource(ROOT, GET=(root, None)),
        _Resource(f"{ROOT}/$metadata", GET=(metadata, None)),
        _Resource(f"{ROOT}/odata", GET=(odata, None)),
        _Resource(OEM_SCHEMA_PATH, GET=(oem_schema, None)),
        _Resource(
            f"{ROOT}/SessionService",
            GET=(session_service, login_),
            PATCH=(patch_session_service, "ConfigureManager"),
        ),
        _Resource(SESSIONS, GET=(session_list, login_), POST=(login, None)),
        _Resource(SESSIONS + "/{session_id}", GET=(session_get, login_), DELETE=(logout, login_)),
        _Resource(
            f"{ROOT}/AccountService",
            GET=(account_service, login_),
            PATCH=(patch_account_service, "ConfigureUsers"),
        ),
        _Resource(ACCOUNTS, GET=(account_list, login_), POST=(account_create, "ConfigureUsers")),
        _Resource(
            ACCOUNTS + "/{account_id}",
            GET=(account_get, login_),
            PATCH=(account_patch, "ConfigureSelf"),
            DELETE=(account_delete, "ConfigureUsers"),
        ),
        _Resource(ROLES_URI, GET=(role_list, login_)),
        _Resource(ROLES_URI + "/{role_id}", GET=(role_get, login_)),
        _Resource(f"{ROOT}/UpdateService", GET=(update_service, login_)),
        _Resource(MULTIPART_URI, POST=(push, "ConfigureComponents")),
        _Resource(SIMPLE_UPDATE, POST=(simple_update, "ConfigureComponents")),
        _Resource(INVENTORY, GET=(inventory_list, login_)),
        _Resource(INVENTORY + "/{item_id}", GET=(inventory_get, login_)),
        _Resource(f"{ROOT}/TaskService", GET=(task_service, login_)),
        _Resource(TASKS, GET=(task_list, login_)),
        _Resource(TASKS + "/{task_id}", GET=(task_get, login_)),
        _Resource(MONITORS + "/{task_id}", GET=(monitor, login_)),
        _Resource(f"{ROOT}/Managers", GET=(managers, login_)),
        _Resource(MANAGER, GET=(manager, login_)),
        _Resource(f"{MANAGER}/LogServices", GET=(log_services, login_)),
        _Resource(LOG, GET=(log_service, login_)),
        _Resource(f"{LOG}/Entries", GET=(entries, login_)),
        _Resource(LOG + "/Entries/{entry_id}", GET=(entry, login_)),
    ]


def _task_body(task: Task) -> dict[str, Any]:
    body: dict[str, Any] = {
        **_odata(f"{TASKS}/{task.id}", "Task"),
        "Id": task.id,
        "Name": task.name,
        "TaskState": task.state,
        "TaskStatus": task.status,
        "StartTime": task.start,
        "PercentComplete": task.percent,
        "TaskMonitor": f"{MONITORS}/{task.id}",
        "Messages": list(task.messages),
        "Payload": dict(task.payload),
        "HidePayload": False,
    }
    if task.end is not None:
        body["EndTime"] = task.end
    return body


# --- the update path ------------------------------------------------------------------------


def _target_component(targets: object, where: str, action: str | None) -> str:
    """The one component ``Targets`` names (a FirmwareInventory member or the BMC manager)."""
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        shown = json.dumps(targets)[:100]
        if action:
            raise _bad(
                "ActionParameterValueTypeError",
                shown,
                "Targets",
                action,
                related=f"{where}/Targets",
            )
        raise _bad("PropertyValueTypeError", shown, "Targets", related=f"{where}/Targets")
    if len(targets) != 1:
        raise _Refusal(
            400,
            message(
                "ArraySizeTooLong" if targets else "PropertyMissing",
                *(("Targets", 1) if targets else ("Targets",)),
                related=(f"{where}/Targets",),
            ),
            text="an update names exactly one target: the component's "
            "FirmwareInventory member or /redfish/v1/Managers/bmc",
        )
    target = targets[0].rstrip("/")
    component: str | None = None
    if target == MANAGER:
        component = "bmc"
    elif target.startswith(f"{INVENTORY}/"):
        name, sep, role = target.removeprefix(f"{INVENTORY}/").rpartition("-")
        if sep and name in COMPONENTS and role in ("active", "previous", "staged", "recovery"):
            component = name
    if component is None:
        if action:
            raise _bad(
                "ActionParameterValueNotInList",
                target[:200],
                "Targets",
                action,
                related=f"{where}/Targets",
            )
        raise _bad("PropertyValueNotInList", target[:200], "Targets", related=f"{where}/Targets")
    return component


async def _multipart_update(
    request: Request, service: RedfishService
) -> tuple[_UpdateRequest, dict[str, Any]]:
    limits = service.limits
    kind = request.headers.get("content-type", "")
    if kind.split(";")[0].strip().lower() != "multipart/form-data":
        raise _Refusal(
            415,
            message("UnrecognizedRequestBody"),
            text="a multipart update is multipart/form-data",
        )
    body = await read_body(request, limits.max_request_bytes)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    parsed = Request(request.scope, replay)
    try:
        form = await parsed.form(
            max_files=limits.max_statements + 4,
            max_fields=8,
            max_part_size=max(limits.max_statement_bytes, _JSON_LIMIT),
        )
    except HTTPException as exc:
        raise _Refusal(400, message("MissingOrMalformedPart"), text=str(exc.detail)) from None
    except (ValueError, KeyError) as exc:
        raise _Refusal(
            400, message("MissingOrMalformedPart"), text=f"the multipart body does not parse: {exc}"
        ) from None
    try:
        parts: dict[str, list[bytes]] = {}
        names: dict[str, str] = {}
        for name, value in form.multi_items():
            if name not in MULTIPART_PARTS:
                raise _Refusal(
                    400,
                    message("MissingOrMalformedPart"),
                    text=f"unknown part {name[:64]!r}: the parts are {', '.join(MULTIPART_PARTS)}",
                )
            if isinstance(value, UploadFile):
                data = await value.read()
                names[name] = value.filename or name
            elif name == "UpdateFile":
                raise _Refusal(
                    400,
                    message("MissingOrMalformedPart"),
                    text="UpdateFile is a file part (with a filename)",
                )
            else:
                data = value.encode("utf-8")
            parts.setdefault(name, []).append(data)
    finally:
        await form.close()
    for required in ("UpdateParameters", "UpdateFile"):
        if len(parts.get(required, ())) != 1:
            raise _Refusal(
                400,
                message("MissingOrMalformedPart"),
                text=f"a multipart update has exactly one {required} part",
            )
    for single in (PFM_PART, PFM_STATEMENT_PART):
        if len(parts.get(single, ())) > 1:
            raise _Refusal(
                400, message("MissingOrMalformedPart"), text=f"at most one {single} part"
            )
    statements = parts.get(STATEMENT_PART, [])
    if len(statements) > limits.max_statements:
        raise _Refusal(
            400,
            message("ArraySizeTooLong", STATEMENT_PART, limits.max_statements),
            text=f"at most {limits.max_statements} statements",
        )
    try:
        params = json.loads(parts["UpdateParameters"][0])
    except (ValueError, RecursionError):
        raise _bad("MalformedJSON") from None
    if not isinstance(params, dict):
        raise _bad("UnrecognizedRequestBody")
    _only(params, ("Targets", "@Redfish.OperationApplyTime", "ForceUpdate"))
    apply_time = params.get("@Redfish.OperationApplyTime", "Immediate")
    if apply_time != "Immediate":
        raise _bad(
            "PropertyValueNotInList",
            str(apply_time)[:64],
            "@Redfish.OperationApplyTime",
            related="/UpdateParameters/@Redfish.OperationApplyTime",
        )
    if params.get("ForceUpdate", False) is not False:
        raise _bad(
            "PropertyValueNotInList",
            json.dumps(params["ForceUpdate"])[:64],
            "ForceUpdate",
            related="/UpdateParameters/ForceUpdate",
        )
    if "Targets" not in params:
        raise _bad("PropertyMissing", "Targets", related="/UpdateParameters/Targets")
    component = _target_component(params["Targets"], "/UpdateParameters", None)
    bundle = parts["UpdateFile"][0]
    if not bundle:
        raise _Refusal(400, message("MissingOrMalformedPart"), text="the UpdateFile is empty")
    if len(bundle) > limits.max_image_bytes:
        raise PayloadTooLarge(f"the image is over {limits.max_image_bytes} bytes")
    update = _UpdateRequest(
        component,
        names["UpdateFile"][:200],
        bundle,
        tuple(statements),
        parts[PFM_PART][0] if PFM_PART in parts else None,
        parts[PFM_STATEMENT_PART][0] if PFM_STATEMENT_PART in parts else None,
    )
    payload = {
        "HttpOperation": "POST",
        "TargetUri": MULTIPART_URI,
        "JsonBody": json.dumps(params),
    }
    return update, payload


@dataclass(frozen=True, slots=True)
class _SimpleUpdatePlan:
    """A checked ``SimpleUpdate`` request: what to fetch, for which component."""

    component: str
    image_uri: str
    statement_uris: tuple[str, ...]
    pfm_uri: str | None
    pfm_statement_uri: str | None
    auth: tuple[str, str] | None

    def fetch(self, service: RedfishService) -> _UpdateRequest:
        """Fetch the image and the statements (in the worker thread)."""
        import httpx

        limits = service.limits
        with httpx.Client(
            timeout=limits.fetch_timeout, verify=service.fetch_verify, follow_redirects=False
        ) as client:

            def get(uri: str, limit: int, auth: tuple[str, str] | None = None) -> bytes:
                try:
                    with client.stream("GET", uri, auth=auth) as response:
                        if response.status_code in (401, 403):
                            raise _Refusal(
                                400,
                                message(
                                    "ResourceAtUriUnauthorized", uri, str(response.status_code)
                                ),
                            )
                        if response.status_code != 200:
                            raise _Refusal(
                                400,
                                message("TransferFailed", uri, self.component),
                                text=f"GET {uri} answered {response.status_code}",
                            )
                        chunks: list[bytes] = []
                        size = 0
                        for chunk in response.iter_bytes():
                            size += len(chunk)
                            if size > limit:
                                raise PayloadTooLarge(f"{uri} is over {limit} bytes")
                            chunks.append(chunk)
                        return b"".join(chunks)
                except httpx.HTTPError as exc:
                    raise _Refusal(
                        400,
                        message("CouldNotEstablishConnection", uri),
                        text=f"cannot fetch {uri}: {exc}",
                    ) from None

            bundle = get(self.image_uri, limits.max_image_bytes, self.auth)
            statements = tuple(get(u, limits.max_statement_bytes) for u in self.statement_uris)
            pfm = get(self.pfm_uri, limits.max_statement_bytes) if self.pfm_uri else None
            pfm_statement = (
                get(self.pfm_statement_uri, limits.max_statement_bytes)
                if self.pfm_statement_uri
                else None
            )
        if not bundle:
            raise _Refusal(
                400,
                message("ResourceAtUriInUnknownFormat", self.image_uri),
                text="the image is empty",
            )
        return _UpdateRequest(
            self.component, self.image_uri, bundle, statements, pfm, pfm_statement
        )


def _simple_update_plan(doc: Mapping[str, Any], service: RedfishService) -> _SimpleUpdatePlan:
    action = _ACTION
    known = (
        "ImageURI",
        "TransferProtocol",
        "Targets",
        "Username",
        "Password",
        "ForceUpdate",
        "Oem",
    )
    for name in doc:
        if name not in known:
            raise _bad("ActionParameterUnknown", action, name, related=f"/{name}")
    for name in ("ImageURI", "Targets"):
        if name not in doc:
            raise _bad("ActionParameterMissing", action, name, related=f"/{name}")
    image = _property(doc, "ImageURI", str, action=action)
    protocol = (
        _property(doc, "TransferProtocol", str, action=action)
        if ("TransferProtocol" in doc)
        else None
    )
    if protocol is not None and protocol not in ("HTTP", "HTTPS"):
        raise _bad(
            "ActionParameterValueNotInList",
            protocol[:64],
            "TransferProtocol",
            action,
            related="/TransferProtocol",
        )
    if "://" not in image and protocol is not None:
        image = f"{protocol.lower()}://{image}"
    image_uri = _fetch_uri(image, "ImageURI", action)
    if protocol is not None and not image_uri.lower().startswith(f"{protocol.lower()}://"):
        raise _Refusal(
            400,
            message(
                "ActionParameterValueNotInList",
                protocol,
                "TransferProtocol",
                action,
                related=("/TransferProtocol",),
            ),
            text="TransferProtocol does not match the ImageURI's scheme",
        )
    if doc.get("ForceUpdate", False) is not False:
        raise _bad(
            "ActionParameterValueNotInList",
            json.dumps(doc["ForceUpdate"])[:64],
            "ForceUpdate",
            action,
            related="/ForceUpdate",
        )
    component = _target_component(doc["Targets"], "", action)
    auth = None
    if "Username" in doc or "Password" in doc:
        user = _property(doc, "Username", str, action=action) if "Username" in doc else ""
        password = _property(doc, "Password", str, action=action) if "Password" in doc else ""
        auth = (user, password)
    statements: tuple[str, ...] = ()
    pfm_uri = pfm_statement_uri = None
    if "Oem" in doc:
        oem = _property(doc, "Oem", dict, action=action)
        for vendor in oem:
            if vendor != "Ironroot":
                raise _bad(
                    "ActionParameterUnknown",
                    action,
                    f"Oem/{vendor[:64]}",
                    related=f"/Oem/{vendor[:64]}",
                )
        ours = oem.get("Ironroot", {})
        if not isinstance(ours, dict):
            raise _bad(
                "ActionParameterValueTypeError",
                json.dumps(ours)[:100],
                "Oem/Ironroot",
                action,
                related="/Oem/Ironroot",
            )
        for name in ours:
            if name not in ("StatementURIs", "PfmURI", "PfmStatementURI"):
                raise _bad(
                    "ActionParameterUnknown",
                    action,
                    f"Oem/Ironroot/{name[:64]}",
                    related=f"/Oem/Ironroot/{name[:64]}",
                )
        uris = ours.get("StatementURIs", [])
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise _bad(
                "ActionParameterValueTypeError",
                json.dumps(uris)[:100],
                "Oem/Ironroot/StatementURIs",
                action,
                related="/Oem/Ironroot/StatementURIs",
            )
        if len(uris) > service.limits.max_statements:
            raise _bad(
                "ArraySizeTooLong",
                "Oem/Ironroot/StatementURIs",
                service.limits.max_statements,
                related="/Oem/Ironroot/StatementURIs",
            )
        statements = tuple(_fetch_uri(u, "Oem/Ironroot/StatementURIs", action) for u in uris)
        if "PfmURI" in ours:
            pfm_uri = _fetch_uri(ours["PfmURI"], "Oem/Ironroot/PfmURI", action)
        if "PfmStatementURI" in ours:
            pfm_statement_uri = _fetch_uri(
                ours["PfmStatementURI"], "Oem/Ironroot/PfmStatementURI", action
            )
    return _SimpleUpdatePlan(component, image_uri, statements, pfm_uri, pfm_statement_uri, auth)


def _fetch_uri(value: object, name: str, action: str) -> str:
    """An ``http(s)://host/…`` URI to fetch (``ActionParameterValueFormatError`` otherwise)."""
    import httpx

    shown = (value if isinstance(value, str) else json.dumps(value))[:200]
    if not isinstance(value, str):
        raise _bad("ActionParameterValueTypeError", shown, name, action, related=f"/{name}")
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise _bad("ActionParameterValueFormatError", shown, name, action, related=f"/{name}")
    return value


async def _start_update(
    request: Request,
    service: RedfishService,
    update: _UpdateRequest | None,
    payload: Mapping[str, Any],
    obtain: Callable[[], _UpdateRequest],
    *,
    component: str | None = None,
    image_name: str | None = None,
) -> Response:
    """Run the update in a worker thread as a task; answer once the RoT has verified the
    image (``202``) or refused it (the refusal), or after ``verify_wait`` seconds (``202``)."""
    component = component or (update.component if update else "")
    image_name = image_name or (update.image_name if update else "")
    if not service._updating.acquire(blocking=False):
        raise _Refusal(
            409,
            message("ResourceInUse"),
            message("UpdateInProgress"),
            text="another update is running: wait for its task to end",
        )
    try:
        task = service.tasks.create(f"Update of {component}", payload)
    except IronrootError:
        service._updating.release()
        raise
    loop = asyncio.get_running_loop()
    verified: asyncio.Future[_Refusal | None] = loop.create_future()

    def settle(outcome: _Refusal | None) -> None:
        def set_once() -> None:
            if not verified.done():
                verified.set_result(outcome)

        loop.call_soon_threadsafe(set_once)

    worker = threading.Thread(
        target=_run_update,
        args=(service, task.id, component, image_name, obtain, settle),
        name=f"ironroot-redfish-update-{task.id}",
    )
    try:
        worker.start()
    except RuntimeError:
        service._updating.release()
        raise
    try:
        outcome = await asyncio.wait_for(asyncio.shield(verified), service.limits.verify_wait)
    except TimeoutError:
        outcome = None
    if outcome is not None:
        raise outcome
    snapshot = service.tasks.get(task.id)
    headers = {"Location": f"{MONITORS}/{task.id}", "Retry-After": "2"}
    return _json_response(request, _task_body(snapshot), 202, headers)


def _update_refusal(exc: IronrootError, image: str, component: str) -> _Refusal:
    """A refused update: ``Update.1.3.VerificationFailed`` naming the check (400), or the
    typed error's own answer when it is not a check's."""
    check = exc.check or exc.code
    if isinstance(exc, Conflict) and exc.code == "update-in-progress":
        return _Refusal(409, message("ResourceInUse"), message("UpdateInProgress"), text=exc.detail)
    if isinstance(exc, PayloadTooLarge | LimitExceeded):
        return _Refusal(413, message("PayloadTooLarge"), text=exc.detail)
    if exc.http_status >= 500:
        refusal = _refusal_of(exc, MULTIPART_URI)
        return _Refusal(
            refusal.status,
            message("ApplyFailed", image, component),
            *refusal.messages,
            text=exc.detail,
        )
    oem = {"Check": check, "Code": exc.code, "Detail": exc.detail}
    return _Refusal(
        400,
        message("VerificationFailed", image, component, oem=oem),
        text=f"the update of {component} was refused by the check {check!r} "
        f"({exc.code}): {exc.detail}",
    )


def _run_update(
    service: RedfishService,
    task_id: str,
    component: str,
    image: str,
    obtain: Callable[[], _UpdateRequest],
    settle: Callable[[_Refusal | None], None],
) -> None:
    """The worker thread: fetch (for SimpleUpdate), update, and report into the task."""
    tasks = service.tasks
    try:
        tasks.change(
            task_id,
            state="Running",
            messages=[
                message("TaskStarted", task_id),
                message("TargetDetermined", component, image),
            ],
        )
        update = obtain()

        def progress(step: str, percent: int) -> None:
            following = _PROGRESS.get(step)
            extra = [message(following, image, component)] if following else []
            tasks.change(task_id, percent=min(percent, 99), messages=extra)
            if step == "verify":
                settle(None)

        try:
            result: UpdateResult = service.platform.update(
                update.component,
                update.bundle,
                update.statements,
                now=service.clock(),
                pfm=update.pfm,
                pfm_statement=update.pfm_statement,
                progress=progress,
            )
        except IronrootError as exc:
            refusal = _update_refusal(exc, image, component)
            _log.warning(
                "redfish update of %s refused: %s (%s)",
                component,
                exc.check or exc.code,
                exc.detail,
            )
            _fail(tasks, task_id, refusal)
            settle(refusal)
            return
        outcome_ok = result.outcome == "committed"
        final = (
            message("UpdateSuccessful", component, image)
            if outcome_ok
            else message(
                "ActivateFailed",
                image,
                component,
                oem={
                    "Check": "health",
                    "Code": result.outcome,
                    "Detail": f"{component} {result.image.version} did not come "
                    "up healthy: rolled back to the last known good",
                },
            )
        )
        if outcome_ok:
            tasks.change(
                task_id,
                state="Completed",
                status="OK",
                percent=100,
                messages=[final, message("TaskCompletedOK", task_id)],
                result=(
                    200,
                    {"@Message.ExtendedInfo": [final], "Oem": {"Ironroot": result.to_json()}},
                ),
            )
            _log.info("redfish update of %s committed: %s", component, result.image.version)
        else:
            _fail(tasks, task_id, _Refusal(500, final, text=final["Message"]))
            _log.warning("redfish update of %s %s", component, result.outcome)
        settle(None)
    except _Refusal as refused:
        _fail(tasks, task_id, refused)
        settle(refused)
    except IronrootError as exc:
        refusal = _refusal_of(exc, MULTIPART_URI)
        _fail(tasks, task_id, refusal)
        settle(refusal)
    except BaseException:  # a bug, or a power loss drill: the task ends, the log has why
        incident = secrets.token_hex(8)
        _log.exception(
            "the update task %s failed unexpectedly [correlation id %s]", task_id, incident
        )
        refusal = _Refusal(
            500,
            message("InternalError"),
            text=f"the update failed unexpectedly; correlation id {incident}",
        )
        _fail(tasks, task_id, refusal)
        settle(refusal)
    finally:
        service._updating.release()


def _fail(tasks: TaskStore, task_id: str, refusal: _Refusal) -> None:
    tasks.change(
        task_id,
        state="Exception",
        status="Critical",
        messages=[*refusal.messages, message("TaskAborted", task_id)],
        result=(refusal.status, error_body(refusal.messages, refusal.text)),
    )


# --- serving --------------------------------------------------------------------------------


def serve_redfish(
    node: Path | str,
    host: str,
    port: int,
    *,
    tls: ServerTls | None = None,
    limits: ServerLimits | None = None,
    fetch_verify: ssl.SSLContext | bool = True,
) -> None:
    """Serve the Redfish service of the node in ``node`` until SIGINT/SIGTERM (HTTPS with
    ``tls``). One serving process per node (``InUse``); the port is checked before the node
    is opened."""
    from ironroot._fileio import DirectoryLock
    from ironroot.http import check_listen, configure_logging, run_server, server_config

    check_listen(host, port)
    if not logging.getLogger("ironroot").handlers:
        configure_logging("info", "text")
    platform = Platform.open(node)
    accounts = AccountStore.open(node)
    lock = DirectoryLock(Path(node), ".redfish.lock", what="platform node")
    try:
        service = RedfishService(platform, accounts, fetch_verify=fetch_verify)
        _log.info(
            "platform Redfish service on %s://%s:%d: node %s (%s), %d account(s)",
            "https" if tls is not None else "http",
            host,
            port,
            platform.directory,
            platform.config.trust.platform,
            len(accounts.accounts()),
        )
        run_server(server_config(create_redfish_app(service), host, port, limits, tls=tls))
    finally:
        lock.close()
