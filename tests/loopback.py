"""One TLS context for the tests' many httpx clients of loopback servers.

httpx makes a TLS context for every client, even one that only ever speaks plain HTTP to a
loopback port, and loads its whole CA bundle into it (certifi's, or the file SSL_CERT_FILE
names): 17-20 ms of CPU per client, per ``httpx.get``. The tests that make hundreds of them (a
request each, a health poll each) pass this context instead: httpx's own default, made once
per process, so what a client trusts does not change.
"""

from __future__ import annotations

import httpx

__all__ = ["DEFAULT_TRUST"]

DEFAULT_TRUST = httpx.create_ssl_context()
