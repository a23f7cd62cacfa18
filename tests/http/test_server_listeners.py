"""`bind_listeners`: one listening socket per worker process, among which the kernel spreads
new connections (``SO_REUSEPORT``), so that connections opened together are not all taken by
whichever worker wakes first."""

from __future__ import annotations

import select
import socket

import pytest

from ironroot.errors import ConfigError
from ironroot.http import bind_listeners

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_REUSEPORT"), reason="this platform has no SO_REUSEPORT"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connections_opened_together_reach_every_worker_socket() -> None:
    port = _free_port()
    listeners = bind_listeners("127.0.0.1", port, 2)
    clients: list[socket.socket] = []
    try:
        assert len({id(s) for s in listeners}) == 2
        assert {s.getsockname()[1] for s in listeners} == {port}
        assert all(s.get_inheritable() for s in listeners)
        for sock in listeners:
            sock.listen(128)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        accepted = [0, 0]
        while sum(accepted) < 64:
            ready, _, _ = select.select(listeners, [], [], 5.0)
            assert ready, f"only {sum(accepted)} of 64 connections arrived"
            for sock in ready:
                connection, _ = sock.accept()
                connection.close()
                accepted[listeners.index(sock)] += 1
        # The kernel hashes each connection's addresses: all 64 on one socket has odds of
        # 2**-63, which is what one shared socket gave in practice (58 to 6 and worse).
        assert min(accepted) > 0, accepted
    finally:
        for sock in [*clients, *listeners]:
            sock.close()


def test_one_worker_gets_one_socket_and_a_taken_port_is_a_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = int(taken.getsockname()[1])
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_listeners("127.0.0.1", port, 2)
    (single,) = bind_listeners("127.0.0.1", _free_port(), 1)
    try:
        assert single.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
    finally:
        single.close()
