"""``ironroot serve --workers N``: N HTTP worker processes and one sequencer.

The parent process is the sequencer: it opens the service (the data directory's lock, the
service keys, the log's one writer), binds the listening socket and spawns N worker processes
that share it. A worker parses each statement, checks the registration policy and verifies
its signature (the costly part, now on every core), then hands the log entry to the sequencer
over its own Unix socket pair and waits for the answer: the sequencer submits it to the log,
waits until the commit that holds it returned (durable), then up to ``registration_wait`` for
its integration, and answers with the receipt (or "pending", or the error). A worker answers
the client only after that, so an acknowledged entry is durable exactly as in one process.
Reads (receipts, statements, checkpoints, tiles) are served by the workers from the store
(SQLite opened read-only; PostgreSQL through a pool), never by the sequencer.

Frames on a link are length-prefixed (4 bytes, big-endian). A request is ``id (4) | wait
(float64, seconds) | entry``; an answer ``id (4) | kind (1) | payload`` with kind 0 =
integrated (``index (8) | tree size (8) | receipts``), 1 = durable and waiting, 2 = error
(JSON: the error class's name in :mod:`ironroot.errors`, detail, code, retry_after), and
kind 3 (id 0), a notice sent to every *other* worker when an entry is answered integrated:
``entry id (32) | receipts``, and kind 4 (id 0), the sequencer's clock, sent to every worker
when it changes and to a worker when its link opens: empty while the sequencer signs, else
why it signs nothing (:class:`~ironroot.errors.ClockSkew`, as an error): a worker's ``GET
/ready`` fails its ``clock`` check with it, as the sequencer's own would; and kind 5 (id 0),
the sequencer's integration, likewise: empty while it integrates, else why it integrates
nothing (:attr:`TransparencyService.integration_stalled`, a
:class:`~ironroot.errors.StorageError` ``integration-stalled``), which a worker's ``/ready``
fails its ``integration`` check with. ``receipts`` are
the entry's receipts, one per receipt algorithm, primary first, each length-prefixed (4
bytes). A worker keeps the receipts it receives in the service's receipt cache, so ``GET
/entries/{id}`` right after a registration, on whichever worker the client's connection
landed, is answered from memory; the sequencer built them from a batch whose signature it
checked against its own tree, as it does for the answer itself. The channel is private to the
processes of one service (a socket pair made before the spawn), so it needs no
authentication; hand-written because it is a few lines and the standard library's
``multiprocessing.Connection`` would block the event loop.

If the sequencer dies, its workers' links close: every waiting request answers 503 with
``Retry-After`` and the worker stops. A worker that dies is started again by the sequencer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import uvloop

from ironroot import errors
from ironroot.cose import decode_key_set, encode_key_set
from ironroot.crypto import Signer
from ironroot.errors import (
    ClockSkew,
    ConfigError,
    IronrootError,
    Overloaded,
    StorageError,
    StoreUnavailable,
)
from ironroot.http import ServerTls, configure_logging, run_server, server_config, settle_heap
from ironroot.log import Integrated, Log, Submission, Ticket
from ironroot.transparency._app import create_app
from ironroot.transparency._config import config_fingerprint, load_config
from ironroot.transparency._registrar import DURABLE_TIMEOUT, Registration
from ironroot.transparency._service import TransparencyService

__all__ = ["serve_workers"]

_log = logging.getLogger("ironroot.transparency")

_LEN: Final = struct.Struct(">I")
_REQUEST: Final = struct.Struct(">Id")
_ANSWER: Final = struct.Struct(">IB")
_WHERE: Final = struct.Struct(">QQ")
_INTEGRATED, _WAITING, _ERROR, _KNOWN, _CLOCK, _STALLED = 0, 1, 2, 3, 4, 5
_ENTRY_ID: Final = 32
_MAX_FRAME: Final = 1 << 24
_RESTART_DELAY: Final = 0.5
_NOTICE_BACKLOG: Final = 4 << 20
"""Bytes a worker's link may hold unsent before notices to it are skipped: a worker that
stops reading (paused, or stuck) would otherwise have every other worker's receipts queued
for it in the sequencer's memory without end. A skipped notice costs that worker one read of
the store when it is asked for that receipt; its own answers are never skipped."""
_SWEEP: Final = 0.25
_CONFIG_CHANGED: Final = 78  # EX_CONFIG: a worker whose configuration is not the service's
_CONFIG_RETRY: Final = 5.0
"""Seconds between two looks at a changed configuration before a worker is started again."""


def _take_frames(buffer: bytearray, data: bytes, smallest: int) -> tuple[list[bytes], bool]:
    """Add ``data`` to a link's ``buffer`` and take out every whole frame in it (their bodies,
    in order); the flag says a frame was malformed (a size above the limit or below
    ``smallest``): the frames before it are returned, nothing after it is read."""
    buffer += data
    frames: list[bytes] = []
    offset = 0
    malformed = False
    while len(buffer) - offset >= _LEN.size:
        (size,) = _LEN.unpack_from(buffer, offset)
        if size > _MAX_FRAME or size < smallest:
            malformed = True
            break
        start = offset + _LEN.size
        if len(buffer) - start < size:
            break
        frames.append(bytes(buffer[start : start + size]))
        offset = start + size
    del buffer[:offset]
    return frames, malformed


def _frame(head: bytes, *rest: bytes) -> bytes:
    body = head + b"".join(rest) if rest else head
    return _LEN.pack(len(body)) + body


def _encode_receipts(receipts: Sequence[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(r)) + r for r in receipts)


def _decode_receipts(data: bytes | memoryview) -> tuple[bytes, ...]:
    """The receipts of an answer or a notice; :class:`StorageError` if they are cut short."""
    out = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < _LEN.size:
            raise StorageError("the sequencer sent a truncated receipt")
        (size,) = _LEN.unpack_from(data, offset)
        offset += _LEN.size
        if size > end - offset:
            raise StorageError("the sequencer sent a truncated receipt")
        out.append(bytes(data[offset : offset + size]))
        offset += size
    return tuple(out)


def _encode_error(exc: IronrootError) -> bytes:
    return json.dumps(
        {
            "error": type(exc).__name__,
            "detail": exc.detail,
            "code": exc.code,
            "retry_after": getattr(exc, "retry_after", None),
        }
    ).encode()


def _decode_error(data: bytes) -> IronrootError:
    try:
        fields = json.loads(data)
        cls = getattr(errors, str(fields["error"]), None)
        detail = str(fields["detail"])
    except (ValueError, KeyError, TypeError):
        return StorageError("the sequencer sent an unreadable answer")
    if not (isinstance(cls, type) and issubclass(cls, IronrootError)):
        cls = StorageError
    exc = cls(detail, code=str(fields.get("code") or cls.code))
    retry_after = fields.get("retry_after")
    if isinstance(retry_after, int) and hasattr(exc, "retry_after"):
        exc.retry_after = max(1, retry_after)
    return exc


def _clock_frame(refusal: ClockSkew | None) -> bytes:
    """The notice of the sequencer's clock: why it signs nothing, or empty while it signs."""
    return _frame(_ANSWER.pack(0, _CLOCK), b"" if refusal is None else _encode_error(refusal))


