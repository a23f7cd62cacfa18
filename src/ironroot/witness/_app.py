"""The witness's HTTP face (c2sp.org/tlog-witness), an ASGI app.

* ``POST /add-checkpoint``: ``200`` with the cosignature lines (``text/plain``); ``409`` with
  ``Content-Type: text/x.tlog.size`` and the latest cosigned size for a stale ``old``, and
  ``409`` with a ``fork-detected`` problem (carrying the cosigned ``checkpoint``) for another
  root at the cosigned size; every other refusal is an
  RFC 9290 problem (CBOR, or JSON when the client asks for it) with the status the spec names
  (400, 403, 404, 413, 422) and the Ironroot error code (``unknown-log``,
  ``untrusted-checkpoint``, ``inconsistent-checkpoint``, ``fork-detected``, …);
* ``GET /<hex SHA-256 of the origin>/checkpoint``: the latest cosigned checkpoint (the log's
  signatures and the witness's), ``404`` before the first;
* ``/``, ``/health``, ``/ready``, ``/metrics`` as every Ironroot service
  (``ironroot.http``), and ``/witness`` with the witness's name, vkeys and logs (JSON).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Final

from prometheus_client import Counter, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ironroot.errors import IronrootError, NotFound, OldSizeMismatch
from ironroot.http import (
    Handler,
    ServiceInfo,
    error_response,
    guarded,
    problem_app,
    problem_response,
    read_body,
)
from ironroot.witness._protocol import (
    TLOG_SIZE_MEDIA_TYPE,
    encode_cosignatures,
    encode_size,
    monitoring_path,
)
from ironroot.witness._witness import RootMismatch, Witness

__all__ = ["create_witness_app"]

_log = logging.getLogger("ironroot.witness")
_ORIGIN_HASH: Final = re.compile(r"[0-9a-f]{64}")
_TEXT: Final = "text/plain; charset=utf-8"


def create_witness_app(witness: Witness, *, max_request_bytes: int = 256 * 1024) -> Starlette:
    """The ASGI application for ``witness`` (which the caller opens and closes)."""
    by_hash = {monitoring_path(log.origin).split("/")[0]: log.origin for log in witness.logs}

    def store() -> None:
        witness.store.all_latest()

    info = ServiceInfo(
        name="witness",
        description=f"Ironroot witness {witness.name} (C2SP tlog-witness)",
        checks={"store": store},
        links={"witness": "/witness"},
        docs="docs/witness.md",
        details=lambda: {"name": witness.name, "logs": len(witness.logs)},
    )
    answered = Counter(
        "ironroot_witness_add_checkpoint",
        "add-checkpoint requests answered, by HTTP status",
        ("status",),
        registry=info.registry,
    )

    def evidence_kept() -> float:
        try:
            return len(witness.evidence())
        except IronrootError:  # a store it cannot read: unknown, and /metrics still answers
            return float("nan")

    Gauge(
        "ironroot_witness_evidence", "Refused checkpoints kept as evidence", registry=info.registry
    ).set_function(evidence_kept)

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await read_body(request, max_request_bytes)
            lines = await asyncio.to_thread(witness.add_checkpoint, body)
        except OldSizeMismatch as exc:
            answered.labels("409").inc()
            # exactly this media type: Starlette would add a charset to a text/ media_type
            headers = {"Content-Type": TLOG_SIZE_MEDIA_TYPE}
            return Response(encode_size(exc.size), 409, headers=headers)
        except RootMismatch as exc:
            # 409 as the spec says, but a problem: a text/x.tlog.size body would name the
            # client's own old size, and a client would retry from it for ever
            answered.labels("409").inc()
            _log.info("add-checkpoint refused: %s: %s", exc.code, exc.detail)
            extra: dict[str, object] = {"checkpoint": exc.cosigned.decode("utf-8", "replace")}
            return problem_response(request, 409, exc.title, exc.detail, exc.code, extra)
        except IronrootError as exc:
            answered.labels(str(exc.http_status)).inc()
            _log.info("add-checkpoint refused: %s: %s", exc.code, exc.detail)
            return error_response(request, exc)
        answered.labels("200").inc()
        return Response(encode_cosignatures(lines), 200, media_type=_TEXT)

    async def checkpoint(request: Request) -> Response:
        origin = by_hash.get(request.path_params["origin_hash"])
        if origin is None or not _ORIGIN_HASH.fullmatch(request.path_params["origin_hash"]):
            raise NotFound("this witness does not witness a log with that origin hash")
        # in a worker thread: the store may be waited for (an add-checkpoint holds it while
        # another process holds the database), and the event loop serves everyone else
        latest = await asyncio.to_thread(witness.latest, origin)
        if latest is None:
            raise NotFound(f"this witness has not cosigned a checkpoint of {origin} yet")
        return Response(latest.note, 200, media_type=_TEXT, headers={"Cache-Control": "no-cache"})

    async def about(request: Request) -> Response:
        return JSONResponse(
            {
                "name": witness.name,
                "keys": [v.vkey for v in witness.verifiers],
                "logs": [
                    {"origin": log.origin, "keys": [v.vkey for v in log.verifiers]}
                    for log in witness.logs
                ],
            }
        )

    def _guard(handler: Handler) -> Handler:
        return guarded(handler, _log, what="the witness")

    routes = [
        Route("/add-checkpoint", _guard(add_checkpoint), methods=["POST"]),
        Route("/witness", _guard(about), methods=["GET"]),
        Route("/{origin_hash}/checkpoint", _guard(checkpoint), methods=["GET"]),
    ]
    return problem_app(routes, info)
