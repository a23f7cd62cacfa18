"""Registration, once: submit a log entry, wait until it is durable, then (up to a bound) until
it is integrated, and read its receipt.

Every HTTP path that registers goes through a :class:`Registrar`: the SCRAPI ``POST /entries``
waits up to ``registration_wait`` for the receipt; an API that answers as soon as the entry is
durable passes ``wait=0``. :class:`LocalRegistrar` submits to the log this process writes;
the HTTP workers of ``ironroot serve --workers`` check the statement themselves and hand the
entry to the one sequencer process (:mod:`ironroot.transparency._workers`), which runs
:func:`register_entry` for them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Protocol

from ironroot.errors import Overloaded, StorageError
from ironroot.log import Integrated
from ironroot.transparency._service import TransparencyService

__all__ = ["DURABLE_TIMEOUT", "LocalRegistrar", "Registrar", "Registration", "register_entry"]

DURABLE_TIMEOUT: Final = 30.0
"""Seconds a registration waits for the commit that makes its entry durable."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A durable entry: where it landed and its primary receipt, once integrated and readable
    (both ``None`` while it waits)."""

    entry_id: bytes
    integrated: Integrated | None
    receipt: bytes | None


class Registrar(Protocol):
    async def register(self, statement: bytes, wait: float) -> Registration:
        """Check ``statement``, make its entry durable, wait up to ``wait`` s for its receipt."""
        ...


async def register_entry(service: TransparencyService, entry: bytes, wait: float) -> Registration:
    """Submit an already checked log entry to ``service``'s log (which this process writes);
    return once it is durable and, within ``wait`` seconds, integrated."""
    if service.in_flight >= service.config.max_pending:
        raise Overloaded("too many registrations are waiting for integration; retry shortly")
    ticket = service.writer.submit(entry)
    try:
        await asyncio.wait_for(asyncio.wrap_future(ticket.durable), DURABLE_TIMEOUT)
    except TimeoutError:
        raise StorageError("the entry could not be stored in time; retry") from None
    if ticket.integrated.done():  # the usual case: the commit that stored it integrated it
        integrated = ticket.integrated.result()
    elif wait <= 0:
        return Registration(ticket.entry_id, None, None)
    else:
        try:
            integrated = await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(ticket.integrated)), wait
            )
        except TimeoutError:
            return Registration(ticket.entry_id, None, None)
    receipts = service.receipts(ticket.entry_id, integrated)
    return Registration(ticket.entry_id, integrated, receipts[0] if receipts else None)


class LocalRegistrar:
    """Registration in the process that runs the log's writer."""

    def __init__(self, service: TransparencyService) -> None:
        self._service = service

    async def register(self, statement: bytes, wait: float) -> Registration:
        return await register_entry(self._service, self._service.check(statement), wait)
