"""Monotonic counters: the interface a higher layer takes, and an in-memory implementation.

Modelled on TPM 2.0 NV counters (``TPM_NT_COUNTER``) and the monotonic counters a Caliptra
runtime keeps for its users: a named 64-bit value that only ever goes up, held by the root of
trust in storage the host cannot roll back without the RoT noticing. A higher layer (the
HSM's sealed key store and audit head) binds the counter's value into what it writes, and on
opening refuses what is behind the counter (a rolled-back copy).

:class:`MonotonicCounter` is the whole interface (two methods); the device's counters are
:class:`~ironroot.rot.DeviceCounter` (``Device(...).counter(name)``), and
:class:`MemoryCounter` is the in-memory one for tests of higher layers.
"""

from __future__ import annotations

import threading
from typing import Final, Protocol, runtime_checkable

from ironroot.errors import ConfigError, Conflict

__all__ = ["MAX_COUNTER_VALUE", "MemoryCounter", "MonotonicCounter"]

MAX_COUNTER_VALUE: Final = 2**64 - 1


@runtime_checkable
class MonotonicCounter(Protocol):
    """A counter that only goes up.

    * ``value()`` is the current value (0 before the first increment);
    * ``increment()`` adds one and returns the new value, which is durable before it returns:
      after a crash the counter reads at least that value. A crash *during* ``increment``
      leaves the old or the new value. It raises ``Conflict`` at 2^64 − 1.

    Either call raises :class:`~ironroot.errors.DeviceStateTampered` when the counter's storage
    was edited or rolled back, and :class:`~ironroot.errors.StorageError` when it cannot be
    written.
    """

    def value(self) -> int: ...

    def increment(self) -> int: ...


class MemoryCounter(MonotonicCounter):
    """A :class:`MonotonicCounter` in memory (for tests): it starts at ``start``."""

    def __init__(self, start: int = 0) -> None:
        if (
            isinstance(start, bool)
            or not isinstance(start, int)
            or not 0 <= start <= MAX_COUNTER_VALUE
        ):
            raise ConfigError(f"a counter holds an integer 0-{MAX_COUNTER_VALUE}")
        self._value = start
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryCounter({self._value})"

    def value(self) -> int:
        with self._lock:
            return self._value

    def increment(self) -> int:
        with self._lock:
            if self._value >= MAX_COUNTER_VALUE:
                raise Conflict("the counter is at its maximum")
            self._value += 1
            return self._value
