"""A client of a c2sp.org/tlog-witness witness (httpx): add-checkpoint and the monitoring read.

Each answer becomes a value or the typed error of its status: ``409`` is
:class:`OldSizeMismatch` carrying the witness's size (from the ``text/x.tlog.size`` body;
one that does not parse, as a ``200`` that is no cosignature lines, is ``StorageError``
``malformed-answer``: the witness's failure);
a ``409`` without that body is the witness's other conflict, another root at the size it
cosigned: :class:`ForkDetected` when an Ironroot witness says so, else
:class:`InconsistentCheckpoint`; ``404`` :class:`UnknownLog`, ``403``
:class:`UntrustedCheckpoint`, ``422``
:class:`InconsistentCheckpoint` (:class:`ForkDetected` when an Ironroot witness says so);
``400`` and ``413`` are the witness refusing the request it was sent: :class:`StorageError`
``remote-problem`` (exit 1, the code of the transparency client's ``RemoteProblem``) with the
witness's problem detail, never ``MalformedInput`` (exit 2: the caller's own input did not
parse). A witness that failed on its side (any ``5xx``, to every request) is the same
``remote-problem``, as the transparency client's ``RemoteProblem`` is for a failing service;
``503`` is :class:`StoreUnavailable` (``store-unavailable``, a ``RetryLater``) whose
``retry_after`` is the witness's ``Retry-After`` when that is a number of seconds
(:func:`ironroot._httpclient.answer_retry_after`), else 1. An answer past
:data:`_MAX_ANSWER` is ``StorageError`` ``answer-too-large`` and one in a content coding the
client does not undo ``malformed-answer``, as every client of a service
(:func:`ironroot._httpclient.service_answer`). A redirect (any ``3xx``) is never followed: it
is :class:`ConfigError` ``redirect`` (exit 2) naming the status and where it points (without
its query, :func:`ironroot._httpclient.redirect_target`), as the log fetcher's
(:mod:`ironroot.log._http`): a witness is asked only at its configured URL, and if it moved
its user gives the new one. Anything else, or a witness that cannot be
reached, is :class:`StorageError` / :class:`Unreachable`. The cosignatures of a ``200`` are
checked
against the witness's keys when the client knows them: lines from other keys are ignored (the
spec), a line from a known key that fails is :class:`BadSignature`, a key's repeated line is
returned once, a line dated zero is ignored (tlog-witness: a witness never omits the
timestamp, and no quorum counts it), and an answer with no valid cosignature from a known key
is :class:`InsufficientCosignatures`.

:meth:`WitnessClient.cosign` does the whole exchange a log does: it tries the size it
believes the witness has (0 the first time), and on ``409`` retries once from the size the
witness answered, with a proof from that size (``proof(old_size)``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final

import httpx

from ironroot._httpclient import (
    TOTAL_TIMEOUTS,
    answer_retry_after,
    checked_url,
    malformed_answer,
    redirect_target,
    service_answer,
    shown_url,
)
from ironroot._trust import client_verify
from ironroot.cose import Problem
from ironroot.errors import (
    ConfigError,
    ForkDetected,
    InconsistentCheckpoint,
    InsufficientCosignatures,
    IronrootError,
    MalformedInput,
    NotFound,
    OldSizeMismatch,
    StorageError,
    StoreUnavailable,
    UnknownLog,
    Unreachable,
    UntrustedCheckpoint,
)
from ironroot.log import Checkpoint, Note, NoteSignature
from ironroot.witness._cosignature import CosignatureVerifier
from ironroot.witness._protocol import (
    ADD_CHECKPOINT_PATH,
    TLOG_SIZE_MEDIA_TYPE,
    AddCheckpoint,
    monitoring_path,
    parse_cosignatures,
    parse_size,
)

__all__ = ["WitnessClient"]

_MAX_ANSWER: Final = 1 << 20
_REFUSED: Final = "remote-problem"  # a peer's refusal, as ironroot.transparency.RemoteProblem


def _failed(where: str, response: httpx.Response, detail: str) -> StorageError:
    """The error of an answer with no meaning of its own for the request (module docs): a
    ``5xx`` is the witness's failure, ``503`` with when to ask again."""
    status = response.status_code
    said = f"{where} answered {status}: {detail}" if detail else f"{where} answered {status}"
    if status == 503:
        return StoreUnavailable(said, retry_after=answer_retry_after(response))
    if 500 <= status <= 599:
        return StorageError(said, code=_REFUSED)
    return StorageError(said)


