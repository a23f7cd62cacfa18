"""``httpx.get`` and ``httpx.post`` for tests, with the default trust store loaded once.

``httpx.get(url)`` builds a client for the one request, and the client a TLS context with
the whole CA bundle parsed, even for a plain ``http://`` URL: ~15 ms of CPU per call, and the
suite polls health endpoints and posts in loops thousands of times. These functions take the
same arguments and answer the same; the default ``verify=True`` is the process's shared
context (``ironroot._trust.system_trust``, exactly httpx's default trust). A test that passes
``verify`` gets exactly what it passes.
"""

from __future__ import annotations

from typing import Any

import httpx

from ironroot._trust import system_trust

__all__ = ["get", "post"]


def get(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", system_trust())
    return httpx.get(url, **options)


def post(url: str, **options: Any) -> httpx.Response:
    options.setdefault("verify", system_trust())
    return httpx.post(url, **options)
