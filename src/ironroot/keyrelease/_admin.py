"""Administering the key service's HSM while the service runs: ``/admin/...``.

The running key service holds its HSM (one process per HSM directory), so ``ironroot hsm``
cannot open it meanwhile. These routes let the HSM's own identities do what they would do
with ``ironroot hsm`` — list, generate and import keys, install and list EAR verifiers, prune
the audit log — in the running service. Every request carries an HSM identity and its
credential (HTTP Basic, ``identity:credential``; serve with TLS): the service logs in to its
HSM as that identity for the one request and logs out after it, and **the HSM's roles
decide**, exactly as on the command line: generating keys, installing verifiers and pruning
need a crypto officer, importing (unwrapping) a key a crypto user, listing either. A wrong
credential is ``Unauthorized`` (401, and counts toward the identity's lockout), a role
without the right ``RoleNotPermitted`` (403), and every call is in the HSM's audit log under
that identity's name. The identity the service itself runs as is refused without a login
(``Unauthorized``): a wrong credential for it would count toward its lockout, and its
lockout ends the service's own session.

``GET /admin/keys``
    ``{"keys": [key info, ...]}`` (handle, type, attributes, public key; never key material).
``POST /admin/keys`` JSON ``{"type", "usages"?, "exportable"?, "label"?, "release_policy"?,
"release_on_warning"?, "offer_as"?}``
    generate a key inside; with ``offer_as``, the service offers it for release under that
    name at once (until the process stops: add it to ``keyrelease.toml`` to keep it); only a
    key a release can take (``exportable``, with a ``release_policy``: else
    ``MalformedInput``, and no key is made).
``POST /admin/keys/import`` JSON ``{"wrapped": b64url, "unwrapping_key": handle, "type",
"usages"?, "label"?}``
    unwrap a wrapped key into the HSM (imported keys are never exportable).
``GET /admin/verifiers`` / ``POST /admin/verifiers`` JSON ``{"name", "public_key": PEM}``
    list / install the EAR verifiers the HSM trusts for release.
``DELETE /admin/verifiers/{name}`` (the name percent-encoded: ``https%3A%2F%2Fv.example``)
    uninstall one (crypto officer; ``NotFound`` 404 for a name not installed):
    ``{"name", "removed": true}``. The HSM decides each release under its lock, and the
    removal takes that lock: a release it had decided already completes, and every release
    it decides after the removal, so every one asked for after the answer, is refused
    (``UnknownIssuer``; with no verifier left, every release is).
``POST /admin/audit/prune`` JSON ``{"before": SEQ}``
    remove the HSM's archived audit segments holding the records before ``SEQ`` (crypto
    officer; ``Hsm.prune_audit``, what ``ironroot hsm audit prune`` calls, so the chain
    records and anchors it the same way): ``{"removed": [segment names], "first_kept": SEQ}``
    (200). A ``SEQ`` that is not an integer, or does not start an archived segment or the
    live log, is the HSM's ``MalformedInput`` (400).

A body with a member its request does not name is ``MalformedInput`` (400), before any HSM
operation: a misspelt ``"exportable"`` or ``"release_policy"`` is not silently its default.

No web page may administer the service: a request a browser sends for a page (it says so with
``Origin`` or ``Sec-Fetch-Site``; admin clients send neither) is ``RoleNotPermitted``
``admin-browser-request`` (403), and with the loopback reach a request whose ``Host`` is not a
loopback name or address (``localhost``, ``127.0.0.1``, ``[::1]``) is ``RoleNotPermitted``
``admin-host-not-loopback`` (403): a page whose name an attacker re-points at 127.0.0.1 (DNS
rebinding) reaches the loopback interface from the operator's own browser, and its guesses
would count toward an officer's lockout, or, with credentials the browser keeps, act. Both
are refused before any HSM login. With ``admin = "any"``, a request that did not come over
HTTPS (TLS here, or at a trusted proxy that says so) is ``Unauthorized``
``admin-needs-https`` (401), before any HSM login: HTTP Basic sends the credential as it is.
The client (:class:`~ironroot.keyrelease.KeyReleaseClient`, ``ironroot keyrelease``) sends an
officer's credential only over HTTPS or to a loopback address.

Under the HSM's dual control (an officer quorum above 1: ``Hsm.set_officer_quorum``),
installing or removing a verifier and pruning need several crypto officers: each of the others
sends an ``Ironroot-Approver`` header, ``base64(identity:credential)`` as Basic carries the
first (at most 15), and they approve that one operation with the request's own arguments
(``Hsm.approve``: the verifier's name and public key, the name, ``before``), audited
``approve`` with the key ``<operation> <target>``; the request's session runs that operation
once, under all their names, and nothing else with their approval. One officer alone is the
HSM's ``RoleNotPermitted`` ``quorum-required`` (403). Approvers are subject to every check the
first officer's credential is (HTTPS, loopback, never the service's own identity); on a request
that runs no dual-control operation they are ``MalformedInput`` (400) before any login, and a
request whose arguments an approval cannot hold is ``MalformedInput`` before any approver's
credential is tried.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.errors import (
    ConfigError,
    MalformedInput,
    RoleNotPermitted,
    Unauthorized,
)
from ironroot.hsm import MAX_QUORUM, Hsm, KeyAttributes, KeyInfo, KeyType, Session
from ironroot.http import decode_request_map, guarded, read_body, require_media_type
from ironroot.keyrelease._format import APPROVER_HEADER, b64url, unb64url
from ironroot.keyrelease._service import HsmVault, KeyReleaseService

__all__ = ["admin_routes"]

_MAX_ADMIN_REQUEST: Final = 1024 * 1024
_log = logging.getLogger("ironroot.keyrelease.admin")
# What a 401 asks for (RFC 7617): an HSM identity and its credential, as Basic carries them.
_BASIC = 'Basic realm="ironroot key service admin", charset="UTF-8"'


def _officer(request: Request) -> tuple[str, bytes]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthorized("the admin API needs an HSM officer's identity and credential (Basic)")
    return _identity_credential(value, "the Basic credentials")


def _identity_credential(value: str, what: str) -> tuple[str, bytes]:
    """``base64(identity:credential)``, as HTTP Basic carries it."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Unauthorized(f"{what} are not base64") from exc
    identity, sep, credential = decoded.partition(b":")
    if not sep or not identity:
        raise Unauthorized(f"{what} are identity:credential")
    try:
        return identity.decode("utf-8"), credential
    except UnicodeDecodeError as exc:
        raise Unauthorized("the identity is not UTF-8") from exc


