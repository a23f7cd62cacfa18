"""The Redfish service's update path: from a request to a task the RoT runs.

:func:`multipart_update` reads a ``MultipartHttpPushUri`` request (its parts are
:data:`~ironroot.platform._redfish_http.MULTIPART_PARTS`), :func:`simple_update_plan` checks a
``SimpleUpdate`` action and :meth:`SimpleUpdatePlan.fetch` fetches what it names over HTTP(S).
:func:`start_update` runs :meth:`ironroot.platform.Platform.update` in a worker thread as a
task (:mod:`._redfish_tasks`) whose messages follow the update's progress, and answers once
the RoT has verified the image (``202`` and the task) or refused it (``400`` naming the
failing check, ``Update.1.3.VerificationFailed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncGenerator, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from ironroot._httpclient import Cutoff, redirect_target
from ironroot._netaddr import embedded_ipv4
from ironroot._trust import client_verify
from ironroot.errors import (
    Conflict,
    IronrootError,
    LimitExceeded,
    PayloadTooLarge,
    PolicyRejected,
)
from ironroot.http import read_body
from ironroot.platform._node import COMPONENTS
from ironroot.platform._redfish_http import (
    INVENTORY,
    JSON_LIMIT,
    MANAGER,
    MONITORS,
    MULTIPART_PARTS,
    MULTIPART_URI,
    PFM_PART,
    PFM_STATEMENT_PART,
    SIMPLE_UPDATE_ACTION,
    STATEMENT_PART,
    Refusal,
    json_object,
    json_response,
    only,
    prop,
    refusal_of,
    refuse,
    task_body,
)
from ironroot.platform._redfish_messages import error_body, message
from ironroot.platform._redfish_tasks import TaskStore

if TYPE_CHECKING:
    import httpx

    from ironroot.platform._redfish import RedfishService
    from ironroot.platform._update import UpdateResult

__all__ = [
    "SimpleUpdatePlan",
    "UpdateRequest",
    "ironroot_oem",
    "multipart_update",
    "replayed",
    "simple_update_plan",
    "start_update",
]

_log = logging.getLogger("ironroot.platform.redfish")

_PROGRESS: Final = {  # step just finished -> what the update does next
    "receive": "TransferringToComponent",
    "stage": "VerifyingAtComponent",
    "verify": "InstallingOnComponent",
    "write": "VerifyingAtComponent",
    "verify-write": "ApplyingOnComponent",
}


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """What an update brings, however it came (multipart or fetched)."""

    component: str
    image_name: str
    bundle: bytes
    statements: tuple[bytes, ...]
    pfm: bytes | None
    pfm_statement: bytes | None
    allow_recovery_removal: tuple[str, ...] = ()


# --- the update path ------------------------------------------------------------------------


def _target_component(targets: object, where: str, action: str | None) -> str:
    """The one component ``Targets`` names: its active ``FirmwareInventory`` member or, for
    the BMC, its manager. A target means what it names: another member of the component (its
    ``recovery``, ``previous`` or ``staged`` image, ``Updateable: false`` in the inventory) is
    refused, as no update writes it (``…ValueConflict``, naming the active member)."""
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        shown = json.dumps(targets)[:100]
        if action:
            raise refuse(
                "ActionParameterValueTypeError",
                shown,
                "Targets",
                action,
                related=f"{where}/Targets",
            )
        raise refuse("PropertyValueTypeError", shown, "Targets", related=f"{where}/Targets")
    if len(targets) != 1:
        raise Refusal(
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
        if sep and name in COMPONENTS and role == "active":
            component = name
        elif sep and name in COMPONENTS and role in _NOT_UPDATED:
            raise _not_updated(target, name, role, where, action)
    if component is None:
        if action:
            raise refuse(
                "ActionParameterValueNotInList",
                target[:200],
                "Targets",
                action,
                related=f"{where}/Targets",
            )
        raise refuse("PropertyValueNotInList", target[:200], "Targets", related=f"{where}/Targets")
    return component


_NOT_UPDATED: Final = {
    "recovery": "its recovery image, which no update writes: the root of trust replaces it with "
    "the active image once that has booted healthy (the platform's healthy_boots), so it is "
    "always firmware that ran",
    "previous": "the image it ran before its last update, which an update does not write",
    "staged": "the image an update is taking to it, which another update does not write",
}
"""What a ``FirmwareInventory`` member other than ``active`` is, as a refused target says."""


def _not_updated(target: str, component: str, role: str, where: str, action: str | None) -> Refusal:
    """The refusal of a target naming ``component``'s ``role`` image (not the active one): an
    update writes the active image, so a target naming another one would be taken to mean
    what it does not."""
    text = (
        f"{target} is {component}'s {_NOT_UPDATED[role]}; an update replaces the active "
        f"image: target {INVENTORY}/{component}-active"
        + (f" or {MANAGER}" if component == "bmc" else "")
        + (
            f" (`ironroot platform recover {component}` restores the active image from recovery)"
            if role == "recovery"
            else ""
        )
    )
    related = (f"{where}/Targets",)
    if action:
        conflict = message("ActionParameterValueConflict", "Targets", target, related=related)
        return Refusal(400, conflict, text=text)
    return Refusal(
        400,
        message("PropertyValueResourceConflict", "Targets", target, target, related=related),
        text=text,
    )


def _recovery_removal(value: object, where: str, action: str | None) -> tuple[str, ...]:
    """``Oem/Ironroot/AllowRecoveryRemoval``: the components (names, as in the
    FirmwareInventory members ``<component>-<role>``) whose recovery image the update's new PFM
    may stop listing — the operator's explicit acceptance for this update only, as
    ``platform update --allow-recovery-removal``. Anything but a list of component names is
    refused (``ActionParameterValueTypeError``/``PropertyValueTypeError`` for the type,
    ``…ValueNotInList`` for a name that is no component)."""
    name = "Oem/Ironroot/AllowRecoveryRemoval"
    related = f"{where}/{name}"
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        shown = json.dumps(value)[:100]
        if action:
            raise refuse("ActionParameterValueTypeError", shown, name, action, related=related)
        raise refuse("PropertyValueTypeError", shown, name, related=related)
    for component in value:
        if component not in COMPONENTS:
            if action:
                raise refuse(
                    "ActionParameterValueNotInList", component[:64], name, action, related=related
                )
            raise refuse("PropertyValueNotInList", component[:64], name, related=related)
    return tuple(dict.fromkeys(value))


def ironroot_oem(
    doc: Mapping[str, Any], known: Collection[str], where: str, action: str | None
) -> dict[str, Any]:
    """``doc``'s ``Oem`` object (an update's ``UpdateParameters``, an action's body, named
    by ``action``, or a ``PATCH`` body, ``where`` ``""``): only ``Oem.Ironroot``, a JSON
    object whose members are among ``known``; ``{}`` when absent. Anything else is refused
    as ``…Unknown`` or ``…ValueTypeError``, the action's messages (``ActionParameter…``) or
    a property's (``Property…``)."""
    if "Oem" not in doc:
        return {}
    oem = prop(doc, "Oem", dict, action=action)

    def unknown(name: str) -> Refusal:
        if action:
            return refuse("ActionParameterUnknown", action, name, related=f"{where}/{name}")
        return refuse("PropertyUnknown", name, related=f"{where}/{name}")

    for vendor in oem:
        if vendor != "Ironroot":
            raise unknown(f"Oem/{vendor[:64]}")
    ours = oem.get("Ironroot", {})
    if not isinstance(ours, dict):
        shown, name = json.dumps(ours)[:100], "Oem/Ironroot"
        if action:
            raise refuse(
                "ActionParameterValueTypeError", shown, name, action, related=f"{where}/{name}"
            )
        raise refuse("PropertyValueTypeError", shown, name, related=f"{where}/{name}")
    for member in ours:
        if member not in known:
            raise unknown(f"Oem/Ironroot/{member[:64]}")
    return ours


