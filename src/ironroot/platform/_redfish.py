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
``AccountService``, ``…/Accounts[/{id}]``         accounts (``…/Actions/ManagerAccount.
                                                  ChangePassword``), and ``…/Roles[/{role}]``:
                                                  the three predefined roles
``UpdateService``                                 ``MultipartHttpPushUri``, ``SimpleUpdate``
``UpdateService/FirmwareInventory[/{c}-{role}]``  every image the RoT holds
``TaskService``, ``…/Tasks[/{id}]``               update tasks, and ``…/TaskMonitors/{id}``
``Managers/bmc``, ``…/LogServices/RoT/Entries``   the BMC and the RoT's event log
================================================  ============================================

**Authentication.** Everything but ``/redfish``, the service root, ``$metadata``, ``odata``,
the OEM schema and ``POST …/Sessions`` needs a session token (``X-Auth-Token``) or HTTP Basic
credentials (Basic only over HTTPS, or with ``basic_over_http`` from a loopback peer: over
plain HTTP Basic credentials are otherwise refused unchecked, and
``AccountService.HTTPBasicAuth`` is ``Disabled``). No
or a wrong credential: ``401`` ``Base.1.22.NoValidSession``, with ``WWW-Authenticate: Basic``
where Basic is taken and no challenge over plain HTTP (a browser would ask for a password to
send in clear; :class:`_AnswerHeaders`). A role without the
privilege the operation needs (Redfish's privilege registry: reads need ``Login``, updates
``ConfigureComponents``, accounts ``ConfigureUsers``, other sessions and the session service
``ConfigureManager``; changing one's own password ``ConfigureSelf``): ``403``
``Base.1.22.InsufficientPrivilege``. A request that changes something is held to its
session and account again once its body is in, before the change: one whose session ended,
or whose account was removed, disabled, locked or given a new password or role while the
body arrived, is ``401`` (:meth:`RedfishService.confirm`).

**Password guessing.** An account's lockout (``AccountLockoutThreshold`` wrong passwords,
``AccountLockoutDuration``, ``AccountLockoutCounterResetAfter``) holds for the source address
that guessed, not for every client (:mod:`._redfish_accounts`): the right password from there
is answered as a wrong one (``401`` ``NoValidSession``), while the Administrator at another
address logs in and keeps its sessions; ``ManagerAccount.Locked`` is true while the account
is locked out from some address, and ``PATCH Locked: false`` clears every one. Each address
also has a failure budget (``AccountService`` ``Oem.Ironroot.SourceFailureLimit`` failed
password checks, any names, within ``SourceFailureWindow`` seconds; 20 in 300 by default):
past it, every login and Basic request from there is ``429``
``Base.1.22.ServiceTemporarilyUnavailable`` with ``Retry-After`` (the seconds until its
oldest failure leaves the window) before its password is hashed
(:meth:`RedfishService.throttled_password_check`, :class:`ironroot.http.LoginThrottle`,
bounded in memory).

**Passwords** are changed with ``#ManagerAccount.ChangePassword``
(``…/Accounts/{id}/Actions/ManagerAccount.ChangePassword``, shown in each account's
``Actions``): ``NewPassword`` and ``SessionAccountPassword``, the password of the account the
request authenticates as (one's own current password, or an Administrator's own for another
account). A wrong one is ``403`` ``ActionParameterValueError`` and counts towards that
account's lockout. ``AccountService.RequireChangePasswordAction`` (default true) refuses a
``PATCH`` of ``Password`` (``400`` ``PropertyNotWritable``); an Administrator may turn it off.

**Updates.** ``POST /redfish/v1/UpdateService/update-multipart`` (``multipart/form-data``):

* ``UpdateParameters`` (JSON, required): ``{"Targets": [URI]}`` with exactly one target, the
  component's active ``FirmwareInventory`` member (``…/FirmwareInventory/bmc-active``) or
  ``/redfish/v1/Managers/bmc`` (a member for its recovery, previous or staged image is ``400``
  ``…ValueConflict``: no update writes those); optionally
  ``"@Redfish.OperationApplyTime": "Immediate"`` and ``"ForceUpdate": false`` (the checks are
  never bypassed), and
  ``"Oem": {"Ironroot": {"AllowRecoveryRemoval": [component, …]}}`` (below);
* ``UpdateFile`` (required): the firmware bundle;
* ``OemIronrootStatement`` (repeat, up to 16): the bundle's transparent statements (the
  manifest statement with its receipt; for a device its CoRIM; SAFE reviews when required);
* ``OemIronrootPfm`` and/or ``OemIronrootPfmStatement`` (optional): a new signed PFM to
  activate with the image, and its transparent statement.

Every part but ``UpdateParameters`` is a file part (with a ``filename``): its bytes are taken as
they are, not decoded as a field's text (``400 MissingOrMalformedPart`` otherwise). The body is
parsed in memory, where it was read: no part is spooled to a temporary file.

``POST /redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate`` takes JSON
``{"ImageURI": "https://…/bmc-2.0.bin", "Targets": [URI], "TransferProtocol": "HTTPS",
"Username": …, "Password": …, "Oem": {"Ironroot": {"StatementURIs": [URI, …], "PfmURI": URI,
"PfmStatementURI": URI, "AllowRecoveryRemoval": [component, …]}}}``: the service fetches the
image and each statement over HTTP(S) (``httpx``; the same limits as a push;
``Username``/``Password``, sent as HTTP Basic, only to an ``https://`` image), then updates as
above.

``AllowRecoveryRemoval`` (either way; default none) names the components whose recovery image
the update's new PFM may stop listing: the operator's explicit acceptance for this one update,
as ``platform update --allow-recovery-removal``. Without it such a PFM is refused
(``VerificationFailed``, ``Check`` ``pfm``, ``Code`` ``pfm-drops-recovery-image``); naming
another component accepts nothing for this one. It is a request parameter, not a standing
setting of the node, so each such PFM is accepted by someone with ``ConfigureComponents``, for
that update, and the acceptance is kept in the task's ``Payload``. A value that is not a list
of component names is ``400`` (``…ValueTypeError``, ``…ValueNotInList``).

Either way the update runs in a worker thread (never on the event loop) as a task; the request
is answered once the RoT has verified the image: ``202 Accepted`` with ``Location`` (the task
monitor) and the ``Task``, whose ``TaskState``, ``PercentComplete`` and ``Messages`` follow the
update's steps (``Update.1.3.*`` messages) to ``Completed`` (committed) or ``Exception``
(rolled back, power lost); or ``400`` when a check refused it: ``Update.1.3.VerificationFailed``
whose ``Oem.Ironroot`` names the failing ``Check`` (``receipt``, ``svn``, ``not-in-pfm``'s
``pfm``, …), its ``Code`` and ``Detail``; the error's ``message`` names the check too. One
update at a time: another while one runs is ``409`` ``Base.1.22.ResourceInUse``.

**Tasks.** As DMTF's privilege registry (DSP8011) maps them, ``TaskService``, its ``Tasks``
collection and each ``Task`` and task monitor are read with ``Login``: every account sees
every task's state, progress and ``Messages`` (the component, the image's name and the
verdict, which the RoT's log that ``Login`` reads records too). The registry overrides no
property of a task, but the Task schema lets a service hide a task's ``Payload`` (the request
that started it: the image server's URIs and user name, the statement URIs, the
``AllowRecoveryRemoval`` acceptance): it is shown to the account that started the task and to
accounts with ``ConfigureManager`` (which the registry asks to change or delete a task);
any other account reads ``HidePayload: true`` and no ``Payload``. A task's id is random
(:mod:`._redfish_tasks`): tasks live in memory, and a restarted service never gives an id
a client may still be polling to another task.

