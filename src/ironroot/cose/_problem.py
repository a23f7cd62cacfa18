"""Problem details: RFC 9290 concise (CBOR) and RFC 9457 (JSON) forms of one error.

CBOR uses the standard keys ``-1`` title, ``-2`` detail, ``-3`` instance and ``-4``
response-code. RFC 9290 has no ``type`` member: a problem type is a Custom Problem Detail entry
keyed by the type URI, so ``type`` and ``extra`` travel as ``{type-uri: {extra...}}``. Without a
type but with extra members the key is ``about:blank``, the RFC 9457 meaning of "no type";
``type="about:blank"`` and ``type=None`` are therefore the same problem and normalised to
``None``. The other standard keys (``-5`` base-uri, ``-6`` base-lang, ``-7`` base-rtl) and
unsigned-integer custom entries are accepted and ignored on input.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from ironroot import errors
from ironroot.cose._cbor import DEFAULT_LIMITS, Limits, decode_cbor, encode_cbor
from ironroot.crypto import check_cbor_labels
from ironroot.errors import IronrootError, MalformedInput, PayloadTooLarge

__all__ = ["Problem"]

_TITLE: Final = -1
_DETAIL: Final = -2
_INSTANCE: Final = -3
_RESPONSE_CODE: Final = -4
_STANDARD: Final = frozenset((-1, -2, -3, -4, -5, -6, -7))
_BLANK: Final = "about:blank"
_JSON_MEMBERS: Final = frozenset(("type", "title", "status", "detail", "instance"))
_EMPTY: Final[Mapping[str, object]] = MappingProxyType({})


def _status(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise MalformedInput("problem status must be an HTTP status code")
    return value


def _text(value: object, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedInput(f"problem {what} must be text")
    return value


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem report; ``extra`` holds extension members (text keys)."""

    title: str
    detail: str
    status: int | None = None
    type: str | None = None
    instance: str | None = None
    extra: Mapping[str, object] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        _text(self.title, "title")
        _text(self.detail, "detail")
        _status(self.status)
        _text(self.type, "type", optional=True)
        _text(self.instance, "instance", optional=True)
        if self.type == _BLANK:
            object.__setattr__(self, "type", None)
        for key in self.extra:
            if not isinstance(key, str) or key in _JSON_MEMBERS:
                raise MalformedInput(f"problem extension member {key!r} is not allowed")
        if not isinstance(self.extra, MappingProxyType):
            object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    # --- RFC 9290 ---------------------------------------------------------------------

    def to_cbor(self) -> bytes:
        """``application/concise-problem-details+cbor``, deterministic."""
        out: dict[object, object] = {_TITLE: self.title, _DETAIL: self.detail}
        if self.instance is not None:
            out[_INSTANCE] = self.instance
        if self.status is not None:
            out[_RESPONSE_CODE] = self.status
        if self.type is not None or self.extra:
            out[self.type or _BLANK] = dict(self.extra)
        return encode_cbor(out)

    @classmethod
    def from_cbor(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Problem:
        decoded = decode_cbor(data, limits)
        if not isinstance(decoded, Mapping):
            raise MalformedInput("concise problem details must be a map")
        check_cbor_labels(decoded, "problem detail key")  # integers and URIs (RFC 9290)
        custom = [k for k in decoded if isinstance(k, str)]
        if len(custom) > 1:
            raise MalformedInput("more than one problem type entry")
        for key in decoded:
            if isinstance(key, int) and key < 0 and key not in _STANDARD:
                raise MalformedInput(f"unknown standard problem detail {key}")
        type_: str | None = None
        extra: Mapping[str, object] = _EMPTY
        if custom:
            type_ = custom[0]
            members = decoded[type_]
            if not isinstance(members, Mapping) or not all(isinstance(k, str) for k in members):
                raise MalformedInput("a problem type entry must map text keys to values")
            extra = dict(members)
        return cls(
            title=_text(decoded.get(_TITLE, ""), "title") or "",
            detail=_text(decoded.get(_DETAIL, ""), "detail") or "",
            status=_status(decoded.get(_RESPONSE_CODE)),
            type=type_,
            instance=_text(decoded.get(_INSTANCE), "instance", optional=True),
            extra=extra,
        )

    # --- RFC 9457 ---------------------------------------------------------------------

    def to_json(self) -> bytes:
        """``application/problem+json``."""
        out: dict[str, object] = {}
        if self.type is not None:
            out["type"] = self.type
        out["title"] = self.title
        if self.status is not None:
            out["status"] = self.status
        out["detail"] = self.detail
        if self.instance is not None:
            out["instance"] = self.instance
        out.update(self.extra)
        try:
            return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
        except (TypeError, ValueError) as exc:
            raise MalformedInput(f"problem extension members are not JSON: {exc}") from exc

    @classmethod
    def from_json(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Problem:
        if len(data) > limits.max_bytes:
            raise PayloadTooLarge("problem details document is too large")
        try:
            decoded = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise MalformedInput(f"problem details are not JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            raise MalformedInput("problem details must be a JSON object")
        return cls(
            title=_text(decoded.get("title", ""), "title") or "",
            detail=_text(decoded.get("detail", ""), "detail") or "",
            status=_status(decoded.get("status")),
            type=_text(decoded.get("type"), "type", optional=True),
            instance=_text(decoded.get("instance"), "instance", optional=True),
            extra={k: v for k, v in decoded.items() if k not in _JSON_MEMBERS},
        )

    # --- back to an error -------------------------------------------------------------

    def error(self, status: int | None = None) -> IronrootError:
        """The typed error this problem from an Ironroot service stands for (``status``: the
        HTTP status it came with, when the problem does not carry one): the class its ``code``
        member names, else — for errors whose code is refined per instance — the class its
        ``title`` names, answering with that status; else :class:`IronrootError`. With the
        problem's detail and code, so a client tells an expired EAR from a denied policy
        without parsing text."""
        status = self.status if self.status is not None else status
        code = self.extra.get("code")
        code = code if isinstance(code, str) else None
        classes = _error_classes()
        by_code = {c.code: c for c in classes}
        by_title = {c.title: c for c in classes if status is None or c.http_status == status}
        found = by_code.get(code or "") or by_title.get(self.title) or IronrootError
        if status is not None and found.http_status != status and self.title in by_title:
            found = by_title[self.title]
        return found(self.detail or self.title, code=code)


@functools.cache
def _error_classes() -> tuple[type[IronrootError], ...]:
    """The error classes ``cls(detail, code=...)`` makes (not one that needs more, such as a
    witness's ``OldSizeMismatch`` and its ``size``: an answer naming it must not become a
    ``TypeError``)."""
    found = []
    for name in errors.__all__:
        cls = getattr(errors, name)
        if not (isinstance(cls, type) and issubclass(cls, IronrootError)):
            continue
        parameters = inspect.signature(cls).parameters
        others = [p for n, p in parameters.items() if n not in ("detail", "code")]
        if "code" in parameters and all(p.default is not p.empty for p in others):
            found.append(cls)
    return tuple(found)