def _multipart_oem(params: Mapping[str, Any]) -> tuple[str, ...]:
    """``UpdateParameters``' ``Oem``: only ``Oem.Ironroot.AllowRecoveryRemoval``."""
    ours = ironroot_oem(params, ("AllowRecoveryRemoval",), "/UpdateParameters", None)
    return _recovery_removal(ours.get("AllowRecoveryRemoval", []), "/UpdateParameters", None)


def replayed(request: Request, body: bytes) -> Request:
    """``request`` with its ``body``, already read (bounded), to be read again: by the form
    parser, or by a handler once the service checked the caller again."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


def _closed(body: bytes, content_type: str) -> bool:
    """Whether ``body`` ends as a multipart body must (RFC 2046 §5.1.1): with its close
    delimiter, ``--`` boundary ``--`` after a CRLF (or at the start: no parts). Without it the
    last part is unfinished, a truncated upload; Starlette's form parser does not refuse
    one but drops that part, so an update would go ahead without it (and the part's spooled
    file is never closed)."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return True  # the form parser refuses a body with no boundary
    close = b"--" + boundary + b"--"
    return body.startswith(close) or b"\r\n" + close in body


async def _parse_form(request: Request, body: bytes, service: RedfishService) -> FormData:
    """``body``, a ``multipart/form-data`` body already read into memory (bounded), parsed
    there: its file parts are held in memory as the body is, never copied into a temporary
    file (Starlette's parser spools each part over 1 MiB to disk: on a BMC whose temporary
    directory is full, a large part failed with ``OSError``, a ``500``; and every push wrote
    bytes nobody had verified to that disk)."""
    limits = service.limits

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(
        request.headers,
        stream(),
        max_files=limits.max_statements + 4,
        max_fields=8,
        max_part_size=max(limits.max_statement_bytes, JSON_LIMIT),
    )
    parser.spool_max_size = len(body) + 1
    return await parser.parse()


