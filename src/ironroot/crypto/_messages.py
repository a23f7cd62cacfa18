"""Short, human reasons for what ``cryptography`` (and its Rust parsers) say about bad bytes.

``cryptography`` reports a DER error as the Rust parser's debug form (``error parsing asn1
value: ParseError { kind: UnexpectedTag { actual: Tag { value: 2, ... } }, location:
["Certificate::tbs_cert"] }``), a PEM error with a link to its FAQ, and a key error as a
paragraph of guesses. Error messages show a person one short reason instead:
``bad DER (unexpected tag, in Certificate.tbs_cert)``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["library_error_text"]

_PARSE_ERROR: Final = re.compile(r"ParseError \{ kind: (\w+)")
_LOCATION: Final = re.compile(r"location: \[([^\]]*)\]")
_CAMEL: Final = re.compile(r"(?<!^)(?=[A-Z])")
_KNOWN: Final = (
    ("Unable to load PEM file", "not a well-formed PEM file"),
    ("Could not deserialize key data", "not a key in a format that can be read"),
    ("Valid PEM but no BEGIN", "PEM without a recognised BEGIN line"),
    ("Could not deserialize PKCS7", "not a PKCS#7 structure"),
)


def library_error_text(exc: BaseException, *, limit: int = 160) -> str:
    """One short line saying why a library refused some bytes, without its internals."""
    text = str(exc)
    found = _PARSE_ERROR.search(text)
    if found:
        kind = _CAMEL.sub(" ", found.group(1)).lower()
        where = _LOCATION.search(text)
        names = re.findall(r'"([^"]+)"', where.group(1)) if where else []
        place = f", in {names[-1].replace('::', '.')}" if names else ""
        return f"bad DER ({kind}{place})"
    for marker, reason in _KNOWN:
        if marker in text:
            return reason
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:limit]
