"""Reading a log's C2SP read API over HTTP with httpx: the I/O shell of remote verification."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from types import TracebackType

import httpx

from ironroot._httpclient import TOTAL_TIMEOUTS, bounded_response, checked_url
from ironroot._trust import client_verify
from ironroot.errors import MalformedInput, NotFound, PayloadTooLarge, StorageError, Unreachable

__all__ = ["HttpLogFetcher"]

# The largest resource of the read API: a full entry bundle of 256 maximal entries.
_MAX_BODY = 256 * (2 + 0xFFFF) + 4096


class HttpLogFetcher:
    """A :class:`~ironroot.log.LogFetcher` for the log whose prefix is ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        verify: ssl.SSLContext | bool = True,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``verify`` (when no ``client`` is given): ``True`` trusts the system's CAs, an
        ``ssl.SSLContext`` a private CA (and may present a client certificate). ``timeout``
        bounds each wait; a whole resource must arrive within four times it
        (:class:`Unreachable` otherwise). ``deadline`` bounds every fetch together: once that
        many seconds (of ``clock``) have passed since the fetcher was made, a fetch still
        under way or asked for is :class:`Unreachable` — a log that answers each resource
        just within its timeout, but has many, cannot hold its reader for days."""
        if not base_url.startswith(("http://", "https://")):
            raise MalformedInput("a log URL must start with http:// or https://")
        if deadline is not None and not 0 < deadline < float("inf"):  # also false for NaN
            raise MalformedInput("a log reader's deadline is a number of seconds above 0")
        self._total = TOTAL_TIMEOUTS * timeout
        self._deadline = deadline
        self._clock = clock
        self._ends = None if deadline is None else clock() + deadline
        self._base = checked_url(base_url.rstrip("/") + "/", "the log")
        self._own = client is None
        self._client = (
            client
            if client is not None
            else httpx.Client(timeout=timeout, verify=client_verify(verify))
        )

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        url = self._base + path.lstrip("/")
        headers = {"Accept": accept} if accept else {}
        total = self._total
        if self._ends is not None:
            left = self._ends - self._clock()
            if left <= 0:
                raise Unreachable(
                    f"cannot reach {url}: the log was not read within {self._deadline:g} s"
                )
            total = min(total, left)
        try:
            response = bounded_response(
                self._client,
                "GET",
                url,
                limit=_MAX_BODY,
                too_large=lambda: PayloadTooLarge(f"{url} is larger than any log resource"),
                total=total,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise Unreachable.of(url, exc) from exc
        if response.status_code == 404:
            raise NotFound(f"{url} was not found")
        if response.status_code != 200:
            raise StorageError(f"GET {url} answered {response.status_code}")
        return response.content

    def close(self) -> None:
        if self._own:
            self._client.close()

    def __enter__(self) -> HttpLogFetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