**Conventions.** Every resource has ``@odata.id``, ``@odata.type`` (the versions of
:data:`~ironroot.platform._redfish_csdl.SCHEMA_VERSIONS`) and ``@odata.context``; answers carry
``OData-Version: 4.0``, an ``ETag`` (also ``@odata.etag``; ``If-None-Match`` gives ``304``)
and ``Allow``, and every answer ``X-Content-Type-Options: nosniff`` and
``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``; ``PATCH``,
``DELETE`` and ``POST`` honour ``If-Match`` and ``If-None-Match``
(``412`` ``Base.1.22.PreconditionFailed``; a ``POST`` against its collection, or the resource
its action is bound to; any ``If-Match`` on the push URI, which has no representation); one
that does not parse is ``412`` ``HeaderInvalid``. Errors are Redfish error bodies
(``{"error": {"code", "message", "@Message.ExtendedInfo": [...]}}``, messages of the Base,
Update and TaskEvent registries): ``400`` (``MalformedJSON``, ``PropertyValueFormatError``,
``PropertyUnknown``, ``ActionParameterMissing``, …), ``401``, ``403``, ``404``
(``ResourceMissingAtURI``), ``405`` (``OperationNotAllowed``, with ``Allow``; also for a
method no HTTP parser knows, such as ``FAKEMETHODFORTEST``, which ``ironroot.http`` hands
back to the app), ``409``, ``412``,
``413`` (``PayloadTooLarge``), ``415``, ``501`` (``$``-query parameters are not supported) and
``503``. An unexpected failure is a ``500`` ``Base.1.22.InternalError`` whose message carries a
correlation id that the log line (with the traceback) repeats. Besides Redfish, the app serves
``/health``, ``/ready``, ``/metrics`` and ``/`` like every Ironroot service.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ironroot._netaddr import is_loopback_host
from ironroot.errors import (
    Conflict,
    IronrootError,
    LimitExceeded,
    MalformedInput,
    NotFound,
    Overloaded,
    RoleNotPermitted,
    TooManyAttempts,
    Unauthorized,
)
from ironroot.http import (
    REFUSAL_HEADERS,
    LoginThrottle,
    Observed,
    ServiceInfo,
    operational_routes,
    read_body,
)
from ironroot.platform._node import InventoryItem, Platform
from ironroot.platform._redfish_accounts import (
    PRIVILEGES,
    ROLES,
    SETTING_LIMITS,
    SOURCE_SETTING_LIMITS,
    Account,
    AccountStore,
    Session,
    SessionStore,
    check_username,
)
from ironroot.platform._redfish_csdl import OEM_SCHEMA, OEM_SCHEMA_PATH, metadata_document
from ironroot.platform._redfish_http import (
    ACCOUNTS,
    INVENTORY,
    JSON,
    JSON_LIMIT,
    LOG,
    MANAGER,
    MONITORS,
    MULTIPART_PARTS,
    MULTIPART_URI,
    PFM_PART,
    PFM_STATEMENT_PART,
    REALM,
    REDFISH_VERSION,
    ROLES_URI,
    ROOT,
    SESSIONS,
    SIMPLE_UPDATE,
    SIMPLE_UPDATE_ACTION,
    STATEMENT_PART,
    TASKS,
    RedfishLimits,
    Refusal,
    collection,
    entity_tags,
    error_response,
    json_body,
    json_response,
    link,
    odata,
    only,
    precondition,
    prop,
    refusal_of,
    refuse,
    task_body,
    utc,
)
from ironroot.platform._redfish_messages import message
from ironroot.platform._redfish_tasks import Task, TaskStore
from ironroot.platform._redfish_update import (
    UpdateRequest,
    ironroot_oem,
    multipart_update,
    replayed,
    shown_update_request,
    shown_uri,
    simple_update_plan,
    start_update,
)

if TYPE_CHECKING:
    import ssl

    from ironroot.http import ServerLimits, ServerTls

__all__ = [
    "MULTIPART_PARTS",
    "RedfishLimits",
    "RedfishService",
    "create_redfish_app",
    "redfish_info",
    "serve_redfish",
]

_log = logging.getLogger("ironroot.platform.redfish")

