"""Whose quota a client address spends: the one key every per-client limit counts under.

The unauthenticated endpoints limit what one client may take — challenge nonces outstanding
and their rate (:class:`ironroot.ear.NonceStore`: the verifier, key release, the HSM's
release challenges, fleet admission), failed logins to the dashboard and the Redfish service
(:class:`ironroot.http.LoginThrottle`) — and a client is its network address. An IPv4
address is its own key. An IPv6 host is given a whole /64 (SLAAC with temporary addresses,
RFC 8981; a /64 routed to one customer) and may send from any of its 2**64 addresses, so a
limit keyed by the address would give it 2**64 quotas: an IPv6 address counts as its /64
(``2001:db8:1:2::/64``; a zone index is dropped). An IPv4-mapped IPv6 address
(``::ffff:192.0.2.1``, what a dual-stack socket reports for an IPv4 peer) is that IPv4
address, so one IPv4 client has one quota however it arrives. Anything that is not an
address (a name a caller gives, such as a node id) is its own key.

:func:`embedded_ipv4` is the other address rule a guard needs: the IPv4 address an IPv6
address carries for a translator or relay to reach (a fetch guard refusing loopback must
refuse ``64:ff9b::7f00:1`` too). :func:`is_loopback_host` is the rule for sending a secret
(a bearer token, an officer's credential) or trusting keys over plain HTTP: only to the
loopback interface.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["IPV6_PREFIX", "client_key", "embedded_ipv4", "is_loopback_host"]

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


_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries for a translator or relay to reach:
    IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64
    (``64:ff9b::/96``) and 6to4 (``2002::/16``); ``None`` for any other address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if int(ip) >> 32 == 0 or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` — a URL's host as the HTTP client reads it (IPv6 without brackets),
    or a ``Host`` name — is ``localhost`` (one trailing dot allowed) or a loopback address
    (``127.0.0.0/8``, ``::1``). A name under ``.localhost`` is not: whether it resolves to
    the loopback depends on the resolver, and a secret sent on that guess could leave the
    machine."""
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