def _approvers(request: Request) -> list[tuple[str, bytes]]:
    """The other crypto officers approving this request (the HSM's dual control): one
    ``Ironroot-Approver`` header each (or several in one, comma-separated), as Basic."""
    values = [
        part
        for header in request.headers.getlist(APPROVER_HEADER)
        for part in header.split(",")
        if part.strip()
    ]
    if len(values) > MAX_QUORUM - 1:
        raise MalformedInput(f"at most {MAX_QUORUM - 1} approvers")
    return [_identity_credential(value, "an approver's credentials") for value in values]


@contextmanager
def _session(hsm: Hsm, identity: str, credential: bytes) -> Iterator[Session]:
    session = hsm.login(identity, credential)
    try:
        yield session
    finally:
        # ended meanwhile (the officer locked, locked out or removed by another officer):
        # nothing left to end, and the request's own answer stands
        with contextlib.suppress(Unauthorized):
            hsm.logout(session)


def _key_json(info: KeyInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "handle": info.handle,
        "type": info.key_type.value,
        "generated_inside": info.generated_inside,
        "created": info.created,
        **info.attributes.to_map(),
    }
    if info.public_der is not None:
        out["public_key_der"] = b64url(info.public_der)
    return out


async def _json_body(request: Request) -> dict[str, Any]:
    """The admin request: an I-JSON object (:func:`ironroot.http.decode_request_map`); typed
    ``application/json`` or untyped (any other type is ``UnsupportedMediaType``)."""
    require_media_type(request, "application/json", untyped="application/json")
    return dict(decode_request_map(await read_body(request, _MAX_ADMIN_REQUEST)))


def _members(body: dict[str, Any], allowed: frozenset[str]) -> None:
    """``MalformedInput`` for a member the request does not name: a misspelt one is not
    silently its default (``"exportabel": true`` is not a non-exportable key)."""
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise MalformedInput(f"unknown members: {', '.join(unknown)}")


_GENERATE: Final = frozenset(
    ("type", "usages", "exportable", "label", "release_policy", "release_on_warning", "offer_as")
)
_IMPORT: Final = frozenset(("wrapped", "unwrapping_key", "type", "usages", "label"))
_VERIFIER: Final = frozenset(("name", "public_key"))
_PRUNE: Final = frozenset(("before",))


_Approves = tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]
"""A dual-control route's operation, and its arguments read from the request."""


def _verifier_to_add(body: dict[str, Any]) -> tuple[str, bytes]:
    _members(body, _VERIFIER)
    return _text(body, "name"), _text(body, "public_key").encode()


def _verifier_to_remove(body: dict[str, Any]) -> tuple[str]:
    return (body["name"],)  # the route's path parameter


def _prune_before(body: dict[str, Any]) -> tuple[Any]:
    _members(body, _PRUNE)
    return (body.get("before"),)  # the HSM checks it (MalformedInput), as for the CLI