CHANGE_PASSWORD: Final = "ManagerAccount.ChangePassword"  # noqa: S105 (an action's name)
"""The action that changes an account's password (ManagerAccount v1_11_0 on)."""

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
        basic_over_http: bool = False,
        fetch_internal: bool = False,
        throttle_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform = platform
        self.accounts = accounts
        self.sessions = SessionStore(accounts)
        self.limits = limits or RedfishLimits()
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.tasks = TaskStore(self.clock)
        self.fetch_verify = fetch_verify
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"ironroot:{platform.config_digest.hex()}"))
        self.updating = threading.Lock()
        """Held while an update runs (one at a time)."""
        self.receiving = False
        """A multipart push's body is being read (set and read on the event loop only)."""
        self.password_checks = threading.BoundedSemaphore(self.limits.max_password_checks)
        """A slot per password being checked (:meth:`_login`): taken without waiting."""
        s = accounts.settings
        self.throttle = LoginThrottle(
            s.source_failure_limit, s.source_failure_window, clock=throttle_clock
        )
        """Failed password checks per source address (the account settings' budget), timed
        by ``throttle_clock`` (seconds; monotonic: a step of the wall clock neither forgives
        a guesser nor holds a client back for the length of the step)."""
        self.writes = asyncio.Lock()
        """Held by a ``PATCH`` or ``DELETE`` from its ``If-Match`` check to its change."""
        self.basic_over_http = basic_over_http
        """Accept HTTP Basic credentials on plain HTTP from a loopback peer (tests, a
        TLS-terminating proxy on the same host; a proxy elsewhere is named in the server's
        ``trusted_proxies``, and its ``X-Forwarded-Proto: https`` makes a request an HTTPS
        one); otherwise Basic needs HTTPS, as DSP0266 requires (:meth:`offers_basic`)."""
        self.fetch_internal = fetch_internal
        """Let ``SimpleUpdate`` fetch from loopback, link-local, unspecified and multicast
        addresses (an image server on the BMC itself, in tests); otherwise those are refused,
        however the URI's host name resolves, as they reach the BMC's internal services."""

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
            if not self.offers_basic(request.scope):
                # refused unchecked: no password is hashed, and no guess counts or answers
                # otherwise than no credentials would
                raise Unauthorized(
                    "HTTP Basic authentication needs HTTPS: log in for a session", code="login"
                )
            try:
                user, sep, password = (
                    base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                )
            except ValueError:  # not base64 (binascii.Error), bytes past ASCII, not UTF-8
                raise Unauthorized("malformed Basic credentials", code="login") from None
            if not sep:
                raise Unauthorized("malformed Basic credentials", code="login")
            account = await self._login(user, password, request)
            return _Principal(account, None)
        raise Unauthorized("no session token or credentials", code="login")

    def offers_basic(self, scope: Mapping[str, Any]) -> bool:
        """Whether HTTP Basic credentials are taken on the request of ASGI ``scope``: over
        HTTPS, or, with :attr:`basic_over_http`, over plain HTTP from a loopback peer. Where
        they are not, a ``401`` offers no ``Basic`` challenge, Basic credentials are refused
        unchecked and ``AccountService.HTTPBasicAuth`` is ``Disabled`` (DSP0266 §13.3.4.1:
        Basic needs HTTPS; a browser told ``Basic`` over plain HTTP asks for a password and
        sends it in clear)."""
        if scope.get("scheme") == "https":
            return True
        client = scope.get("client")
        return (
            self.basic_over_http
            and isinstance(client, tuple | list)
            and bool(client)
            and isinstance(client[0], str)
            and is_loopback_host(client[0])
        )

    def confirm(self, who: _Principal) -> None:
        """Hold ``who``, authenticated when its request's head arrived, to the service as it
        is now, just before its request changes anything: ``Unauthorized`` when its session
        ended or its account was removed, disabled, locked or given a new password or role
        since. A body may take the server's whole body timeout to arrive, and revoking an
        account must stop the requests it has begun too."""
        if who.session is not None:
            try:
                self.sessions.get(who.session.id)
            except NotFound:
                raise Unauthorized("the session ended", code="session") from None
        try:
            account = self.accounts.get(who.account.id)
        except NotFound:
            raise Unauthorized("the account was removed", code="session") from None
        if (
            not account.enabled
            or account.locked(self.accounts.now())
            or (account.role, account.salt, account.digest)
            != (who.account.role, who.account.salt, who.account.digest)
        ):
            raise Unauthorized("the account changed during the request", code="session")

    def source_throttle(self) -> LoginThrottle:
        """:attr:`throttle`, held to the account settings as they are now."""
        s = self.accounts.settings
        budget = (s.source_failure_limit, s.source_failure_window)
        if budget != (self.throttle.max_failures, self.throttle.window):
            self.throttle.reconfigure(*budget)
        return self.throttle

    async def throttled_password_check(
        self, request: Request, check: Callable[[str], Account], what: str
    ) -> Account:
        """``check(source)`` (a password check of the client at ``source``) in a worker
        thread, held to the client's failure budget and to the slots for password checks.
        Unauthenticated clients send these, each a worker thread and a memory-hard hash.

        A client address with ``source_failure_limit`` failed checks (logins in flight
        counted) within ``source_failure_window`` seconds is ``TooManyAttempts`` (``429``
        with ``Retry-After``) before any password is hashed: no CPU for a guesser and no
        timing to read, while other addresses go on. At most ``limits.max_password_checks``
        run at once, and one more is ``Overloaded`` (``503`` with ``Retry-After``) at once,
        so a flood of guesses neither exhausts the BMC's memory nor takes the worker threads
        every other request needs."""
        client = request.client.host if request.client else "-"
        try:
            attempt = self.source_throttle().begin(client)
        except TooManyAttempts as exc:
            _log.debug("redfish %s from %s throttled: %s", what, client, exc.detail)
            raise
        try:
            if not self.password_checks.acquire(blocking=False):
                _log.warning("redfish %s from %s refused: too many password checks", what, client)
                raise Overloaded(
                    f"{self.limits.max_password_checks} passwords are being checked: retry",
                    code="password-checks",
                    retry_after=1,
                )
            try:
                return await run_in_threadpool(check, client)
            except IronrootError:
                attempt.failed = True
                raise
            finally:
                self.password_checks.release()
        finally:
            self.throttle.end(attempt)

    async def _login(self, user: str, password: str, request: Request) -> Account:
        """The account ``user`` whose password is ``password``, for a client at an address
        it is not locked out from (:meth:`throttled_password_check`)."""

        def check(source: str) -> Account:
            return self.accounts.authenticate(user, password, source=source)

        try:
            return await self.throttled_password_check(request, check, "login")
        except IronrootError as exc:
            client = request.client.host if request.client else "-"
            _log.warning("redfish login refused for %r from %s: %s", user[:64], client, exc.code)
            raise


# --- the app --------------------------------------------------------------------------------

_Handler = Callable[[Request, "_Principal | None"], Awaitable[Response]]


class _Resource:
    """One URI: a handler per method and the privilege each needs (``None``: no login)."""

    def __init__(
        self, path: str, *, serialized: bool = False, **methods: tuple[_Handler, str | None]
    ) -> None:
        self.path = path
        self.methods = methods
        self.serialized = serialized
        """A ``POST`` here changes what a ``PATCH`` or ``DELETE`` does: it takes their lock."""
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
                except (Unauthorized, Overloaded):
                    principal = None
            if method in ("PATCH", "DELETE") or (method == "POST" and resource.serialized):
                # If-Match and the change, one writer at a time
                # The body is read first: a client sending it slowly (any account may PATCH
                # its own password) must not hold the lock every other change waits for.
                request = replayed(request, await read_body(request, JSON_LIMIT))
                async with service.writes:
                    if principal is not None:
                        service.confirm(principal)
                    return await handler(request, principal)
            return await handler(request, principal)
        except Refusal as refused:
            return _answer(request, refused, resource.allow)
        except IronrootError as exc:
            _log.debug("%s %s refused: %s: %s", request.method, request.url.path, exc.code, exc)
            return _answer(request, refusal_of(exc, request.url.path), resource.allow)
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
            refusal = Refusal(
                500,
                message("InternalError"),
                text=f"the Redfish service failed unexpectedly; correlation id {incident}",
            )
            return _answer(request, refusal, resource.allow)

    methods = [m for m in resource.methods if m != "HEAD"]
    return Route(resource.path, endpoint, methods=methods)


def _answer(request: Request, refusal: Refusal, allow: str) -> Response:
    response = error_response(refusal)
    if refusal.status == 405:
        response.headers["Allow"] = allow
    if request.method == "HEAD":
        response.body = b""
    return response


def _check_request(request: Request) -> None:
    # A credential field given twice: this service would take the first, a proxy or log in
    # front of it the last (or both, joined), so who the request acts as would depend on
    # who reads it (RFC 9110 §5.3: neither is a list).
    for name in ("X-Auth-Token", "Authorization"):
        if len(request.headers.getlist(name)) > 1:
            raise Refusal(
                400,
                message("HeaderInvalid", name),
                text=f"a request has at most one {name} field",
            )
    if request.method not in ("GET", "HEAD"):
        _check_same_origin(request)
    for name in ("If-Match", "If-None-Match"):  # 412 HeaderInvalid when one does not parse
        entity_tags(request, name)
    version = request.headers.get("odata-version")
    if version is not None and version.strip() != "4.0":
        raise Refusal(
            412,
            message("HeaderInvalid", "OData-Version"),
            text="this service speaks OData-Version 4.0",
        )
    for name in request.query_params:
        if name.startswith(("$", "*")):
            raise Refusal(501, message("QueryParameterUnsupported", name))


