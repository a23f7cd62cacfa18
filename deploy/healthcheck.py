"""The container's health check: GET /health (or /ready with ``--ready``) of the Ironroot
service running beside it; exit 0 when it answers ``200 {"status": "ok"|"ready"}``, 1 with
one line on stderr otherwise.

Standard library only, and configured by the same environment as the service:
``IRONROOT_PORT`` (default 8000) and ``IRONROOT_HOST`` (a wildcard address is probed on
loopback); HTTPS when ``IRONROOT_TLS_CERT`` is set. The probe does not verify the service's
certificate — it talks to its own container over loopback and learns only liveness — and for
mutual TLS presents ``IRONROOT_CLIENT_CERT``/``IRONROOT_CLIENT_KEY`` when they are set.
``IRONROOT_HEALTH_URL`` replaces the computed base URL.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request

# the service listens on every address: probe it on loopback
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104


def base_url() -> str:
    given = os.environ.get("IRONROOT_HEALTH_URL")
    if given:
        return given.rstrip("/")
    host = os.environ.get("IRONROOT_HOST", "")
    host = _WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if os.environ.get("IRONROOT_TLS_CERT") else "http"
    return f"{scheme}://{host}:{os.environ.get('IRONROOT_PORT') or '8000'}"


def context() -> ssl.SSLContext:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    cert, key = os.environ.get("IRONROOT_CLIENT_CERT"), os.environ.get("IRONROOT_CLIENT_KEY")
    if cert and key:
        tls.load_cert_chain(cert, key)
    return tls


def main(argv: list[str]) -> int:
    path, good = ("/ready", "ready") if "--ready" in argv else ("/health", "ok")
    url = base_url() + path
    try:
        with urllib.request.urlopen(url, timeout=5, context=context()) as response:  # noqa: S310
            status = json.loads(response.read(64 * 1024)).get("status")
    except (OSError, ValueError, ssl.SSLError) as exc:
        reason = getattr(exc, "reason", None) or exc
        print(f"unhealthy: {url}: {reason}", file=sys.stderr)
        return 1
    if status != good:
        print(f"unhealthy: {url} says {status!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
