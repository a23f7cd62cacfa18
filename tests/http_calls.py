"""``httpx.get`` and ``httpx.post`` for tests, with the default trust store loaded once.

``httpx.get(url)`` builds a client for the one request, and the client a TLS context with
the whole CA bundle parsed, even for a plain ``http://`` URL: ~15 ms of CPU per call, and the
suite polls health endpoints and posts in loops thousands of times. These functions take the
same arguments and answer the same; the default ``verify=True`` is the process's shared
context (``ironroot._trust.system_trust``, exactly httpx's default trust). A test that passes
``verify`` gets exactly what it passes.

:class:`RecordingTransport` sends each request as httpx does and keeps the path it sent (the
exact bytes, percent escapes as written): a client's tests read what reached the server.
"""

from __future__ import annotations

from typing import Any

import httpx

from ironroot._trust import system_trust

__all__ = ["RecordingTransport", "get", "post"]


def get(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", system_trust())
    return httpx.get(url, **options)


def post(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", system_trust())
    return httpx.post(url, **options)


class RecordingTransport(httpx.HTTPTransport):
    """httpx's own transport (the shared trust), keeping each request's raw path."""

    def __init__(self) -> None:
        super().__init__(verify=system_trust())
        self.paths: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.raw_path)
        return super().handle_request(request)
