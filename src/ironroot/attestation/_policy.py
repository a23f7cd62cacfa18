"""Appraisal policies: named CEL checks, each tied to an AR4SI trust-vector claim.

A policy is data: a list of rules and a few per-format settings, written in TOML (or given as
a mapping) and compiled once. Each :class:`PolicyRule` has a CEL ``expression`` that must be
``true`` for the evidence to pass, the trust-vector ``category`` and AR4SI ``code`` it sets when
it is not (false, not a boolean, or an evaluation error: failing closed), and a ``reason``
line, where ``{name}`` is replaced by the context variable ``name``. A rule that reads no
variable and is not a boolean (``"yes"``), or that names a variable not listed below (a typo:
``min_snv``), is refused when the policy is compiled (``ConfigError``, :mod:`ironroot._cel`).
A ``gate`` rule (the evidence chains to a trusted root; it is fresh) must pass before any
category is affirmed.

The variables every rule can read are built by :mod:`ironroot.attestation._appraise` and listed
in ``docs/attestation.md``: ``format``, ``measurements``, ``svns``, ``identity``, ``debug``,
``report_data``, ``signer``, ``raw``, ``components``, ``unmatched``, ``svn``, ``min_svn``,
``root``, ``root_trusted``, ``nonce_ok``, ``firmware_hash``, ``reviews``, ``worst_cvss``,
``cvss_threshold``, ``tcb_status``, ``anti_rollback_disabled``, ``vmpl``, ``snp_vmpls``,
``migration_agent``, and ``checks`` and ``not_checked`` (what the evidence's verification
checked and did not).

All rules are compiled into one CEL program returning a map of booleans, so a whole policy is
one evaluation; only when that raises are the rules evaluated one by one to find which failed.
A policy remembers the outcomes of its last evaluations (:data:`_RESULTS` of them) by the exact
values its rules read (each value's type, a float's bits, every list's and map's order: what
the CEL runtime is handed), when all are plain JSON-like values and none is one evidence
carries alone (``raw``, ``identity``…): the nodes of a fleet hand it the same few contexts, and
a pure program's outcome for the same inputs is the same.
An empty policy is refused (``ConfigError``): it would reject everything, silently.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, cast

from ironroot._cel import free_variables, refuse_costly, refuse_deep, refuse_non_boolean
from ironroot._memo import Memo
from ironroot.attestation.evidence import EVIDENCE_FORMATS
from ironroot.ear import AR4SI, TRUST_CATEGORIES, TrustTier, tier_of
from ironroot.errors import ConfigError

__all__ = ["DEFAULT_POLICY", "AppraisalPolicy", "PolicyRule", "RuleFailure"]

_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_PLACEHOLDER: Final = re.compile(r"\{([a-z_]+)\}")
_MAX_RULES: Final = 64
_MAX_EXPRESSION: Final = 4096
# The variables ``_appraise._context`` gives every rule (module docs); a rule naming any other
# is refused when the policy is compiled.
_CEL_VARIABLES: Final = frozenset(
    (
        "format",
        "measurements",
        "svns",
        "identity",
        "debug",
        "report_data",
        "signer",
        "checks",
        "not_checked",
        "raw",
        "components",
        "unmatched",
        "svn",
        "min_svn",
        "root",
        "root_trusted",
        "nonce_ok",
        "firmware_hash",
        "reviews",
        "worst_cvss",
        "cvss_threshold",
        "tcb_status",
        "anti_rollback_disabled",
        "vmpl",
        "snp_vmpls",
        "migration_agent",
    )
)


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One check: ``expression`` must be true, else ``category`` gets ``code``."""

    name: str
    expression: str
    category: str
    code: int
    reason: str
    gate: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"rule name {self.name!r} must be lower-case letters, digits, - _")
        if not isinstance(self.expression, str) or not 0 < len(self.expression) <= _MAX_EXPRESSION:
            raise ConfigError(
                f"rule {self.name}: the expression must be 1..{_MAX_EXPRESSION} characters"
            )
        if self.category not in TRUST_CATEGORIES:
            raise ConfigError(f"rule {self.name}: unknown trust vector category {self.category!r}")
        code = self.code
        if isinstance(code, bool) or not isinstance(code, int) or not -128 <= code <= 127:
            raise ConfigError(f"rule {self.name}: code must be an integer -128..127")
        if tier_of(code) is TrustTier.AFFIRMING:
            raise ConfigError(f"rule {self.name}: a failure code cannot be in the affirming tier")
        if tier_of(code) is TrustTier.NONE:  # -1..1 lower no status: the rule would not count
            raise ConfigError(
                f"rule {self.name}: a failure code cannot be in the none tier (-1..1): "
                "use a warning (32..95) or contraindicated (96..127) code"
            )
        if not isinstance(self.reason, str) or not self.reason:
            raise ConfigError(f"rule {self.name}: a reason line is required")


