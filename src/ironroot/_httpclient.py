"""An HTTP client's answer read within a bound, for every Ironroot client of another party.

A client of a transparency service, a witness or a log's read API must not hold whatever a
hostile or broken server sends: :func:`bounded_response` reads the answer as it streams in
and stops at ``limit`` bytes with the caller's error, so memory is bounded by the limit, not
by the server. The answer comes back as an ``httpx.Response`` with its body read (decoded)
and the headers that still describe it (the framing ones, which described the bytes on the
wire, dropped). With ``total``, the whole answer must arrive within that many seconds: httpx's
timeouts bound each wait, not their sum, so a server that sends a byte now and then would
otherwise hold the client as long as it likes. httpx's own errors (and that timeout, as
``httpx.ReadTimeout``) pass through: each caller names the party it could not reach. Written
here because httpx has no size limit on a response body and no overall deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import httpx

from ironroot.errors import IronrootError, MalformedInput

__all__ = ["bounded_response", "checked_url"]

_BODY_FRAMING: Final = frozenset(("content-encoding", "content-length", "transfer-encoding"))


def checked_url(url: str, what: str) -> str:
    """``url``, once httpx can parse it; otherwise ``MalformedInput`` naming ``what`` (a port
    that is no number, a bracket left open, a control character). The URL itself is left
    out of the message: it may carry a user's password."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise MalformedInput(f"the URL of {what} is not valid: {exc}") from None
    return url


def bounded_response(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    limit: int,
    too_large: Callable[[], IronrootError],
    total: float | None = None,
    **request: Any,
) -> httpx.Response:
    """``client``'s answer to ``method url`` (``request``: httpx's ``headers``, ``content``
    …), its body read as it streams in; ``too_large()`` is raised once the body passes
    ``limit`` bytes, ``httpx.ReadTimeout`` once the body is still coming ``total`` seconds
    after the request began."""
    deadline = None if total is None else time.monotonic() + total
    with client.stream(method, url, **request) as streamed:
        data = bytearray()
        for chunk in streamed.iter_bytes():
            data += chunk
            if len(data) > limit:
                raise too_large()
            if deadline is not None and time.monotonic() > deadline:
                raise httpx.ReadTimeout(
                    f"the answer took longer than {total:g} s", request=streamed.request
                )
    kept = [
        (name, value)
        for name, value in streamed.headers.multi_items()
        if name.lower() not in _BODY_FRAMING
    ]
    return httpx.Response(
        streamed.status_code, headers=kept, content=bytes(data), request=streamed.request
    )
