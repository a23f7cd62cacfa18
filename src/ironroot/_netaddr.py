"""Whose quota a client address spends: the one key every per-client limit counts under.

The unauthenticated endpoints limit what one client may take — challenge nonces outstanding
and their rate (:class:`ironroot.ear.NonceStore`: the verifier, key release, the HSM's
release challenges, fleet admission), failed dashboard logins
(:class:`ironroot.web.LoginThrottle`) — and a client is its network address. An IPv4
address is its own key. An IPv6 host is given a whole /64 (SLAAC with temporary addresses,
RFC 8981; a /64 routed to one customer) and may send from any of its 2**64 addresses, so a
limit keyed by the address would give it 2**64 quotas: an IPv6 address counts as its /64
(``2001:db8:1:2::/64``; a zone index is dropped). An IPv4-mapped IPv6 address
(``::ffff:192.0.2.1``, what a dual-stack socket reports for an IPv4 peer) is that IPv4
address, so one IPv4 client has one quota however it arrives. Anything that is not an
address (a name a caller gives, such as a node id) is its own key.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["IPV6_PREFIX", "client_key"]

IPV6_PREFIX: Final = 64
"""The prefix length one IPv6 client is taken to hold."""


def client_key(client: str) -> str:
    """The key ``client`` (an address, or any other name) counts under (module docs)."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)