async def multipart_update(
    request: Request, service: RedfishService
) -> tuple[UpdateRequest, dict[str, Any]]:
    limits = service.limits
    kind = request.headers.get("content-type", "")
    if kind.split(";")[0].strip().lower() != "multipart/form-data":
        raise Refusal(
            415,
            message("UnrecognizedRequestBody"),
            text="a multipart update is multipart/form-data",
        )
    # One update at a time, and one image received at a time: a push while another is
    # received or runs is refused before its body (up to max_request_bytes) is read into
    # memory, not after. The check and the mark are one step of the event loop.
    if service.updating.locked() or service.receiving:
        raise Refusal(
            409,
            message("ResourceInUse"),
            message("UpdateInProgress"),
            text="another update is being received or running: wait for its task to end",
        )
    service.receiving = True
    try:
        body = await read_body(request, limits.max_request_bytes)
    finally:
        service.receiving = False
    if not _closed(body, kind):
        raise Refusal(
            400,
            message("MissingOrMalformedPart"),
            text="the multipart body ends before its closing boundary (a truncated upload)",
        )
    try:
        form = await _parse_form(request, body, service)
    except MultiPartException as exc:
        raise Refusal(400, message("MissingOrMalformedPart"), text=exc.message) from None
    except (ValueError, KeyError) as exc:
        raise Refusal(
            400, message("MissingOrMalformedPart"), text=f"the multipart body does not parse: {exc}"
        ) from None
    del body  # its parts hold their bytes now: no third copy of an image while they are read
    try:
        parts: dict[str, list[bytes]] = {}
        names: dict[str, str] = {}
        for name, value in form.multi_items():
            if name not in MULTIPART_PARTS:
                raise Refusal(
                    400,
                    message("MissingOrMalformedPart"),
                    text=f"unknown part {name[:64]!r}: the parts are {', '.join(MULTIPART_PARTS)}",
                )
            if isinstance(value, UploadFile):
                data = await value.read()
                names[name] = shown_file_name(value.filename) or name
            elif name != "UpdateParameters":
                # The image, statements and PFM are bytes: a part without a file name is
                # text to the form parser, decoded (UTF-8, else Latin-1), and what would
                # reach the RoT is other bytes than were sent.
                raise Refusal(
                    400,
                    message("MissingOrMalformedPart"),
                    text=f"{name} is a file part (with a filename): its content is bytes",
                )
            else:
                data = value.encode("utf-8")
            parts.setdefault(name, []).append(data)
    finally:
        await form.close()
    for required in ("UpdateParameters", "UpdateFile"):
        if len(parts.get(required, ())) != 1:
            raise Refusal(
                400,
                message("MissingOrMalformedPart"),
                text=f"a multipart update has exactly one {required} part",
            )
    for single in (PFM_PART, PFM_STATEMENT_PART):
        if len(parts.get(single, ())) > 1:
            raise Refusal(400, message("MissingOrMalformedPart"), text=f"at most one {single} part")
    # The form parser bounds only parts without a file name: each statement and PFM is held
    # here to the limit a fetched one is (SimpleUpdate), as the image is below.
    for name in (STATEMENT_PART, PFM_PART, PFM_STATEMENT_PART):
        if any(len(data) > limits.max_statement_bytes for data in parts.get(name, ())):
            raise PayloadTooLarge(f"a {name} part is over {limits.max_statement_bytes} bytes")
    statements = parts.get(STATEMENT_PART, [])
    if len(statements) > limits.max_statements:
        raise Refusal(
            400,
            message("ArraySizeTooLong", STATEMENT_PART, limits.max_statements),
            text=f"at most {limits.max_statements} statements",
        )
    params = json_object(parts["UpdateParameters"][0])
    only(params, ("Targets", "@Redfish.OperationApplyTime", "ForceUpdate", "Oem"))
    apply_time = params.get("@Redfish.OperationApplyTime", "Immediate")
    if apply_time != "Immediate":
        raise refuse(
            "PropertyValueNotInList",
            str(apply_time)[:64],
            "@Redfish.OperationApplyTime",
            related="/UpdateParameters/@Redfish.OperationApplyTime",
        )
    if params.get("ForceUpdate", False) is not False:
        raise refuse(
            "PropertyValueNotInList",
            json.dumps(params["ForceUpdate"])[:64],
            "ForceUpdate",
            related="/UpdateParameters/ForceUpdate",
        )
    if "Targets" not in params:
        raise refuse("PropertyMissing", "Targets", related="/UpdateParameters/Targets")
    component = _target_component(params["Targets"], "/UpdateParameters", None)
    allowed = _multipart_oem(params)
    bundle = parts["UpdateFile"][0]
    if not bundle:
        raise Refusal(400, message("MissingOrMalformedPart"), text="the UpdateFile is empty")
    if len(bundle) > limits.max_image_bytes:
        raise PayloadTooLarge(f"the image is over {limits.max_image_bytes} bytes")
    update = UpdateRequest(
        component,
        names["UpdateFile"],
        bundle,
        tuple(statements),
        parts[PFM_PART][0] if PFM_PART in parts else None,
        parts[PFM_STATEMENT_PART][0] if PFM_STATEMENT_PART in parts else None,
        allowed,
    )
    payload = {
        "HttpOperation": "POST",
        "TargetUri": MULTIPART_URI,
        "JsonBody": json.dumps(params),
    }
    return update, payload


