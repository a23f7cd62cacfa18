"""Release policies: parsing (empty and malformed text is refused at load and at evaluation),
the Azure grammar's operators and paths, CEL variables, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypothesis_budget import examples
from ironroot.errors import InvalidReleasePolicy, ReleaseDenied
from ironroot.keyrelease import (
    AzureReleasePolicy,
    CelReleasePolicy,
    PolicyCache,
    ReleaseContext,
    parse_release_policy,
)

AUTH = "https://verifier.example"
CLAIMS: dict[str, Any] = {
    "ear.status": "affirming",
    "status": "affirming",
    "submods": {"ironroot": {"ear.status": "affirming", "ear.trustworthiness-vector": {}}},
    "evidence": {
        "svns": {"firmware": 5},
        "debug": False,
        "measurements": {"pcr2": "aa"},
        "list": [1, 2],
    },
    "trust_vector": {"instance-identity": 2},
    "authority": AUTH,
}
CONTEXT = ReleaseContext(claims=CLAIMS, authorities=frozenset((AUTH, "kid123")))


def azure(*conditions: dict[str, Any], authority: str = AUTH, group: str = "allOf") -> str:
    return json.dumps(
        {"version": "1.0.0", "anyOf": [{"authority": authority, group: list(conditions)}]}
    )


def passes(text: str, context: ReleaseContext = CONTEXT) -> bool:
    policy = parse_release_policy(text)
    try:
        policy.evaluate(context)
    except ReleaseDenied as exc:
        return exc.code != "policy-claims"  # a denial always says policy-claims
    return True


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "status ==",
        "unknown_variable == 1",
        "{",
        '{"version": "1.0.0"}',
        '{"version": "2.0.0", "anyOf": [{"authority": "a", "allOf": [{"claim": "x", '
        '"exists": true}]}]}',
        '{"version": "1.0.0", "anyOf": []}',
        '{"version": "1.0.0", "anyOf": [{"authority": "a", "allOf": []}]}',
        '{"version": "1.0.0", "anyOf": [{"authority": "", "allOf": [{"claim": "x", '
        '"exists": true}]}]}',
        '{"version": "1.0.0", "anyOf": [{"authority": "a"}]}',
        azure({"claim": "x", "matches": "y"}),
        azure({"claim": "x", "equals": "y", "notEquals": "z"}),
        azure({"claim": "x"}),
        azure({"claim": "", "equals": 1}),
        azure({"claim": "a..b", "equals": 1}),
        azure({"claim": "x", "less": "3"}),
        azure({"claim": "x", "greater": True}),
        azure({"claim": "x", "exists": "yes"}),
        azure({"claim": "x", "equals": None}),
        azure({"claim": "x", "equals": [1]}),
        azure({"claim": "x", "equals": {"a": 1}}),
        azure({"allOf": [{"claim": "x", "exists": True}], "anyOf": []}),
        azure({"anyOf": [{"claim": "x", "exists": True}], "claim": "y"}),
        '{"version": "1.0.0", "version": "1.0.0", "anyOf": []}',
        '{"version": "1.0.0", "anyOf": [{"authority": "a", "allOf": [{"claim": "x", '
        '"less": NaN}]}]}',
        '["not", "an", "object"]',
        "x" * (64 * 1024 + 1),
        # a syntax error past column 65,534 made the CEL parser panic (PanicException)
        "true &&" + " " * (64 * 1024 - 7),
        "true &&" + " " * (64 * 1024 - 8),
    ],
)
def test_malformed_policies_are_refused_at_load(text: str) -> None:
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy


def test_malformed_policies_are_refused_at_evaluation_every_time() -> None:
    cache = PolicyCache()
    cache.compile_all(["", "status =="])
    for text in ("", "status ==", "   "):
        for _ in range(2):
            with pytest.raises(InvalidReleasePolicy):
                cache.get(text)


def test_deep_nesting_is_refused() -> None:
    condition: dict[str, Any] = {"claim": "x", "exists": True}
    for _ in range(20):
        condition = {"allOf": [condition]}
    with pytest.raises(InvalidReleasePolicy):
        parse_release_policy(azure(condition))


def test_kinds() -> None:
    assert isinstance(parse_release_policy('status == "affirming"'), CelReleasePolicy)
    assert isinstance(
        parse_release_policy(azure({"claim": "status", "exists": True})), AzureReleasePolicy
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"claim": "ear.status", "equals": "affirming"}, True),
        ({"claim": "ear.status", "equals": "Affirming"}, False),
        ({"claim": "submods.ironroot.ear.status", "equals": "affirming"}, True),
        ({"claim": "evidence.svns.firmware", "equals": 5}, True),
        ({"claim": "evidence.svns.firmware", "equals": 5.0}, True),
        ({"claim": "evidence.svns.firmware", "equals": "5"}, False),
        ({"claim": "evidence.debug", "equals": False}, True),
        ({"claim": "evidence.debug", "equals": 0}, False),
        ({"claim": "evidence.debug", "notEquals": True}, True),
        ({"claim": "evidence.missing", "notEquals": "x"}, False),
        ({"claim": "evidence.svns.firmware", "less": 6}, True),
        ({"claim": "evidence.svns.firmware", "less": 5}, False),
        ({"claim": "evidence.svns.firmware", "lessOrEquals": 5}, True),
        ({"claim": "evidence.svns.firmware", "lessOrEquals": 4.5}, False),
        ({"claim": "evidence.svns.firmware", "greater": 4}, True),
        ({"claim": "evidence.svns.firmware", "greater": 5}, False),
        ({"claim": "evidence.svns.firmware", "greaterOrEquals": 5}, True),
        ({"claim": "evidence.svns.firmware", "greaterOrEquals": 6}, False),
        ({"claim": "evidence.debug", "greaterOrEquals": 0}, False),
        ({"claim": "evidence.measurements.pcr2", "exists": True}, True),
        ({"claim": "evidence.measurements.pcr3", "exists": True}, False),
        ({"claim": "evidence.measurements.pcr3", "exists": False}, True),
        ({"claim": "evidence.measurements.pcr2", "exists": False}, False),
        ({"claim": "evidence.list.1", "equals": 2}, True),
        ({"claim": "evidence.list.2", "exists": True}, False),
        ({"claim": "trust_vector.instance-identity", "less": 32}, True),
    ],
)
def test_azure_operators(condition: dict[str, Any], expected: bool) -> None:
    assert passes(azure(condition)) is expected


def test_azure_groups_and_lowercase_spelling() -> None:
    yes = {"claim": "status", "equals": "affirming"}
    no = {"claim": "status", "equals": "warning"}
    assert passes(azure(yes, no, group="anyOf"))
    assert not passes(azure(yes, no, group="allOf"))
    assert passes(azure({"anyof": [no, {"allof": [yes, yes]}]}))
    assert not passes(azure({"allOf": [yes, {"anyOf": [no, no]}]}))


def test_azure_authority_by_name_or_kid() -> None:
    condition = {"claim": "status", "exists": True}
    assert passes(azure(condition, authority="kid123"))
    assert not passes(azure(condition, authority="https://other.example"))
    two = json.dumps(
        {
            "version": "1.0.0",
            "anyOf": [
                {"authority": "https://other.example", "allOf": [condition]},
                {"authority": AUTH, "allOf": [condition]},
            ],
        }
    )
    assert passes(two)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('status == "affirming"', True),
        ('authority == "https://verifier.example" && evidence.svns.firmware >= 5', True),
        ('trust_vector["instance-identity"] == 2', True),
        ('claims["ear.status"] == "affirming"', True),
        ("evidence.svns.firmware > 5", False),
        ("evidence.nothing.deeper == 1", False),
    ],
)
def test_cel(text: str, expected: bool) -> None:
    assert passes(text) is expected


def test_cel_that_is_not_boolean_is_malformed() -> None:
    policy = parse_release_policy("evidence.svns.firmware + 1")
    with pytest.raises(InvalidReleasePolicy):
        policy.evaluate(CONTEXT)


@settings(max_examples=examples(150), deadline=None)
@given(st.text(max_size=200))
def test_any_text_parses_or_is_invalid(text: str) -> None:
    try:
        policy = parse_release_policy(text)
    except InvalidReleasePolicy:
        return
    with contextlib.suppress(ReleaseDenied, InvalidReleasePolicy):
        policy.evaluate(CONTEXT)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=examples(150), deadline=None)
@given(_json_values)
def test_any_json_document_parses_or_is_invalid(document: Any) -> None:
    try:
        policy = parse_release_policy(json.dumps({"version": "1.0.0", "anyOf": [document]}))
    except InvalidReleasePolicy:
        return
    with contextlib.suppress(ReleaseDenied):
        policy.evaluate(CONTEXT)


def test_a_cel_syntax_error_is_one_line() -> None:
    from ironroot.errors import InvalidReleasePolicy
    from ironroot.keyrelease import parse_release_policy

    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy("status == \n\n")
    assert "\n" not in info.value.detail
    assert "Syntax error" in info.value.detail


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('"yes"', "a string"),
        ("1", "an int"),
        ("([true])", "a list"),  # "[true]" is read as the Azure grammar, and refused there
        ("1.5", "a double"),
        ('b"x"', "bytes"),
        ("null", "null"),
        ('({"allow": true})', "a map"),
        ('"a" + "b"', "a string"),
        ("true ? 1 : 2", "an int"),
    ],
)
def test_cel_that_is_a_constant_non_boolean_is_refused_at_load(text: str, kind: str) -> None:
    # Accepted before (and reported valid by 'policy check'); every release then failed.
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.detail == f"the release policy always evaluates to {kind}, not a boolean"


@pytest.mark.parametrize(
    "text", ["true", "false", "1 == 1", '({"allow": true}).allow', "([true])[0]", "1 / 0 == 1"]
)
def test_cel_constants_that_are_booleans_or_fail_at_evaluation_parse(text: str) -> None:
    # A boolean constant is a (trivial) policy; a constant that fails to evaluate fails
    # closed at each release, like any evaluation error; neither is known non-boolean.
    assert parse_release_policy(text).kind == "cel"


# --- comprehension macros ---------------------------------------------------------------------

_DEVICES = {"devices": [{"status": "affirming", "svn": 3}, {"status": "affirming", "svn": 5}]}
_ONE_WARNING = {"devices": [{"status": "affirming", "svn": 3}, {"status": "warning", "svn": 5}]}


def _with(extra: dict[str, Any]) -> ReleaseContext:
    return ReleaseContext(claims={**CLAIMS, **extra}, authorities=frozenset((AUTH,)))


@pytest.mark.parametrize(
    ("text", "holds", "fails"),
    [
        ("([1].all(x, x > 0))", {}, None),  # "[" starts the Azure grammar
        ('claims.devices.all(d, d.status == "affirming")', _DEVICES, _ONE_WARNING),
        ('claims.devices.exists(d, d.status == "warning")', _ONE_WARNING, _DEVICES),
        ('claims.devices.exists_one(d, d.status == "warning")', _ONE_WARNING, _DEVICES),
        ("([1, 2].map(x, x * 2) == [2, 4])", {}, None),
        ("([1, 2, 3].filter(x, x > 1).size() == 2)", {}, None),
        # nested macros, the inner one reading the outer one's variable
        (
            "claims.groups.all(g, g.svns.exists(s, s >= g.floor))",
            {"groups": [{"floor": 2, "svns": [1, 2]}, {"floor": 0, "svns": [0]}]},
            {"groups": [{"floor": 2, "svns": [1, 2]}, {"floor": 3, "svns": [0]}]},
        ),
        # a macro variable named as a top-level variable shadows it inside the macro
        ("claims.devices.all(status, status.svn > 2) && status == 'affirming'", _DEVICES, None),
        ("claims.devices.all(claims, claims.svn > 2)", _DEVICES, _ONE_WARNING | {"devices": [{}]}),
        # two macros binding the same name, one after the other
        ("([1].all(x, x == 1) && [2].exists(x, x == 2))", {}, None),
    ],
)
def test_cel_comprehension_macros_compile_and_decide(
    text: str, holds: dict[str, Any], fails: dict[str, Any] | None
) -> None:
    # Refused before: their iteration variable counted as an unknown variable.
    policy = parse_release_policy(text)
    assert isinstance(policy, CelReleasePolicy)
    assert passes(text, _with(holds))
    if fails is not None:
        assert not passes(text, _with(fails))


def test_a_false_macro_policy_denies_with_policy_claims() -> None:
    policy = parse_release_policy("([1, -1].all(x, x > 0))")
    with pytest.raises(ReleaseDenied) as info:
        policy.evaluate(CONTEXT)
    assert info.type is ReleaseDenied
    assert info.value.code == "policy-claims"
    assert "does not satisfy the key's release policy" in info.value.detail


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("claim.x == 1", "claim"),  # a typo outside any macro, as before
        ('claims.devices.all(d, d.status == "affirming" && clams.x)', "clams"),  # inside
        ("claims.devices.all(d, e.svn > 2)", "e"),  # a name no macro binds
        ('claims.devices.all(d, d.svn > 2) && d.status == "affirming"', "d"),  # out of scope
        ("claims.devices.map(d, d.svn).all(s, s > d)", "d"),  # the next macro's, not its own
        ("claims.devices.all(d, d.x.all(e, e)) && e", "e"),
        ("claims.devices.all(claims, .claim)", ".claim"),  # a leading dot never names it
        ("claims.devices.all(d, true, d)", "d"),  # three arguments: a function, not the macro
    ],
)
def test_cel_names_that_no_macro_binds_where_they_are_read_are_refused(
    text: str, unknown: str
) -> None:
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.detail.startswith(
        f"the release policy names unknown variables: {unknown} (known: authority, claims,"
    )


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("([1, 2].map(x, x * 2))", "a list"),
        ("([1, 2].filter(x, x > 1))", "a list"),
        ("([1].all(x, x > 0) ? 'yes' : 'no')", "a string"),
    ],
)
def test_cel_macro_constants_that_are_not_booleans_are_refused_at_load(
    text: str, kind: str
) -> None:
    # Before, the macro's variable made them look as if they read claims.
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.detail == f"the release policy always evaluates to {kind}, not a boolean"


_LIST = "[" + ", ".join(str(i) for i in range(100)) + "]"


@pytest.mark.parametrize(
    "text",
    [
        # reads no variable: it was run once when parsed, under the HSM's lock (seconds)
        f"({_LIST}.map(a, {_LIST}.map(b, {_LIST}.map(c, 0))).size() > 0)",
        f"({_LIST}.map(a, {_LIST}.map(b, 0)))",  # a list: refused for its cost, never run
        "gpus.all(g, gpus.all(h, g.driver >= h.driver))",  # a million passes at the cap
        # a map or filter over the claims: the library copies every kept value at each step
        'claims.devices.filter(d, d.status == "affirming").size() == 2',
        "claims.devices.map(d, d.svn) == [3, 5]",
        'claims.devices.map(d, d.status == "affirming", d.svn).all(s, s >= 3)',
    ],
)
def test_a_costly_cel_policy_is_refused_when_parsed(text: str) -> None:
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.detail.startswith(
        (
            "the release policy may take ",
            "the release policy uses map ",
            "the release policy uses filter ",
        )
    )


@pytest.mark.parametrize(
    "text",
    [
        # measured: 35 ms a GPU, so 36 s over 1,024 of them, under the HSM's lock
        r'gpus_affirming && gpus.all(g, g.driver_version.matches("^\\w{100}$"))',
        r'evidence.signer.matches("\\w{1000}")',  # 127 ms in one call
        r'evidence.measurements.all(m, m.matches("(a{100}){100}") || m == "fmc")',
    ],
)
def test_a_cel_policy_whose_regular_expressions_cost_too_much_is_refused_when_parsed(
    text: str,
) -> None:
    """The CEL runtime compiles a ``matches`` pattern at each call; the cost bound counted
    none of it, so these policies were made, and each release evaluated them for seconds."""
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.code == "invalid-release-policy"
    assert info.value.detail.startswith("the release policy may take ")


def test_a_cel_policy_whose_pattern_is_read_from_the_claims_is_refused_when_parsed() -> None:
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy("evidence.format.matches(evidence.signer)")
    assert info.value.detail == (
        "the release policy uses syntax whose evaluation cost cannot be bounded: a matches "
        "pattern that is not one string literal"
    )


def test_a_cel_policy_with_a_modest_regular_expression_is_made() -> None:
    policy = parse_release_policy(r'evidence.signer.matches("^[0-9a-f]{96}$")')
    assert policy.kind == "cel"


_FORTY = "[" + ", ".join(str(i) for i in range(40)) + "]"


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        # nested: 40 passes over each measurement of the EAR's evidence (in parentheses:
        # text that opens with "[" is the Azure grammar)
        (f"({_FORTY}.all(i, evidence.measurements.exists(m, size(m) > i)))", 819_360),
        # a pattern compiled at each pass over the GPUs
        (r'gpus.all(g, g.driver_version.matches("^5[0-9]{2}\\."))', 1_744_896),
    ],
)
def test_a_cel_policy_within_the_bound_at_1024_items_but_not_over_an_ears_4096_is_refused(
    text: str, steps: int
) -> None:
    """Was: the cost bound took every list a policy reads to hold 1,024 items, but an EAR's
    containers hold up to 4,096 (``ear``'s token limits, and the HSM's), so these were made
    and each release, under the HSM's lock, took up to four times the bound's 50 ms. Now the
    bound takes the EAR's 4,096."""
    import cel

    from ironroot._cel import MAX_COST, cost

    assert cost(cel.compile(text), max_range=1024) <= MAX_COST  # what was made before
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.type is InvalidReleasePolicy
    assert info.value.detail.startswith(
        f"the release policy may take {steps:,} steps to evaluate, more than the limit of "
        "750,000: its comprehension macros (all, exists, exists_one, filter, map) nest or copy "
        "too much over lists of up to 4096 items"
    )


