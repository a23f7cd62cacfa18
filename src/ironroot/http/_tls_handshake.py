"""The TLS handshake as part of a connection (ADR 0012): counted against the server's
``max_connections`` and ``max_connections_per_client`` from the accept, bounded by its
``header_timeout``, then handed to the
HTTP protocol on its TLS transport. :func:`ironroot.http.server_config` serves TLS through it
rather than through uvicorn's listener, whose handshake the limits never saw. Written here
because neither asyncio nor uvicorn runs a server-side handshake under a protocol's limits.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any, Final, cast

from ironroot.http._tls import ServerTls

if TYPE_CHECKING:
    from ironroot.http._server import _GuardedProtocol

__all__ = ["TlsHandshake"]

_log = logging.getLogger("ironroot.http")
_TLS_CLOSE_WAIT: Final = 5.0  # a closing TLS connection waits this long for close_notify


class TlsHandshake(asyncio.Protocol):
    """A TLS connection until its handshake is done (module docs): among the server's
    connections from its accept (refused over ``max_connections``, or over
    ``max_connections_per_client``: closed, no handshake), closed if the handshake
    is not done within ``header_timeout``; then handed to the HTTP protocol (``http``) on its
    TLS transport, with whatever the client sent along with its last handshake message.
    ``tls`` is what it serves (the service's files), ``context`` the context made of them.

    ``loop.start_tls`` runs in a task, a loop turn after the accept. asyncio reads nothing
    before it (reading is paused in :meth:`connection_made`); uvloop starts reading once
    :meth:`connection_made` returns, so the ClientHello may come here first: it is held
    (reading paused) and handed to the TLS protocol ahead of its own first read."""

    http: type[_GuardedProtocol]
    tls: ServerTls
    context: ssl.SSLContext

    def __init__(self, **kwargs: Any) -> None:
        self._http = self.http(**kwargs)
        self._limits = self._http.limits
        self._connections: set[Any] = self._http.connections  # the server's
        self._loop = self._http.loop
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._wrapped = False  # start_tls has the connection: what comes here is decrypted
        self._raw = bytearray()  # read before that (uvloop): the TLS protocol's first bytes
        self._early = bytearray()  # decrypted before the HTTP protocol took over
        self._ended = False  # the client's end (or the transport's) came before that
        self._slot: str | None = None  # the client's place, until the HTTP protocol has it

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._connections.add(self)
        if len(self._connections) > self._limits.max_connections:
            self._http.refusals.refused(len(self._connections) - 1, self._loop.time())
            self._connections.discard(self)
            transport.close()
            return
        clients = self._http.clients
        key = clients.key(transport)
        held = None if key is None else clients.take(key)
        if held is not None:
            clients.refusals.refused(held, self._loop.time(), key)
            self._connections.discard(self)
            transport.close()
            return
        self._slot = key
        self._http.slot_taken = True
        self.transport.pause_reading()
        self._timer = self._loop.call_later(self._limits.header_timeout, self._timed_out)
        self._task = self._loop.create_task(self._handshake(self.transport))

    async def _handshake(self, transport: asyncio.Transport) -> None:
        try:
            await self._handshake_and_hand_over(transport)
        finally:
            self._give_back_slot()  # not handed over: the connection never reached HTTP

    async def _handshake_and_hand_over(self, transport: asyncio.Transport) -> None:
        try:
            if self._ended:
                return
            self._wrapped = True
            if self._raw:  # ahead of the TLS protocol's connection_made (call_soon's order)
                self._loop.call_soon(self._replay, transport, bytes(self._raw))
                self._raw.clear()
            tls = await self._loop.start_tls(
                transport,
                self,
                self.context,
                server_side=True,
                ssl_handshake_timeout=self._limits.header_timeout,
                ssl_shutdown_timeout=_TLS_CLOSE_WAIT,
            )
        except OSError as exc:  # an alert, a reset, a timeout: the client's doing
            _log.debug("a TLS handshake failed: %r", exc)
            return
        finally:
            self._release()
        if tls is None or tls.is_closing() or self._ended:  # closed under it, or by the client
            if tls is not None:
                tls.close()
            return
        tls.set_protocol(self._http)
        self._http.client_slot, self._slot = self._slot, None  # the HTTP protocol's now
        self._http.connection_made(tls)
        if self._early and not tls.is_closing():
            self._http.data_received(bytes(self._early))
        self._early.clear()

    @staticmethod
    def _replay(transport: asyncio.Transport, data: bytes) -> None:
        """Hand ``data`` to the TLS protocol start_tls put on ``transport`` as a read would
        (both asyncio's and uvloop's are buffered protocols)."""
        if transport.is_closing():
            return
        tls = cast(asyncio.BufferedProtocol, transport.get_protocol())
        view = memoryview(data)
        while view:
            buffer = memoryview(tls.get_buffer(len(view)))
            size = min(len(buffer), len(view))
            buffer[:size] = view[:size]
            tls.buffer_updated(size)
            view = view[size:]

    def _give_back_slot(self) -> None:
        if self._slot is not None:
            self._http.clients.give_back(self._slot)
            self._slot = None

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._connections.discard(self)

    def _timed_out(self) -> None:
        self._timer = None
        _log.debug(
            "closing a connection whose TLS handshake took over %s s", self._limits.header_timeout
        )
        self._release()  # first: the place is free before the client sees the close
        self._give_back_slot()
        if self.transport is not None:
            self.transport.abort()

    def shutdown(self) -> None:
        """The server stops: a handshake in progress ends here."""
        self._release()
        self._give_back_slot()
        if self.transport is not None:
            self.transport.abort()

    # the protocol of the TCP transport until start_tls, then of the TLS one until the HTTP
    # protocol takes over
    def data_received(self, data: bytes) -> None:
        if self._wrapped:
            self._early += data
        elif self.transport is not None:
            self._raw += data
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._ended = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._release()
        self._give_back_slot()
