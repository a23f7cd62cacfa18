"""What every Ironroot HTTP service shares (Starlette + uvicorn), written once.

* RFC 9290 concise problem details in CBOR, or RFC 9457 JSON when the client accepts only
  JSON; every :class:`~ironroot.errors.IronrootError` maps to its status, title and machine
  ``code`` (an extension member), ``WWW-Authenticate: Bearer`` on a ``401`` for a missing
  or wrong token (none on a ``403`` or ``429``, nor for a client certificate a mutual-TLS
  plane refuses, ``CredentialRejected``: no HTTP scheme carries one; :func:`challenges` says
  which errors get one, and :func:`guarded` takes another scheme's challenge, e.g. Basic, or
  a function of the request choosing it, e.g. Basic over TLS only);
* :func:`guarded`: a route handler whose typed errors become problems; an unexpected failure
  is a 500 problem carrying a correlation id that the log line (with the traceback) repeats,
  never disguised as a retryable error; a client that goes away mid-request is logged at
  debug level only;
* :func:`problem_app`: a Starlette app whose 404/405 answers are problems too (405 with
  ``Allow``);
* :class:`ServerLimits` and :func:`server_config`: the connection limits every service runs
  with (head size, header/body/idle timeouts, connection cap overall and per client address,
  HTTP version);
* :func:`read_body`: a request body read against a limit (``PayloadTooLarge``);
  :func:`decode_request_map`: a JSON or CBOR request map; :func:`require_media_type`: a
  body's ``Content-Type`` among those an endpoint takes (else a 415 problem);
  :func:`challenge_handler`: the ``POST .../challenge`` answer of a service that issues
  single-use nonces; :func:`client_identity`: whom a per-client limit counts a request
  against (the mutual-TLS client certificate, else the peer address);
* :func:`stop_on_signals`: an event that SIGINT/SIGTERM sets, for a command that waits;
* :class:`ServerThread`: an app served over real HTTP from a background thread, for embedding
  a service in another program, the demo, tests and benchmarks;
* :class:`ServiceInfo`, :func:`operational_routes`, :class:`Observed`,
  :func:`configure_logging`: ``/health``, ``/ready``, ``/metrics``, ``/`` and the access log
  every service has (``ironroot.http._ops``; the access log is written at ``debug`` or with
  ``IRONROOT_ACCESS_LOG=1``: a line costs 30-40 µs of CPU); :func:`retry_after_seconds`: the
  ``Retry-After`` of every 429/503 (problem, page or ``/ready``); :data:`REFUSAL_HEADERS`:
  the headers every problem carries, for a route that writes its own (the CTS API's);
* :class:`LoginThrottle`: failed logins per client address in a sliding window, bounded in
  memory, refused with ``429`` before any password is hashed (the dashboard's and Redfish's;
  the key release service counts refused requests with it);
* :func:`problem_app`'s ``hot`` routes: the few routes that carry a service's traffic,
  answered without Starlette's middleware stack (same handlers, problems and metrics).
"""

from typing import TYPE_CHECKING

from ironroot._lazy import lazy_package

if TYPE_CHECKING:
    from ironroot.http._app import (
        PROBLEM_CBOR,
        PROBLEM_JSON,
        Handler,
        ServerThread,
        acceptable_media,
        challenges,
        error_response,
        guarded,
        problem_app,
        problem_response,
        read_body,
        sorted_allow,
        wants_json,
    )
    from ironroot.http._content import (
        CBOR,
        challenge_handler,
        client_identity,
        decode_request_map,
        require_media_type,
    )
    from ironroot.http._logging import LOG_FORMATS, configure_logging
    from ironroot.http._ops import (
        Observed,
        ServiceInfo,
        operational_routes,
        retry_after_seconds,
    )
    from ironroot.http._server import (
        REFUSAL_HEADERS,
        ServerLimits,
        check_listen,
        run_server,
        server_config,
        settle_heap,
    )
    from ironroot.http._signals import stop_on_signals
    from ironroot.http._throttle import LoginAttempt, LoginThrottle
    from ironroot.http._tls import ServerTls, client_context

__all__ = [
    "CBOR",
    "LOG_FORMATS",
    "PROBLEM_CBOR",
    "PROBLEM_JSON",
    "REFUSAL_HEADERS",
    "Handler",
    "LoginAttempt",
    "LoginThrottle",
    "Observed",
    "ServerLimits",
    "ServerThread",
    "ServerTls",
    "ServiceInfo",
    "acceptable_media",
    "challenge_handler",
    "challenges",
    "check_listen",
    "client_context",
    "client_identity",
    "configure_logging",
    "decode_request_map",
    "error_response",
    "guarded",
    "operational_routes",
    "problem_app",
    "problem_response",
    "read_body",
    "require_media_type",
    "retry_after_seconds",
    "run_server",
    "server_config",
    "settle_heap",
    "sorted_allow",
    "stop_on_signals",
    "wants_json",
]

__getattr__, __dir__ = lazy_package(__name__, __file__)
