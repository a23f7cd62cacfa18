"""The OCP SAFE Short Form Report (SFR) as frozen values, and its strict JSON parser.

The JSON report (``shortform_report-main/README.md`` of OCP-Security-SAFE) is::

    {"review_framework_version": str,
     "device": {"vendor", "product", ["category"], ["repo_tag"], "fw_version",
                ["fw_hash_sha2_384"], ["fw_hash_sha2_512"], ["manifest": [{"file_name",
                "file_hash"}]], ["class_id"]},
     "audit": {"srp", "methodology", "completion_date", "report_version",
               ["scope_number" | "scope"], ["solid_ver"], "cvss_version",
               "issues": [{"title", "cvss_score", "cvss_vector", "cwe", "description",
                           ["cve"]}]},
     [JWT claims: "iat", "exp", "nbf", "iss", "sub", "aud", "jti"]}

Every issue listed is one the vendor did **not** fix before the reviewed firmware shipped, so
every issue is open. Parsing is strict about structure and types (unknown members, duplicate
members, wrong types, NaN and over-limit sizes are :class:`~ironroot.errors.MalformedReport`)
and faithful to what real, signed reports contain; the published reports differ in these ways,
all of which parse:

* an absent firmware hash is written ``""``; hashes may carry ``0x`` and upper-case hex;
* the 2023 MI300X reports hold a 32-byte value in ``fw_hash_sha2_512``: a digest is kept as
  given when it is 32, 48 or 64 bytes and not longer than its algorithm, but only a digest of
  the algorithm's full length is ever matched (:meth:`ShortFormReport.firmware_hashes`);
* ``completion_date`` is ``YYYY-MM-DD``, sometimes without zero padding, and ``"None"`` in the
  OCP sample;
* the scope is ``scope_number`` (integer, ``1.0``, or text such as ``"1"`` or ``"3.1"``) or
  ``scope`` (text), or absent;
* ``cvss_score`` is text (``"7.9"``); ``cve`` is ``null``, ``""`` or ``"none"`` when there is
  none (all read as ``None``).

The same model also carries the CoRIM-profile report (:mod:`ironroot.safe._corim`), which has
no methodology, category or report-wide CVSS version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeGuard

from ironroot.errors import ConfigError, LimitExceeded, MalformedReport

__all__ = [
    "DEFAULT_SAFE_LIMITS",
    "Audit",
    "Device",
    "Issue",
    "ManifestEntry",
    "SafeLimits",
    "ShortFormReport",
    "cvss_base_score",
    "parse_report_json",
    "parse_report_object",
]


@dataclass(frozen=True, slots=True)
class SafeLimits:
    """Hard limits for SFR input, held in one place.

    ``max_report_bytes`` bounds every form of a report: a JSON report (bare, or the payload
    of a compact JWS, which may be a third larger for its base64url), and with
    ``max_cose_bytes`` a COSE message and its CoRIM payload (:attr:`cose_cap`). Both are
    1 MiB: every report OCP publishes, JSON, JWS or COSE, is at most 32 KB (the largest,
    AMI's Aptio CE review, with 134 files in its source manifest, 31,852 bytes as JSON and
    32,016 as JWS), and parsed input costs many times its size in Python objects (a CBOR item
    can be one byte, so 16 MiB of them decode to over a GB; ``[{},{},…]`` JSON some 25
    times its size). ``max_manifest`` bounds the files of a source manifest; ``max_issues``
    the issues; ``max_text`` any one text member; ``max_depth`` CBOR nesting in the CoRIM
    form.
    """

    max_report_bytes: int = 1024 * 1024
    max_cose_bytes: int = 1024 * 1024
    max_manifest: int = 200_000
    max_issues: int = 4096
    max_text: int = 64 * 1024
    max_depth: int = 32

    @property
    def cose_cap(self) -> int:
        """The largest COSE report or CoRIM payload taken: both byte limits apply."""
        return min(self.max_report_bytes, self.max_cose_bytes)

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"limit {name} must be a positive integer")


DEFAULT_SAFE_LIMITS: Final = SafeLimits()

_DIGEST_SIZES: Final = (32, 48, 64)
_HASH_SIZES: Final = {"sha384": 48, "sha512": 64}
# ASCII digits only: ``\d`` alone also matches "٩.٨" and "９.８", which float() reads as 9.8
# but other SFR readers refuse or read as NaN (and NaN passes every threshold).
_DATE: Final = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
_SCORE: Final = re.compile(r"\d{1,2}(?:\.\d)?", re.ASCII)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_NO_VALUE: Final = frozenset(("", "none", "n/a"))
_MIN_NUMERIC_DATE: Final = -(2**64)
_MAX_NUMERIC_DATE: Final = 2**64 - 1
_MAX_SCOPE: Final = 2**64 - 1
_JWT_CLAIMS: Final = frozenset(("iat", "exp", "nbf", "iss", "sub", "aud", "jti"))
_TOP: Final = frozenset(("review_framework_version", "device", "audit")) | _JWT_CLAIMS
_DEVICE: Final = frozenset(
    (
        "vendor",
        "product",
        "category",
        "repo_tag",
        "fw_version",
        "fw_hash_sha2_384",
        "fw_hash_sha2_512",
        "manifest",
        "class_id",
    )
)
_AUDIT: Final = frozenset(
    (
        "srp",
        "methodology",
        "completion_date",
        "report_version",
        "scope_number",
        "scope",
        "solid_ver",
        "cvss_version",
        "issues",
    )
)
_ISSUE: Final = frozenset(("title", "cvss_score", "cvss_vector", "cwe", "description", "cve"))
_MANIFEST: Final = frozenset(("file_name", "file_hash"))


# --- CVSS base scores -----------------------------------------------------------------------
# The scoring itself is Red Hat's ``cvss`` library (CVSS v2, v3.0/v3.1 and v4.0, checked against
# FIRST's calculators); what is read here is how reports write vectors: in any case, with the
# "CVSS:" prefix or without it, in parentheses, with empty "/" segments. The base metrics that
# tell an unprefixed vector's version:
_V4_ORDER: Final = ("AV", "AC", "AT", "PR", "UI", "VC", "VI", "VA", "SC", "SI", "SA")
_V4_BASE: Final = frozenset(_V4_ORDER)
_V3_BASE: Final = frozenset(("AV", "AC", "PR", "UI", "S", "C", "I", "A"))
_V2_BASE: Final = frozenset(("AV", "AC", "AU", "C", "I", "A"))
_V2_NAMES: Final = {"AU": "Au"}  # the one metric name CVSS v2 writes in mixed case


def cvss_base_score(vector: str) -> float | None:
    """The CVSS base score of a v4.0, v3.0/v3.1 or v2 vector (``CVSS:3.1/AV:N/…``; the prefix
    optional, the version then told by the base metrics present; v2 as ``AV:N/AC:L/Au:N/…``),
    computed by the ``cvss`` library; ``None`` for text that names no CVSS version and lacks
    a base metric of each (``"N/A"``, and a published v4.0 vector without SC/SI/SA). Metric
    names and values are read in any case, and empty ``/`` segments are skipped
    (``"/AV:P/…"`` is published). A v4.0 vector's threat,
    environmental and supplemental metrics are checked but do not score: it is the base
    score (CVSS-B), not the CVSS-BT/BE/BTE they would make it, as v3 and v2 give theirs.

    A vector naming one metric twice (``AV:L/…/AV:N``) is ``MalformedReport``: readers that
    keep the first and the last would score it differently. So is a vector that names its
    version (``CVSS:3.1/…``), or holds every base metric of one, and does not score (an
    unknown metric or value, a missing base metric, an unknown version): it is no vector to
    ignore, as its issue would then count at its stated score alone.
    """
    import cvss  # here: only reviews with findings need it

    text = vector.strip()
    if text[:1] == "(" and text[-1:] == ")":
        text = text[1:-1]
    parts = [part.strip() for part in text.split("/") if part.strip()]
    version: str | None = None
    if parts and parts[0].upper().startswith("CVSS:"):
        version = parts.pop(0)[5:].strip()
    metrics: dict[str, str] = {}
    for part in parts:
        name, sep, value = part.partition(":")
        if not sep:
            return None
        name = name.strip().upper()
        if name in metrics:
            raise MalformedReport(f"CVSS vector {vector!r} names metric {name} twice")
        metrics[name] = value.strip().upper()
    if version is None:
        version = next(
            (
                v
                for v, base in (("4.0", _V4_BASE), ("3.1", _V3_BASE), ("2.0", _V2_BASE))
                if base <= metrics.keys()
            ),
            None,
        )
    if version is None:
        return None  # no version named, nor every base metric of one: text, not a vector
    shown = vector if len(vector) <= 120 else vector[:120] + "…"
    scorer: Any
    if version == "4.0":
        scorer, prefix = cvss.CVSS4, "CVSS:4.0/"
    elif version in ("3.0", "3.1"):
        scorer, prefix = cvss.CVSS3, f"CVSS:{version}/"
    elif version in ("2", "2.0"):
        scorer, prefix = cvss.CVSS2, ""
        metrics = {_V2_NAMES.get(name, name): value for name, value in metrics.items()}
    else:
        raise MalformedReport(f"CVSS vector {shown!r} is not a valid CVSS vector (version?)")
    try:
        score = scorer(prefix + "/".join(f"{name}:{value}" for name, value in metrics.items()))
        if version == "4.0" and metrics.keys() - _V4_BASE:
            # CVSS v4.0 scores a vector with threat, environmental or supplemental metrics
            # as a whole (CVSS-BT/BE/BTE): modified metrics beside critical base ones read
            # 0.0. The vector is checked whole (above), and scored by its base metrics.
            base = "/".join(f"{name}:{metrics[name]}" for name in _V4_ORDER)
            score = scorer(prefix + base)
        return float(score.base_score)
    except cvss.CVSSError as exc:
        # It says it is a CVSS vector (its version, or every base metric of one) and does
        # not score: read as no vector, the issue counted at its stated score, so "1.0"
        # beside a 9.8 base with one unknown metric added passed every threshold.
        reason = str(exc)[:120]
        raise MalformedReport(
            f"CVSS vector {shown!r} is not a valid CVSS v{version} vector: {reason}"
        ) from exc


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One file of a source manifest: its path and hash (SHA-512 in every published report)."""

    file_name: str
    file_hash: bytes


