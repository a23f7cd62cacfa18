"""TLS for every service and every client: one way to name certificates, checked before use.

A service serves HTTPS with :class:`ServerTls` (its certificate chain and key, PEM; with
``client_ca``, mutual TLS: a client must present a certificate that chains to it). A client
trusts a private CA with :func:`client_context` (``ca``), and presents its own certificate for
mutual TLS (``cert``/``key``). Both are checked when they are made — files readable, the key
matching the certificate — so a wrong path is a one-line ``ConfigError`` at start, not a
handshake failure at the first request. Standard library ``ssl`` only: TLS 1.2 or newer, the
library's default ciphers and hostname checking; a server takes a TLS 1.2 client's ECDHE
suites with an AEAD cipher only (AES-GCM, ChaCha20-Poly1305: no CBC suite).

A service that checks its clients' certificates itself on every request (the fleet's control
and data planes: credential status, plane, validity at the service's clock) sets
``check_client_time=False``: the handshake still requires a client certificate that chains to
``client_ca``, but leaves the validity window to the application (OpenSSL's
``X509_V_FLAG_NO_CHECK_TIME``), which then answers an expired certificate with a problem
document rather than a handshake alert, and refuses it on a kept-alive connection too.
A server never renegotiates (``OP_NO_RENEGOTIATION``, not left to the OpenSSL build's
default): a connection's client certificate is the one of its handshake.
:func:`ironroot.http.server_config` hands the peer certificate to the application in the ASGI
TLS extension (``scope["extensions"]["tls"]``).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ironroot.errors import ConfigError

__all__ = ["ServerTls", "client_context"]

_NO_CHECK_TIME: Final = 0x200000  # OpenSSL X509_V_FLAG_NO_CHECK_TIME
_SERVER_TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20"


def _file(path: Path | str, what: str) -> Path:
    found = Path(path)
    if not found.is_file():
        raise ConfigError(f"{what} {found}: no such file")
    return found


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A service's certificate chain and key (PEM files), and an optional client CA (mTLS);
    ``check_client_time=False`` leaves the client certificate's validity window to the
    application (module docs)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    check_client_time: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "cert", _file(self.cert, "--tls-cert"))
        object.__setattr__(self, "key", _file(self.key, "--tls-key"))
        if self.client_ca is not None:
            object.__setattr__(self, "client_ca", _file(self.client_ca, "--tls-client-ca"))
        self.context()  # fail now, with the file's name, rather than at the first handshake

    def context(self) -> ssl.SSLContext:
        """The server-side context these files make (``ConfigError`` when they do not)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # Over TLS 1.2, an ECDHE key exchange and an AEAD cipher only (TLS 1.3's suites are
        # all that): the default list also has the CBC suites with HMAC-SHA-256/384,
        # MAC-then-encrypt, the construction padding oracles (Lucky13) attack.
        context.set_ciphers(_SERVER_TLS12_CIPHERS)
        # No TLS 1.2 renegotiation, whatever the OpenSSL build's default (1.1.1 accepts a
        # client's): the client certificate the app authorizes is the handshake's, taken once
        # per connection, and a renegotiation could change it under a kept-alive connection.
        context.options |= ssl.OP_NO_RENEGOTIATION
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--tls-cert {self.cert} / --tls-key {self.key}: not a PEM certificate chain "
                f"and its key ({exc.strerror or exc})"
            ) from exc
        if self.client_ca is not None:
            try:
                context.load_verify_locations(cafile=str(self.client_ca))
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"--tls-client-ca {self.client_ca}: not PEM certificates ({exc})"
                ) from exc
            context.verify_mode = ssl.CERT_REQUIRED
            if not self.check_client_time:
                context.verify_flags |= _NO_CHECK_TIME
        return context


def client_context(
    ca: Path | str | None = None,
    cert: Path | str | None = None,
    key: Path | str | None = None,
) -> ssl.SSLContext:
    """A client context trusting the system's CAs, or only ``ca`` when given, and presenting
    ``cert``/``key`` (mutual TLS) when given."""
    if (cert is None) != (key is None):
        raise ConfigError("give both --client-cert and --client-key, or neither")
    try:
        if ca is not None:
            context = ssl.create_default_context(cafile=str(_file(ca, "--ca")))
        else:
            context = ssl.create_default_context()
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--ca {ca}: not PEM certificates ({exc})") from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(_file(cert, "--client-cert"), _file(key, "--client-key"))
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--client-cert {cert} / --client-key {key}: not a PEM certificate and its key"
            ) from exc
    return context