def _check_same_origin(request: Request) -> None:
    """Refuse a change a web browser sends for another site (``403`` ``HeaderInvalid``).

    Where Basic is taken the service answers ``401`` with ``WWW-Authenticate: Basic``, so a
    browser asks for and keeps an operator's credentials and sends them with every request
    to the BMC, those a page of any site makes included: a ``POST`` without a
    ``Content-Type`` (taken as JSON) or with ``multipart/form-data`` needs no CORS
    preflight, so any page the operator opened could create an Administrator or start an
    update. Browsers say where such a request comes from (``Sec-Fetch-Site``, ``Origin``);
    Redfish clients send neither, and are unaffected."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        raise Refusal(
            403,
            message("HeaderInvalid", "Sec-Fetch-Site"),
            text=f"a {site[:32]!r} request from a web page may not change this service",
        )
    origin = request.headers.get("origin")
    if origin is None:
        return
    scheme, sep, host = origin.strip().partition("://")
    if not sep or (scheme.lower(), host.lower()) != (
        request.url.scheme,
        request.headers.get("host", "").lower(),
    ):
        raise Refusal(
            403,
            message("HeaderInvalid", "Origin"),
            text=f"a request from the web origin {origin[:100]!r} may not change this service",
        )


class _AnswerHeaders:
    """ASGI: the headers every answer of the service carries.

    * ``X-Content-Type-Options: nosniff`` and ``Content-Security-Policy: default-src 'none';
      frame-ancestors 'none'`` (:data:`ironroot.http.REFUSAL_HEADERS`, as every Ironroot
      service's answers): an error repeats what the client sent (a 404's path), and a page
      that links a browser to ``/redfish/v1/<script>…`` gets JSON never sniffed into
      markup, run or framed;
    * on a ``401``, ``WWW-Authenticate: Basic`` (RFC 9110 §11.6.1) where Basic credentials
      are taken (:meth:`RedfishService.offers_basic`), and no challenge elsewhere: over plain
      HTTP the credential is a session's ``X-Auth-Token``, which no HTTP authentication
      scheme names, and ``Basic`` would have a browser ask for a password to send in clear.
      The Redfish schema allows it (``AccountService.HTTPBasicAuth`` is ``Disabled`` there;
      ``Unadvertised``: "may omit the header entirely")."""

    def __init__(self, app: Any, service: RedfishService) -> None:
        self.app = app
        self.service = service
        self.headers = [
            (name.encode(), REFUSAL_HEADERS[name].encode())
            for name in ("x-content-type-options", "content-security-policy")
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        challenge = self.service.offers_basic(scope)

        async def answered(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.headers if k not in present]
                if challenge and message["status"] == 401 and b"www-authenticate" not in present:
                    headers.append((b"www-authenticate", REALM.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, answered)


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
            refusal = Refusal(405, message("OperationNotAllowed"), headers={"Allow": allow})
        elif exc.status_code == 404:
            refusal = Refusal(404, message("ResourceMissingAtURI", request.url.path))
        else:
            refusal = Refusal(exc.status_code, message("GeneralError"), text=str(exc.detail))
        return error_response(refusal)

    app = Starlette(
        routes=[*routes, *operational_routes(info, routes)],
        middleware=[
            Middleware(Observed, info=info),
            Middleware(_AnswerHeaders, service=service),
            Middleware(_Slashes),
        ],
        exception_handlers={HTTPException: http_error},
    )

    def unknown_method() -> tuple[int, Mapping[str, str], bytes]:
        """A method the HTTP parser does not know (``ironroot.http`` answers it before the app
        sees it): RFC 9110's 501, as a Redfish error. A method the parser knows and a resource
        does not take is the routes' 405 with ``Allow`` (``http_error``)."""
        refusal = Refusal(
            501, message("GeneralError"), text="this service implements no such HTTP method"
        )
        response = error_response(refusal)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in response.raw_headers}
        return refusal.status, headers, bytes(response.body)

    app.state.unknown_method = unknown_method
    return app


# --- resources ------------------------------------------------------------------------------