@dataclass(frozen=True, slots=True)
class Device:
    """What was reviewed: vendor, product, firmware version and hashes.

    ``manifest_matches`` is ``None`` without a manifest; with one, whether the firmware hashes
    present are the SHA-384/512 of the manifest's compact JSON (as the OCP library makes them).
    """

    vendor: str
    product: str
    fw_version: str
    category: str | None = None
    repo_tag: str | None = None
    fw_hash_sha2_384: bytes | None = None
    fw_hash_sha2_512: bytes | None = None
    manifest: tuple[ManifestEntry, ...] = ()
    class_id: str | None = None
    manifest_matches: bool | None = None


@dataclass(frozen=True, slots=True)
class Issue:
    """An issue left open in the reviewed firmware.

    ``vector_score`` is the CVSS base score ``cvss_vector`` computes to, when it is a CVSS
    v4.0, v3.0/v3.1 or v2 base vector (:func:`cvss_base_score`; ``None`` for text that is no
    vector). An issue is judged by :attr:`effective_score`, the higher of the
    two: a report saying ``"3.0"`` beside a vector that is 9.8 is not read as 3.0.
    """

    title: str
    cvss_score: float
    cvss_vector: str
    description: str
    cwe: str | None = None
    cve: str | None = None
    cvss_version: str | None = None
    vector_score: float | None = field(init=False, default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector_score", cvss_base_score(self.cvss_vector))

    @property
    def effective_score(self) -> float:
        """The score the issue is judged by: the stated ``cvss_score``, or the vector's base
        score when that is higher (a score and vector that disagree are read at their worst)."""
        if self.vector_score is not None and self.vector_score > self.cvss_score:
            return self.vector_score
        return self.cvss_score


@dataclass(frozen=True, slots=True)
class Audit:
    """Who reviewed, how, when, and what they left open."""

    srp: str
    report_version: str
    completion_date: dt.date | None
    issues: tuple[Issue, ...]
    methodology: str | None = None
    scope: str | None = None
    cvss_version: str | None = None
    solid_version: str | None = None

    @property
    def scope_number(self) -> int | None:
        """The OCP SAFE scope as an integer, when it is one that CBOR holds (the CoRIM
        profile's ``scope-number``: 0 to 2**64 - 1). Compared as text first: int() refuses
        text past 4,300 digits with ``ValueError``."""
        if self.scope is None or not (self.scope.isascii() and self.scope.isdecimal()):
            return None
        digits = self.scope.lstrip("0") or "0"
        if len(digits) > len(str(_MAX_SCOPE)) or int(digits) > _MAX_SCOPE:
            return None
        return int(digits)


@dataclass(frozen=True, slots=True)
class ShortFormReport:
    """A parsed Short Form Report (from JSON or from the CoRIM profile)."""

    review_framework_version: str
    device: Device
    audit: Audit
    issued_at: int | None = None
    expires_at: int | None = None
    """The first instant the report no longer counts (a JWT ``exp``, RFC 7519 4.1.4); for the
    CoRIM profile, the ``rim-validity`` not-after plus one second (a validity-map includes its
    not-after)."""
    not_before: int | None = None

    def firmware_hashes(self) -> dict[str, bytes]:
        """The full-length firmware digests, keyed ``"sha384"`` / ``"sha512"``."""
        out: dict[str, bytes] = {}
        for name, value in (
            ("sha384", self.device.fw_hash_sha2_384),
            ("sha512", self.device.fw_hash_sha2_512),
        ):
            if value is not None and len(value) == _HASH_SIZES[name]:
                out[name] = value
        return out

    @property
    def max_cvss(self) -> float | None:
        """The highest CVSS score of the open issues (each its :attr:`Issue.effective_score`);
        ``None`` when there are none."""
        return max((i.effective_score for i in self.audit.issues), default=None)

    def to_json_dict(self) -> dict[str, object]:
        """A JSON-ready summary (hashes as lower-case hex, the date as ISO 8601)."""
        d, a = self.device, self.audit
        return {
            "review_framework_version": self.review_framework_version,
            "device": {
                "vendor": d.vendor,
                "product": d.product,
                "category": d.category,
                "repo_tag": d.repo_tag,
                "fw_version": d.fw_version,
                "fw_hash_sha2_384": d.fw_hash_sha2_384.hex() if d.fw_hash_sha2_384 else None,
                "fw_hash_sha2_512": d.fw_hash_sha2_512.hex() if d.fw_hash_sha2_512 else None,
                "manifest_files": len(d.manifest),
                "manifest_matches": d.manifest_matches,
            },
            "audit": {
                "srp": a.srp,
                "methodology": a.methodology,
                "completion_date": a.completion_date.isoformat() if a.completion_date else None,
                "report_version": a.report_version,
                "scope": a.scope,
                "cvss_version": a.cvss_version,
                "solid_version": a.solid_version,
                "issues": [
                    {
                        "title": i.title,
                        "cvss_score": i.cvss_score,
                        "cvss_vector": i.cvss_vector,
                        "cwe": i.cwe,
                        "cve": i.cve,
                        "description": i.description,
                    }
                    for i in a.issues
                ],
            },
            "iat": self.issued_at,
        }


# --- strict JSON ---------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedReport(f"duplicate JSON member {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise MalformedReport(f"JSON constant {name} is not allowed")


def load_json(data: bytes, limits: SafeLimits, what: str = "report") -> object:
    """Strict JSON: UTF-8, no duplicate members, no NaN/Infinity, size-limited."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedReport(f"{what} must be bytes")
    if len(data) > limits.max_report_bytes:
        raise LimitExceeded(f"{what} of {len(data)} bytes exceeds {limits.max_report_bytes}")
    try:
        text = bytes(data).decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except MalformedReport:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedReport(f"{what} is not valid JSON: {exc}") from exc


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: object, what: str, allowed: frozenset[str]) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise MalformedReport(f"{what} must be a JSON object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise MalformedReport(f"{what} has unknown member(s) {', '.join(map(repr, unknown))}")
    return value


def _text(obj: Mapping[str, object], key: str, what: str, limits: SafeLimits) -> str:
    if key not in obj:
        raise MalformedReport(f"{what} lacks {key!r}")
    return _text_value(obj[key], f"{what}.{key}", limits)


def _check_text(value: str, what: str) -> str:
    """``value`` if it is Unicode text: a lone surrogate (which a JSON escape such as
    ``"\\ud800"`` can spell) cannot be encoded again, so a report holding one verified and
    then failed, untyped, when it was re-signed, published or printed as UTF-8. Control and
    bidirectional characters are kept as signed: every display escapes them
    (:func:`ironroot._text.shown`)."""
    if _SURROGATE.search(value):
        raise MalformedReport(f"{what} holds a lone surrogate (not Unicode text)")
    return value


def _text_value(value: object, what: str, limits: SafeLimits) -> str:
    if not isinstance(value, str):
        raise MalformedReport(f"{what} must be text")
    if len(value) > limits.max_text:
        raise LimitExceeded(f"{what} is longer than {limits.max_text} characters")
    return _check_text(value, what)


def _opt_text(obj: Mapping[str, object], key: str, what: str, limits: SafeLimits) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    return _text_value(value, f"{what}.{key}", limits) or None


def parse_hex_digest(text: str, what: str, max_size: int = 64) -> bytes | None:
    """Hex text (optional ``0x``, any case) of a 32/48/64-byte digest; ``""`` is ``None``."""
    value = text.strip()
    if value[:2] in ("0x", "0X"):
        value = value[2:]
    if not value:
        return None
    if len(value) % 2 or not all(c in "0123456789abcdefABCDEF" for c in value):
        raise MalformedReport(f"{what} is not hex")
    digest = bytes.fromhex(value)
    if len(digest) not in _DIGEST_SIZES or len(digest) > max_size:
        raise MalformedReport(f"{what} of {len(digest)} bytes is not a SHA-2 digest of its kind")
    return digest


def _hash_member(device: Mapping[str, object], key: str, size: int) -> bytes | None:
    value = device.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedReport(f"device.{key} must be text")
    return parse_hex_digest(value, f"device.{key}", size)


def _manifest(
    device: Mapping[str, object], limits: SafeLimits
) -> tuple[tuple[ManifestEntry, ...], object]:
    raw = device.get("manifest")
    if raw is None:
        return (), None
    if not isinstance(raw, list):
        raise MalformedReport("device.manifest must be an array")
    if len(raw) > limits.max_manifest:
        raise LimitExceeded(f"manifest of {len(raw)} files exceeds {limits.max_manifest}")
    entries = []
    for i, item in enumerate(raw):
        what = f"device.manifest[{i}]"
        obj = _object(item, what, _MANIFEST)
        name = _text(obj, "file_name", what, limits)
        digest = parse_hex_digest(_text(obj, "file_hash", what, limits), f"{what}.file_hash")
        if digest is None:
            raise MalformedReport(f"{what}.file_hash is empty")
        entries.append(ManifestEntry(name, digest))
    return tuple(entries), raw


def parse_date(text: str, what: str) -> dt.date | None:
    """``YYYY-M-D`` (zero padding optional); ``""`` and ``"None"`` are ``None``."""
    if text.strip().lower() in _NO_VALUE:
        return None
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise MalformedReport(f"{what} {text!r} is not a YYYY-MM-DD date")
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise MalformedReport(f"{what} {text!r} is not a calendar date") from exc


def _scope(audit: Mapping[str, object], limits: SafeLimits) -> str | None:
    if "scope_number" in audit and "scope" in audit:
        raise MalformedReport("audit has both scope_number and scope")
    key = "scope_number" if "scope_number" in audit else "scope"
    value = audit.get(key)
    if value is None:
        return None
    if _is_int(value):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedReport(f"audit.{key} must be finite")
        return str(int(value)) if value.is_integer() else repr(value)
    text = _text_value(value, f"audit.{key}", limits).strip()
    return text or None


def parse_cvss_score(value: object, what: str) -> float:
    """A CVSS base score written as text, ``"0.0"`` to ``"10.0"``."""
    if not isinstance(value, str) or not _SCORE.fullmatch(value.strip()):
        raise MalformedReport(f'{what} must be a CVSS score as text, such as "7.9"')
    score = float(value)
    if not 0.0 <= score <= 10.0:
        raise MalformedReport(f"{what} {value!r} is outside 0.0-10.0")
    return score


def _optional_id(value: object, what: str, limits: SafeLimits) -> str | None:
    if value is None:
        return None
    text = _text_value(value, what, limits).strip()
    return None if text.lower() in _NO_VALUE else text


def _issue(item: object, i: int, cvss_version: str | None, limits: SafeLimits) -> Issue:
    what = f"audit.issues[{i}]"
    obj = _object(item, what, _ISSUE)
    for key in ("title", "cvss_score", "cvss_vector", "cwe", "description"):
        if key not in obj:
            raise MalformedReport(f"{what} lacks {key!r}")
    title = _text(obj, "title", what, limits)
    score = parse_cvss_score(obj["cvss_score"], f"{what}.cvss_score")
    vector = _text(obj, "cvss_vector", what, limits)
    description = _text(obj, "description", what, limits)
    cwe = _optional_id(obj["cwe"], f"{what}.cwe", limits)
    cve = _optional_id(obj.get("cve"), f"{what}.cve", limits)
    return issue_of(
        f"{what}.cvss_vector",
        title=title,
        cvss_score=score,
        cvss_vector=vector,
        description=description,
        cwe=cwe,
        cve=cve,
        cvss_version=cvss_version,
    )


def issue_of(where: str, **fields: Any) -> Issue:
    """``Issue(**fields)``; a vector it refuses is named by where it was read (``where``)."""
    try:
        return Issue(**fields)
    except MalformedReport as exc:
        raise MalformedReport(f"{where}: {exc.detail}") from exc


def _numeric_date(top: Mapping[str, object], key: str) -> int | None:
    """A JWT NumericDate as integer seconds, no wider than a CWT's (CBOR's 64 bits): JSON
    numbers have no bound, and an ``exp`` of ``1e400`` digits passed every check here, then
    failed, untyped, wherever a review's times became floats (the appraisal's validity
    epochs) or dates."""
    value = top.get(key)
    if value is None:
        return None
    seconds: int | None = None
    if _is_int(value):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value):
        seconds = int(value)
    if seconds is None or not _MIN_NUMERIC_DATE <= seconds <= _MAX_NUMERIC_DATE:
        raise MalformedReport(f"JWT claim {key!r} must be a NumericDate (seconds, within 64 bits)")
    return seconds


def _jwt_text_claims(top: Mapping[str, object], limits: SafeLimits) -> None:
    """``iss``, ``sub``, ``jti`` and ``aud`` (RFC 7519 4.1: StringOrURI, ``aud`` one or an
    array of them) are checked as any text member is: not kept, but signed and re-signed."""
    for key in ("iss", "sub", "jti"):
        if key in top:
            _text_value(top[key], f"JWT claim {key!r}", limits)
    if "aud" not in top:
        return
    aud = top["aud"]
    if isinstance(aud, str):
        _text_value(aud, "JWT claim 'aud'", limits)
        return
    if not isinstance(aud, list) or not all(isinstance(item, str) for item in aud):
        raise MalformedReport("JWT claim 'aud' must be text or an array of text")
    for i, item in enumerate(aud):
        _text_value(item, f"JWT claim 'aud[{i}]'", limits)


def _manifest_matches(device: Device, raw_manifest: object) -> bool | None:
    if raw_manifest is None:
        return None
    text = json.dumps(raw_manifest, separators=(",", ":")).encode("utf-8")
    checks = []
    if device.fw_hash_sha2_384 is not None:
        checks.append(hashlib.sha384(text).digest() == device.fw_hash_sha2_384)
    if device.fw_hash_sha2_512 is not None:
        checks.append(hashlib.sha512(text).digest() == device.fw_hash_sha2_512)
    if any(checks) and not all(checks):
        # One hash is the manifest's, so the report hashes its manifest (as the OCP library
        # does), and the other is of something else: it names two firmwares, and a review of
        # one would be found under the other's hash.
        raise MalformedReport(
            "device.fw_hash_sha2_384 and fw_hash_sha2_512 name different firmware: one is "
            "the hash of the source manifest, the other is not"
        )
    return all(checks) if checks else None


def parse_report_object(value: object, limits: SafeLimits = DEFAULT_SAFE_LIMITS) -> ShortFormReport:
    """Build a :class:`ShortFormReport` from an already-decoded JSON value."""
    top = _object(value, "report", _TOP)
    for key in ("review_framework_version", "device", "audit"):
        if key not in top:
            raise MalformedReport(f"report lacks {key!r}")
    device_obj = _object(top["device"], "device", _DEVICE)
    audit_obj = _object(top["audit"], "audit", _AUDIT)
    _jwt_text_claims(top, limits)
    manifest, raw_manifest = _manifest(device_obj, limits)
    device = Device(
        vendor=_text(device_obj, "vendor", "device", limits),
        product=_text(device_obj, "product", "device", limits),
        fw_version=_text(device_obj, "fw_version", "device", limits),
        category=_opt_text(device_obj, "category", "device", limits),
        repo_tag=_opt_text(device_obj, "repo_tag", "device", limits),
        fw_hash_sha2_384=_hash_member(device_obj, "fw_hash_sha2_384", 48),
        fw_hash_sha2_512=_hash_member(device_obj, "fw_hash_sha2_512", 64),
        manifest=manifest,
        class_id=_opt_text(device_obj, "class_id", "device", limits),
    )
    device = dataclasses.replace(device, manifest_matches=_manifest_matches(device, raw_manifest))
    cvss_version = _text(audit_obj, "cvss_version", "audit", limits)
    raw_issues = audit_obj.get("issues")
    if not isinstance(raw_issues, list):
        raise MalformedReport("audit.issues must be an array")
    if len(raw_issues) > limits.max_issues:
        raise LimitExceeded(f"{len(raw_issues)} issues exceed {limits.max_issues}")
    audit = Audit(
        srp=_text(audit_obj, "srp", "audit", limits),
        methodology=_text(audit_obj, "methodology", "audit", limits),
        completion_date=parse_date(
            _text(audit_obj, "completion_date", "audit", limits), "audit.completion_date"
        ),
        report_version=_text(audit_obj, "report_version", "audit", limits),
        scope=_scope(audit_obj, limits),
        cvss_version=cvss_version,
        solid_version=_opt_text(audit_obj, "solid_ver", "audit", limits),
        issues=tuple(_issue(x, i, cvss_version, limits) for i, x in enumerate(raw_issues)),
    )
    return ShortFormReport(
        review_framework_version=_text(top, "review_framework_version", "report", limits),
        device=device,
        audit=audit,
        issued_at=_numeric_date(top, "iat"),
        expires_at=_numeric_date(top, "exp"),
        not_before=_numeric_date(top, "nbf"),
    )


def parse_report_json(data: bytes, limits: SafeLimits = DEFAULT_SAFE_LIMITS) -> ShortFormReport:
    """Parse an unsigned JSON report; every fault is ``MalformedReport`` (or ``LimitExceeded``)."""
    return parse_report_object(load_json(data, limits), limits)