def _problem(response: httpx.Response) -> tuple[str, str]:
    """(code, detail) of a problem answer, as far as it says."""
    ctype = response.headers.get("content-type", "")
    try:
        if "cbor" in ctype:
            problem = Problem.from_cbor(response.content)
        elif "json" in ctype:
            problem = Problem.from_json(response.content)
        else:
            return "", response.text[:200].strip()
    except IronrootError:
        return "", ""
    return str(problem.extra.get("code", "")), problem.detail


class WitnessClient:
    """Talks to one witness at ``url`` (its submission and monitoring prefix).

    ``verifiers``: the witness's cosigning keys; without them, answers are parsed, not
    checked. ``transport`` lets tests pass an in-process ASGI transport; ``verify`` is
    ``True`` (system CAs) or an ``ssl.SSLContext`` (:func:`ironroot.http.client_context`).
    :attr:`url` is the witness's URL as messages and log lines name it: without user
    information (a password for a proxy's basic auth), which requests still carry.
    """

    def __init__(
        self,
        url: str,
        *,
        verifiers: Sequence[CosignatureVerifier] = (),
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise MalformedInput("a witness URL must start with http:// or https://")
        self._base = checked_url(url.rstrip("/"), "the witness")
        self.url = shown_url(self._base)  # what messages name: never a password
        self.verifiers = tuple(verifiers)
        self._total = TOTAL_TIMEOUTS * timeout  # the whole answer's deadline
        self._http = httpx.Client(
            base_url=self._base,
            timeout=timeout,
            transport=transport,
            verify=client_verify(verify),
            follow_redirects=False,  # a redirect is ConfigError (module docs)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> WitnessClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _request(
        self, method: str, path: str, body: bytes | None = None, *, total: float | None = None
    ) -> httpx.Response:
        """The witness's answer, read as it streams in and refused (``StorageError``
        ``answer-too-large``) as soon as it passes :data:`_MAX_ANSWER` bytes: a witness cannot
        make its log hold more. ``path`` is relative to the witness's URL; ``total`` the
        seconds the whole answer may take (default: ``TOTAL_TIMEOUTS`` timeouts). A redirect
        is ``ConfigError`` ``redirect``, never followed (module docs)."""
        try:
            response = service_answer(
                self._http,
                method,
                f"/{path}",
                service=f"the witness {self.url}",
                limit=_MAX_ANSWER,
                content=body,
                headers={"Accept": "application/concise-problem-details+cbor, text/plain"},
                total=self._total if total is None else total,
            )
        except httpx.HTTPError as exc:
            raise Unreachable.of(f"the witness {self.url}", exc) from exc
        status = response.status_code
        if 300 <= status < 400:
            raise ConfigError(
                f"the witness {self.url} answered {status}, a redirect to "
                f"{redirect_target(response)}: a witness is asked only at its URL, no redirect "
                "is followed; if the witness moved, give its new URL",
                code="redirect",
            )
        return response

    def add_checkpoint(
        self,
        checkpoint: bytes,
        old_size: int,
        proof: Sequence[bytes] = (),
        *,
        total: float | None = None,
    ) -> tuple[NoteSignature, ...]:
        """Submit one add-checkpoint request; the witness's cosignature lines (checked
        against :attr:`verifiers` when there are any). ``total``: the seconds the whole
        answer may take (default: ``TOTAL_TIMEOUTS`` times the client's ``timeout``), past
        which it is :class:`Unreachable`. A body that does not parse as what its status says
        (cosignature lines, a ``text/x.tlog.size``) is the witness's failure, ``StorageError``
        ``malformed-answer``."""
        request = AddCheckpoint(old_size, tuple(proof), checkpoint)
        response = self._request("POST", ADD_CHECKPOINT_PATH, request.encode(), total=total)
        status = response.status_code
        where = f"the witness {self.url}"
        if status == 200:
            try:
                lines = parse_cosignatures(response.content)
            except MalformedInput as exc:
                raise malformed_answer(
                    where, f"answered cosignatures this client cannot read: {exc.detail}"
                ) from exc
            return self._checked(checkpoint, lines) if self.verifiers else lines
        code, detail = _problem(response)
        if status == 409:
            ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype == TLOG_SIZE_MEDIA_TYPE:
                try:
                    size = parse_size(response.content)
                except MalformedInput as exc:
                    raise malformed_answer(
                        where,
                        f"answered a {TLOG_SIZE_MEDIA_TYPE} body this client cannot read: "
                        f"{exc.detail}",
                    ) from exc
                raise OldSizeMismatch(f"{where} has cosigned size {size}", size=size)
            # no size: the spec's answer to another root at the size it cosigned
            if code == ForkDetected.code:
                raise ForkDetected(f"{where} detected a fork: {detail}")
            raise InconsistentCheckpoint(
                f"{where} answered 409, another root at the size it cosigned: {detail}"
            )
        if status == 404:
            raise UnknownLog(f"{where} does not witness this log: {detail}")
        if status == 403:
            raise UntrustedCheckpoint(f"{where} does not trust the checkpoint: {detail}")
        if status == 422:
            if code == ForkDetected.code:
                raise ForkDetected(f"{where} detected a fork: {detail}")
            raise InconsistentCheckpoint(f"{where} refused the checkpoint: {detail}")
        if status in (400, 413):  # the request refused: the witness's word, not the caller's
            raise StorageError(f"{where} refused the request ({status}): {detail}", code=_REFUSED)
        raise _failed(where, response, detail)

    def _checked(
        self, checkpoint: bytes, lines: Sequence[NoteSignature]
    ) -> tuple[NoteSignature, ...]:
        body = Note.parse(checkpoint).body
        good: dict[tuple[str, bytes], NoteSignature] = {}
        undated = False
        for line in dict.fromkeys(lines):  # a repeated line says nothing more
            for verifier in self.verifiers:
                if verifier.matches(line):
                    # BadSignature if it does not verify; a line dated zero is no witness's
                    # cosignature (tlog-witness), and no quorum counts it
                    if verifier.verify(body, line.signature) == 0:
                        undated = True
                        break
                    # a key's first line: repeated, it would only crowd the published note
                    good.setdefault((line.name, line.key_id), line)
                    break
        if not good:
            why = " (a line dated zero, which a witness's cosignature never is)" if undated else ""
            raise InsufficientCosignatures(
                f"the witness {self.url} answered no cosignature from its configured keys{why}"
            )
        return tuple(good.values())

    def cosign(
        self,
        checkpoint: bytes,
        proof: Callable[[int], Sequence[bytes]],
        *,
        old_size: int | None = None,
    ) -> tuple[tuple[NoteSignature, ...], int]:
        """Get the witness's cosignatures on ``checkpoint``; ``proof(old)`` gives the
        consistency proof from ``old`` to the checkpoint's size. Returns the lines and the
        size the witness now has. A witness ahead of the checkpoint raises the 409's
        :class:`OldSizeMismatch`."""
        size = Checkpoint.parse(Note.parse(checkpoint).body).size
        old = 0 if old_size is None or old_size > size else old_size
        for attempt in range(2):
            try:
                hashes = proof(old) if old else ()
                return self.add_checkpoint(checkpoint, old, hashes), size
            except OldSizeMismatch as exc:
                if attempt or exc.size > size:
                    raise
                old = exc.size
        raise AssertionError("unreachable")  # pragma: no cover

    def latest(self, origin: str) -> bytes | None:
        """The witness's latest cosigned checkpoint of ``origin`` (monitoring prefix), or
        ``None`` when it has none."""
        response = self._request("GET", monitoring_path(origin))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            _, detail = _problem(response)
            raise _failed(f"the witness {self.url}", response, detail)
        return response.content

    def about(self) -> dict[str, object]:
        """What an Ironroot witness says of itself at ``/witness`` (name, keys, logs)."""
        response = self._request("GET", "witness")
        if response.status_code == 404:
            raise NotFound(f"{self.url} is not an Ironroot witness")
        if response.status_code != 200:
            _, detail = _problem(response)
            raise _failed(f"the witness {self.url}", response, detail)
        try:
            value = response.json()
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            # the witness's failure, not the caller's input (exit 1, as the other clients)
            raise malformed_answer(f"the witness {self.url}", "did not answer JSON") from exc
        if not isinstance(value, dict):
            raise malformed_answer(f"the witness {self.url}", "did not answer a JSON object")
        return value
