"""Raw sockets to an in-process server, for tests that send what no HTTP client would."""

from __future__ import annotations

import socket

from ironroot.http import ServerThread


def connect(server: ServerThread) -> socket.socket:
    """A plain TCP connection to ``server`` (an ``http://`` one), 10 s timeout."""
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out
