"""The OpenAPI 3.1 description served at ``/openapi.json`` (data, kept beside the routes)."""

from __future__ import annotations

from typing import Any, Final

from ironroot.log import TILE_INDEX_PATTERN, TILE_LEVEL_PATTERN

__all__ = ["OPENAPI"]

_PROBLEM = {
    "description": "RFC 9290 concise problem details (or RFC 9457 JSON when only JSON is accepted)",
    "content": {
        "application/concise-problem-details+cbor": {
            "schema": {"type": "string", "format": "binary"}
        },
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
    },
}
_COSE = {"application/cose": {"schema": {"type": "string", "format": "binary"}}}
_CBOR = {"application/cbor": {"schema": {"type": "string", "format": "binary"}}}
_ENTRY_ID = {
    "name": "entry_id",
    "in": "path",
    "required": True,
    "description": "SHA-256 of the log entry, 64 lowercase hex digits",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
}
_LOCATION = {"Location": {"schema": {"type": "string"}, "description": "/entries/{entry_id}"}}
_RETRY_AFTER = {"schema": {"type": "integer"}, "description": "seconds before polling again"}
_PENDING = {
    "description": "Registration is running; poll Location",
    "headers": {**_LOCATION, "Retry-After": _RETRY_AFTER},
}
_TILE_INDEX = {
    "name": "N",
    "in": "path",
    "required": True,
    "description": (
        "tile index in 3-digit groups, all but the last prefixed with x and separated by /"
        " (x001/x234/067), then .p/W (W in 1..255) for a partial tile"
    ),
    "schema": {"type": "string", "pattern": TILE_INDEX_PATTERN},
}
_TILE = {
    "200": {
        "description": "tile bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    "400": _PROBLEM,
    "404": _PROBLEM,
}

OPENAPI: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Ironroot Code Transparency Service",
        "version": "1",
        "description": (
            "SCITT transparency service (RFC 9943, SCRAPI): register COSE Signed Statements, "
            "obtain RFC 9942 receipts, read the log through C2SP tlog-tiles."
        ),
    },
    "paths": {
        "/entries": {
            "post": {
                "summary": "Register a Signed Statement",
                "security": [{"bearer": []}, {}],
                "requestBody": {"required": True, "content": _COSE},
                "responses": {
                    "201": {
                        "description": "Registered; the body is the receipt",
                        "headers": _LOCATION,
                        "content": _COSE,
                    },
                    "303": _PENDING,
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "413": _PROBLEM,
                    "415": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/entries/{entry_id}": {
            "get": {
                "summary": "Resolve the receipt of an entry (primary receipt algorithm)",
                "parameters": [_ENTRY_ID],
                "responses": {
                    "200": {"description": "the receipt", "content": _COSE},
                    "302": _PENDING,
                    "400": _PROBLEM,
                    "404": _PROBLEM,
                },
            }
        },
        "/entries/{entry_id}/receipts": {
            "get": {
                "summary": "Every receipt of an entry (CBOR array, one per receipt algorithm)",
                "parameters": [_ENTRY_ID],
                "responses": {
                    "200": {"description": "CBOR array of receipts", "content": _CBOR},
                    "302": _PENDING,
                    "400": _PROBLEM,
                    "404": _PROBLEM,
                },
            }
        },
        "/entries/{entry_id}/statement": {
            "get": {
                "summary": "The Transparent Statement: the entry with its receipts in header 394",
                "parameters": [_ENTRY_ID],
                "responses": {
                    "200": {"description": "Transparent Statement", "content": _COSE},
                    "302": _PENDING,
                    "400": _PROBLEM,
                    "404": _PROBLEM,
                },
            }
        },
        "/.well-known/scitt-keys": {
            "get": {
                "summary": "COSE Key Set of the receipt signing keys (each with its kid)",
                "responses": {"200": {"description": "COSE Key Set", "content": _CBOR}},
            }
        },
        "/.well-known/scitt-keys/{kid}": {
            "get": {
                "summary": "One receipt key by kid (lowercase hex or unpadded base64url)",
                "parameters": [
                    {"name": "kid", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "COSE Key", "content": _CBOR},
                    "404": _PROBLEM,
                },
            }
        },
        "/.well-known/transparency-configuration": {
            "get": {
                "summary": "Service configuration: issuer, algorithms, keys, checkpoint keys",
                "responses": {
                    "200": {
                        "description": "CBOR map, or JSON with Accept: application/json",
                        "content": {**_CBOR, "application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
        "/checkpoint": {
            "get": {
                "summary": "Latest C2SP checkpoint (signed note)",
                "responses": {
                    "200": {
                        "description": "signed note",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/tile/{L}/{N}": {
            "get": {
                "summary": "C2SP tlog-tiles hash tile; N in x-prefixed 3-digit groups, "
                "optionally .p/{W} for a partial tile",
                "parameters": [
                    {
                        "name": "L",
                        "in": "path",
                        "required": True,
                        "description": "tile level, 0 to 63",
                        "schema": {"type": "string", "pattern": TILE_LEVEL_PATTERN},
                    },
                    _TILE_INDEX,
                ],
                "responses": _TILE,
            }
        },
        "/tile/entries/{N}": {
            "get": {
                "summary": "C2SP entry bundle (uint16 length-prefixed log entries)",
                "parameters": [_TILE_INDEX],
                "responses": _TILE,
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            }
        },
    },
}