@dataclass(frozen=True, slots=True)
class RuleFailure:
    """A rule that did not pass, with its reason line filled in."""

    rule: PolicyRule
    reason: str


_RESULTS: Final = 256
"""How many outcomes of its combined program a policy remembers (module docs)."""
_UNSHARED: Final = frozenset(
    ("raw", "identity", "measurements", "report_data", "checks", "not_checked", "svns")
)
"""Variables whose values one piece of evidence carries alone: a policy reading one is not
memoized (every key would be new)."""


class _Unkeyable(Exception):
    """A value :func:`_inputs_key` does not key (not one of the exact types it tells apart)."""


def _frozen(value: object) -> object:
    """``value`` as a hashable key that two values share only when the CEL runtime is handed
    the same thing: the exact type with each value (``True`` is not ``1``, ``1`` not ``1.0``),
    a float by its bits (``-0.0`` is not ``0.0``), lists and maps in their order."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or kind is bytes or value is None:
        return (kind, value)
    if kind is float:
        return (kind, cast(float, value).hex())
    if kind is list or kind is tuple:
        return (kind, tuple(_frozen(v) for v in cast(Sequence[object], value)))
    if kind is dict:
        items = cast(dict[object, object], value).items()
        return (kind, tuple((_frozen(k), _frozen(v)) for k, v in items))
    raise _Unkeyable


def _inputs_key(inputs: Mapping[str, object]) -> tuple[object, ...] | None:
    """The memo key of a policy's CEL inputs (variable name and :func:`_frozen` value, in
    order); ``None`` when a value is not keyed."""
    try:
        return tuple((name, _frozen(value)) for name, value in inputs.items())
    except _Unkeyable:
        return None


def _format_value(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fill_reason(template: str, context: Mapping[str, Any]) -> str:
    """``template`` with each ``{name}`` replaced by the context variable ``name``."""
    return _PLACEHOLDER.sub(
        lambda m: _format_value(context[m.group(1)]) if m.group(1) in context else m.group(0),
        template,
    )


_RULE_SETTINGS: Final = frozenset(("name", "expression", "category", "code", "reason", "gate"))
"""What a rule table of a policy file holds (``to_mapping`` writes each of them)."""


def _tiers_ok(mapping: Mapping[str, int], where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for category, code in mapping.items():
        if category not in TRUST_CATEGORIES:
            raise ConfigError(f"{where}: unknown trust vector category {category!r}")
        if isinstance(code, bool) or not isinstance(code, int):
            raise ConfigError(f"{where}: {category} must be an integer code")
        if tier_of(code) is not TrustTier.AFFIRMING:
            raise ConfigError(f"{where}: {category} = {code} is not an affirming code")
        out[category] = code
    return out


def _per_format(value: object, where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must map evidence formats to lists of names")
    out: dict[str, tuple[str, ...]] = {}
    for fmt, names in value.items():
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.{fmt} must be a list of names")
        out[str(fmt)] = tuple(names)
    return out


def _text_map(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where} must map evidence formats to names")
    return {str(k): v for k, v in value.items()}


@dataclass(frozen=True)
class AppraisalPolicy:
    """A compiled appraisal policy (see the module documentation).

    ``components``: per format, the measurements that must each equal a logged reference
    value. ``svn_claim``: per format, the ``svns`` entry compared with the logged minimum.
    ``firmware_hash``: per format, the SHA-384 measurement SAFE reviews are looked up by.
    ``affirm`` / ``affirm_by_format``: the affirming code each category gets when none of its
    rules failed (and every gate passed).
    """

    name: str
    rules: tuple[PolicyRule, ...]
    affirm: Mapping[str, int]
    affirm_by_format: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    components: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    svn_claim: Mapping[str, str] = field(default_factory=dict)
    firmware_hash: Mapping[str, str] = field(default_factory=dict)
    cvss_threshold: float = 7.0
    snp_vmpls: tuple[int, ...] = (0,)
    _program: Any = field(default=None, init=False, repr=False, compare=False)
    _programs: Mapping[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    policy_id: str = field(default="", init=False)
    variables: frozenset[str] = field(default=frozenset(), init=False, compare=False)
    _results: Memo[tuple[object, ...], Mapping[str, bool]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.rules:
            raise ConfigError("an appraisal policy needs at least one rule")
        if len(self.rules) > _MAX_RULES:
            raise ConfigError(f"an appraisal policy has at most {_MAX_RULES} rules")
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ConfigError("rule names must be unique")
        if not _NAME.fullmatch(self.name):
            raise ConfigError(f"policy name {self.name!r} must be lower-case letters, digits, -")
        threshold = self.cvss_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise ConfigError("cvss_threshold must be a number")
        if not 0.0 <= threshold <= 10.0:  # not float() first: an int past a double overflows
            raise ConfigError("cvss_threshold must be 0.0..10.0")
        vmpls = self.snp_vmpls
        if (
            not isinstance(vmpls, list | tuple)
            or not vmpls
            or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 3 for v in vmpls
            )
        ):
            raise ConfigError("snp_vmpls must list the VMPLs (0..3) an SEV-SNP report may name")
        set_ = object.__setattr__
        set_(self, "snp_vmpls", tuple(sorted(set(vmpls))))
        set_(self, "cvss_threshold", float(threshold))
        set_(self, "rules", tuple(self.rules))
        set_(self, "affirm", MappingProxyType(_tiers_ok(self.affirm, "affirm")))
        set_(
            self,
            "affirm_by_format",
            MappingProxyType(
                {
                    fmt: MappingProxyType(_tiers_ok(m, f"affirm_by_format.{fmt}"))
                    for fmt, m in self.affirm_by_format.items()
                }
            ),
        )
        set_(self, "components", MappingProxyType(_per_format(self.components, "components")))
        set_(self, "svn_claim", MappingProxyType(_text_map(self.svn_claim, "svn_claim")))
        set_(
            self,
            "firmware_hash",
            MappingProxyType(_text_map(self.firmware_hash, "firmware_hash")),
        )
        programs: dict[str, Any] = {}
        for rule in self.rules:
            refuse_deep(rule.expression, f"rule {rule.name}", ConfigError)  # before compiling
            try:
                import cel  # here: the package loads a REPL stack when imported

                programs[rule.name] = cel.compile(rule.expression)
                unknown = free_variables(programs[rule.name]) - _CEL_VARIABLES
            except (ValueError, RuntimeError) as exc:
                raise ConfigError(
                    f"rule {rule.name}: not valid CEL: {' '.join(str(exc).split())}"
                ) from exc
            if unknown:
                raise ConfigError(
                    f"rule {rule.name} names unknown variables: {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(sorted(_CEL_VARIABLES))})"
                )
            refuse_costly(programs[rule.name], f"rule {rule.name}", ConfigError)
            refuse_non_boolean(programs[rule.name], f"rule {rule.name}", ConfigError)
        # One rule per line, each closed on a line of its own: a rule's // comment ends at its
        # line, and no syntax error lies past column 65,534 (the CEL parser panics there, a
        # BaseException past any except clause; 64 rules of 4,096 characters reach it).
        combined = "{\n" + ",\n".join(f'"{r.name}": ({r.expression}\n)' for r in self.rules) + "\n}"
        try:
            set_(self, "_program", cel.compile(combined))
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(f"the policy's rules do not combine: {exc}") from exc
        refuse_costly(self._program, "the policy's rules together", ConfigError)
        set_(self, "_programs", MappingProxyType(programs))
        set_(self, "variables", free_variables(self._program))
        if not self.variables & _UNSHARED:
            set_(self, "_results", Memo(_RESULTS))
        digest = hashlib.sha256(json.dumps(self.to_mapping(), sort_keys=True).encode()).hexdigest()
        set_(self, "policy_id", f"urn:ironroot:appraisal-policy:{self.name}:{digest[:16]}")

    # --- evaluation -------------------------------------------------------------------

    def evaluate(self, context: Mapping[str, Any]) -> tuple[RuleFailure, ...]:
        """The rules that did not pass for ``context``, in policy order.

        Only the variables the rules read are handed to CEL (:attr:`variables`); the reason
        lines may use any variable of ``context``.
        """
        inputs = {name: context[name] for name in self.variables if name in context}
        key = None if self._results is None else _inputs_key(inputs)
        results = None if key is None else self._results.get(key)  # type: ignore[union-attr]
        if results is None:
            try:
                results = self._program.execute(inputs)
            except Exception:  # the CEL runtime raises several kinds: find the rule, per rule
                results = None
            if key is not None and isinstance(results, Mapping):
                outcomes = dict(results)
                if all(type(v) is bool for v in outcomes.values()):
                    self._results.put(key, MappingProxyType(outcomes))  # type: ignore[union-attr]
        if not isinstance(results, Mapping):
            results = {}
            for rule in self.rules:
                try:
                    results[rule.name] = self._programs[rule.name].execute(inputs)
                except Exception as exc:  # fail closed: an error is a failed check
                    results[rule.name] = exc
        failures = []
        for rule in self.rules:
            outcome = results.get(rule.name)
            if outcome is True:
                continue
            reason = f"{rule.name}: {fill_reason(rule.reason, context)}"
            if isinstance(outcome, Exception):
                reason += f" (the check could not be evaluated: {outcome})"
            failures.append(RuleFailure(rule, reason))
        return tuple(failures)

    def affirmations(self, fmt: str) -> Mapping[str, int]:
        """The affirming codes for evidence of format ``fmt``."""
        return {**self.affirm, **self.affirm_by_format.get(fmt, {})}

    # --- data form --------------------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        """The policy as plain data (the form :meth:`from_mapping` and TOML take)."""
        return {
            "name": self.name,
            "cvss_threshold": self.cvss_threshold,
            "snp_vmpls": list(self.snp_vmpls),
            "rules": [
                {
                    "name": r.name,
                    "expression": r.expression,
                    "category": r.category,
                    "code": r.code,
                    "reason": r.reason,
                    "gate": r.gate,
                }
                for r in self.rules
            ],
            "affirm": dict(self.affirm),
            "affirm_by_format": {k: dict(v) for k, v in self.affirm_by_format.items()},
            "components": {k: list(v) for k, v in self.components.items()},
            "svn_claim": dict(self.svn_claim),
            "firmware_hash": dict(self.firmware_hash),
        }

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base: AppraisalPolicy | None = None
    ) -> AppraisalPolicy:
        """A policy from plain data; settings it leaves out come from ``base`` (default: the
        default policy)."""
        if not isinstance(data, Mapping):
            raise ConfigError("a policy is a table")
        base_map = (base or DEFAULT_POLICY).to_mapping()
        unknown = set(data) - set(base_map)
        if unknown:
            raise ConfigError(f"unknown policy settings: {', '.join(sorted(unknown))}")
        merged = {**base_map, **data}
        rules = merged["rules"]
        if not isinstance(rules, Sequence) or not all(isinstance(r, Mapping) for r in rules):
            raise ConfigError("policy rules must be a list of tables")
        for r in rules:  # a misspelt "gate" would leave the rule no gate: a weaker policy
            where = f"rule {r.get('name', '(unnamed)')}"
            unknown = set(r) - _RULE_SETTINGS
            if unknown:
                raise ConfigError(f"{where}: unknown setting {sorted(map(str, unknown))[0]!r}")
            if not isinstance(r.get("gate", False), bool):
                raise ConfigError(f"{where}: gate must be true or false")
        if not isinstance(merged["name"], str):
            raise ConfigError("policy name must be text")
        try:
            built = [
                PolicyRule(
                    name=r["name"],
                    expression=r["expression"],
                    category=r["category"],
                    code=r["code"],
                    reason=r["reason"],
                    gate=bool(r.get("gate", False)),
                )
                for r in rules
            ]
        except KeyError as exc:
            raise ConfigError(f"a policy rule lacks {exc.args[0]!r}") from exc
        for key in ("affirm", "affirm_by_format"):
            if not isinstance(merged[key], Mapping):
                raise ConfigError(f"policy {key} must be a table")
        for fmt, table in merged["affirm_by_format"].items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"policy affirm_by_format.{fmt} must be a table")
        return cls(
            name=str(merged["name"]),
            rules=tuple(built),
            affirm=merged["affirm"],
            affirm_by_format=merged["affirm_by_format"],
            components=merged["components"],
            svn_claim=merged["svn_claim"],
            firmware_hash=merged["firmware_hash"],
            cvss_threshold=merged["cvss_threshold"],
            snp_vmpls=merged["snp_vmpls"],
        )

    @classmethod
    def from_toml(cls, text: str) -> AppraisalPolicy:
        """A policy from TOML: the mapping of :meth:`from_mapping`, under ``[policy]`` or at
        the top level."""
        try:
            data = tomllib.loads(text)
        # ValueError: TOMLDecodeError is one, and tomllib raises a plain one for an integer
        # past Python's 4,300-digit int() limit.
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"the policy is not TOML: {exc}") from exc
        table = data.get("policy", data)
        return cls.from_mapping(table)


# Intel TCB statuses that mean the platform (or the TD, until relaunched) runs without
# security fixes Intel has released; Revoked is refused before appraisal.
_OUT_OF_DATE_TCB: Final = (
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "TDRelaunchAdvised",
    "TDRelaunchAdvisedConfigurationNeeded",
    "Revoked",
)

SVN_RULE: Final = PolicyRule(
    "svn",
    "svn >= min_svn",
    "executables",
    AR4SI.CONTRAINDICATED_RUNTIME,
    "SVN {svn} is below the logged minimum {min_svn}",
)
"""The default policy's ``svn`` rule. Appraisal applies it under every policy: evidence below
a logged minimum SVN is a rollback whatever rules a policy keeps (``_appraise.appraise``)."""

_DEFAULT_RULES: Final = (
    PolicyRule(
        "chain",
        "root_trusted",
        "instance-identity",
        AR4SI.UNRECOGNIZED_INSTANCE,
        "the evidence does not chain to a trusted vendor root ({root})",
        gate=True,
    ),
    PolicyRule(
        "fresh",
        "nonce_ok",
        "instance-identity",
        AR4SI.UNTRUSTWORTHY_INSTANCE,
        "the evidence does not answer this verifier's nonce (stale or replayed)",
        gate=True,
    ),
    PolicyRule(
        "debug",
        "!debug",
        "configuration",
        AR4SI.UNSUPPORTABLE_CONFIG,
        "debug is enabled (unlocked) or not proven off",
    ),
    PolicyRule(
        "migration-agent",
        "!migration_agent",
        "configuration",
        AR4SI.UNSUPPORTABLE_CONFIG,
        "the guest allows a migration agent (SEV-SNP MIGRATE_MA, TDX MIGRATABLE): the host "
        "chooses it, and it can export the guest's memory",
    ),
    PolicyRule(
        "vmpl",
        "vmpl < 0 || vmpl in snp_vmpls",
        "instance-identity",
        AR4SI.UNTRUSTWORTHY_INSTANCE,
        "the SEV-SNP report was requested at VMPL {vmpl}, this policy accepts VMPL "
        "{snp_vmpls}: less privileged guest software chose its report data",
    ),
    PolicyRule(
        "anti-rollback",
        "!anti_rollback_disabled",
        "configuration",
        AR4SI.UNSAFE_CONFIG,
        "anti-rollback is disabled: the device boots firmware below its fused SVN",
    ),
    PolicyRule(
        "reference-values",
        "unmatched.size() == 0",
        "executables",
        AR4SI.UNRECOGNIZED_RUNTIME,
        "no logged reference value for {unmatched}",
    ),
    SVN_RULE,
    PolicyRule(
        "tcb-status",
        f"!(tcb_status in {json.dumps(list(_OUT_OF_DATE_TCB))})",
        "hardware",
        AR4SI.UNSAFE_HARDWARE,
        "the platform's Intel TCB status is {tcb_status}: it lacks security fixes Intel "
        "has released",
    ),
    PolicyRule(
        "safe-review",
        "reviews.size() > 0",
        "executables",
        AR4SI.UNRECOGNIZED_RUNTIME,
        "no logged OCP SAFE review of firmware {firmware_hash}",
    ),
    PolicyRule(
        "safe-issues",
        "reviews.all(r, r.max_cvss < cvss_threshold)",
        "executables",
        AR4SI.UNSAFE_RUNTIME,
        "a SAFE review of {firmware_hash} lists an open issue with CVSS {worst_cvss} "
        "(threshold {cvss_threshold})",
    ),
)

DEFAULT_POLICY: Final = AppraisalPolicy(
    name="default",
    rules=_DEFAULT_RULES,
    affirm={
        "instance-identity": AR4SI.TRUSTWORTHY_INSTANCE,
        "configuration": AR4SI.APPROVED_CONFIG,
        "executables": AR4SI.APPROVED_RUNTIME,
        "hardware": AR4SI.GENUINE_HARDWARE,
    },
    # Per format, from its row in the one table of evidence formats.
    affirm_by_format={
        name: row.policy.affirm for name, row in EVIDENCE_FORMATS.items() if row.policy.affirm
    },
    components={
        name: row.policy.components
        for name, row in EVIDENCE_FORMATS.items()
        if row.policy.components
    },
    svn_claim={
        name: row.policy.svn_claim
        for name, row in EVIDENCE_FORMATS.items()
        if row.policy.svn_claim is not None
    },
    firmware_hash={
        name: row.policy.firmware_hash
        for name, row in EVIDENCE_FORMATS.items()
        if row.policy.firmware_hash is not None
    },
)
"""The default policy: trusted root, fresh nonce, an SEV-SNP report requested at VMPL 0,
debug off, no SEV-SNP migration agent allowed, anti-rollback on (where the evidence says),
every measured component on the log, SVN at or above the logged minimum, an Intel TCB status
(when collateral gave one) that is not out of date (a warning: hardware 32 unsafe), a logged
SAFE review with no open issue at CVSS 7.0 or above."""
