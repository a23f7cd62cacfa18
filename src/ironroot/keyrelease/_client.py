"""A client of the key release API (httpx), for TEEs, the CLI, the demo and the benchmark.

Refusals come back as the typed error the service raised: the problem's ``code`` member names
the error class (or its title does, for errors that refine their code per instance), so a TEE
can tell an expired EAR from a denied policy without parsing text. An answer that does not
parse (a challenge that is not a JSON object, a release that is no released key, an admin
answer that is not the request's, a content coding the client cannot undo) is the service's
failure: ``StorageError`` ``malformed-answer`` (exit 1), as the transparency client's, never
``MalformedInput`` (exit 2: nothing the caller gave was wrong). Messages name the service by
its URL without user information (:func:`ironroot._httpclient.shown_url`): never a password.
No redirect is followed: a ``3xx`` to any request is :class:`ConfigError` ``redirect`` (exit
2) naming the status and where it points without its query or user information
(:func:`ironroot._httpclient.redirect_target`), as the transparency client's, the witness
client's and the log fetcher's: a key service is asked only at its URL (a ``307`` or ``308``
followed would send the EAR, or an HSM officer's credential, wherever it points), and if it
moved its user gives the new one.
"""

from __future__ import annotations

import base64
import hmac
import json
import ssl
from collections.abc import Sequence
from typing import Any, Final

import httpx

from ironroot._httpclient import (
    TOTAL_TIMEOUTS,
    checked_url,
    in_clear_elsewhere,
    malformed_answer,
    path_segment,
    redirect_target,
    service_answer,
    shown_url,
)
from ironroot._trust import client_verify
from ironroot.cose import Problem, encode_cbor
from ironroot.errors import (
    ConfigError,
    IronrootError,
    KeyBindingMismatch,
    MalformedInput,
    StaleNonce,
    StorageError,
    Unreachable,
)
from ironroot.hsm import WrappingKey
from ironroot.keyrelease._format import (
    APPROVER_HEADER,
    RELEASED_KEY_CBOR,
    ReleasedKey,
    b64url,
    unb64url,
)

__all__ = ["KeyReleaseClient"]

_CBOR: Final = "application/cbor"
_MAX_RESPONSE: Final = 256 * 1024


def _raise(response: httpx.Response) -> None:
    ctype = response.headers.get("content-type", "")
    try:
        if "cbor" in ctype:
            problem = Problem.from_cbor(response.content)
        else:
            problem = Problem.from_json(response.content)
    except IronrootError:
        raise StorageError(f"the key service answered {response.status_code}") from None
    raise problem.error(response.status_code)