def _text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise MalformedInput(f"{name} must be text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate ("\\ud800") from JSON
        raise MalformedInput(f"{name} must be valid Unicode text") from exc
    return value


def _attributes(body: dict[str, Any], key_type: KeyType, *, exportable: bool) -> KeyAttributes:
    usages = body.get("usages")
    if usages is not None and (
        not isinstance(usages, list) or not all(isinstance(u, str) for u in usages)
    ):
        raise MalformedInput("usages is a list of usage names")
    policy = body.get("release_policy")
    if policy is not None and not isinstance(policy, str):
        raise MalformedInput("release_policy is text")
    flag = body.get("exportable", False)
    warning = body.get("release_on_warning", False)
    if not isinstance(flag, bool) or not isinstance(warning, bool):
        raise MalformedInput("exportable and release_on_warning are true or false")
    return KeyAttributes.of(
        usages if usages is not None else [u.value for u in key_type.default_usages],
        exportable=flag and exportable,
        label=_text(body, "label", ""),
        release_policy=policy,
        release_on_warning=warning,
    )


ADMIN_REACH: Final = ("off", "loopback", "any")
"""Who may reach ``/admin``: nobody (no routes), clients on the loopback interface (the
default), or any client."""


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_host(request: Request) -> bool:
    """Whether the request's ``Host`` names the loopback: ``localhost`` (or a name under
    it, RFC 6761 §6.3) or a loopback address, with or without a port."""
    values = request.headers.getlist("host")
    if len(values) != 1:
        return False
    host = values[0].strip().lower()
    if host.startswith("["):  # an IPv6 literal, [::1]:8200
        name, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return False
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _refuse_web_pages(request: Request, reach: str) -> None:
    """Refuse a request sent for a web page, and, with the loopback reach, one for another
    host name (module docs): before any HSM login."""
    if "origin" in request.headers or "sec-fetch-site" in request.headers:
        _log.warning("an admin request a web browser sent for a page: refused")
        raise RoleNotPermitted(
            "the admin API does not answer requests a web browser sends for a page",
            code="admin-browser-request",
        )
    if reach == "loopback" and not _loopback_host(request):
        _log.warning("an admin request for a host that is not the loopback: refused")
        raise RoleNotPermitted(
            "the admin API answers on the loopback interface only, to requests for a "
            "loopback host (localhost, 127.0.0.1, [::1])",
            code="admin-host-not-loopback",
        )


def admin_routes(service: KeyReleaseService, *, reach: str = "loopback") -> list[Route]:
    """The ``/admin`` routes (module docs); none when the service's vault is not an HSM or
    ``reach`` is ``off``. With ``loopback`` (the default), a request from any other address
    is refused (``RoleNotPermitted`` ``admin-loopback-only``) before any HSM login: wrong
    credentials lock an officer out of the HSM for a while, longer each time
    (``HsmConfig.lockout_duration``), so wrong credentials from anyone who reaches the service
    port (the TEEs it releases keys to) must not count."""
    if reach not in ADMIN_REACH:
        raise ConfigError(f"the admin API's reach is one of {', '.join(ADMIN_REACH)}")
    vault = service.vault
    if not isinstance(vault, HsmVault) or reach == "off":
        return []
    hsm = vault.hsm

    def challenge(request: Request) -> str | None:
        """A 401's challenge: Basic where Basic is taken. With ``admin = "any"`` over plain
        HTTP none: Basic is refused there unread (``admin-needs-https``), and a client is
        never invited to send an officer's credential in clear."""
        if reach == "any" and request.url.scheme != "https":
            return None
        return _BASIC

    def as_officer(
        action: Callable[[Session, dict[str, Any]], Any],
        *,
        creates: bool = True,
        approves: _Approves | None = None,
    ) -> Callable[[Request], Any]:
        """The route of ``action``; ``approves``: its dual-control operation and how its
        arguments come from the request (what the ``Ironroot-Approver`` officers approve)."""

        async def handler(request: Request) -> Response:
            if reach == "loopback" and not _from_loopback(request):
                raise RoleNotPermitted(
                    "the admin API answers on the loopback interface only ([keyrelease] "
                    'admin = "loopback"); administer from the host, or set admin = "any" '
                    "behind mutual TLS",
                    code="admin-loopback-only",
                )
            _refuse_web_pages(request, reach)
            if reach == "any" and request.url.scheme != "https":
                _log.warning("an admin request over plain HTTP with admin = any: refused")
                raise Unauthorized(
                    'the admin API open to any client (admin = "any") takes an HSM officer\'s '
                    "credential over HTTPS only: serve with TLS",
                    code="admin-needs-https",
                )
            identity, credential = _officer(request)
            approvers = _approvers(request)
            if vault.identity in (identity, *(name for name, _ in approvers)):
                # Never a login: wrong credentials would count toward the lockout of the
                # identity the service runs as, and its lockout ends the service's session.
                _log.warning("an admin request named the key service's own identity: refused")
                raise Unauthorized(
                    "the key service's own identity does not administer it: use another "
                    "HSM identity"
                )
            if approvers and approves is None:
                raise MalformedInput(
                    "this request runs no operation under dual control: send no "
                    f"{APPROVER_HEADER} header"
                )
            # a POST carries its body; a GET or DELETE names what it acts on in its path
            body = await _json_body(request) if request.method == "POST" else request.path_params
            # the approval's arguments are the operation's: the action reads them the same way
            approved = (approves[0], approves[1](body)) if approves and approvers else None

            def run() -> Any:
                with _session(hsm, identity, credential) as session:
                    if approved is not None:
                        operation, arguments = approved  # MalformedInput before any approver
                        hsm.approve(session, operation, *arguments, approvers=approvers)
                    return action(session, body)

            result = await run_in_threadpool(run)
            status = 201 if request.method == "POST" and creates else 200
            return Response(json.dumps(result), status, media_type="application/json")

        return guarded(handler, _log, what="the key service's admin API", challenge=challenge)

    def list_keys(session: Session, body: dict[str, Any]) -> Any:
        return {"keys": [_key_json(k) for k in hsm.keys(session)]}

    def generate(session: Session, body: dict[str, Any]) -> Any:
        _members(body, _GENERATE)
        key_type = KeyType.parse(_text(body, "type"))
        offer = body.get("offer_as")
        attributes = _attributes(body, key_type, exportable=True)
        if offer is None:
            handle = hsm.generate(session, key_type, attributes)
            return _key_json(hsm.key_info(session, handle))
        if not isinstance(offer, str) or offer in service.keys:
            raise MalformedInput("offer_as is a name the service does not offer yet")
        if not attributes.exportable or attributes.release_policy is None:
            # every release of it would be key-not-exportable: a name no TEE ever gets
            raise MalformedInput(
                "offer_as needs a key a release can take: exportable, with a release_policy"
            )
        # the name is taken before the key is made: another offer that took it meanwhile is
        # Conflict with no key made (none to delete, which dual control keeps from one officer)
        entry = service.add_new_key(offer, lambda: hsm.generate(session, key_type, attributes))
        _log.info("key %s offered for release as %s (until restart)", entry.handle, entry.name)
        return _key_json(hsm.key_info(session, entry.handle))

    def import_key(session: Session, body: dict[str, Any]) -> Any:
        _members(body, _IMPORT)
        wrapped = unb64url(body.get("wrapped"), "wrapped")
        key_type = KeyType.parse(_text(body, "type"))
        handle = hsm.unwrap(
            session,
            wrapped,
            unwrapping_key=_text(body, "unwrapping_key"),
            key_type=key_type,
            attributes=_attributes(body, key_type, exportable=False),
        )
        return _key_json(hsm.key_info(session, handle))

    def list_verifiers(session: Session, body: dict[str, Any]) -> Any:
        return {"verifiers": [{"name": n, "kid": k} for n, k in hsm.release_verifiers(session)]}

    def add_verifier(session: Session, body: dict[str, Any]) -> Any:
        name, public_key = _verifier_to_add(body)
        kid = hsm.add_release_verifier(session, name, public_key)
        return {"name": name, "kid": kid}

    def remove_verifier(session: Session, body: dict[str, Any]) -> Any:
        (name,) = _verifier_to_remove(body)
        hsm.remove_release_verifier(session, name)  # NotFound for a name not installed
        _log.warning("EAR verifier %r removed by %s", name, session.identity)
        return {"name": name, "removed": True}

    def prune_audit(session: Session, body: dict[str, Any]) -> Any:
        (before,) = _prune_before(body)
        removed = hsm.prune_audit(session, before)
        _log.warning(
            "%d archived audit segment(s) before record %s pruned by %s",
            len(removed),
            before,
            session.identity,
        )
        return {"removed": list(removed), "first_kept": before}

    return [
        Route("/admin/keys", as_officer(list_keys), methods=["GET"]),
        Route("/admin/keys", as_officer(generate), methods=["POST"]),
        Route("/admin/keys/import", as_officer(import_key), methods=["POST"]),
        Route("/admin/verifiers", as_officer(list_verifiers), methods=["GET"]),
        Route(
            "/admin/verifiers",
            as_officer(add_verifier, approves=("verifier-add", _verifier_to_add)),
            methods=["POST"],
        ),
        Route(
            "/admin/verifiers/{name:path}",
            as_officer(remove_verifier, approves=("verifier-remove", _verifier_to_remove)),
            methods=["DELETE"],
        ),
        Route(
            "/admin/audit/prune",
            as_officer(prune_audit, creates=False, approves=("audit-prune", _prune_before)),
            methods=["POST"],
        ),
    ]
