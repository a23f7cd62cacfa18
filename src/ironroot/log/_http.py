"""Reading a log's C2SP read API over HTTP with httpx: the I/O shell of remote verification.

A redirect is never followed, by this fetcher's own client or by one a caller gives (which
may follow them for its own requests): a log's resources are read where its URL says. A ``3xx``
answer is :class:`~ironroot.errors.ConfigError` naming the status and where it points (without
its query, which may carry a token), so an operator whose log moved gives its new URL, and a
log (or a proxy before it) that sends its readers elsewhere is not read from that other host
under the first one's name. A body whose ``Content-Encoding`` does not decode (cut short, or a
coding no client reads) is :class:`~ironroot.errors.VerificationFailed` naming the resource,
as a resource of the wrong length is to its verifier. A body is read as it streams in and
refused (:class:`~ironroot.errors.PayloadTooLarge`) past the largest resource of its kind: a
hash tile's 256 hashes (8 KiB), or a full entry bundle of 256 maximal entries (16 MiB) for
anything else. Every request asks for
``Accept-Encoding: gzip, identity`` (what c2sp.org/tlog-tiles recommends, and all the reader
decodes), whatever the client's defaults, so a log or CDN that honours the header sends no
other coding.

A log URL has no query or fragment (:class:`~ironroot.errors.MalformedInput`): the resources
are paths beneath it, which would otherwise all be one request. A user and password in it
(basic authentication) are sent, but no message names them.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from types import TracebackType

import httpx

from ironroot._httpclient import (
    TOTAL_TIMEOUTS,
    bounded_response,
    checked_url,
    redirect_target,
    shown_url,
)
from ironroot._trust import client_verify
from ironroot.errors import (
    ConfigError,
    MalformedInput,
    NotFound,
    PayloadTooLarge,
    StorageError,
    Unreachable,
    VerificationFailed,
)
from ironroot.log._tiles import HASH_SIZE, TILE_WIDTH

__all__ = ["HttpLogFetcher"]

# The largest resource of the read API: a full entry bundle of 256 maximal entries.
_MAX_BODY = 256 * (2 + 0xFFFF) + 4096
# The largest hash tile (tile/<L>/<N>[.p/<W>]): 256 hashes. A log serving a longer one is
# refused as it streams in, not read on to the bound of an entry bundle.
_MAX_TILE = TILE_WIDTH * HASH_SIZE
# What is asked for: the codings the bounded reader decodes, as c2sp.org/tlog-tiles
# recommends ("gzip and identity"); never httpx's default, which names br and zstd wherever
# those packages happen to be installed, codings the reader refuses.
_ACCEPT_ENCODING = "gzip, identity"


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
        parsed = httpx.URL(self._base)
        if parsed.query or parsed.fragment or "?" in base_url or "#" in base_url:
            raise MalformedInput(
                "a log URL has no query or fragment: the log's resources are paths beneath it"
            )
        # what messages name: never the user information (a password for basic auth)
        self._shown = shown_url(parsed)
        self._own = client is None
        self._client = (
            client
            if client is not None
            else httpx.Client(timeout=timeout, verify=client_verify(verify))
        )

    @property
    def url(self) -> str:
        """The log's URL as messages name it: without user information (a password)."""
        return self._shown.rstrip("/")

    def fetch(self, path: str, *, accept: str | None = None) -> bytes:
        url = self._base + path.lstrip("/")
        shown = self._shown + path.lstrip("/")
        headers = {"Accept-Encoding": _ACCEPT_ENCODING}
        if accept:
            headers["Accept"] = accept
        relative = path.lstrip("/")
        tile = relative.startswith("tile/") and not relative.startswith("tile/entries/")
        limit, largest = (_MAX_TILE, "a hash tile") if tile else (_MAX_BODY, "any log resource")
        total = self._total
        if self._ends is not None:
            left = self._ends - self._clock()
            if left <= 0:
                raise Unreachable(
                    f"cannot reach {shown}: the log was not read within {self._deadline:g} s"
                )
            total = min(total, left)
        try:
            response = bounded_response(
                self._client,
                "GET",
                url,
                limit=limit,
                too_large=lambda: PayloadTooLarge(f"{shown} is larger than {largest}"),
                total=total,
                headers=headers,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            if self._ends is not None and self._clock() >= self._ends:  # cut by the deadline
                raise Unreachable(
                    f"cannot reach {shown}: the log was not read within {self._deadline:g} s"
                ) from exc
            raise Unreachable.of(shown, exc) from exc
        except PayloadTooLarge:
            raise
        except MalformedInput as exc:  # a body that does not decode: the log serves it wrongly
            raise VerificationFailed(f"{shown} is served wrongly: {exc.detail}") from exc
        if response.status_code == 404:
            raise NotFound(f"{shown} was not found")
        if 300 <= response.status_code < 400:
            raise ConfigError(
                f"GET {shown} answered {response.status_code}, a redirect to "
                f"{redirect_target(response)}: a log is read only where its URL says, no redirect "
                "is followed; if the log moved, give its new URL",
                code="redirect",
            )
        if response.status_code != 200:
            raise StorageError(f"GET {shown} answered {response.status_code}")
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