def check_fetch_address(address: str, uri: str) -> None:
    """Refuse (``PolicyRejected``, code ``fetch-address``) an address a fetch must not reach:
    loopback, link-local (the cloud metadata service at 169.254.169.254 among them),
    unspecified or multicast, also as an IPv4-mapped IPv6 address. Those reach the BMC's own
    internal services, never a firmware server, and a ``SimpleUpdate`` is a GET the BMC sends
    on an Operator's behalf (server-side request forgery); private networks stay allowed.

    IPv4 is read as the resolver reads it (``inet_aton``): ``127.1``, ``0x7f000001``,
    ``2130706433`` and ``0`` are 127.0.0.1 and 0.0.0.0 to it, not names."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        try:
            ip = ipaddress.IPv4Address(socket.inet_aton(address))
        except (OSError, ValueError):
            return  # not an IP address: a name, checked again once it is connected
    for reached in (ip, embedded_ipv4(ip)):
        if reached is not None and (
            reached.is_loopback
            or reached.is_link_local
            or reached.is_unspecified
            or reached.is_multicast
        ):
            raise PolicyRejected(
                f"{uri} reaches {reached}, an address of the BMC itself or its link: the "
                "service does not fetch from loopback, link-local, unspecified or multicast "
                "addresses",
                code="fetch-address",
            )


class _PeerGuard:
    """A ``trace`` extension for httpx: the address each fetch connection reached, however its
    name resolved (a name resolving to 127.0.0.1, a DNS rebinding), is held to
    :func:`check_fetch_address` before a request byte is sent, and must not be the
    connection's own local address (the BMC's address on its network)."""

    def __init__(self, uri: str, then: Callable[[str, Mapping[str, Any]], None]) -> None:
        self.uri = uri
        self._then = then

    def __call__(self, event: str, info: Mapping[str, Any]) -> None:
        self._then(event, info)
        if event == "connection.connect_tcp.started":
            self._before_connecting(info.get("host"), info.get("port"))
            return
        if event != "connection.connect_tcp.complete":
            return
        stream = info.get("return_value")
        if stream is None:
            return
        sock = stream.get_extra_info("socket")
        if not isinstance(sock, socket.socket):
            return
        try:
            peer, local = str(sock.getpeername()[0]), str(sock.getsockname()[0])
        except OSError:
            return
        try:
            check_fetch_address(peer, self.uri)
            if peer == local:  # the BMC's own address on a network, not its loopback
                raise PolicyRejected(
                    f"{self.uri} reaches {peer}, an address of the BMC itself: the service "
                    "does not fetch from itself",
                    code="fetch-address",
                )
        except PolicyRejected:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            stream.close()
            raise

    def _before_connecting(self, host: object, port: object) -> None:
        """Refuse a name any of whose addresses :func:`check_fetch_address` refuses, or is
        the BMC's own (:func:`_is_own_address`), before a connection is tried: connected to
        and then cut, a port where nothing listens answered otherwise ("connection
        refused"), telling which internal ports listen. A name that resolves otherwise when
        connecting (DNS rebinding) is still cut once connected."""
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if not isinstance(host, str) or not isinstance(port, int):
            return
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return  # the connection fails as it would have
        for family, _, _, _, address in found:
            check_fetch_address(str(address[0]), self.uri)
            if _is_own_address(family, address):
                raise PolicyRejected(
                    f"{self.uri} reaches {address[0]}, an address of the BMC itself: the "
                    "service does not fetch from itself",
                    code="fetch-address",
                )


def _is_own_address(family: int, address: tuple[Any, ...]) -> bool:
    """Whether ``address`` is one of this host's own: a UDP socket connected to it (which
    sends nothing) has it as its local address."""
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect(address)
            return bool(probe.getsockname()[0] == address[0])
    except OSError:
        return False


class _Redirected(Exception):
    """A ``3xx`` answer to a ``SimpleUpdate`` fetch (raised by :func:`_refuse_redirect`)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _refuse_redirect(response: httpx.Response) -> None:
    """The fetch's response hook: a redirect is never followed, and is refused before httpx
    reads its ``Location`` — :class:`_Redirected`, a ``TransferFailed`` naming where it points
    (:func:`ironroot._httpclient.redirect_target`: without its query, percent-encoded as it
    came, no control character, bounded)."""
    if 300 <= response.status_code < 400:
        raise _Redirected(response)


