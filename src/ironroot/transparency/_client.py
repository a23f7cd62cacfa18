"""A client of the transparency service (SCRAPI over HTTP, with httpx).

``register`` follows the SCRAPI flow: 201 with the receipt, or 303 then polling the Location
(302 while running) until the receipt is there, as often as each pending answer's
``Retry-After`` says (a number of seconds, at most
:data:`ironroot._httpclient.MAX_RETRY_AFTER`), bounded below
by the poll interval and above by what is left of the wait; a ``Retry-After`` of any other
form (a date, a fraction, a negative or absurd number) is ignored, and the poll interval
used; :meth:`TransparencyClient.witness` polls a checkpoint the service answers with 503 by
the same rule (:func:`_pause`). A problem answer becomes :class:`RemoteProblem`
with the service's status, title and detail. An answer for another statement (an entry id or a
transparent statement of another log entry) is ``VerificationFailed`` (code
``entry-mismatch``). Every receipt it returns — in the transparent statement and in the receipt
list — is verified before ``register`` returns (:func:`~ironroot.cose.verify_receipt`): over
this statement's log entry, under the service keys the client was given (``service_keys=``) or,
without them, the keys the service publishes (fetched once per client, and once more for a kid
they lack: a key rotated in), issued by ``service_issuer=`` or else the issuer the service's
configuration names, and dated no later than this clock allows. A service's own keys show only
that its answer is consistent and of this statement; the keys a relying party trusts, given,
show it is that service's. An answer too large, a configuration that is not a JSON object or
an answer in a content coding the client cannot undo is the service's failure
(``StorageError`` ``answer-too-large`` / ``malformed-answer``, exit 1), not ``MalformedInput``;
messages name the service by its URL without user information (never a password). No
redirect is followed: the register flow's own (SCRAPI's ``303`` to the entry from
``POST /entries``, ``302`` from its poll while the registration runs) are read as above,
never followed to their ``Location`` (the poll asks this service's ``/entries/{id}``); any
other ``3xx``, to any request, is :class:`ConfigError` ``redirect`` (exit 2) naming the
status and where it points without its query or user information
(:func:`ironroot._httpclient.redirect_target`), as the log fetcher's and the witness
client's: a service is asked only at its URL, and if it moved its user gives the new one.
The ``Location`` the flow reads (the ``303``'s, each poll's ``302``, and a ``201``'s) must
stay on the service's origin — its scheme, host and port; a relative one is resolved
against the request (:func:`ironroot._httpclient.location_elsewhere`): one that leaves it,
a front end pointing the client at another origin, is ``ConfigError`` ``redirect`` too,
naming where it points, and nothing is asked there or after. (A ``3xx`` whose ``Location``
is no URL at all never reaches the client: httpx refuses it, ``Unreachable``.)
A caller's entry id goes into ``/entries/{id}/...`` as one percent-encoded segment
(:func:`ironroot._httpclient.path_segment`): the service answers for exactly that id.

With a :class:`~ironroot.witness.WitnessPolicy` (``witnesses=``), the client requires more
than the service's word: :meth:`TransparencyClient.witness` waits until the service publishes
a checkpoint that covers the statement's receipt and that k of the trusted witnesses cosigned,
computes the consistency proof from the service's tiles, and checks it all
(:func:`verify_witnessed_statement`); ``register`` then does so before it returns.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from ironroot._httpclient import (
    TOTAL_TIMEOUTS,
    answer_retry_after,
    checked_url,
    in_clear_elsewhere,
    location_elsewhere,
    malformed_answer,
    path_segment,
    redirect_target,
    service_answer,
    shown_url,
)
from ironroot._trust import client_verify
from ironroot.cose import (
    Problem,
    SignedStatement,
    TransparentStatement,
    decode_cbor,
    decode_key_set,
    verify_receipt,
    verify_transparent_statement,
)
from ironroot.crypto import PublicKey, Verifier
from ironroot.errors import (
    ConfigError,
    IronrootError,
    MalformedInput,
    StorageError,
    UnknownIssuer,
    Unreachable,
    VerificationFailed,
)
from ironroot.log import Checkpoint, HttpLogFetcher, Note, NoteVerifier, TileTree
from ironroot.transparency._witnessed import (
    WitnessedStatement,
    receipt_tree,
    verify_witnessed_statement,
)
from ironroot.witness import WitnessPolicy

__all__ = ["Registration", "RemoteProblem", "TransparencyClient"]

_COSE: Final = "application/cose"
# The largest answer of a service: a checkpoint note with its cosignatures (at most 1 MiB, as
# every signed note), with room for framing; a transparent statement is under 200 kB.
_MAX_ANSWER: Final = (1 << 20) + 4096


class RemoteProblem(IronrootError):
    """The service answered with an RFC 9290 problem."""

    code = "remote-problem"
    title = "Service Refused"
    exit_code = 1

    def __init__(
        self, status: int, title: str, detail: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.remote_title = title
        self.retry_after = retry_after  # its Retry-After in seconds (answer_retry_after)


def _pause(retry_after: int | None, poll_interval: float, left: float) -> float:
    """How long a poll waits before it asks again: what the service's ``Retry-After`` asked
    (:func:`~ironroot._httpclient.answer_retry_after`), at least the poll interval, at most
    ``left`` of the wait."""
    return min(max(retry_after or 0, poll_interval), left)


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered statement: its entry id, receipts and transparent statement."""

    entry_id: str
    receipts: tuple[bytes, ...]
    transparent_statement: bytes
    witnessed: WitnessedStatement | None = None
    """With a witness policy: the cosigned checkpoint the statement's tree is in."""


