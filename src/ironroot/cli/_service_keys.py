"""``--service-keys`` and ``--service-issuer``: the transparency service whose receipts count.

One reading for every verb that checks receipts (``statement register`` and ``verify``,
``firmware publish``): a COSE Key Set file, a PEM public key, or the service's URL (its
published keys, over TLS but for a loopback address).
"""

from __future__ import annotations

import argparse

from ironroot import cose, transparency
from ironroot.cli._input import read_input
from ironroot.cli._serving import client_tls
from ironroot.crypto import PublicKey, Verifier
from ironroot.errors import ConfigError

__all__ = ["SERVICE_ISSUER_HELP", "SERVICE_KEYS_HELP", "service_keys"]

SERVICE_KEYS_HELP = (
    "the transparency service's keys: a COSE Key Set file, a PEM public key, or the service's "
    "https:// URL (http:// for a loopback address only)"
)
SERVICE_ISSUER_HELP = (
    "the transparency service's issuer: every receipt's iss claim must be it (default: what "
    "the service's configuration names, when --service-keys is its URL; else not compared)"
)


def service_keys(source: str, args: argparse.Namespace) -> tuple[dict[bytes, Verifier], str | None]:
    """The keys ``--service-keys`` names and, fetched from a service, the issuer its
    configuration names. Plain HTTP is refused but for a loopback address: keys fetched
    without TLS can be swapped by anyone on the path (``ConfigError``)."""
    scheme, _, rest = source.partition("://")
    if rest and scheme.lower() in ("http", "https"):
        from ironroot._httpclient import in_clear_elsewhere  # httpx: only when fetching

        if scheme.lower() == "http" and in_clear_elsewhere(source):
            raise ConfigError(
                "--service-keys: keys fetched over plain HTTP could be swapped by anyone on "
                "the path: give an https:// URL, or a key file (http:// is accepted for a "
                "loopback address only)"
            )
        with transparency.TransparencyClient(source, verify=client_tls(args)) as client:
            return dict(client.service_keys()), client.service_issuer()
    data = read_input(source)
    if data.lstrip().startswith(b"-----BEGIN"):
        key = PublicKey.from_pem(data)
        return {key.kid: key}, None
    return dict(cose.decode_key_set(data)), None
