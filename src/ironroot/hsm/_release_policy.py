"""Key release policies: CEL, or the Azure Key Vault release-policy JSON grammar, over EAR claims.

A release policy is text stored with the key (in the HSM, bound into the key's attestation).
:func:`parse_release_policy` turns it into a compiled policy once; :meth:`evaluate` then
decides one release against a :class:`ReleaseContext` and returns ``None`` or raises
``ReleaseDenied``. Text whose first non-blank character is ``{`` (or ``[``) is the Azure JSON
grammar; anything else is a CEL expression. Empty, oversized or malformed text raises
``InvalidReleasePolicy`` when it is parsed, so a key carrying it can never be released; so
does a CEL expression that may cost too much to evaluate, or whose operators nest deeper than
the stack is trusted to hold (:func:`ironroot._cel.refuse_deep`, read before it is compiled).

**The claims** (:func:`release_claims`) are the EAR's JSON claims (``eat_profile``, ``iat``,
``exp``, ``eat_nonce``, ``ear.verifier-id``, ``submods``; bytes as base64url) plus, for the
submodule whose evidence binds the release:

====================  ================================================================
``ear.status``        the EAR's overall status (the worst of its submodules)
``status``            the same, for CEL
``submod``            the label of the binding submodule (the evidence format)
``trust_vector``      its AR4SI vector, ``{category: code}``
``evidence``          its evidence claims (``format``, ``measurements`` and
                      ``report_data`` as hex, ``svns``, ``identity``, ``debug``, ``signer``)
``verifier``          ``{"developer", "build"}`` of the verifier software
``authority``         the configured name of the verifier key that signed the EAR
``wrapping_key``      the kind of the TEE's wrapping key the key will be wrapped to
                      (``ML-KEM-768``, ``ML-KEM-1024``, ``RSA-3072``, ``RSA-4096``): the
                      TEE picks it, so a key that must not travel under less than its own
                      strength says so here (``wrapping_key == "ML-KEM-1024"``)
``gpus``              the GPU submodules of a composite EAR (exactly ``cvm``,
                      ``gpu0`` … ``gpu{n-1}``: :func:`composite_gpu_count`; none
                      for any other EAR, whose GPUs nothing binds), in order:
                      ``{"submod", "status", "trust_vector", "driver_version",
                      "vbios_version", "driver"}``; ``driver`` is the
                      driver version as a number, major·10⁶ + minor·10³ + patch
                      (``550.90.07`` → ``550090007``; 0 when unknown)
``gpu_count``         how many GPU submodules the EAR has
``gpus_affirming``    every GPU submodule is affirming (``false`` when there is none)
``min_gpu_driver``    the lowest ``driver`` of the GPUs (0 when there is none)
====================  ================================================================

**CEL** sees the variables ``claims`` (everything above), ``status``, ``submod``,
``trust_vector``, ``evidence``, ``verifier``, ``authority``, ``wrapping_key``, ``iat``,
``exp``, ``gpus``, ``gpu_count``, ``gpus_affirming`` and ``min_gpu_driver``, and the
iteration variable of a comprehension macro inside it
(``gpus.all(g, g.status == "affirming")``). An expression naming any other variable is
malformed (a typo must not silently reject everything at run time), and so is a macro's
variable read outside that macro (:func:`ironroot._cel.free_variables`). It must evaluate
to ``true``: ``false`` or an evaluation error (a missing claim) denies; a value that is not
a boolean means a malformed policy, refused when it is parsed if the expression reads no
variable (``"yes"``, ``1``, ``[true]``: :mod:`ironroot._cel`), else when it is evaluated.

**The Azure grammar** (Azure Key Vault secure key release policy, version 1.0.0)::

    policy    = {"version": "1.0.0", "anyOf": [authority, ...]}          (one or more)
    authority = {"authority": text, ("allOf" | "anyOf"): [condition, ...]}
    condition = {"claim": path, operator: value} | {"allOf": [...]} | {"anyOf": [...]}
    operator  = equals | notEquals | less | lessOrEquals | greater | greaterOrEquals | exists

``anyof``/``allof`` (the spelling of Microsoft's EBNF) are accepted as well; no other member is.
A release passes when some authority block names the verifier that signed the EAR (its
configured name, or its key id as unpadded base64url) and its condition holds; a name is never
shaped like a key id (43 base64url characters): one that is matches as no name, so a key
installed under another key's id never passes a policy pinned to that id. Claim paths are
dotted; because EAR claim names contain dots themselves (``ear.status``), each step takes the
longest run of segments that names a member (``submods.ironroot.ear.status`` →
``submods`` / ``ironroot`` / ``ear.status``); a segment of ASCII decimal digits indexes an
array (no other segment does: ``gpus.²`` or ``gpus.١`` is an absent claim). Comparison is
exact and typed: ``equals`` compares strings case-sensitively, numbers by value and booleans
only with booleans; ordering operators take numbers only (a non-number claim fails them);
``notEquals`` of an absent claim fails (closed); ``exists`` takes ``true`` or ``false``.

The grammar is evaluated by hand: no library implements it (it is Azure's own), and it is
small enough to check completely at load.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ironroot._cel import free_variables, refuse_costly, refuse_deep, refuse_non_boolean
from ironroot.ear import Appraisal, AttestationResult
from ironroot.errors import InvalidReleasePolicy, ReleaseDenied

__all__ = [
    "CEL_VARIABLES",
    "MAX_POLICY_BYTES",
    "AzureReleasePolicy",
    "CelReleasePolicy",
    "PolicyCache",
    "ReleaseContext",
    "ReleasePolicy",
    "composite_gpu_count",
    "driver_number",
    "looks_like_key_id",
    "parse_release_policy",
    "release_claims",
]

MAX_POLICY_BYTES: Final = 64 * 1024
# The CEL parser panics (a BaseException, past ``except ValueError``) when it reports a syntax
# error at a column past 65,534, which a text of 64 KiB can reach.
_MAX_CEL_CHARS: Final = 65534
_MAX_DEPTH: Final = 16
_MAX_CONDITIONS: Final = 1024
_AZURE_VERSION: Final = "1.0.0"
_OPERATORS: Final = (
    "equals",
    "notEquals",
    "less",
    "lessOrEquals",
    "greater",
    "greaterOrEquals",
    "exists",
)
_ORDERING: Final = frozenset(("less", "lessOrEquals", "greater", "greaterOrEquals"))
_ANY: Final = ("anyOf", "anyof")
_ALL: Final = ("allOf", "allof")
CEL_VARIABLES: Final = frozenset(
    (
        "claims",
        "status",
        "submod",
        "trust_vector",
        "evidence",
        "verifier",
        "authority",
        "wrapping_key",
        "iat",
        "exp",
        "gpus",
        "gpu_count",
        "gpus_affirming",
        "min_gpu_driver",
    )
)
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_DRIVER_VERSION: Final = re.compile(r"([0-9]{1,3})(?:\.([0-9]{1,3}))?(?:\.([0-9]{1,3}))?")


# --- the claims a policy sees ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Deep copy into dicts, lists and scalars (CEL and JSON take nothing else)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ReleaseContext:
    """What a release policy decides on: the claims view and the names of the authority (the
    verifier key) that signed the EAR."""

    claims: Mapping[str, Any]
    authorities: frozenset[str]

    @property
    def authority(self) -> str:
        """The configured name of the authority (for CEL's ``authority``)."""
        return str(self.claims.get("authority", ""))


def release_claims(
    result: AttestationResult,
    submod: str,
    *,
    authority: str,
    kid: str = "",
    wrapping_key: str = "",
) -> ReleaseContext:
    """The claims view of ``result`` for its submodule ``submod`` (see the module docs);
    ``authority`` is the verifier key's configured name, ``kid`` its key id (base64url),
    ``wrapping_key`` the kind of the wrapping key of the release."""
    appraisal: Appraisal = result.submods[submod]
    claims = result.to_json_claims()  # fresh dicts; only the appraisal's maps are proxies
    status = result.status.value
    claims.update(
        {
            "ear.status": status,
            "status": status,
            "submod": submod,
            "trust_vector": dict(appraisal.trust_vector),
            "evidence": _plain(appraisal.evidence or {}),
            "verifier": {
                "developer": result.verifier_id.developer,
                "build": result.verifier_id.build,
            },
            "authority": authority,
            "wrapping_key": wrapping_key,
        }
    )
    gpus = _gpus(result)
    claims.update(
        {
            "gpus": gpus,
            "gpu_count": len(gpus),
            "gpus_affirming": bool(gpus) and all(g["status"] == "affirming" for g in gpus),
            "min_gpu_driver": min((g["driver"] for g in gpus), default=0),
        }
    )
    claims.setdefault("exp", 0)
    # A name shaped like a key id matches no policy as a name: else a key installed under
    # another key's id would pass the policies that pin that key by its id.
    names = frozenset(n for n in (authority if not looks_like_key_id(authority) else "", kid) if n)
    return ReleaseContext(claims=claims, authorities=names)


def looks_like_key_id(name: str) -> bool:
    """Whether ``name`` has the shape of a verifier key id (an RFC 9679 SHA-256 thumbprint as
    unpadded base64url: 43 characters), which an Azure-grammar ``authority`` may name. A
    verifier's configured name must not have it, so the two never meet."""
    return bool(_KEY_ID.fullmatch(name))


def driver_number(version: object) -> int:
    """A GPU driver version as a number (major·10⁶ + minor·10³ + patch), 0 when unknown."""
    found = _DRIVER_VERSION.fullmatch(version) if isinstance(version, str) else None
    if found is None:
        return 0
    major, minor, patch = (int(part or 0) for part in found.groups())
    return major * 1_000_000 + minor * 1_000 + patch


def composite_gpu_count(result: AttestationResult) -> int | None:
    """``n`` when ``result`` is a composite EAR (submodules exactly ``cvm``, ``gpu0`` …
    ``gpu{n-1}``), else ``None``."""
    labels = set(result.submods)
    if "cvm" not in labels:
        return None
    count = len(labels) - 1
    return count if labels == {"cvm", *(f"gpu{i}" for i in range(count))} else None


def _gpus(result: AttestationResult) -> list[dict[str, Any]]:
    """The GPUs of a composite EAR, in order; none of any other EAR (its GPU submodules,
    whatever their labels, are bound to no release)."""
    out: list[dict[str, Any]] = []
    count = composite_gpu_count(result)
    for index in range(count or 0):
        label = f"gpu{index}"
        appraisal = result.submods[label]
        identity = (appraisal.evidence or {}).get("identity")
        identity = identity if isinstance(identity, Mapping) else {}
        version = identity.get("driver_version")
        out.append(
            {
                "submod": label,
                "status": appraisal.status.value,
                "trust_vector": dict(appraisal.trust_vector),
                "driver_version": version if isinstance(version, str) else "",
                "vbios_version": str(identity.get("vbios_version") or ""),
                "driver": driver_number(version),
            }
        )
    return out


# --- CEL -----------------------------------------------------------------------------------


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidReleasePolicy("a release policy is text")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise InvalidReleasePolicy(f"a release policy is at most {MAX_POLICY_BYTES} bytes")
    if not text.strip():
        raise InvalidReleasePolicy("the release policy is empty: it would reject every release")
    return text


@dataclass(frozen=True, slots=True)
class CelReleasePolicy:
    """A compiled CEL release policy."""

    text: str
    _program: Any = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> CelReleasePolicy:
        text = _check_text(text)
        if len(text) > _MAX_CEL_CHARS:
            raise InvalidReleasePolicy(
                f"a CEL release policy is at most {_MAX_CEL_CHARS} characters"
            )
        refuse_deep(text, "the release policy", InvalidReleasePolicy)  # before it is compiled
        try:
            import cel  # here: the package loads a REPL stack when imported

            program = cel.compile(text)
            variables = free_variables(program)
        except (ValueError, RuntimeError) as exc:
            raise InvalidReleasePolicy(
                f"the release policy is not valid CEL: {' '.join(str(exc).split())}"
            ) from exc
        unknown = variables - CEL_VARIABLES
        if unknown:
            raise InvalidReleasePolicy(
                f"the release policy names unknown variables: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(CEL_VARIABLES))})"
            )
        refuse_costly(program, "the release policy", InvalidReleasePolicy)
        refuse_non_boolean(program, "the release policy", InvalidReleasePolicy)
        return cls(text, program)

    @property
    def kind(self) -> str:
        return "cel"

    def evaluate(self, context: ReleaseContext) -> None:
        claims = context.claims
        variables = {
            "claims": dict(claims),
            "status": claims.get("status", ""),
            "submod": claims.get("submod", ""),
            "trust_vector": claims.get("trust_vector", {}),
            "evidence": claims.get("evidence", {}),
            "verifier": claims.get("verifier", {}),
            "authority": context.authority,
            "wrapping_key": claims.get("wrapping_key", ""),
            "iat": claims.get("iat", 0),
            "exp": claims.get("exp", 0),
            "gpus": claims.get("gpus", []),
            "gpu_count": claims.get("gpu_count", 0),
            "gpus_affirming": claims.get("gpus_affirming", False),
            "min_gpu_driver": claims.get("min_gpu_driver", 0),
        }
        try:
            outcome = self._program.execute(variables)
        except Exception as exc:  # the CEL runtime raises several kinds; fail closed
            raise ReleaseDenied(
                f"the release policy could not be evaluated over these claims: {exc}",
                code="policy-claims",
            ) from exc
        if not isinstance(outcome, bool):
            raise InvalidReleasePolicy(
                f"the release policy evaluated to {type(outcome).__name__}, not a boolean"
            )
        if not outcome:
            raise ReleaseDenied(
                "the attestation result does not satisfy the key's release policy",
                code="policy-claims",
            )


# --- the Azure Key Vault grammar ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claim:
    path: str
    operator: str
    value: str | int | float | bool

    def describe(self) -> str:
        return f"{self.path} {self.operator} {json.dumps(self.value)}"


@dataclass(frozen=True, slots=True)
class _Group:
    all: bool
    conditions: tuple[_Claim | _Group, ...]


@dataclass(frozen=True, slots=True)
class _Authority:
    authority: str
    condition: _Group


_MISSING: Final = object()


def _resolve(claims: Any, path: str, longest: dict[int, int]) -> Any:
    """The claim at a dotted ``path``: each step takes the longest run of segments naming a
    member (claim names such as ``ear.status`` contain dots). The runs are built one segment
    at a time, up to the longest member name of the map (``longest``: by map, for one
    evaluation): a step costs what its map's names do, not the square of the path's length."""
    parts = path.split(".")
    node = claims
    i = 0
    while i < len(parts):
        if isinstance(node, Mapping):
            most = longest.get(id(node))
            if most is None:
                most = max((len(k) for k in node if isinstance(k, str)), default=0)
                longest[id(node)] = most
            found, key = 0, ""
            for j in range(i, len(parts)):
                key = f"{key}.{parts[j]}" if j > i else parts[j]
                if len(key) > most:
                    break
                if key in node:
                    found = j + 1
            if not found:
                return _MISSING
            node = node[".".join(parts[i:found])]
            i = found
        elif isinstance(node, list) and _is_index(parts[i]):
            index = int(parts[i])
            if index >= len(node):
                return _MISSING
            node = node[index]
            i += 1
        else:
            return _MISSING
    return node


def _is_index(segment: str) -> bool:
    """Whether a path segment indexes an array: ASCII decimal digits only (``str.isdigit``
    holds for ``²``, which ``int`` refuses, and for ``١`` and ``１``, which ``int`` reads as
    1), at most six of them."""
    return 0 < len(segment) <= 6 and segment.isascii() and segment.isdigit()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite_number(value: object) -> bool:
    """A number a policy may compare with: a float that is finite, an int within 64 bits
    (``math.isfinite`` of a larger int overflows)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**64
    return isinstance(value, float) and math.isfinite(value)


def _equal(actual: Any, expected: str | int | float | bool) -> bool:
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual is expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return _is_number(actual) and actual == expected


def _holds(claim: _Claim, claims: Mapping[str, Any], longest: dict[int, int]) -> bool:
    actual = _resolve(claims, claim.path, longest)
    op, expected = claim.operator, claim.value
    if op == "exists":
        return (actual is not _MISSING) is expected
    if actual is _MISSING:
        return False
    if op == "equals":
        return _equal(actual, expected)
    if op == "notEquals":
        return not _equal(actual, expected)
    if not _is_number(actual):
        return False
    assert _is_number(expected)  # checked at parse
    if op == "less":
        return bool(actual < expected)
    if op == "lessOrEquals":
        return bool(actual <= expected)
    if op == "greater":
        return bool(actual > expected)
    return bool(actual >= expected)


def _first_failure(
    node: _Claim | _Group, claims: Mapping[str, Any], longest: dict[int, int]
) -> str | None:
    """``None`` when ``node`` holds, else a description of (the first) condition that fails."""
    if isinstance(node, _Claim):
        return None if _holds(node, claims, longest) else node.describe()
    failures = []
    for child in node.conditions:
        failure = _first_failure(child, claims, longest)
        if node.all and failure is not None:
            return failure
        if not node.all and failure is None:
            return None
        failures.append(failure)
    if node.all:
        return None
    return "none of: " + "; ".join(f for f in failures if f)


class _Parser:
    """Checks the whole grammar at load; counts conditions so a policy stays small."""

    def __init__(self) -> None:
        self.count = 0

    def _members(self, node: object, where: str) -> Mapping[str, Any]:
        if not isinstance(node, dict):
            raise InvalidReleasePolicy(f"{where} must be a JSON object")
        self.count += 1
        if self.count > _MAX_CONDITIONS:
            raise InvalidReleasePolicy(f"a release policy has at most {_MAX_CONDITIONS} conditions")
        return node

    def _group_key(self, node: Mapping[str, Any], where: str) -> tuple[str, bool] | None:
        keys = [k for k in node if k in _ANY or k in _ALL]
        if not keys:
            return None
        if len(keys) > 1:
            raise InvalidReleasePolicy(f"{where} has more than one of anyOf / allOf")
        return keys[0], keys[0] in _ALL

    def group(self, items: object, all_: bool, where: str, depth: int) -> _Group:
        if depth > _MAX_DEPTH:
            raise InvalidReleasePolicy(f"a release policy nests at most {_MAX_DEPTH} levels")
        if not isinstance(items, list) or not items:
            raise InvalidReleasePolicy(f"{where} must be a non-empty array of conditions")
        return _Group(
            all_,
            tuple(self.condition(c, f"{where}[{i}]", depth + 1) for i, c in enumerate(items)),
        )

    def condition(self, node: object, where: str, depth: int) -> _Claim | _Group:
        members = self._members(node, where)
        group = self._group_key(members, where)
        if group is not None:
            if len(members) != 1:
                raise InvalidReleasePolicy(f"{where}: an anyOf/allOf condition has no other member")
            key, all_ = group
            return self.group(members[key], all_, f"{where}.{key}", depth)
        if "claim" not in members:
            raise InvalidReleasePolicy(f"{where} is neither a claim condition nor anyOf / allOf")
        path = members["claim"]
        if not isinstance(path, str) or not path or len(path) > 1024:
            raise InvalidReleasePolicy(f"{where}.claim must be a claim name")
        if any(not part for part in path.split(".")):
            raise InvalidReleasePolicy(f"{where}.claim {path!r} has an empty path segment")
        operators = [k for k in members if k != "claim"]
        if len(operators) != 1 or operators[0] not in _OPERATORS:
            raise InvalidReleasePolicy(
                f"{where} needs exactly one operator ({', '.join(_OPERATORS)}), "
                f"has {', '.join(operators) or 'none'}"
            )
        op = operators[0]
        value = members[op]
        if op == "exists":
            if not isinstance(value, bool):
                raise InvalidReleasePolicy(f"{where}: exists takes true or false")
        elif op in _ORDERING:
            if not _finite_number(value):
                raise InvalidReleasePolicy(f"{where}: {op} compares with a number")
        elif not isinstance(value, str | bool) and not _finite_number(value):
            raise InvalidReleasePolicy(f"{where}: {op} takes a string, number, true or false")
        return _Claim(path, op, value)

    def authority(self, node: object, where: str) -> _Authority:
        members = self._members(node, where)
        name = members.get("authority")
        if not isinstance(name, str) or not name.strip():
            raise InvalidReleasePolicy(f"{where}.authority must name the attestation authority")
        group = self._group_key(members, where)
        if group is None or len(members) != 2:
            raise InvalidReleasePolicy(f"{where} needs authority and exactly one anyOf / allOf")
        key, all_ = group
        return _Authority(name, self.group(members[key], all_, f"{where}.{key}", 1))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidReleasePolicy(f"JSON member {key!r} appears twice")
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise InvalidReleasePolicy(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class AzureReleasePolicy:
    """A parsed Azure Key Vault release policy (version 1.0.0)."""

    text: str
    authorities: tuple[_Authority, ...] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> AzureReleasePolicy:
        text = _check_text(text)
        try:
            document = json.loads(
                text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
            )
        except (ValueError, RecursionError) as exc:
            raise InvalidReleasePolicy(f"the release policy is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise InvalidReleasePolicy("an Azure release policy is a JSON object")
        if set(document) != {"version", "anyOf"}:
            raise InvalidReleasePolicy("an Azure release policy has exactly version and anyOf")
        if document["version"] != _AZURE_VERSION:
            raise InvalidReleasePolicy(
                f"release policy version {document['version']!r} is not {_AZURE_VERSION!r}"
            )
        blocks = document["anyOf"]
        if not isinstance(blocks, list) or not blocks:
            raise InvalidReleasePolicy("anyOf must list at least one authority")
        parser = _Parser()
        authorities = tuple(parser.authority(b, f"anyOf[{i}]") for i, b in enumerate(blocks))
        return cls(text, authorities)

    @property
    def kind(self) -> str:
        return "azure"

    def evaluate(self, context: ReleaseContext) -> None:
        reasons = []
        longest: dict[int, int] = {}  # the longest member name of each map, as it is read
        for block in self.authorities:
            if block.authority not in context.authorities:
                reasons.append(f"{block.authority}: not the authority that signed the EAR")
                continue
            failure = _first_failure(block.condition, context.claims, longest)
            if failure is None:
                return
            reasons.append(f"{block.authority}: {failure}")
        raise ReleaseDenied(
            "the attestation result does not satisfy the key's release policy ("
            + " | ".join(reasons)
            + ")",
            code="policy-claims",
        )


ReleasePolicy = CelReleasePolicy | AzureReleasePolicy


def parse_release_policy(text: str) -> ReleasePolicy:
    """Compile a release policy (Azure JSON when it starts with ``{`` or ``[``, else CEL).

    Raises ``InvalidReleasePolicy`` for empty, oversized or malformed text.
    """
    text = _check_text(text)
    if text.lstrip()[:1] in ("{", "["):
        return AzureReleasePolicy.parse(text)
    return CelReleasePolicy.parse(text)


class PolicyCache:
    """Compiled policies by the SHA-256 of their text (each text is compiled once; a malformed
    one is remembered as such). Bounded; safe to share between threads."""

    __slots__ = ("_entries", "_lock", "_max")

    def __init__(self, max_entries: int = 1024) -> None:
        self._entries: OrderedDict[bytes, ReleasePolicy | InvalidReleasePolicy] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, text: str) -> ReleasePolicy:
        """The compiled policy for ``text``, or raise ``InvalidReleasePolicy``."""
        if not isinstance(text, str):
            raise InvalidReleasePolicy("a release policy is text")
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            entry = self._entries.get(digest)
        if entry is None:
            try:
                entry = parse_release_policy(text)
            except InvalidReleasePolicy as exc:
                entry = exc
            with self._lock:
                self._entries[digest] = entry
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        if isinstance(entry, InvalidReleasePolicy):
            raise InvalidReleasePolicy(entry.detail)
        return entry

    def compile_all(self, texts: Sequence[str]) -> None:
        """Compile ahead of time (errors are remembered and raised at release)."""
        for text in texts:
            try:
                self.get(text)
            except InvalidReleasePolicy:
                continue