class TransparencyClient:
    """Talks to one service. ``transport`` lets tests pass an in-process ASGI transport.
    A ``token`` (the service's write credential) is sent over HTTPS, or to the loopback,
    only: plain ``http://`` to another host is ``ConfigError``, and nothing is sent."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
        witnesses: WitnessPolicy | None = None,
        log_verifiers: tuple[NoteVerifier, ...] | None = None,
        service_keys: Mapping[bytes, Verifier] | None = None,
        service_issuer: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``verify``: ``True`` trusts the system's CAs; an ``ssl.SSLContext`` (from
        :func:`ironroot.http.client_context`) trusts a private CA and may present a client
        certificate (mutual TLS). ``witnesses``: require that many witness cosignatures on
        the checkpoint a registration lands in; ``log_verifiers``: the log's checkpoint keys
        (default: the service's published configuration). ``service_keys`` and
        ``service_issuer``: what the receipts ``register`` returns must verify under and name
        as their issuer (default: the service's published keys and configured issuer).
        ``clock`` and ``sleep``: what the polls of ``register`` and ``witness`` wait with."""
        self._url = checked_url(url.rstrip("/"), "the transparency service")
        self._shown = shown_url(self._url)  # what messages name: never a password
        self.witnesses = witnesses
        self._log_verifiers = log_verifiers
        self._given_keys = None if service_keys is None else dict(service_keys)
        self._given_issuer = service_issuer
        self._clock = clock
        self._sleep = sleep
        self._fetched_keys: dict[bytes, Verifier] | None = None
        self._fetched_issuer: tuple[str | None] | None = None  # fetched once, None or not
        if token and in_clear_elsewhere(self._url):
            # the token is the service's write credential: anyone on the path would read it
            raise ConfigError(
                "a bearer token is sent over https://, or to the loopback, only: the "
                "transparency service's URL is plain http:// to another host"
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._total = TOTAL_TIMEOUTS * timeout  # the whole answer's deadline
        self._http = httpx.Client(
            base_url=self._url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=client_verify(verify),
            follow_redirects=False,  # a redirect is ConfigError, or SCRAPI's (module docs)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TransparencyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---------------------------------------------------------------------------

    def _raise_problem(self, response: httpx.Response) -> None:
        ctype = response.headers.get("content-type", "")
        title, detail = response.reason_phrase or "Error", ""
        try:
            if "cbor" in ctype:
                problem = Problem.from_cbor(response.content)
                title, detail = problem.title, problem.detail
            elif "json" in ctype:
                problem = Problem.from_json(response.content)
                title, detail = problem.title, problem.detail
        except IronrootError:
            pass
        raise RemoteProblem(
            response.status_code, title, detail, retry_after=answer_retry_after(response)
        )

    def _send(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
        flow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The service's answer, read as it streams in and refused once past
        :data:`_MAX_ANSWER`: no answer of a service is larger, and a client must not hold
        whatever a hostile one sends. The refusal is the service's failure (``StorageError``
        ``answer-too-large``, exit 1, as the witness client's), not ``payload-too-large``:
        that code is the service's own word for a statement too large, and a ``MalformedInput``
        (exit 2) says the user's input was wrong. A redirect is ``ConfigError`` ``redirect``
        unless its status is in ``flow``, the answers of the request whose ``Location`` SCRAPI
        has the client read; such a ``Location`` off the service's origin is ``ConfigError``
        ``redirect`` too (module docs)."""
        try:
            response = service_answer(
                self._http,
                method,
                path,
                service=self._service,
                limit=_MAX_ANSWER,
                headers=headers,
                content=content,
                total=self._total,
            )
        except httpx.HTTPError as exc:
            raise Unreachable.of("the transparency service", exc) from exc
        status = response.status_code
        if 300 <= status < 400 and status not in flow:
            raise ConfigError(
                f"{self._service} answered {method} {path} with {status}, a redirect to "
                f"{redirect_target(response)}: a transparency service is asked only at its "
                "URL, no redirect is followed; if the service moved, give its new URL",
                code="redirect",
            )
        if status in flow and location_elsewhere(response):
            raise ConfigError(
                f"{self._service} answered {method} {path} with {status}, a Location at "
                f"{redirect_target(response)}: another origin than the service's (scheme, "
                "host and port); a registration is read only from the service it was sent "
                "to, and nothing is asked there",
                code="redirect",
            )
        return response

    @property
    def _service(self) -> str:
        return f"the transparency service {self._shown}"

    def _malformed(self, why: str) -> StorageError:
        """An answer that does not parse: the service's failure (exit 1, as one too large),
        not the caller's."""
        return malformed_answer(self._service, why)

    def _get(self, path: str, accept: str, *, flow: tuple[int, ...] = ()) -> httpx.Response:
        return self._send("GET", path, headers={"Accept": accept}, flow=flow)

    def register(
        self, statement: bytes, *, poll_interval: float = 0.05, wait: float = 60.0
    ) -> Registration:
        """Register ``statement``; return once its receipts exist (or raise)."""
        response = self._send(
            "POST",
            "/entries",
            content=statement,
            headers={"Content-Type": _COSE, "Accept": _COSE},
            flow=(201, 303),  # SCRAPI: registered, integrated or pending (module docs)
        )
        if response.status_code not in (201, 303):
            self._raise_problem(response)
        location = response.headers.get("location", "")
        entry_id = location.rstrip("/").rsplit("/", 1)[-1]
        if not entry_id:
            raise self._malformed(f"answered {response.status_code} without a Location")
        entry = SignedStatement.parse(statement).log_entry()
        if entry_id != hashlib.sha256(entry).hexdigest():
            raise VerificationFailed(
                f"the service answered with entry {entry_id[:64]!r}, not this statement's",
                code="entry-mismatch",
            )
        deadline = self._clock() + wait
        while response.status_code in (302, 303):
            left = deadline - self._clock()
            if left <= 0:
                raise StorageError(f"entry {entry_id} was not integrated within {wait:g} s")
            self._sleep(_pause(answer_retry_after(response), poll_interval, left))
            response = self._get(f"/entries/{path_segment(entry_id)}", _COSE, flow=(302,))
            if response.status_code not in (200, 302):
                self._raise_problem(response)
        receipts = self.receipts(entry_id)
        statement_bytes = self.transparent_statement(entry_id)
        if TransparentStatement.parse(statement_bytes).statement.log_entry() != entry:
            raise VerificationFailed(
                "the service's transparent statement is of another statement",
                code="entry-mismatch",
            )
        try:
            keys = self._check_receipts(entry, receipts, statement_bytes, refresh=False)
        except UnknownIssuer:
            if self._given_keys is not None:
                raise
            keys = self._check_receipts(entry, receipts, statement_bytes, refresh=True)
        witnessed = None
        if self.witnesses is not None:
            remaining = max(1.0, deadline - self._clock())
            witnessed = self.witness(
                statement_bytes, service_keys=keys, wait=remaining, poll_interval=poll_interval
            )
        return Registration(entry_id, receipts, statement_bytes, witnessed)

    def _check_receipts(
        self, entry: bytes, receipts: tuple[bytes, ...], transparent: bytes, *, refresh: bool
    ) -> dict[bytes, Verifier]:
        """Verify every receipt of a registration's answer (module docs); return the keys
        they verified under. ``refresh``: fetch the service's keys again."""
        if self._given_keys is not None:
            keys = self._given_keys
        else:
            if refresh or self._fetched_keys is None:
                self._fetched_keys = dict(self.service_keys())
            keys = self._fetched_keys
        issuer = self._given_issuer
        if issuer is None:
            if self._fetched_issuer is None:
                self._fetched_issuer = (self.service_issuer(),)
            issuer = self._fetched_issuer[0]
        now = time.time()
        verify_transparent_statement(transparent, keys, issuer=issuer, now=now)
        for receipt in receipts:
            verify_receipt(receipt, entry, keys, issuer=issuer, now=now)
        return keys

    def receipts(self, entry_id: str) -> tuple[bytes, ...]:
        response = self._get(f"/entries/{path_segment(entry_id)}/receipts", "application/cbor")
        if response.status_code != 200:
            self._raise_problem(response)
        try:
            value = decode_cbor(response.content)
        except MalformedInput as exc:
            raise self._malformed(
                f"answered a receipt list that is not CBOR: {exc.detail}"
            ) from exc
        if not isinstance(value, list) or not all(isinstance(r, bytes) for r in value):
            raise self._malformed("answered a receipt list that is not an array of receipts")
        return tuple(value)

    def transparent_statement(self, entry_id: str) -> bytes:
        response = self._get(f"/entries/{path_segment(entry_id)}/statement", _COSE)
        if response.status_code != 200:
            self._raise_problem(response)
        return response.content

    def service_keys(self) -> dict[bytes, PublicKey]:
        response = self._get("/.well-known/scitt-keys", "application/cbor")
        if response.status_code != 200:
            self._raise_problem(response)
        return decode_key_set(response.content)

    def service_keys_bytes(self) -> bytes:
        response = self._get("/.well-known/scitt-keys", "application/cbor")
        if response.status_code != 200:
            self._raise_problem(response)
        return response.content

    def service_issuer(self) -> str | None:
        """The issuer the service's configuration names (``issuer``: what its receipts' ``iss``
        claim says), or ``None`` when it names none or publishes no configuration (404);
        the service's failure (``StorageError`` ``malformed-answer``) for one not text."""
        try:
            issuer = self.configuration().get("issuer")
        except RemoteProblem as exc:
            if exc.status != 404:
                raise
            return None
        if issuer is None:
            return None
        if not isinstance(issuer, str) or not issuer:
            raise self._malformed("answered a configuration whose issuer is not text")
        return issuer

    def configuration(self) -> Mapping[str, Any]:
        """The service's transparency configuration (a JSON object); one that is not is the
        service's failure (``StorageError`` ``malformed-answer``, exit 1)."""
        response = self._get("/.well-known/transparency-configuration", "application/json")
        if response.status_code != 200:
            self._raise_problem(response)
        try:
            value = json.loads(response.content)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise self._malformed(f"answered a configuration that is not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise self._malformed("answered a configuration that is not a JSON object")
        return value

    def checkpoint(self) -> bytes:
        response = self._get("/checkpoint", "text/plain")
        if response.status_code != 200:
            self._raise_problem(response)
        return response.content

    # --- witnesses ------------------------------------------------------------------------

    def log_identity(self) -> tuple[str, tuple[NoteVerifier, ...]]:
        """The log's origin and checkpoint keys (keys given to the client win over the
        service's configuration)."""
        config = self.configuration()
        origin = config.get("checkpoint_origin")
        if not isinstance(origin, str) or not origin:
            raise self._malformed("answered a configuration with no checkpoint_origin")
        if self._log_verifiers is not None:
            return origin, self._log_verifiers
        keys = config.get("checkpoint_keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise self._malformed("answered a configuration with no checkpoint_keys list")
        try:
            return origin, tuple(NoteVerifier.from_vkey(k) for k in keys)
        except MalformedInput as exc:
            raise self._malformed(
                f"answered a checkpoint key that does not parse: {exc.detail}"
            ) from exc

    def witness(
        self,
        transparent_statement: bytes,
        *,
        policy: WitnessPolicy | None = None,
        service_keys: dict[bytes, Verifier] | None = None,
        wait: float = 30.0,
        poll_interval: float = 0.1,
    ) -> WitnessedStatement:
        """Wait for a published checkpoint that covers the statement's receipt, then check
        the receipt, the witness quorum and the consistency proof (from the tiles). While the
        service answers the checkpoint with 503, each poll waits as its ``Retry-After`` says,
        bounded as :meth:`register`'s polls are; the wait ends once ``wait`` has passed."""
        policy = policy or self.witnesses
        if policy is None:
            raise MalformedInput("give a witness policy (witnesses=) to require witnesses")
        keys: dict[bytes, Verifier] = (
            dict(self.service_keys()) if service_keys is None else dict(service_keys)
        )
        origin, verifiers = self.log_identity()
        size, _ = receipt_tree(transparent_statement, keys)  # the receipt this service signed
        deadline = self._clock() + wait
        while True:
            retry_after = None
            try:
                note = self.checkpoint()
                current = Checkpoint.parse(Note.parse(note).body)
                if current.size >= size:
                    break
                why = f"the published checkpoint has size {current.size}, the receipt {size}"
            except RemoteProblem as exc:
                if exc.status != 503:
                    raise
                why, retry_after = exc.detail, exc.retry_after
            left = deadline - self._clock()
            if left <= 0:
                raise StorageError(f"no witnessed checkpoint covers the receipt yet ({why})")
            self._sleep(_pause(retry_after, poll_interval, left))
        proof: list[bytes] = []
        if current.size > size:
            fetcher = HttpLogFetcher(self._url, client=self._http)
            proof = TileTree(fetcher, current.size).consistency_proof(size)
        return verify_witnessed_statement(
            transparent_statement,
            note,
            proof,
            service_keys=keys,
            log_verifiers=verifiers,
            policy=policy,
            now=int(time.time()),
            origin=origin,
        )