class KeyReleaseClient:
    """Talks to one key service. ``transport`` lets tests pass an in-process transport."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: ``True`` trusts the system's CAs; an ``ssl.SSLContext`` (from
        :func:`ironroot.http.client_context`) a private CA, with a client certificate for
        mutual TLS."""
        self._url = checked_url(url.rstrip("/"), "the key service")
        self._shown = shown_url(self._url)  # what messages name: never a password
        self._http = httpx.Client(
            base_url=self._url,
            timeout=timeout,
            transport=transport,
            verify=client_verify(verify),
            follow_redirects=False,  # a redirect is ConfigError (module docs)
        )
        self._total = TOTAL_TIMEOUTS * timeout  # the whole answer's deadline

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeyReleaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **request: Any) -> httpx.Response:
        """The answer, read as it streams in: at most :data:`_MAX_RESPONSE` bytes and
        ``TOTAL_TIMEOUTS`` timeouts in all (a service, or whatever answers in its place,
        cannot make the TEE hold more, or wait longer). An answer past the bound is the
        service's failure (``StorageError`` ``answer-too-large``, exit 1, as the transparency
        client's), not ``MalformedInput``: nothing the caller gave was wrong. A redirect is
        ``ConfigError`` ``redirect``, never followed (module docs)."""
        try:
            response = service_answer(
                self._http,
                method,
                path,
                service=self._service,
                limit=_MAX_RESPONSE,
                total=self._total,
                **request,
            )
        except httpx.HTTPError as exc:
            raise Unreachable.of("the key service", exc) from exc
        status = response.status_code
        if 300 <= status < 400:
            raise ConfigError(
                f"{self._service} answered {method} {path} with {status}, a redirect to "
                f"{redirect_target(response)}: a key service is asked only at its URL, no "
                "redirect is followed; if the service moved, give its new URL",
                code="redirect",
            )
        if response.status_code >= 400:
            _raise(response)
        return response

    @property
    def _service(self) -> str:
        return f"the key service {self._shown}"

    def _malformed(self, why: str) -> StorageError:
        """An answer that does not parse: the service's failure (exit 1), not the caller's."""
        return malformed_answer(self._service, why)

    def challenge(self) -> bytes:
        """A fresh release nonce (32 bytes)."""
        response = self._send(
            "POST", "/keys/challenge", content=b"", headers={"Accept": "application/json"}
        )
        try:
            value = json.loads(response.content)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise self._malformed("answered a challenge that is not JSON") from exc
        if not isinstance(value, dict):
            raise self._malformed("answered a challenge that is not a JSON object")
        try:
            return unb64url(value.get("nonce"), "nonce")
        except MalformedInput as exc:
            raise self._malformed(f"answered a challenge without a nonce: {exc.detail}") from exc

    def release(
        self, name: str, *, ear: bytes, wrapping_key: bytes, nonce: bytes, cbor: bool = True
    ) -> ReleasedKey:
        """Ask for key ``name`` (``wrapping_key``: SPKI DER); raise the service's refusal.

        The answer must be for this request: key ``name``, this ``nonce`` and this wrapping key
        (``KeyBindingMismatch``, ``StaleNonce`` otherwise), so an answer meant for another
        request — a proxy's mix-up, a cached response — is never taken for this one. The name
        is the service's label, which nothing signs: which key the HSM released is checked
        by :meth:`~ironroot.keyrelease.tee.TeeKeyPair.unwrap` with ``handle``."""
        if cbor:
            body = encode_cbor({"ear": ear, "wrapping_key": wrapping_key, "nonce": nonce})
            headers = {"Content-Type": _CBOR, "Accept": RELEASED_KEY_CBOR}
        else:
            ear_text = b64url(ear) if ear[:1] == b"\xd2" else ear.decode("ascii", "replace")
            document = {
                "ear": ear_text,
                "wrapping_key": b64url(wrapping_key),
                "nonce": b64url(nonce),
            }
            body = json.dumps(document).encode()
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
        path = f"/keys/{path_segment(name)}/release"
        response = self._send("POST", path, content=body, headers=headers)
        try:
            released = ReleasedKey.parse(response.content)
        except MalformedInput as exc:
            raise self._malformed(
                f"answered a release that is not a released key: {exc.detail}"
            ) from exc
        if released.kid != name:
            raise KeyBindingMismatch(
                f"the service answered with key {released.kid!r}, not {name!r}", code="other-key"
            )
        if not hmac.compare_digest(released.nonce, nonce):
            raise StaleNonce("the release answers another nonce", code="nonce-mismatch")
        if not hmac.compare_digest(released.recipient, WrappingKey.parse(wrapping_key).digest):
            raise KeyBindingMismatch("the released key is wrapped to another wrapping key")
        return released

    def _admin(
        self,
        method: str,
        path: str,
        identity: str,
        credential: bytes,
        *,
        what: str,
        body: object = None,
        approvers: Sequence[tuple[str, bytes]] = (),
    ) -> object:
        """The JSON answer of one ``/admin`` request made as ``identity`` (its credential
        sent for this request only), or the service's refusal raised. The credential goes
        over HTTPS, or to a loopback address, only: HTTP Basic sends it as it is, and anyone
        on the path would read an HSM officer's credential (``ConfigError``, nothing sent).
        ``approvers`` — other crypto officers' ``(identity, credential)`` — go as one
        ``Ironroot-Approver`` header each, ``base64(identity:credential)`` as in Basic, for
        the HSM's dual control."""
        base = self._http.base_url
        if in_clear_elsewhere(base):
            raise ConfigError(
                "the key service's URL is plain http:// to a host other than the loopback: an "
                "HSM officer's credential is sent only over https://, or to localhost"
            )
        response = self._send(
            method,
            path,
            **({} if body is None else {"json": body}),
            headers=[
                ("Accept", "application/json"),
                *(
                    (APPROVER_HEADER, base64.b64encode(name.encode() + b":" + secret).decode())
                    for name, secret in approvers
                ),
            ],
            auth=httpx.BasicAuth(identity.encode(), credential),
        )
        try:
            return json.loads(response.content)
        except (ValueError, RecursionError) as exc:
            raise self._malformed(f"answered the {what} with what is not JSON") from exc

    def remove_verifier(
        self,
        name: str,
        *,
        identity: str,
        credential: bytes,
        approvers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        """Uninstall EAR verifier ``name`` from the service's HSM, logged in as ``identity``
        (a crypto officer) for the one request (``DELETE /admin/verifiers/{name}``); raise
        the service's refusal (``NotFound`` for a name not installed). Once this returns, the
        HSM refuses every release with that verifier's EARs."""
        path = f"/admin/verifiers/{path_segment(name)}"
        value = self._admin(
            "DELETE", path, identity, credential, what="removal", approvers=approvers
        )
        if value != {"name": name, "removed": True}:  # an answer to another request
            raise self._malformed(f"did not answer the removal of {name!r}")

    def prune_audit(
        self,
        before: int,
        *,
        identity: str,
        credential: bytes,
        approvers: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[str, ...]:
        """Remove the archived audit segments of the service's HSM holding the records before
        ``before``, logged in as ``identity`` (a crypto officer) for the one request (``POST
        /admin/audit/prune``); return their names, or raise the service's refusal
        (``MalformedInput`` for a ``before`` that does not start a segment or the live
        log)."""
        body = {"before": before}
        value = self._admin(
            "POST",
            "/admin/audit/prune",
            identity,
            credential,
            what="prune",
            body=body,
            approvers=approvers,
        )
        if (
            not isinstance(value, dict)
            or value.get("first_kept") != before  # an answer to another request
            or not isinstance(removed := value.get("removed"), list)
            or not all(isinstance(name, str) for name in removed)
        ):
            raise self._malformed(f"did not answer the prune before {before}")
        return tuple(removed)
