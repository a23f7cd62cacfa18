"""The system's CA trust for HTTPS clients, made once per process and shared.

httpx builds a fresh SSL context for every client whose ``verify`` is ``True``: it reads the
whole CA bundle (``SSL_CERT_FILE``, ``SSL_CERT_DIR`` or certifi's), 20-40 ms of CPU on this
project's machines, which every CLI command, witness client and transparency client paid
again. :func:`client_verify` gives httpx one context per process instead, made by
``httpx.create_ssl_context()`` so the trust is exactly httpx's default, one per value of the
two environment variables. An ``ssl.SSLContext`` is safe to share between clients and
threads once configured, and nothing configures this one further: a private CA or a client
certificate comes in a context of its own (:func:`ironroot.http.client_context`), passed
through unchanged. A CA bundle replaced on disk is read by the next process, as a client
that lives as long as the process would see it.

``SSL_CERT_FILE`` must name a regular file (a named pipe held every HTTPS client while OpenSSL
waited for a writer), and a bundle that does not load is a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import functools
import os
import ssl
import stat

from ironroot.errors import ConfigError

__all__ = ["client_verify", "system_trust"]


def client_verify(verify: ssl.SSLContext | bool) -> ssl.SSLContext | bool:
    """``verify`` as httpx takes it, ``True`` (the system's CAs) as the shared context."""
    return system_trust() if verify is True else verify


def system_trust() -> ssl.SSLContext:
    """The shared context trusting the system's CAs (httpx's default, made once)."""
    return _system_trust(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _system_trust(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    """httpx's default context, for the environment named by the arguments (the cache key:
    httpx reads the same two variables)."""
    import httpx

    where = (
        f"SSL_CERT_FILE={cafile}"
        if cafile
        else f"SSL_CERT_DIR={capath}"
        if capath
        else "certifi's CA bundle"
    )
    if cafile:  # httpx reads it, when set, instead of SSL_CERT_DIR
        try:
            regular = stat.S_ISREG(os.stat(cafile).st_mode)
        except (OSError, ValueError):
            regular = True  # missing: OpenSSL's own error, below
        if not regular:
            raise ConfigError(f"{where}: not a regular file (a CA bundle)")
    try:
        return httpx.create_ssl_context()
    except OSError as exc:  # ssl.SSLError too
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ConfigError(f"{where}: the CA bundle does not load: {reason}") from exc