def _decode_clock(payload: bytes) -> ClockSkew | None:
    if not payload:
        return None
    refusal = _decode_error(payload)
    if isinstance(refusal, ClockSkew):
        return refusal
    return ClockSkew(refusal.detail)


def _stall_frame(stalled: StorageError | None) -> bytes:
    """The notice of the sequencer's integration: why it integrates nothing, or empty."""
    return _frame(_ANSWER.pack(0, _STALLED), b"" if stalled is None else _encode_error(stalled))


def _decode_stall(payload: bytes) -> StorageError | None:
    if not payload:
        return None
    stalled = _decode_error(payload)
    if isinstance(stalled, StorageError):
        return stalled
    return StorageError(stalled.detail, code="integration-stalled")


# --- the sequencer's side -----------------------------------------------------------------


class _SequencerLink(asyncio.Protocol):
    """The sequencer's end of one worker's link: submit each entry to the log, answer when
    :func:`~ironroot.transparency._registrar.register_entry` would (the same contract,
    written with callbacks here: this loop answers every worker, so it must stay cheap).

    Answers made ready by the log's writer thread are handed to the loop in one wake-up and
    written in one ``send``.
    """

    def __init__(
        self,
        service: TransparencyService,
        closed: asyncio.Future[None],
        peers: list[_SequencerLink],
        handover: _Handover | None = None,
    ) -> None:
        self._service = service
        self._closed = closed
        self._peers = peers  # every worker's link, this one included (one loop: no lock)
        self._handover = handover
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._open: dict[int, tuple[float, float, Ticket | Submission]] = {}  # started, wait
        self._ready: collections.deque[tuple[int, Ticket | Submission]] = collections.deque()
        self._scheduled = False
        self._out: list[bytes] = []
        self._takes_notices = True  # its unsent bytes were under _NOTICE_BACKLOG at the last flush
        self._sweeper = self._loop.call_later(_SWEEP, self._sweep)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._peers.append(self)
        refusal = self._service.clock_refusal
        if refusal is not None:  # a worker started while the sequencer refuses: say so now
            self._transport.write(_clock_frame(refusal))
        stalled = self._service.integration_stalled
        if stalled is not None:  # likewise while it integrates nothing
            self._transport.write(_stall_frame(stalled))

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self._peers.remove(self)
        self._sweeper.cancel()
        if not self._closed.done():
            self._closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        frames, malformed = _take_frames(self._buffer, data, _REQUEST.size)
        for frame in frames:
            req_id, wait = _REQUEST.unpack_from(frame)
            self._submit(req_id, wait, frame[_REQUEST.size :])
        if malformed:
            _log.error("a worker sent a malformed frame: link closed")
            assert self._transport is not None
            self._transport.close()
            return
        self._flush()

    def _submit(self, req_id: int, wait: float, entry: bytes) -> None:
        service = self._service
        try:
            if service.in_flight >= service.config.max_pending:
                raise Overloaded("too many registrations are waiting for integration; retry")
            ticket = service.writer.submit_watched(entry)  # no futures: callbacks do
        except IronrootError as exc:
            self._out.append(_frame(_ANSWER.pack(req_id, _ERROR), _encode_error(exc)))
            return
        self._open[req_id] = (time.monotonic(), wait, ticket)
        # One wake-up per entry: when it is integrated (the log fails both futures together
        # on an error), or, for an answer at durability, when it is durable. The sweep
        # answers what waited its bound.
        watched = ticket.durable if wait <= 0 else ticket.integrated
        watched.add_done_callback(lambda _: self._hand_over(req_id, ticket))

    def _hand_over(self, req_id: int, ticket: Ticket | Submission) -> None:
        """A ticket's future resolved (any thread): let the loop answer."""
        self._ready.append((req_id, ticket))
        if not self._scheduled:
            self._scheduled = True
            if self._handover is not None:
                self._handover.schedule(self)
            else:
                _wake(self._loop, self._answer_ready)

    def _answer_ready(self) -> None:
        self._take_ready()
        self._flush()

    def _take_ready(self) -> None:
        """Answer what the log made ready, into the links' queues (loop thread)."""
        self._scheduled = False
        ready = self._ready
        while ready:
            req_id, ticket = ready.popleft()
            pending = self._open.get(req_id)
            if pending is None:
                continue
            durable = ticket.durable.done()
            if (
                ticket.integrated.done()
                or (durable and ticket.durable.exception() is not None)
                or (durable and pending[1] <= 0)
            ):
                self._answer(req_id, ticket)

    def _answer(self, req_id: int, ticket: Ticket | Submission) -> None:
        """Answer ``req_id`` from its ticket as it stands (loop thread)."""
        if self._open.pop(req_id, None) is None:
            return
        try:
            if ticket.durable.done():
                ticket.durable.result()
            if not ticket.integrated.done():
                self._out.append(_frame(_ANSWER.pack(req_id, _WAITING)))
                return
            where = ticket.integrated.result()
            receipts = self._service.receipts(ticket.entry_id, where)
        except IronrootError as exc:
            self._out.append(_frame(_ANSWER.pack(req_id, _ERROR), _encode_error(exc)))
            return
        except Exception:  # a bug: logged here, answered 503 by the worker
            _log.exception("the sequencer failed a registration")
            error = StorageError("the sequencer failed; retry")
            self._out.append(_frame(_ANSWER.pack(req_id, _ERROR), _encode_error(error)))
            return
        if not receipts:
            self._out.append(_frame(_ANSWER.pack(req_id, _WAITING)))
            return
        packed = _encode_receipts(receipts)
        self._out.append(
            _frame(
                _ANSWER.pack(req_id, _INTEGRATED), _WHERE.pack(where.index, where.tree_size), packed
            )
        )
        if len(self._peers) > 1:
            notice = _frame(_ANSWER.pack(0, _KNOWN), ticket.entry_id, packed)
            for peer in self._peers:
                if peer is not self and peer._takes_notices:
                    peer._out.append(notice)

    def _sweep(self) -> None:
        """Four times a second: answer what waited its bound (durable and not integrated
        after ``wait``: pending; not durable after ``DURABLE_TIMEOUT``: an error)."""
        now = time.monotonic()
        for req_id, (started, wait, ticket) in list(self._open.items()):
            if ticket.durable.done():
                if now - started >= wait:
                    self._answer(req_id, ticket)
            elif now - started >= DURABLE_TIMEOUT:
                self._open.pop(req_id, None)
                error = StorageError("the entry could not be stored in time; retry")
                self._out.append(_frame(_ANSWER.pack(req_id, _ERROR), _encode_error(error)))
        self._flush()
        self._sweeper = self._loop.call_later(_SWEEP, self._sweep)

    def _flush(self) -> None:
        """Send what this link and its peers have queued (notices included), one write
        each."""
        for link in self._peers:
            link._flush_own()

    def _flush_own(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._out.clear()
            return
        if self._out:
            transport.write(b"".join(self._out))
            self._out.clear()
        takes = transport.get_write_buffer_size() < _NOTICE_BACKLOG
        if takes != self._takes_notices:
            self._takes_notices = takes
            if takes:
                _log.warning("a worker's link drained: receipt notices to it are sent again")
            else:
                _log.warning(
                    "a worker's link holds %d bytes unsent (it does not read): receipt notices "
                    "to it are skipped until it drains",
                    transport.get_write_buffer_size(),
                )


def _wake(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """Have ``loop`` run ``callback(*args)`` (from any thread)."""
    # The loop may have closed (shutting down): nobody is left to answer then.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


class _Handover:
    """The sequencer's links' answers made ready on the log's writer thread, handed to the
    loop once per writer cycle (:meth:`~ironroot.log.Log.add_cycle_listener`), for every link
    at once: a wake-up per link, or per callback when the loop ran between two of them,
    was ~13 % of the sequencer's GIL-held samples. A callback on another thread (an entry
    answered at once, the log closing) wakes the loop itself."""

    def __init__(self, loop: asyncio.AbstractEventLoop, log: Log) -> None:
        self._loop = loop
        self._log = log
        self._due: list[_SequencerLink] = []  # touched by the writer thread only
        log.add_cycle_listener(self._cycle_ended)

    def schedule(self, link: _SequencerLink) -> None:
        """``link`` has answers ready (any thread)."""
        if self._log.on_writer_thread():
            self._due.append(link)
        else:
            _wake(self._loop, link._answer_ready)

    def _cycle_ended(self) -> None:
        if self._due:
            due, self._due = self._due, []
            _wake(self._loop, _answer_links, due)


def _answer_links(links: list[_SequencerLink]) -> None:
    for link in links:
        link._take_ready()
    links[0]._flush()  # every peer's queue, one write each


async def _serve_link(
    service: TransparencyService,
    sock: socket.socket,
    peers: list[_SequencerLink],
    handover: _Handover | None = None,
) -> None:
    """Answer one worker's registrations until its link closes (its answers handed to the
    loop by ``handover``, else one wake-up per link when answers are ready)."""
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()
    transport, _ = await loop.connect_accepted_socket(
        lambda: _SequencerLink(service, closed, peers, handover), sock
    )
    try:
        await closed
    finally:
        transport.close()


# --- the worker's side --------------------------------------------------------------------


class SequencerLink(asyncio.Protocol):
    """A worker's registrar: check here, sequence in the sequencer process.

    The link is an :class:`asyncio.Protocol` on the worker's end of the socket pair, opened
    by :meth:`open` when the worker starts (else by the first registration): answers are
    parsed from the stream as they arrive and resolve the waiting registrations' futures;
    the registrations of one loop iteration leave in one ``send``. A registration that gets
    no answer within its bound fails with :class:`StoreUnavailable` (a sweep, twice a second,
    rather than a timer per request).
    """

    def __init__(self, service: TransparencyService, sock: socket.socket) -> None:
        self._service = service
        self._sock = sock
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[object] | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        # unanswered: the future and the monotonic time after which it fails
        self._waiting: dict[int, tuple[asyncio.Future[tuple[int, bytes]], float]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._next = 0
        self._gone = False
        self.clock_refusal: ClockSkew | None = None
        """Why the sequencer signs nothing now (its last clock notice), ``None`` while it signs."""
        self.integration_stalled: StorageError | None = None
        """Why the sequencer integrates nothing now (its last integration notice), ``None``
        while it integrates."""

    # --- the protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP * 2, self._sweep)

    def data_received(self, data: bytes) -> None:
        frames, malformed = _take_frames(self._buffer, data, _ANSWER.size)
        for frame in frames:
            req_id, kind = _ANSWER.unpack_from(frame)
            payload = frame[_ANSWER.size :]
            if kind == _KNOWN:
                self._known(payload)
                continue
            if kind == _CLOCK:
                self.clock_refusal = _decode_clock(payload)
                continue
            if kind == _STALLED:
                self.integration_stalled = _decode_stall(payload)
                continue
            waiting = self._waiting.pop(req_id, None)
            if waiting is not None and not waiting[0].done():
                waiting[0].set_result((kind, payload))
        if malformed:
            _log.error("the sequencer sent a malformed frame: link closed")
            assert self._transport is not None
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for future, _ in self._waiting.values():
            if not future.done():
                future.set_exception(StoreUnavailable("the sequencer is gone; retry shortly"))
        self._waiting.clear()
        _log.error("the sequencer's link closed: this worker stops")
        os.kill(os.getpid(), signal.SIGTERM)

    def _known(self, payload: bytes) -> None:
        """A notice: another worker's entry was integrated; keep its receipts."""
        if len(payload) <= _ENTRY_ID:
            return
        try:
            receipts = _decode_receipts(memoryview(payload)[_ENTRY_ID:])
        except StorageError:
            _log.error("the sequencer sent a malformed receipt notice: ignored")
            return
        self._service.remember_receipts(payload[:_ENTRY_ID], receipts)

    def _sweep(self) -> None:
        now = time.monotonic()
        late = [req_id for req_id, (_, deadline) in self._waiting.items() if deadline <= now]
        for req_id in late:
            future, _ = self._waiting.pop(req_id)
            if not future.done():
                future.set_exception(
                    StoreUnavailable("the sequencer did not answer in time; retry")
                )
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP * 2, self._sweep)

    # --- the registrar --------------------------------------------------------------------

    async def _connect(self) -> asyncio.Transport:
        if self._transport is None:
            if self._connecting is None:  # the first registration opens the link, once
                loop = asyncio.get_running_loop()
                self._connecting = loop.create_task(
                    loop.create_connection(lambda: self, sock=self._sock)
                )
            await asyncio.shield(self._connecting)
            assert self._transport is not None
        return self._transport

    def _flush(self) -> None:
        transport = self._transport
        if self._out and transport is not None and not transport.is_closing():
            transport.write(b"".join(self._out))
        self._out.clear()

    async def open(self) -> None:
        """Open the link now (the worker does, before it listens)."""
        await self._connect()

    async def register(self, statement: bytes, wait: float) -> Registration:
        entry = self._service.check(statement)  # parse, policy, signature: in this process
        entry_id = hashlib.sha256(entry).digest()
        if self._gone:
            raise StoreUnavailable("the sequencer is gone; retry shortly")
        await self._connect()
        loop = asyncio.get_running_loop()
        self._next = (self._next + 1) & 0xFFFFFFFF or 1  # 0 is the notices' id
        req_id = self._next
        future: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self._waiting[req_id] = (future, time.monotonic() + DURABLE_TIMEOUT + wait + 5.0)
        self._out.append(_frame(_REQUEST.pack(req_id, wait), entry))
        if len(self._out) == 1:  # one send for what this loop iteration registers
            loop.call_soon(self._flush)
        try:
            kind, payload = await future
        finally:
            self._waiting.pop(req_id, None)
        if kind == _ERROR:
            raise _decode_error(payload)
        if kind == _WAITING:
            return Registration(entry_id, None, None)
        if len(payload) < _WHERE.size:
            raise StorageError("the sequencer sent a truncated answer")
        index, tree_size = _WHERE.unpack_from(payload)
        receipts = _decode_receipts(memoryview(payload)[_WHERE.size :])
        if not receipts:
            return Registration(entry_id, Integrated(index, tree_size), None)
        self._service.remember_receipts(entry_id, receipts)
        return Registration(entry_id, Integrated(index, tree_size), receipts[0])


@dataclass(frozen=True)
class _WorkerSpec:
    """What a worker needs from the sequencer (picklable: it crosses the spawn)."""

    data_dir: str
    host: str
    port: int
    receipt_keys: bytes  # COSE Key Set, the current keys in order
    known_keys: bytes  # COSE Key Set, every key a stored batch may name
    checkpoint_vkeys: tuple[str, ...]
    tls: ServerTls | None
    log_level: str
    log_format: str
    config: str  # config_fingerprint of the configuration the sequencer started with


def _worker_main(spec: _WorkerSpec, listener: socket.socket, link: socket.socket) -> None:
    """A worker process: serve HTTP on the shared ``listener`` until SIGTERM/SIGINT.

    The link to the sequencer opens before the worker listens, not at its first
    registration: a worker that no client has reached yet must still stop when the
    sequencer dies, and take the receipt notices of other workers' entries.

    A worker reads ``ironroot.toml`` itself: if it does not configure the service as the
    sequencer's did when it started (the file, or a key or trust anchor it names, was changed
    since), the worker serves nothing and exits with ``_CONFIG_CHANGED``: it would check
    statements under another policy, trust anchors or write tokens than its siblings."""
    configure_logging(spec.log_level, spec.log_format)
    service = TransparencyService.open_follower(
        Path(spec.data_dir),
        list(decode_key_set(spec.receipt_keys).values()),
        spec.checkpoint_vkeys,
        dict(decode_key_set(spec.known_keys)),
    )
    try:
        if config_fingerprint(service.config) != spec.config:
            _log.error(
                "this worker read another configuration than the service started with: it "
                "does not serve"
            )
            raise SystemExit(_CONFIG_CHANGED)
        _log.info("worker pid %d: its configuration is the service's; serving", os.getpid())
        registrar = SequencerLink(service, link)
        service.sequencer_clock = lambda: registrar.clock_refusal
        service.sequencer_integration = lambda: registrar.integration_stalled
        app = create_app(service, registrar)
        config = server_config(app, spec.host, spec.port, service.config.server, tls=spec.tls)
        run_server(config, sockets=[listener], before=registrar.open)
    finally:
        service.close()


# --- the supervisor (the sequencer process) -------------------------------------------------


class _Worker:
    def __init__(self, spec: _WorkerSpec, listener: socket.socket, number: int) -> None:
        self.number = number
        parent, child = socket.socketpair()
        context = multiprocessing.get_context("spawn")
        self.process: Any = context.Process(
            target=_worker_main,
            args=(spec, listener, child),
            name=f"ironroot-worker-{number}",
        )
        self.process.start()
        child.close()
        self.link = parent


def _configured_as_started(spec: _WorkerSpec) -> bool:
    """Whether ``ironroot.toml`` (and what it names) still configures the service as when it
    started, so that a worker started now applies what its siblings apply."""
    try:
        return config_fingerprint(load_config(Path(spec.data_dir))) == spec.config
    except IronrootError:  # unreadable, or no longer valid: not what the service runs
        return False


async def _supervise(
    service: TransparencyService, spec: _WorkerSpec, listener: socket.socket, count: int
) -> None:
    """Run ``count`` workers until SIGINT/SIGTERM; start again each one that dies, unless
    the configuration changed since the service started: then it stays down (said once, at
    error level) until the configuration is the service's again, or the service restarts."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workers: list[_Worker] = []
    links: set[asyncio.Task[None]] = set()
    peers: list[_SequencerLink] = []
    handover = _Handover(loop, service.writer)

    def start(number: int) -> _Worker:
        worker = _Worker(spec, listener, number)
        task = loop.create_task(_serve_link(service, worker.link, peers, handover))
        links.add(task)
        task.add_done_callback(links.discard)
        return worker

    workers = [start(n) for n in range(count)]
    _log.info("%d HTTP workers started: pids %s", count, [w.process.pid for w in workers])
    told: str | None = None  # the clock refusal the workers were last told of
    told_stall: str | None = None  # why the sequencer integrates nothing, as last told
    retry_at = [0.0] * count  # by worker: when a look at a changed configuration is due
    changed_told = False  # the changed configuration was said
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _RESTART_DELAY)
        refusal = service.clock_refusal
        if (None if refusal is None else refusal.detail) != told:
            told = None if refusal is None else refusal.detail
            notice = _clock_frame(refusal)
            for peer in peers:
                peer._out.append(notice)
                peer._flush_own()
        stalled = service.integration_stalled
        if (None if stalled is None else stalled.detail) != told_stall:
            told_stall = None if stalled is None else stalled.detail
            notice = _stall_frame(stalled)
            for peer in peers:
                peer._out.append(notice)
                peer._flush_own()
        for i, worker in enumerate(workers):
            if stop.is_set() or worker.process.is_alive() or time.monotonic() < retry_at[i]:
                continue
            if not _configured_as_started(spec):
                retry_at[i] = time.monotonic() + _CONFIG_RETRY
                if not changed_told:
                    changed_told = True
                    _log.error(
                        "worker %d (pid %d) exited with %s and is not started again: "
                        "ironroot.toml or a file it names changed since the service started, "
                        "and a worker started now would not apply what the others apply; "
                        "restart the service to apply the change (or restore the file)",
                        worker.number,
                        worker.process.pid,
                        worker.process.exitcode,
                    )
                continue
            changed_told = False
            _log.error(
                "worker %d (pid %d) exited with %s: started again",
                worker.number,
                worker.process.pid,
                worker.process.exitcode,
            )
            workers[i] = start(worker.number)
    for worker in workers:  # workers finish their requests; their links stay served meanwhile
        if worker.process.is_alive():
            worker.process.terminate()
    for worker in workers:
        await loop.run_in_executor(None, worker.process.join, 30.0)
        if worker.process.is_alive():
            worker.process.kill()
    if links:  # the workers are gone, so are their links; never wait on one for ever
        _done, stuck = await asyncio.wait(links, timeout=5.0)
        for task in stuck:
            task.cancel()


def serve_workers(
    data_dir: Path,
    host: str,
    port: int,
    workers: int,
    *,
    receipt_signers: Sequence[Signer] | None = None,
    checkpoint_signers: Sequence[Signer] | None = None,
    tls: ServerTls | None = None,
    log_level: str = "info",
    log_format: str = "text",
) -> None:
    """Serve the service in ``data_dir`` with ``workers`` HTTP processes and this process as
    the sequencer, until SIGINT/SIGTERM (then the workers finish their requests, the log's
    writer drains and the store closes)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise ConfigError("--workers is 1-64")
    service = TransparencyService.open(
        data_dir, receipt_signers=receipt_signers, checkpoint_signers=checkpoint_signers
    )
    try:
        if service.witnessing is not None:
            raise ConfigError(
                "--workers does not serve witnessed checkpoints: run one process with witnesses"
            )
        service.start()
        probe = server_config(None, host, port, service.config.server, tls=tls)
        listener = probe.bind_socket()
        known = service.known_receipt_keys()
        spec = _WorkerSpec(
            data_dir=str(data_dir),
            host=host,
            port=port,
            receipt_keys=encode_key_set(list(service.receipt_keys)),
            known_keys=encode_key_set(list(known.values())),
            checkpoint_vkeys=service.checkpoint_vkeys,
            tls=tls,
            log_level=log_level,
            log_format=log_format,
            config=config_fingerprint(service.config),
        )
        _log.info(
            "%s, %d workers and one sequencer",
            service.serving(data_dir, host=host, port=port, tls=tls is not None),
            workers,
        )
        try:
            # As run_server does in the workers: start-up's objects frozen out of the
            # collector's passes (the sequencer's CPU per registration fell from about 147
            # to 132 us), young objects collected less often.
            settle_heap()
            uvloop.run(_supervise(service, spec, listener, workers))
        finally:
            listener.close()
    finally:
        service.close()
