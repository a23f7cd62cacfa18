"""``httpx.get`` and ``httpx.post`` for tests, with the default trust store loaded once.

``http_calls.get(url)`` builds a client for the one request, and the client a TLS context with
certifi's ~150 CA certificates parsed, even for a plain ``http://`` URL: ~15 ms of CPU per
call, and the suite polls health endpoints and posts in loops thousands of times. These
functions take the same arguments and answer the same; only the default ``verify=True``
context is made once per test process and shared (a context that is only read is safe to
share). A test that passes ``verify`` gets exactly what it passes.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

__all__ = ["get", "post"]


@functools.cache
def _default_trust() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def get(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", _default_trust())
    return httpx.get(url, **options)


def post(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", _default_trust())
    return httpx.post(url, **options)