@dataclass(frozen=True, slots=True)
class SimpleUpdatePlan:
    """A checked ``SimpleUpdate`` request: what to fetch, for which component."""

    component: str
    image_uri: str
    statement_uris: tuple[str, ...]
    pfm_uri: str | None
    pfm_statement_uri: str | None
    auth: tuple[str, str] | None
    allow_recovery_removal: tuple[str, ...] = ()

    def fetch(self, service: RedfishService) -> UpdateRequest:
        """Fetch the image and the statements (in the worker thread), all within
        ``limits.fetch_timeout`` seconds: httpx's timeout bounds each read, not a transfer, so
        a server sending a little at a time would otherwise hold the one update slot for as
        long as it liked — in its body (checked between reads) or in its status line and
        headers, which httpx reads to their end before it answers (cut by ``Cutoff``).
        Bodies are asked for and read as they are (``Accept-Encoding: identity``): one with a
        ``Content-Encoding`` is refused undecoded, as nested gzip decodes to gigabytes in a
        single chunk, before the size limit is checked."""
        import httpx

        limits = service.limits
        deadline = time.monotonic() + limits.fetch_timeout
        cutoff = Cutoff(limits.fetch_timeout)

        def too_slow(uri: str) -> Refusal:
            return Refusal(
                400,
                message("TransferFailed", uri, self.component),
                text=f"the fetch of {uri} did not end within {limits.fetch_timeout} s",
            )

        with (
            cutoff,
            httpx.Client(
                timeout=limits.fetch_timeout,
                verify=client_verify(service.fetch_verify),
                follow_redirects=False,
                # Not from the environment: no proxy a variable names (which would see every
                # image and the Basic credentials for it), no ~/.netrc credentials sent.
                trust_env=False,
                # a 3xx is refused as it arrives: before httpx reads its Location (one that
                # is no URL it would raise as a connection error)
                event_hooks={"response": [_refuse_redirect]},
            ) as client,
        ):

            def get(uri: str, limit: int, auth: tuple[str, str] | None = None) -> bytes:
                # What a refusal says of the URI: it ends in the task's messages and its
                # monitor's answer, which every account reads (never its query).
                shown = shown_uri(uri)
                if time.monotonic() > deadline:
                    raise too_slow(shown)
                trace = cutoff.trace if service.fetch_internal else _PeerGuard(shown, cutoff.trace)
                try:
                    with client.stream(
                        "GET",
                        uri,
                        auth=auth,
                        headers={"Accept-Encoding": "identity"},
                        extensions={"trace": trace},
                    ) as response:
                        if response.status_code in (401, 403):
                            raise Refusal(
                                400,
                                message(
                                    "ResourceAtUriUnauthorized", shown, str(response.status_code)
                                ),
                            )
                        if response.status_code != 200:
                            raise Refusal(
                                400,
                                message("TransferFailed", shown, self.component),
                                text=f"GET {shown} answered {response.status_code}",
                            )
                        coding = response.headers.get("content-encoding", "identity")
                        if coding.strip().lower() not in ("", "identity"):
                            # Decoded, a few hundred bytes of nested gzip ("gzip, gzip")
                            # are gigabytes in one chunk, before any size check could
                            # run. Images are taken as they are, never decompressed.
                            raise Refusal(
                                400,
                                message("ResourceAtUriInUnknownFormat", shown),
                                text=f"GET {shown} answered with Content-Encoding "
                                f"{coding[:64]!r}: the image server must send the bytes "
                                "as they are (identity)",
                            )
                        chunks: list[bytes] = []
                        size = 0
                        for chunk in response.iter_raw():
                            size += len(chunk)
                            if size > limit:
                                raise PayloadTooLarge(f"{shown} is over {limit} bytes")
                            if time.monotonic() > deadline:
                                raise too_slow(shown)
                            chunks.append(chunk)
                        return b"".join(chunks)
                except _Redirected as redirected:
                    status = redirected.response.status_code
                    raise Refusal(
                        400,
                        message("TransferFailed", shown, self.component),
                        text=f"GET {shown} answered {status}, a redirect to "
                        f"{redirect_target(redirected.response)}: an image or a statement is "
                        "fetched only at the URI given, no redirect is followed; if it moved, "
                        "give its new URI",
                    ) from None
                except PolicyRejected as exc:
                    raise Refusal(
                        400, message("CouldNotEstablishConnection", shown), text=exc.detail
                    ) from None
                except httpx.HTTPError as exc:
                    if time.monotonic() > deadline:
                        raise too_slow(shown) from None
                    raise Refusal(
                        400,
                        message("CouldNotEstablishConnection", shown),
                        text=f"cannot fetch {shown}: {exc}",
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
            raise Refusal(
                400,
                message("ResourceAtUriInUnknownFormat", shown_uri(self.image_uri)),
                text="the image is empty",
            )
        return UpdateRequest(
            self.component,
            shown_uri(self.image_uri),
            bundle,
            statements,
            pfm,
            pfm_statement,
            self.allow_recovery_removal,
        )


def simple_update_plan(doc: Mapping[str, Any], service: RedfishService) -> SimpleUpdatePlan:
    action = SIMPLE_UPDATE_ACTION
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
            raise refuse("ActionParameterUnknown", action, name, related=f"/{name}")
    for name in ("ImageURI", "Targets"):
        if name not in doc:
            raise refuse("ActionParameterMissing", action, name, related=f"/{name}")
    image = prop(doc, "ImageURI", str, action=action)
    protocol = (
        prop(doc, "TransferProtocol", str, action=action) if ("TransferProtocol" in doc) else None
    )
    if protocol is not None and protocol not in ("HTTP", "HTTPS"):
        raise refuse(
            "ActionParameterValueNotInList",
            protocol[:64],
            "TransferProtocol",
            action,
            related="/TransferProtocol",
        )
    if "://" not in image and protocol is not None:
        image = f"{protocol.lower()}://{image}"
    image_uri = _fetch_uri(image, "ImageURI", action, service)
    if protocol is not None and not image_uri.lower().startswith(f"{protocol.lower()}://"):
        raise Refusal(
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
        raise refuse(
            "ActionParameterValueNotInList",
            json.dumps(doc["ForceUpdate"])[:64],
            "ForceUpdate",
            action,
            related="/ForceUpdate",
        )
    component = _target_component(doc["Targets"], "", action)
    auth = None
    if "Username" in doc or "Password" in doc:
        auth = (
            _basic_credential(doc, "Username", action),
            _basic_credential(doc, "Password", action),
        )
        if not image_uri.lower().startswith("https://"):
            # HTTP Basic sends the password as it is: over plain HTTP anyone on the path
            # between the BMC and the image server reads it.
            name = "Password" if "Password" in doc else "Username"
            raise Refusal(
                400,
                message("ActionParameterNotSupported", name, action, related=(f"/{name}",)),
                text="Username and Password are sent only over HTTPS: "
                "fetch the image with an https:// ImageURI",
            )
    statements: tuple[str, ...] = ()
    pfm_uri = pfm_statement_uri = None
    allowed: tuple[str, ...] = ()
    ours = ironroot_oem(
        doc, ("StatementURIs", "PfmURI", "PfmStatementURI", "AllowRecoveryRemoval"), "", action
    )
    if ours:
        uris = ours.get("StatementURIs", [])
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise refuse(
                "ActionParameterValueTypeError",
                json.dumps(uris)[:100],
                "Oem/Ironroot/StatementURIs",
                action,
                related="/Oem/Ironroot/StatementURIs",
            )
        if len(uris) > service.limits.max_statements:
            raise refuse(
                "ArraySizeTooLong",
                "Oem/Ironroot/StatementURIs",
                service.limits.max_statements,
                related="/Oem/Ironroot/StatementURIs",
            )
        statements = tuple(
            _fetch_uri(u, "Oem/Ironroot/StatementURIs", action, service) for u in uris
        )
        if "PfmURI" in ours:
            pfm_uri = _fetch_uri(ours["PfmURI"], "Oem/Ironroot/PfmURI", action, service)
        if "PfmStatementURI" in ours:
            pfm_statement_uri = _fetch_uri(
                ours["PfmStatementURI"], "Oem/Ironroot/PfmStatementURI", action, service
            )
        if "AllowRecoveryRemoval" in ours:
            allowed = _recovery_removal(ours["AllowRecoveryRemoval"], "", action)
    return SimpleUpdatePlan(
        component, image_uri, statements, pfm_uri, pfm_statement_uri, auth, allowed
    )


def _basic_credential(doc: Mapping[str, Any], name: str, action: str) -> str:
    """``Username`` or ``Password`` for HTTP Basic (RFC 7617): UTF-8 text (JSON's lone
    surrogate escapes are not), a user-id without a colon; ``""`` when absent. A refused
    password is never echoed."""
    value: str = prop(doc, name, str, action=action) if name in doc else ""
    try:
        value.encode("utf-8")
        valid = name != "Username" or ":" not in value
    except UnicodeEncodeError:
        valid = False
    if not valid:
        shown = "(hidden)" if name == "Password" else value[:64]
        raise refuse("ActionParameterValueFormatError", shown, name, action, related=f"/{name}")
    return value


def shown_file_name(name: str | None) -> str:
    """An uploaded file's name as the image's name in a task's messages (which every account
    reads), errors and the log: unprintable characters (terminal escapes, a right-to-left
    override) as ``?``, at most 200 characters."""
    return "".join(c if c.isprintable() else "?" for c in (name or "")[:200])


def shown_uri(uri: str) -> str:
    """``uri`` as kept in a task (its messages, which every account may read, and its
    ``Payload``) and the log: without its query and fragment, which may carry a secret (a
    presigned URL's signature, a token)."""
    cut = min((i for i in (uri.find("?"), uri.find("#")) if i >= 0), default=-1)
    return uri if cut < 0 else uri[:cut] + "?(hidden)"


def shown_update_request(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A SimpleUpdate request as kept in its task: no ``Password``, and every URI it names
    shown by :func:`shown_uri`."""
    shown: dict[str, Any] = {k: v for k, v in doc.items() if k != "Password"}
    if isinstance(shown.get("ImageURI"), str):
        shown["ImageURI"] = shown_uri(shown["ImageURI"])
    oem = shown.get("Oem")
    ours = oem.get("Ironroot") if isinstance(oem, dict) else None
    if isinstance(oem, dict) and isinstance(ours, dict):
        ours = dict(ours)
        for name in ("PfmURI", "PfmStatementURI"):
            if isinstance(ours.get(name), str):
                ours[name] = shown_uri(ours[name])
        if isinstance(ours.get("StatementURIs"), list):
            ours["StatementURIs"] = [
                shown_uri(u) if isinstance(u, str) else u for u in ours["StatementURIs"]
            ]
        shown["Oem"] = {**oem, "Ironroot": ours}
    return shown


def _fetch_uri(value: object, name: str, action: str, service: RedfishService) -> str:
    """An ``http(s)://host/…`` URI to fetch (``ActionParameterValueFormatError`` otherwise;
    ``ActionParameterValueNotInList`` for a host that is an address
    :func:`check_fetch_address` refuses, unless the service fetches from internal addresses).

    A URI with userinfo (``https://user:password@host/…``) is refused and never echoed: the
    URIs are kept in the task's messages, which every account may read, its ``Payload``, and
    the log. Credentials for the image go in ``Username`` and ``Password``."""
    import httpx

    shown = (value if isinstance(value, str) else json.dumps(value))[:200]
    if not isinstance(value, str):
        raise refuse("ActionParameterValueTypeError", shown, name, action, related=f"/{name}")
    if "@" in value:  # what is refused is not echoed when it may hold a credential
        shown = "(hidden)"
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, TypeError):
        url = None
    if url is None or url.userinfo or url.scheme not in ("http", "https") or not url.host:
        raise refuse("ActionParameterValueFormatError", shown, name, action, related=f"/{name}")
    if not service.fetch_internal:
        try:
            check_fetch_address(url.host, shown)
        except PolicyRejected as exc:
            raise Refusal(
                400,
                message(
                    "ActionParameterValueNotInList", shown, name, action, related=(f"/{name}",)
                ),
                text=exc.detail,
            ) from None
    return value


async def start_update(
    request: Request,
    service: RedfishService,
    update: UpdateRequest | None,
    payload: Mapping[str, Any],
    obtain: Callable[[], UpdateRequest],
    *,
    owner: str,
    component: str | None = None,
    image_name: str | None = None,
) -> Response:
    """Run the update in a worker thread as a task of the account ``owner``; answer once the
    RoT has verified the image (``202``) or refused it (the refusal), or after
    ``verify_wait`` seconds (``202``)."""
    component = component or (update.component if update else "")
    image_name = image_name or (update.image_name if update else "")
    if not service.updating.acquire(blocking=False):
        raise Refusal(
            409,
            message("ResourceInUse"),
            message("UpdateInProgress"),
            text="another update is running: wait for its task to end",
        )
    try:
        task = service.tasks.create(f"Update of {component}", payload, owner=owner)
    except IronrootError:
        service.updating.release()
        raise
    loop = asyncio.get_running_loop()
    verified: asyncio.Future[Refusal | None] = loop.create_future()

    def settle(outcome: Refusal | None) -> None:
        def set_once() -> None:
            if not verified.done():
                verified.set_result(outcome)

        # Called from the worker, inside the RoT's update too: once the service has stopped
        # (its loop closed) no request waits for the answer, and the update goes on to its end.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(set_once)

    worker = threading.Thread(
        target=_run_update,
        args=(service, task.id, component, image_name, obtain, settle),
        name=f"ironroot-redfish-update-{task.id}",
    )
    try:
        worker.start()
    except RuntimeError:
        service.updating.release()
        raise
    try:
        outcome = await asyncio.wait_for(asyncio.shield(verified), service.limits.verify_wait)
    except TimeoutError:
        outcome = None
    if outcome is not None:
        raise outcome
    snapshot = service.tasks.get(task.id)
    headers = {"Location": f"{MONITORS}/{task.id}", "Retry-After": "2"}
    return json_response(request, task_body(snapshot, payload=True), 202, headers)


def _update_refusal(exc: IronrootError, image: str, component: str) -> Refusal:
    """A refused update: ``Update.1.3.VerificationFailed`` naming the check (400), or the
    typed error's own answer when it is not a check's."""
    check = exc.check or exc.code
    if isinstance(exc, Conflict) and exc.code == "update-in-progress":
        return Refusal(409, message("ResourceInUse"), message("UpdateInProgress"), text=exc.detail)
    if isinstance(exc, PayloadTooLarge | LimitExceeded):
        return Refusal(413, message("PayloadTooLarge"), text=exc.detail)
    if exc.http_status >= 500:
        refusal = refusal_of(exc, MULTIPART_URI)
        return Refusal(
            refusal.status,
            message("ApplyFailed", image, component),
            *refusal.messages,
            text=exc.detail,
            headers=refusal.headers,  # a 503's Retry-After
        )
    oem = {"Check": check, "Code": exc.code, "Detail": exc.detail}
    return Refusal(
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
    obtain: Callable[[], UpdateRequest],
    settle: Callable[[Refusal | None], None],
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
                allow_recovery_removal=update.allow_recovery_removal,
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
            _fail(tasks, task_id, Refusal(500, final, text=final["Message"]))
            _log.warning("redfish update of %s %s", component, result.outcome)
        settle(None)
    except Refusal as refused:
        _fail(tasks, task_id, refused)
        settle(refused)
    except IronrootError as exc:
        refusal = refusal_of(exc, MULTIPART_URI)
        _fail(tasks, task_id, refusal)
        settle(refusal)
    except BaseException:  # a bug, or a power loss drill: the task ends, the log has why
        incident = secrets.token_hex(8)
        _log.exception(
            "the update task %s failed unexpectedly [correlation id %s]", task_id, incident
        )
        refusal = Refusal(
            500,
            message("InternalError"),
            text=f"the update failed unexpectedly; correlation id {incident}",
        )
        _fail(tasks, task_id, refusal)
        settle(refusal)
    finally:
        service.updating.release()


def _fail(tasks: TaskStore, task_id: str, refusal: Refusal) -> None:
    tasks.change(
        task_id,
        state="Exception",
        status="Critical",
        messages=[*refusal.messages, message("TaskAborted", task_id)],
        result=(refusal.status, error_body(refusal.messages, refusal.text)),
    )