@pytest.mark.parametrize(
    "text",
    [
        # measured over 4,000 GPUs: the runtime copies claims.gpus at each pass, 11 s
        'gpus.all(g, g.driver >= claims.gpus[0].driver && g.submod != "")',
        "gpus.all(g, size(claims.submods) > gpu_count)",  # every submodule, at each pass
    ],
)
def test_a_cel_policy_that_selects_from_the_claims_at_each_pass_is_refused_when_parsed(
    text: str,
) -> None:
    """A selection from a variable inside a macro (``claims.gpus`` in ``gpus.all(g, …)``)
    copies what it selects at every pass; the cost bound counted it as nothing."""
    with pytest.raises(InvalidReleasePolicy) as info:
        parse_release_policy(text)
    assert info.value.code == "invalid-release-policy"
    assert info.value.detail.startswith("the release policy may take ")


class _Counted(dict[str, Any]):
    """A claims map that counts the member names looked up in it (shared by its children)."""

    def __init__(self, members: dict[str, Any], counter: list[int]) -> None:
        super().__init__(members)
        self.counter = counter

    def __contains__(self, key: object) -> bool:
        self.counter[0] += 1
        return super().__contains__(key)


def test_an_azure_claim_path_is_resolved_in_steps_linear_in_its_segments() -> None:
    """Each step of a path took the longest run of its segments that names a member by
    joining every run, longest first: a path of 500 segments over claims nested ten deep tried
    about 125,000 names a level, and sixty such conditions (within the 64 KiB a policy may
    hold) kept the HSM's lock for two seconds at every release. Names longer than any member
    of a map are not looked up in it."""
    segments = 500
    path = ".".join(["evidence"] + ["a"] * segments)
    conditions = [{"claim": path, "exists": False} for _ in range(60)]
    policy = AzureReleasePolicy.parse(azure(*conditions, authority="v"))
    counter = [0]
    node = _Counted({}, counter)
    for _ in range(10):
        node = _Counted({"a": node}, counter)
    claims = _Counted({"evidence": node}, counter)
    policy.evaluate(ReleaseContext(claims=claims, authorities=frozenset({"v"})))
    assert counter[0] <= 60 * 2 * (segments + 1)
