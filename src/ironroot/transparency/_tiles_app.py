"""Serving an exported tile directory over HTTP: ``ironroot log serve-tiles DIR``.

The same read API, content types and cache rules as the service
(:func:`ironroot.log.cache_control`), read from the files ``ironroot log export-tiles`` writes.
It is what a mirror runs when no web server is at hand, and the reference for configuring one
(nginx and CDN settings are in ``docs/transparency.md``). Only canonical resource names are
served; anything else is a 404 problem, a malformed tile path a 400 one, as the service says.
A problem names the resource as requested, never where the mirror keeps it on disk.

Nothing outside the directory is served: a request names a canonical resource or is refused
(``..``, ``%2e%2e``, an encoded ``/`` (``%2F``), a backslash or a NUL byte in a path is a
malformed tile path, 400, or no route, 404), and no symbolic link inside the directory is followed —
to ``/etc/passwd``, to a folder elsewhere, or even to a file inside: it is a 404 problem as
for a missing file (:class:`ironroot.log.DirectoryLogFetcher`). ``ironroot log export-tiles``
writes regular files only; the directory itself may be a link.

Nothing is served as a resource it is not: a tile of other than the hashes its name says, an
entry bundle of other than its entries (a copy under way, a full disk) is a 503 problem, said
in the mirror's log, never handed to a cache that would keep it a year (``immutable``).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironroot.errors import MalformedInput, NotFound, PayloadTooLarge, StorageError
from ironroot.http import Handler, ServiceInfo, guarded, problem_app
from ironroot.log import (
    DirectoryLogFetcher,
    TileAddress,
    cache_control,
    check_resource_path,
    parse_entry_bundle,
    parse_tile,
)

__all__ = ["CHECKPOINT_MEDIA_TYPE", "TILE_MEDIA_TYPE", "create_tiles_app", "refuse_encoded_slash"]

CHECKPOINT_MEDIA_TYPE: Final = "text/plain; charset=utf-8"
TILE_MEDIA_TYPE: Final = "application/octet-stream"
_log = logging.getLogger("ironroot.tiles")


def _whole(address: TileAddress, data: bytes) -> bool:
    """``data`` is the resource ``address`` names in shape: a tile of exactly its hashes, a
    bundle of exactly its entries (what it holds is the log's verifiers' to check)."""
    try:
        if address.entries:
            parse_entry_bundle(data, address.count)
        else:
            parse_tile(data, address.width)
    except MalformedInput:
        return False
    return True


def refuse_encoded_slash(request: Request) -> None:
    """``MalformedInput`` for a tile path whose request target writes a ``/`` as ``%2F``:
    that is another name (RFC 3986 §2.2: a reserved character is not its escape, where an
    escaped ``0`` is a ``0``), which the router would have decoded into the tile's own."""
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.split(b"?", 1)[0].lower():
        raise MalformedInput("not a canonical tile path: it holds an encoded '/'")


def create_tiles_app(directory: Path) -> Starlette:
    """An ASGI app serving the tile export in ``directory``."""
    fetcher = DirectoryLogFetcher(directory)

    def ready() -> None:
        try:  # what /checkpoint serves: a file, not a link
            regular = stat.S_ISREG(os.lstat(Path(directory) / "checkpoint").st_mode)
        except OSError:
            regular = False
        if not regular:
            raise StorageError(f"{directory} holds no checkpoint yet")

    info = ServiceInfo(
        name="tiles",
        description="Ironroot static tile mirror (C2SP tlog-tiles)",
        checks={"checkpoint": ready},
        links={"checkpoint": "/checkpoint"},
        docs="docs/transparency.md",
    )

    async def resource(request: Request) -> Response:
        refuse_encoded_slash(request)
        path = request.url.path.lstrip("/")
        address = check_resource_path(path)
        try:
            data = await run_in_threadpool(fetcher.fetch, path)
        except NotFound:
            raise NotFound(f"this mirror has no {path}") from None
        except (StorageError, PayloadTooLarge) as exc:  # the mirror's files: said in its log
            _log.warning("cannot serve %s: %s", path, exc.detail)
            raise StorageError(f"this mirror cannot serve {path}") from None
        if address is not None and not _whole(address, data):
            # a copy under way, a full disk: never handed to a cache as this resource
            _log.warning(
                "cannot serve %s: %s is not the resource its name says",
                path,
                Path(directory) / path,
            )
            raise StorageError(f"this mirror cannot serve {path}")
        media = CHECKPOINT_MEDIA_TYPE if address is None else TILE_MEDIA_TYPE
        return Response(data, 200, media_type=media, headers={"Cache-Control": cache_control(path)})

    def _guard(handler: Handler) -> Handler:
        return guarded(handler, _log, what="the tile mirror")

    routes = [
        Route("/checkpoint", _guard(resource), methods=["GET", "HEAD"]),
        Route("/tile/{path:path}", _guard(resource), methods=["GET", "HEAD"]),
    ]
    return problem_app(routes, info)