def _resources(service: RedfishService) -> list[_Resource]:
    accounts = service.accounts
    sessions = service.sessions
    limits = service.limits

    async def versions(request: Request, who: _Principal | None) -> Response:
        return json_response(request, {"v1": f"{ROOT}/"})

    async def root(request: Request, who: _Principal | None) -> Response:
        body = {
            **odata(ROOT, "ServiceRoot"),
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
            "SessionService": link(f"{ROOT}/SessionService"),
            "AccountService": link(f"{ROOT}/AccountService"),
            "UpdateService": link(f"{ROOT}/UpdateService"),
            "Tasks": link(f"{ROOT}/TaskService"),
            "Managers": link(f"{ROOT}/Managers"),
            "Links": {"Sessions": link(SESSIONS)},
        }
        return json_response(request, body)

    async def metadata(request: Request, who: _Principal | None) -> Response:
        text = metadata_document()
        return Response(text, headers={"OData-Version": "4.0"}, media_type="application/xml")

    async def oem_schema(request: Request, who: _Principal | None) -> Response:
        return Response(OEM_SCHEMA, headers={"OData-Version": "4.0"}, media_type="application/xml")

    async def odata_document(request: Request, who: _Principal | None) -> Response:
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
        return json_response(request, body)

    # --- sessions ---------------------------------------------------------------------------

    def session_body(session: Session) -> dict[str, Any]:
        try:  # the account's name now: renamed, its old name may be another account's
            username = accounts.get(session.account_id).username
        except NotFound:  # removed: its sessions are ending
            username = session.username
        body: dict[str, Any] = {
            **odata(f"{SESSIONS}/{session.id}", "Session"),
            "Id": session.id,
            "Name": f"Session {session.id}",
            "UserName": username,
            "Password": None,
            "SessionType": "Redfish",
            "CreatedTime": utc(dt.datetime.fromtimestamp(session.created, dt.UTC)),
        }
        if session.client:
            body["ClientOriginIPAddress"] = session.client
        if session.context is not None:
            body["Context"] = session.context
        return body

    def session_service_body() -> dict[str, Any]:
        return {
            **odata(f"{ROOT}/SessionService", "SessionService"),
            "Id": "SessionService",
            "Name": "Session Service",
            "ServiceEnabled": True,
            "SessionTimeout": accounts.settings.session_timeout,
            "Status": {"State": "Enabled", "Health": "OK"},
            "Sessions": link(SESSIONS),
        }

    async def session_service(request: Request, who: _Principal | None) -> Response:
        return json_response(request, session_service_body())

    async def patch_session_service(request: Request, who: _Principal | None) -> Response:
        doc = await json_body(request)
        current = session_service_body()
        precondition(request, current)
        only(doc, ("SessionTimeout", "ServiceEnabled"), read_only=current)
        changes: dict[str, int] = {}
        if "ServiceEnabled" in doc and prop(doc, "ServiceEnabled", bool) is not True:
            raise refuse(
                "PropertyValueNotInList", "false", "ServiceEnabled", related="/ServiceEnabled"
            )
        if "SessionTimeout" in doc:
            value = prop(doc, "SessionTimeout", int)
            low, high = SETTING_LIMITS["session_timeout"]
            if not low <= value <= high:
                raise refuse(
                    "PropertyValueOutOfRange", value, "SessionTimeout", related="/SessionTimeout"
                )
            changes["session_timeout"] = value
        await run_in_threadpool(accounts.configure, **changes)
        return json_response(request, session_service_body())

    def session_list_body(who: _Principal) -> dict[str, Any]:
        members = [
            f"{SESSIONS}/{s.id}"
            for s in sessions.sessions()
            if who.can("ConfigureManager") or s.account_id == who.account.id
        ]
        return collection(SESSIONS, "SessionCollection", "Sessions", members)

    async def session_list(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        return json_response(request, session_list_body(who))

    async def login(request: Request, who: _Principal | None) -> Response:
        doc = await json_body(request)
        for name in ("UserName", "Password"):
            if name not in doc:
                raise refuse("PropertyMissing", name, related=f"/{name}")
        only(doc, ("UserName", "Password", "Context"))
        user = prop(doc, "UserName", str)
        password = prop(doc, "Password", str)
        context = prop(doc, "Context", str) if "Context" in doc else None
        if context is not None and len(context) > 256:
            raise refuse("PropertyValueFormatError", context[:64], "Context", related="/Context")
        account = await service._login(user, password, request)
        # The collection as the account reads it (an anonymous client reads none), and no
        # await from the check to the new session: nothing changes the sessions between.
        precondition(request, session_list_body(_Principal(account, None)))
        client = request.client.host if request.client else None
        try:
            session, token = sessions.create(account, client, context)
        except LimitExceeded as exc:
            raise Refusal(400, message("SessionLimitExceeded"), text=exc.detail) from None
        _log.info(
            "redfish session %s opened for %s from %s", session.id, account.username, client or "-"
        )
        location = f"{SESSIONS}/{session.id}"
        return json_response(
            request,
            session_body(session),
            201,
            {"X-Auth-Token": token, "Location": location, "Cache-Control": "no-store"},
        )

    def own_session(who: _Principal | None, ident: str) -> Session:
        assert who is not None
        try:
            session = sessions.get(ident)
        except NotFound:  # 403 too: without ConfigureManager, no account learns which exist
            who.require("ConfigureManager")
            raise
        if session.account_id != who.account.id:
            who.require("ConfigureManager")
        return session

    async def session_get(request: Request, who: _Principal | None) -> Response:
        session = own_session(who, request.path_params["session_id"])
        return json_response(request, session_body(session))

    async def logout(request: Request, who: _Principal | None) -> Response:
        session = own_session(who, request.path_params["session_id"])
        precondition(request, session_body(session))
        sessions.delete(session.id)
        _log.info("redfish session %s closed", session.id)
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    # --- accounts ---------------------------------------------------------------------------

    def account_service_body(request: Request) -> dict[str, Any]:
        s = accounts.settings
        return {
            **odata(f"{ROOT}/AccountService", "AccountService"),
            "Id": "AccountService",
            "Name": "Account Service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "LocalAccountAuth": "Enabled",
            # per transport: Basic is taken over HTTPS only, unless basic_over_http
            "HTTPBasicAuth": "Enabled" if service.offers_basic(request.scope) else "Disabled",
            "MinPasswordLength": s.min_password_length,
            "MaxPasswordLength": s.max_password_length,
            "AccountLockoutThreshold": s.lockout_threshold,
            "AccountLockoutDuration": s.lockout_duration,
            "AccountLockoutCounterResetAfter": s.lockout_reset_after,
            # false: a lockout no timer ends (the schema's indefinite lockout), which a
            # duration of 0 is to the store; never shown as "AccountLockoutDuration: 0",
            # which a Redfish client reads as no lockout at all
            "AccountLockoutCounterResetEnabled": s.lockout_reset_after > 0
            and s.lockout_duration > 0,
            "RequireChangePasswordAction": s.require_change_password_action,
            "Accounts": link(ACCOUNTS),
            "Roles": link(ROLES_URI),
            "Oem": {
                "Ironroot": {
                    "@odata.type": "#Ironroot.v1_0_0.AccountService",
                    # the failed logins one source address may make (any account names) in
                    # SourceFailureWindow seconds before its logins are 429
                    "SourceFailureLimit": s.source_failure_limit,
                    "SourceFailureWindow": s.source_failure_window,
                }
            },
        }

    settings_of = {
        "MinPasswordLength": "min_password_length",
        "MaxPasswordLength": "max_password_length",
        "AccountLockoutThreshold": "lockout_threshold",
        "AccountLockoutDuration": "lockout_duration",
        "AccountLockoutCounterResetAfter": "lockout_reset_after",
    }

    oem_settings_of = {
        "SourceFailureLimit": "source_failure_limit",
        "SourceFailureWindow": "source_failure_window",
    }

    conflicts = {
        "min_password_length": ("MinPasswordLength", "MaxPasswordLength"),
        "lockout_reset_after": ("AccountLockoutCounterResetAfter", "AccountLockoutDuration"),
    }

    async def account_service(request: Request, who: _Principal | None) -> Response:
        return json_response(request, account_service_body(request))

    async def patch_account_service(request: Request, who: _Principal | None) -> Response:
        doc = await json_body(request)
        current = account_service_body(request)
        precondition(request, current)
        only(doc, [*settings_of, "RequireChangePasswordAction", "Oem"], read_only=current)
        changes: dict[str, int | bool] = {}
        ours = ironroot_oem(doc, (*oem_settings_of, "@odata.type"), "", None)
        for name, setting in oem_settings_of.items():
            if name in ours:
                shown_name = f"Oem/Ironroot/{name}"
                value = prop({shown_name: ours[name]}, shown_name, int)
                low, high = SOURCE_SETTING_LIMITS[setting]
                if not low <= value <= high:
                    raise refuse(
                        "PropertyValueOutOfRange", value, shown_name, related=f"/{shown_name}"
                    )
                changes[setting] = value
        if "RequireChangePasswordAction" in doc:
            required = prop(doc, "RequireChangePasswordAction", bool)
            changes["require_change_password_action"] = required
        for name, setting in settings_of.items():
            if name in doc:
                value = prop(doc, name, int)
                low, high = SETTING_LIMITS[setting]
                if name == "AccountLockoutDuration" and value == 0:
                    # DSP0266: 0 is "no lockout"; to the store it is a lockout only an
                    # administrator ends, which anyone could then cause with a few guesses
                    raise Refusal(
                        400,
                        message("PropertyValueOutOfRange", value, name, related=(f"/{name}",)),
                        text="AccountLockoutDuration is 1 to "
                        f"{high} seconds: AccountLockoutThreshold 0 stops lockouts",
                    )
                if not low <= value <= high:
                    raise refuse("PropertyValueOutOfRange", value, name, related=f"/{name}")
                changes[setting] = value
        try:
            await run_in_threadpool(accounts.configure, **changes)
        except MalformedInput as exc:  # a combination of settings that does not hold
            name, other = conflicts.get(exc.code, ("MinPasswordLength", "MaxPasswordLength"))
            raise Refusal(
                400,
                message("PropertyValueConflict", name, other, related=(f"/{name}",)),
                text=exc.detail,
            ) from None
        return json_response(request, account_service_body(request))

    def account_body(account: Account) -> dict[str, Any]:
        return {
            **odata(f"{ACCOUNTS}/{account.id}", "ManagerAccount"),
            "Id": account.id,
            "Name": "User Account",
            "UserName": account.username,
            "Password": None,
            "RoleId": account.role,
            "Enabled": account.enabled,
            # locked out from some source (the lockout is per source address)
            "Locked": accounts.locked(account.id),
            "AccountTypes": ["Redfish"],
            "Links": {"Role": link(f"{ROLES_URI}/{account.role}")},
            "Actions": {f"#{CHANGE_PASSWORD}": {"target": change_password_uri(account.id)}},
        }

    def change_password_uri(account_id: str) -> str:
        return f"{ACCOUNTS}/{account_id}/Actions/{CHANGE_PASSWORD}"

    def account_version(account: Account) -> str:
        """What an account's ETag covers besides its body: its password's salt, new with each
        password, so the ETag changes with the password and tells nothing of it."""
        return account.salt.hex()

    def own_account(who: _Principal | None, ident: str) -> Account:
        assert who is not None
        if ident != who.account.id:
            who.require("ConfigureUsers")
        return accounts.get(ident)

    def account_list_body(who: _Principal) -> dict[str, Any]:
        members = [
            f"{ACCOUNTS}/{a.id}"
            for a in accounts.accounts()
            if who.can("ConfigureUsers") or a.id == who.account.id
        ]
        return collection(ACCOUNTS, "ManagerAccountCollection", "Accounts", members)

    async def account_list(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        return json_response(request, account_list_body(who))

    def checked_username(doc: Mapping[str, Any]) -> str:
        value = prop(doc, "UserName", str)
        try:
            return check_username(value)
        except MalformedInput:
            raise refuse(
                "PropertyValueFormatError", value[:64], "UserName", related="/UserName"
            ) from None

    def checked_role(doc: Mapping[str, Any]) -> str:
        value = prop(doc, "RoleId", str)
        if value not in ROLES:
            raise refuse("PropertyValueNotInList", value[:64], "RoleId", related="/RoleId")
        return str(value)

    def checked_password(doc: Mapping[str, Any]) -> str:
        value = prop(doc, "Password", str)
        try:
            accounts.check_password(value)
        except MalformedInput as exc:
            if exc.code == "password-nul":
                raise refuse(
                    "PropertyValueFormatError", "(hidden)", "Password", related="/Password"
                ) from None
            raise Refusal(
                400,
                message("PasswordIncorrectLength", related=("/Password",)),
                text="the password's length is outside the account service's limits",
            ) from None
        return str(value)

    def account_refusal(exc: IronrootError, doc: Mapping[str, Any]) -> Refusal:
        if exc.code == "username-taken":
            return refuse(
                "ResourceAlreadyExists",
                "ManagerAccount",
                "UserName",
                str(doc.get("UserName", ""))[:64],
                related="/UserName",
            )
        if exc.code == "last-administrator":
            return Refusal(
                409,
                message("ResourceCannotBeDeleted")
                if "RoleId" not in doc and "Enabled" not in doc
                else message(
                    "PropertyValueConflict", "RoleId" if "RoleId" in doc else "Enabled", "RoleId"
                ),
                text=exc.detail,
            )
        if exc.code == "accounts-full":
            return refuse("CreateLimitReachedForResource")
        return refusal_of(exc, ACCOUNTS)

    async def account_create(request: Request, who: _Principal | None) -> Response:
        assert who is not None  # the route needs ConfigureUsers
        precondition(request, account_list_body(who))  # under the write lock, to the change
        doc = await json_body(request)
        service.confirm(who)
        for name in ("UserName", "Password", "RoleId"):
            if name not in doc:
                raise refuse("PropertyMissing", name, related=f"/{name}")
        only(
            doc,
            ("UserName", "Password", "RoleId", "Enabled", "AccountTypes"),
            read_only=("Id", "Locked", "Links"),
        )
        if "AccountTypes" in doc and prop(doc, "AccountTypes", list) != ["Redfish"]:
            raise refuse(
                "PropertyValueNotInList",
                json.dumps(doc["AccountTypes"])[:64],
                "AccountTypes",
                related="/AccountTypes",
            )
        enabled = prop(doc, "Enabled", bool) if "Enabled" in doc else True
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
        return json_response(
            request,
            account_body(account),
            201,
            {"Location": f"{ACCOUNTS}/{account.id}"},
            version=account_version(account),
        )

    async def account_get(request: Request, who: _Principal | None) -> Response:
        account = own_account(who, request.path_params["account_id"])
        return json_response(request, account_body(account), version=account_version(account))

    async def account_patch(request: Request, who: _Principal | None) -> Response:
        assert who is not None
        doc = await json_body(request)
        account = own_account(who, request.path_params["account_id"])
        current = account_body(account)
        precondition(request, current, version=account_version(account))
        only(doc, ("UserName", "Password", "RoleId", "Enabled", "Locked"), read_only=current)
        asked = {name for name in doc if not name.startswith("@odata.")}  # as only() reads it
        if not who.can("ConfigureUsers") and asked - {"Password"}:
            who.require("ConfigureUsers")  # one's own password only, with ConfigureSelf
        if "Password" in doc and accounts.settings.require_change_password_action:
            raise Refusal(
                400,
                message("PropertyNotWritable", "Password", related=("/Password",)),
                text="RequireChangePasswordAction is true: a password is changed with the "
                f"ChangePassword action, {change_password_uri(account.id)}, which asks for "
                "the password of the session's account (SessionAccountPassword)",
            )
        changes: dict[str, Any] = {}
        if "UserName" in doc:
            changes["username"] = checked_username(doc)
        if "RoleId" in doc:
            changes["role"] = checked_role(doc)
        if "Enabled" in doc:
            changes["enabled"] = prop(doc, "Enabled", bool)
        if "Locked" in doc:
            if prop(doc, "Locked", bool):
                raise refuse("PropertyValueNotInList", "true", "Locked", related="/Locked")
            changes["locked"] = False
        if "Password" in doc:
            changes["password"] = checked_password(doc)
        try:
            account = await run_in_threadpool(lambda: accounts.update(account.id, **changes))
        except Conflict as exc:
            raise account_refusal(exc, doc) from None
        # the properties applied, never the annotations' names: a client's text, up to 64 KiB
        applied = ", ".join(sorted(asked)) or "nothing"
        _log.info("redfish account %s changed: %s", account.username, applied)
        return json_response(request, account_body(account), version=account_version(account))

    def password_parameter(doc: Mapping[str, Any], name: str) -> str:
        """A password parameter of ``ChangePassword``: a string, never shown in an error."""
        if name not in doc:
            raise refuse("ActionParameterMissing", CHANGE_PASSWORD, name, related=f"/{name}")
        value = doc[name]
        if not isinstance(value, str):
            raise refuse(
                "ActionParameterValueTypeError",
                "(hidden)",
                name,
                CHANGE_PASSWORD,
                related=f"/{name}",
            )
        return value

    async def change_password(request: Request, who: _Principal | None) -> Response:
        """``#ManagerAccount.ChangePassword``: ``NewPassword`` for the account, given with
        ``SessionAccountPassword``, the password of the session's account (one's own, or an
        Administrator's for another account). A wrong one is ``403``
        ``ActionParameterValueError`` and counts towards the lockout of the session's
        account."""
        assert who is not None  # the route needs ConfigureSelf
        account = own_account(who, request.path_params["account_id"])
        # The action is bound to the account: its ETag, under the write lock, to the change.
        precondition(request, account_body(account), version=account_version(account))
        doc = await json_body(request)
        service.confirm(who)
        for name in doc:
            if not name.startswith("@odata.") and name not in (
                "NewPassword",
                "SessionAccountPassword",
            ):
                raise refuse(
                    "ActionParameterUnknown", CHANGE_PASSWORD, name[:64], related=f"/{name[:64]}"
                )
        new = password_parameter(doc, "NewPassword")
        given = password_parameter(doc, "SessionAccountPassword")
        try:
            accounts.check_password(new)
        except MalformedInput as exc:
            if exc.code == "password-nul":
                raise refuse(
                    "ActionParameterValueFormatError",
                    "(hidden)",
                    "NewPassword",
                    CHANGE_PASSWORD,
                    related="/NewPassword",
                ) from None
            raise Refusal(
                400,
                message("PasswordIncorrectLength", related=("/NewPassword",)),
                text="the new password's length is outside the account service's limits",
            ) from None
        client = request.client.host if request.client else "-"

        def change(source: str) -> Account:
            return accounts.change_password(
                account.id, new, by=who.account.id, by_password=given, source=source
            )

        try:
            changed = await service.throttled_password_check(request, change, "password change")
        except Unauthorized as exc:
            if exc.code != "session-account-password":
                raise
            _log.warning(
                "redfish password change of account %s by %s from %s refused: wrong "
                "SessionAccountPassword",
                account.username,
                who.account.username,
                client,
            )
            raise Refusal(
                403,
                message(
                    "ActionParameterValueError",
                    "SessionAccountPassword",
                    CHANGE_PASSWORD,
                    related=("/SessionAccountPassword",),
                ),
                text="SessionAccountPassword is not the password of the session's account "
                "(a wrong one counts towards its lockout)",
            ) from None
        _log.info(
            "redfish account %s: password changed by %s from %s",
            changed.username,
            who.account.username,
            client,
        )
        body = {"@Message.ExtendedInfo": [message("AccountModified")]}
        return Response(
            json.dumps(body).encode(),
            200,
            media_type=JSON,
            headers={"OData-Version": "4.0", "Cache-Control": "no-store"},
        )

    async def account_delete(request: Request, who: _Principal | None) -> Response:
        account = accounts.get(request.path_params["account_id"])
        precondition(request, account_body(account), version=account_version(account))
        try:
            await run_in_threadpool(accounts.remove, account.id)
        except Conflict as exc:
            raise account_refusal(exc, {}) from None
        _log.info("redfish account %s removed", account.username)
        return Response(status_code=204, headers={"OData-Version": "4.0"})

    def role_body(role: str) -> dict[str, Any]:
        return {
            **odata(f"{ROLES_URI}/{role}", "Role"),
            "Id": role,
            "Name": f"{role} Role",
            "RoleId": role,
            "IsPredefined": True,
            "AssignedPrivileges": [p for p in PRIVILEGES if p in ROLES[role]],
            "OemPrivileges": [],
        }

    async def role_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{ROLES_URI}/{r}" for r in ROLES]
        return json_response(request, collection(ROLES_URI, "RoleCollection", "Roles", members))

    async def role_get(request: Request, who: _Principal | None) -> Response:
        role = request.path_params["role_id"]
        if role not in ROLES:
            raise NotFound(f"no role {role!r}")
        return json_response(request, role_body(role))

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
            **odata(f"{INVENTORY}/{item.id}", "SoftwareInventory"),
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
            body["RelatedItem"] = [link(MANAGER)]
        return body

    async def inventory_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{INVENTORY}/{i.id}" for i in await inventory()]
        return json_response(
            request,
            collection(INVENTORY, "SoftwareInventoryCollection", "Firmware Inventory", members),
        )

    async def inventory_get(request: Request, who: _Principal | None) -> Response:
        ident = request.path_params["item_id"]
        items = {i.id: i for i in await inventory()}
        if ident not in items:
            raise NotFound(f"no firmware image {ident!r}")
        show = await run_in_threadpool(service.platform.show)
        return json_response(request, item_body(items[ident], show.get("last_boot", {})))

    async def managers(request: Request, who: _Principal | None) -> Response:
        return json_response(
            request, collection(f"{ROOT}/Managers", "ManagerCollection", "Managers", [MANAGER])
        )

    async def manager(request: Request, who: _Principal | None) -> Response:
        items = await inventory()
        show = await run_in_threadpool(service.platform.show)
        running = show.get("last_boot", {}).get("bmc", "running") == "running"
        active = next((i for i in items if i.component == "bmc" and i.role == "active"), None)
        body: dict[str, Any] = {
            **odata(MANAGER, "Manager"),
            "Id": "bmc",
            "Name": "BMC",
            "ManagerType": "BMC",
            "Description": "The BMC of the DC-SCM, booted by the platform's root of trust",
            "UUID": service.uuid,
            "ServiceEntryPointUUID": service.uuid,
            "Model": show.get("platform", ""),
            "DateTime": utc(service.clock()),
            "DateTimeLocalOffset": "+00:00",
            "Status": {
                "State": "Enabled" if running else "UnavailableOffline",
                "Health": "OK" if running else "Critical",
            },
            "LogServices": link(f"{MANAGER}/LogServices"),
            "Links": {
                "SoftwareImages": [
                    link(f"{INVENTORY}/{i.id}") for i in items if i.component == "bmc"
                ],
                "SoftwareImages@odata.count": sum(1 for i in items if i.component == "bmc"),
            },
        }
        if active is not None:
            body["FirmwareVersion"] = active.version
            body["Links"]["ActiveSoftwareImage"] = link(f"{INVENTORY}/{active.id}")
        return json_response(request, body)

    async def log_services(request: Request, who: _Principal | None) -> Response:
        return json_response(
            request,
            collection(f"{MANAGER}/LogServices", "LogServiceCollection", "Log Services", [LOG]),
        )

    async def log_service(request: Request, who: _Principal | None) -> Response:
        body = {
            **odata(LOG, "LogService"),
            "Id": "RoT",
            "Name": "Root of trust event log",
            "Description": "The events the platform's root of trust logged in its flash: "
            "boots, updates, refusals, recoveries and blocked writes",
            "ServiceEnabled": True,
            "OverWritePolicy": "WrapsWhenFull",
            "LogEntryType": "OEM",
            "DateTime": utc(service.clock()),
            "DateTimeLocalOffset": "+00:00",
            "Status": {"State": "Enabled", "Health": "OK"},
            "Entries": link(f"{LOG}/Entries"),
        }
        return json_response(request, body)

    def entry_body(event: Any) -> dict[str, Any]:
        severity = event.severity if event.severity in ("OK", "Warning", "Critical") else "Warning"
        return {
            **odata(f"{LOG}/Entries/{event.seq}", "LogEntry"),
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
        body = collection(f"{LOG}/Entries", "LogEntryCollection", "RoT event log entries", [])
        body["Members"] = [entry_body(e) for e in events]  # the schema auto-expands entries
        body["Members@odata.count"] = len(events)
        return json_response(request, body)

    async def entry(request: Request, who: _Principal | None) -> Response:
        ident = request.path_params["entry_id"]
        events = await run_in_threadpool(service.platform.events)
        found = next((e for e in events if str(e.seq) == ident), None)
        if found is None:
            raise NotFound(f"no log entry {ident!r}")
        return json_response(request, entry_body(found))

    # --- updates and tasks ------------------------------------------------------------------

    def update_service_body() -> dict[str, Any]:
        return {
            **odata(f"{ROOT}/UpdateService", "UpdateService"),
            "Id": "UpdateService",
            "Name": "Update Service",
            "Description": "Firmware updates verified and written by the platform's root of "
            "trust: signed, in the PFM, and logged on a trusted transparency service",
            "ServiceEnabled": True,
            "Status": {"State": "Enabled", "Health": "OK"},
            "MultipartHttpPushUri": MULTIPART_URI,
            "MaxImageSizeBytes": limits.max_image_bytes,
            "FirmwareInventory": link(INVENTORY),
            "Actions": {
                f"#{SIMPLE_UPDATE_ACTION}": {
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
        return json_response(request, update_service_body())

    async def push(request: Request, who: _Principal | None) -> Response:
        assert who is not None  # the route needs ConfigureComponents
        precondition(request, None)  # the push URI has no representation: If-Match is 412
        update, payload = await multipart_update(request, service)
        service.confirm(who)
        return await start_update(
            request, service, update, payload, lambda: update, owner=who.account.id
        )

    async def simple_update(request: Request, who: _Principal | None) -> Response:
        assert who is not None  # the route needs ConfigureComponents
        precondition(request, update_service_body())  # bound to the UpdateService
        doc = await json_body(request)
        service.confirm(who)
        plan = simple_update_plan(doc, service)
        payload = {
            "HttpOperation": "POST",
            "TargetUri": SIMPLE_UPDATE,
            "JsonBody": json.dumps(shown_update_request(doc)),
        }

        def fetch() -> UpdateRequest:
            return plan.fetch(service)

        return await start_update(
            request,
            service,
            None,
            payload,
            fetch,
            owner=who.account.id,
            component=plan.component,
            image_name=shown_uri(plan.image_uri),
        )

    def task_service_body() -> dict[str, Any]:
        return {
            **odata(f"{ROOT}/TaskService", "TaskService"),
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": True,
            "CompletedTaskOverWritePolicy": "Oldest",
            "LifeCycleEventOnTaskStateChange": False,
            "DateTime": utc(service.clock()),
            "Status": {"State": "Enabled", "Health": "OK"},
            "Tasks": link(TASKS),
        }

    async def task_service(request: Request, who: _Principal | None) -> Response:
        return json_response(request, task_service_body())

    async def task_list(request: Request, who: _Principal | None) -> Response:
        members = [f"{TASKS}/{t.id}" for t in service.tasks.tasks()]
        return json_response(request, collection(TASKS, "TaskCollection", "Tasks", members))

    def shows_payload(task: Task, who: _Principal | None) -> bool:
        """Whether ``who`` may read ``task``'s ``Payload``: the account that started it, or
        one with ``ConfigureManager`` (module docs, "Tasks")."""
        return who is not None and (who.account.id == task.owner or who.can("ConfigureManager"))

    async def task_get(request: Request, who: _Principal | None) -> Response:
        task = service.tasks.get(request.path_params["task_id"])
        return json_response(request, task_body(task, payload=shows_payload(task, who)))

    async def monitor(request: Request, who: _Principal | None) -> Response:
        task = service.tasks.get(request.path_params["task_id"])
        if task.running or task.result is None:
            headers = {"Location": f"{MONITORS}/{task.id}", "Retry-After": "2"}
            shown = task_body(task, payload=shows_payload(task, who))
            return json_response(request, shown, 202, headers)
        status, body = task.result
        return Response(
            json.dumps(body).encode(), status, media_type=JSON, headers={"OData-Version": "4.0"}
        )

    login_ = "Login"
    return [
        _Resource("/redfish", GET=(versions, None)),
        _Resource(ROOT, GET=(root, None)),
        _Resource(f"{ROOT}/$metadata", GET=(metadata, None)),
        _Resource(f"{ROOT}/odata", GET=(odata_document, None)),
        _Resource(OEM_SCHEMA_PATH, GET=(oem_schema, None)),
        _Resource(
            f"{ROOT}/SessionService",
            GET=(session_service, login_),
            PATCH=(patch_session_service, "ConfigureManager"),
        ),
        _Resource(SESSIONS, GET=(session_list, login_), POST=(login, None)),
        _Resource(f"{SESSIONS}/Members", POST=(login, None)),
        _Resource(SESSIONS + "/{session_id}", GET=(session_get, login_), DELETE=(logout, login_)),
        _Resource(
            f"{ROOT}/AccountService",
            GET=(account_service, login_),
            PATCH=(patch_account_service, "ConfigureUsers"),
        ),
        _Resource(
            ACCOUNTS,
            serialized=True,
            GET=(account_list, login_),
            POST=(account_create, "ConfigureUsers"),
        ),
        _Resource(f"{ACCOUNTS}/Members", serialized=True, POST=(account_create, "ConfigureUsers")),
        _Resource(
            ACCOUNTS + "/{account_id}",
            GET=(account_get, login_),
            PATCH=(account_patch, "ConfigureSelf"),
            DELETE=(account_delete, "ConfigureUsers"),
        ),
        _Resource(
            ACCOUNTS + "/{account_id}/Actions/" + CHANGE_PASSWORD,
            serialized=True,
            POST=(change_password, "ConfigureSelf"),
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
        accounts.flush()  # a lockout written after its answer is on disk before the lock goes
        lock.close()
