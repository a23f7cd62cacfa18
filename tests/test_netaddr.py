"""The key every per-client limit counts a client address under: an IPv6 address its /64
(one host holds the whole /64), an IPv4-mapped one its IPv4 address, anything else itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ironroot
from ironroot._netaddr import client_key, is_loopback_host

SRC = Path(ironroot.__file__).parent


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::1", "::/64"),
        ("::2", "::/64"),  # ::1-style addresses of one /64: one key
        ("2001:db8:0:7::1", "2001:db8:0:7::/64"),
        ("2001:db8:0:7:ffff:ffff:ffff:ffff", "2001:db8:0:7::/64"),
        ("2001:DB8:0:7::abcd", "2001:db8:0:7::/64"),  # one spelling of the prefix
        ("2001:db8:0:8::1", "2001:db8:0:8::/64"),  # the next /64: another key
        ("::ffff:192.0.2.7", "192.0.2.7"),  # a dual-stack socket's IPv4 peer: the IPv4 key
        ("::ffff:c000:207", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),  # a zone index does not make another client
        ("fe80::2%eth1", "fe80::/64"),
        ("node-0001", "node-0001"),  # not an address: itself
        ("testclient", "testclient"),
        ("-", "-"),
    ],
)
def test_the_key_a_client_counts_under(client: str, key: str) -> None:
    assert client_key(client) == key


def test_every_per_client_limit_counts_clients_through_the_one_helper() -> None:
    """The limiters that key by a client's address (the challenge nonce store, the login
    throttle of the dashboard and Redfish, Redfish's per-source lockout) call client_key; no
    module keeps a copy of the rule."""
    callers = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        if "client_key" in names:
            callers.add(path.relative_to(SRC).as_posix())
        text = path.read_text(encoding="utf-8")
        if path.name != "_netaddr.py":
            assert "IPv6Network(" not in text, f"{path}: a copy of the /64 rule"
    assert callers >= {"ear/_nonce.py", "http/_throttle.py", "platform/_redfish_accounts.py"}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LocalHost.", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("foo.localhost", False),  # the resolver's choice, not a rule
        ("localhost.example", False),
        ("10.0.0.1", False),
        ("::ffff:127.0.0.1", False),  # not the loopback interface as the kernel reads it
        ("", False),
        ("localhost..", False),
    ],
)
def test_the_loopback_a_secret_may_go_to_in_the_clear(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
