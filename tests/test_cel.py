"""The variables a CEL program reads (``ironroot._cel.free_variables``)."""

from __future__ import annotations

import pytest

from ironroot._cel import (
    MAX_COST,
    MAX_DEPTH,
    MAX_RANGE,
    cost,
    depth,
    free_variables,
    refuse_costly,
    refuse_deep,
)
from ironroot.errors import ConfigError


def _free(text: str) -> list[str]:
    import cel

    return sorted(free_variables(cel.compile(text)))


@pytest.mark.parametrize(
    ("text", "free"),
    [
        ("[1].all(x, x > 0)", []),
        ('claims.devices.all(d, d.status == "affirming")', ["claims"]),
        ("a.all(d, d.b.exists(e, e == d))", ["a"]),  # nested
        ("a.all(a, a > 0)", ["a"]),  # the receiver is outside the macro
        ("[1].all(a, a > 0)", []),  # shadowing: the context's a is not read
        ("[1].all(x, x > 0) && x", ["x"]),  # read outside its macro too
        ("[1].all(x, true)", []),
        ("[1].filter(x, true)", []),  # the bindings list x for filter's expansion
        ("[1].map(x, y, x)", ["y"]),  # the three-argument map binds its first only
        ("[1].all(i, v, v > 0)", ["i", "v"]),  # three arguments: not a macro
        ("all([1], x, x > 0)", ["x"]),  # a global call is not a macro
        ("[1].all(x, .x)", [".x"]),  # a leading dot names the context's variable
        ('"[1].all(y, " + y', ["y"]),  # macro-like text in a string is text
        ('r"\\" + [1].all(y, y) + y', ["y"]),  # a raw string ends at its first quote
        ("'''a'b''' == z", ["z"]),
        ("b\"x\".all(q, q) || r'a'.all(w, w)", []),
        ("[1].all(x, x) // [1].all(y, y)\n && y", ["y"]),  # a comment is not code
        ("[1] . all ( x , x > 0 )", []),
        ("type(1) == int && size(a) > 0 && a.size() > .5", ["a", "int"]),
    ],
)
def test_free_variables(text: str, free: list[str]) -> None:
    assert _free(text) == free


def test_syntax_it_does_not_read_leaves_the_bindings_list() -> None:
    # A message literal: the reading gives up, and the library's list (here empty) stands.
    import cel

    program = cel.compile("Foo{a: [1].all(x, x)}")
    assert free_variables(program) == frozenset(program.variables())


# --- the cost bound ---------------------------------------------------------------------------


def _list(n: int) -> str:
    return "[" + ", ".join(str(i) for i in range(n)) + "]"


# Measured by an attack round: each took seconds to minutes (three nested maps over 100-item
# literals 15 s, two over 1,000 items 80 s, three over 300 items more than 120 s).
BOMBS = [
    f"{_list(100)}.map(a, {_list(100)}.map(b, {_list(100)}.map(c, 0))).size() > 0",
    f"{_list(1000)}.map(a, {_list(1000)}.map(b, 0)).size() > 0",
    f"{_list(300)}.map(a, {_list(300)}.map(b, {_list(300)}.map(c, 0))).size() > 0",
    f"{_list(300)}.all(a, {_list(300)}.all(b, {_list(300)}.all(c, true)))",
    "claims.a.all(x, claims.a.all(y, x != y))",  # both over the input: a million passes
]

# A map or filter over the input: 1,024 maps of 8 entries took 0.8 s, of 60 entries 12 s; 100
# copies of such a list ([0, …, 99].map(i, a)) 21 s.
OVER_INPUT = [
    ("claims.a.map(x, x).size() > 0", "map"),
    ('claims.devices.filter(d, d.status == "affirming").size() == 2', "filter"),
    ('claims.devices.map(d, d.status == "affirming", d.svn).all(s, s >= 3)', "map"),
    ("claims.a.all(x, x.map(y, y).size() > 0)", "map"),
    (f"{_list(100)}.map(i, claims).size() > 0", "map"),
    ("[claims].filter(c, true).size() > 0", "filter"),
    ("claims.a.all(x, [1].map(i, x).size() > 0)", "map"),  # x is the input's
    ("[1].map(i, claims.a.all(x, x > i))", "map"),
]

# Every macro form the repository's policies, docs and tests use.
REAL = [
    'claims.devices.all(d, d.status == "affirming")',
    'claims.devices.exists_one(d, d.status == "warning")',
    "claims.groups.all(g, g.svns.exists(s, s >= g.floor))",
    'claims["-70001"].all(x, x > 0 && [x].exists(y, y == x))',
    'gpus.all(g, g.status == "affirming" && g.driver >= 550090007)'
    " && gpus.exists(g, g.driver >= 555000000)",
    'sub.startsWith("pkg:firmware/") && ["ES384", "ML-DSA-87"].exists(a, a == alg)',
    "reviews.all(r, r.max_cvss < cvss_threshold)",
    "([1].all(x, x == 1) && [2].exists(x, x == 2))",
]


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("true", 0),
        ("[0, 1].all(x, x > 0)", 2 * 4),
        ("[].all(x, x > 0)", 0),
        ("a.all(x, x > 0)", MAX_RANGE * 4),
        ("a.all(x, a.all(y, y > 0))", (MAX_RANGE + MAX_RANGE**2) * 4),
        ("a.all(x, x.all(y, y > 0))", 2 * MAX_RANGE * 4),  # parts of the input's elements
        ("[a, a].all(x, x.all(y, y > 0))", (2 + 2 * MAX_RANGE) * 4),  # a literal's elements
        ("{1: 2, 3: 4}.all(k, k > 0)", 2 * 4),
        ("a.b().c[0].all(x, x)", MAX_RANGE * 4),
        # map keeps the length; its copies weigh the square of the program's 23 tokens
        ("[0, 1, 2].map(x, x).all(y, y > 0)", 3 * 4 + 6 * 23**2 + 3 * 4),
        # a pass inside a map copies half the map's list on average (25 tokens)
        ("[0, 1].map(x, [0, 1].all(y, y > 0))", 2 * 4 + 3 * 25**2 + 4 * (4 + 25**2)),
        ("[1, 2].all(x, [3].map(y, x + y).size() > 0)", 2 * 4 + 2 * 4 + 2 * 29**2),  # x: pure
    ],
)
def test_cost(text: str, steps: int) -> None:
    import cel

    assert cost(cel.compile(text)) == steps


@pytest.mark.parametrize("text", BOMBS)
def test_a_costly_program_is_refused(text: str) -> None:
    import cel

    program = cel.compile(text)
    with pytest.raises(ConfigError) as caught:
        refuse_costly(program, "the policy", ConfigError)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == (
        f"the policy may take {cost(program):,} steps to evaluate, more than the limit of "
        f"{MAX_COST:,}: its comprehension macros (all, exists, exists_one, filter, map) nest "
        f"or copy too much over lists of up to {MAX_RANGE} items"
    )


@pytest.mark.parametrize("text", REAL)
def test_every_real_policy_form_is_within_the_bound(text: str) -> None:
    import cel

    refuse_costly(cel.compile(text), "the policy", ConfigError)


@pytest.mark.parametrize(("text", "macro"), OVER_INPUT)
def test_a_map_or_filter_over_values_the_policy_does_not_write_out_is_refused(
    text: str, macro: str
) -> None:
    import cel

    with pytest.raises(ConfigError) as caught:
        refuse_costly(cel.compile(text), "the policy", ConfigError)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == (
        f"the policy uses {macro} over values the policy does not write out: each of its steps"
        " copies every value kept so far, a cost that grows with the square of their size (use"
        " all, exists or exists_one)"
    )


def test_syntax_whose_cost_it_cannot_read_is_refused() -> None:
    # The CEL parser refuses a quoted field name; a program that had one would be refused
    # here too, rather than admitted unread.
    class Program:
        source = "a.`b-c`.all(x, x)"

    with pytest.raises(ConfigError) as caught:
        refuse_costly(Program(), "the policy", ConfigError)
    assert type(caught.value) is ConfigError
    assert caught.value.detail == (
        "the policy uses syntax whose evaluation cost cannot be bounded: a quoted field name"
    )


# The CEL runtime compiles a ``matches`` pattern at each call, and its Unicode classes compile
# to large automata: measured, x.matches("\\w{1000}") took 127 ms a call, and in all() over
# 1,024 items 130 s (inside the HSM's lock, for a release policy), which the bound counted as
# 4,096 steps; "(a{100}){100}" 3.4 ms a call, "\\w{100}" 35 ms, "[0-9a-f]{96}" 85 us.
REGEX_BOMBS = [
    r'a.all(x, x.matches("\\w{100}"))',
    r'a.all(x, x.matches("(a{100}){100}"))',
    r'a.all(x, matches(x, "[0-9a-f]{96}"))',  # the global form
    r'a.all(x, x.matches(r"\w{100}"))',  # a raw string
    r'a.all(x, x.matches("\x5cw{100}"))',  # the backslash escaped
    r'a.matches("\\w{1000}")',  # 127 ms in one call
    r'a.exists(x, x.matches(".{1000}"))',
]


@pytest.mark.parametrize("text", REGEX_BOMBS)
def test_a_costly_regular_expression_is_refused(text: str) -> None:
    import cel

    program = cel.compile(text)
    with pytest.raises(ConfigError) as caught:
        refuse_costly(program, "the policy", ConfigError)
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith(
        f"the policy may take {cost(program):,} steps to evaluate, more than the limit of "
        f"{MAX_COST:,}"
    )
    assert ", or its matches patterns compile to too much (" in caught.value.detail


@pytest.mark.parametrize(
    "text",
    [
        r'gpus.all(g, g.driver_version.matches("^5[0-9]{2}\\."))',
        r'a.matches("^[0-9a-f]{96}$")',
        r'evidence.measurements.all(m, m.matches("^(pcr|rtmr)[0-9]+$"))',
        r'a.matches("\\w{10}")',
    ],
)
def test_a_regular_expression_of_modest_cost_is_within_the_bound(text: str) -> None:
    """Within the bound over lists of 1,024 items (a transparency policy's statement); a
    ``matches`` call at each pass over a list of :data:`MAX_RANGE` is not (next test)."""
    import cel

    refuse_costly(cel.compile(text), "the policy", ConfigError, max_range=1024)


def test_the_cost_bound_takes_lists_as_long_as_the_largest_policy_input_holds() -> None:
    """Was: every range not written out was taken to hold 1,024 items, but a release policy
    reads an EAR, whose containers hold up to 4,096 (and an appraisal rule reads evidence and
    endorsements as large: a CoRIM's 4,096), so a policy within the bound at 1,024 items took
    four times the budget on the largest input, sixteen nested. Now the bound is the largest
    container any policy input holds, and a caller whose inputs hold fewer says so."""
    import cel

    from ironroot.corim._codec import CORIM_LIMITS
    from ironroot.ear._token import _LIMITS as EAR_LIMITS
    from ironroot.hsm._release import _TOKEN_LIMITS

    assert MAX_RANGE == 4096
    assert max(EAR_LIMITS.max_items, _TOKEN_LIMITS.max_items, CORIM_LIMITS.max_items) <= 4096
    nested = f"{_list(40)}.all(i, claims.a.exists(x, x > i))"
    program = cel.compile(nested)
    assert cost(program, max_range=1024) <= MAX_COST  # what the old bound admitted
    with pytest.raises(ConfigError) as caught:
        refuse_costly(program, "the policy", ConfigError)
    assert caught.value.detail == (
        f"the policy may take {cost(program):,} steps to evaluate, more than the limit of "
        "750,000: its comprehension macros (all, exists, exists_one, filter, map) nest or "
        "copy too much over lists of up to 4096 items"
    )
    assert cost(program) == cost(program, max_range=4096) > MAX_COST
    regex = cel.compile(r'evidence.measurements.all(m, m.matches("^(pcr|rtmr)[0-9]+$"))')
    with pytest.raises(ConfigError) as caught:
        refuse_costly(regex, "the policy", ConfigError)
    assert caught.value.detail.startswith("the policy may take 2,105,344 steps to evaluate")


@pytest.mark.parametrize("text", ["a.matches(b)", 'a.all(x, x.matches(b + "+"))', "matches(a, b)"])
def test_a_pattern_that_is_not_written_out_is_refused(text: str) -> None:
    """A pattern read from the claims is as costly as the claims make it (the verifier's
    evidence annotations, up to 256 KiB): no bound can be read off the policy."""
    import cel

    with pytest.raises(ConfigError) as caught:
        refuse_costly(cel.compile(text), "the policy", ConfigError)
    assert caught.value.detail == (
        "the policy uses syntax whose evaluation cost cannot be bounded: a matches pattern "
        "that is not one string literal"
    )


# The CEL runtime copies what a selection from a variable yields (``claims.submods``, every
# submodule in it) each time it runs: measured over 4,000 items, all(a, size(claims.submods.x.y)
# > 0) took 2.5 s and all(a, claims.gpus[0].submod == "gpu0") 11 s, each counted 4 steps a pass.
SELECTION_BOMBS = [
    "a.all(x, size(b.c) > 0)",
    'a.all(x, claims.gpus[0].submod == "gpu0")',
    "a.all(x, x >= a[0])",
    "a.exists(x, b.c.d != x)",
]


@pytest.mark.parametrize("text", SELECTION_BOMBS)
def test_a_selection_from_the_input_in_each_pass_is_counted(text: str) -> None:
    import cel

    program = cel.compile(text)
    with pytest.raises(ConfigError) as caught:
        refuse_costly(program, "the policy", ConfigError)
    assert caught.value.detail.startswith(
        f"the policy may take {cost(program):,} steps to evaluate, more than the limit of "
        f"{MAX_COST:,}"
    )


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("a.all(x, b.c > 0)", MAX_RANGE * (4 + MAX_RANGE)),  # one selection a pass
        ("a.all(x, b.c.d[0] > 0)", MAX_RANGE * (4 + 3 * MAX_RANGE)),  # three
        ("[1, 2].all(x, b.c > x)", 2 * (4 + MAX_RANGE)),
        ("b.c.all(x, x.d > 0)", MAX_RANGE * 4),  # the receiver once; x is the element
        ("a.all(x, b > 0)", MAX_RANGE * 4),  # a variable itself is not copied
    ],
)
def test_the_cost_of_selections_in_a_pass(text: str, steps: int) -> None:
    import cel

    assert cost(cel.compile(text)) == steps


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ('status == "affirming" && evidence.svns.firmware >= 3 && !evidence.debug', 4),
        ('gpus.all(g, g.status == "affirming" && g.driver >= 550090007)', 6),
        ("a" + "+a" * 40, 40),  # a chain at one level: one level per operator
        ("a." * 40 + "b", 40),
        ("a" + "[0]" * 20, 21),  # each index one more, and its bracket while it is open
        ("size(" * 20 + "a" + ")" * 20, 40),
        ("a == 1" + " && a == 1" * 500, 2),  # && and || chains are built balanced
        ("a == 0" + " || a == 0" * 500, 2),
        ("a in [" + "1, " * 500 + "1]", 2),  # list items side by side
        ('"a+a+a+a" + r"(((" + b\'.\'', 2),  # operators in literals are text
    ],
)
def test_depth(text: str, deep: int) -> None:
    assert depth(text) == deep


@pytest.mark.parametrize(
    "text",
    [
        "iat" + "+iat" * (MAX_DEPTH + 1) + " > 0",
        "claims." + "a." * MAX_DEPTH + "b == 1",
        "a" + " == a" * (MAX_DEPTH + 1),
        "a" + "[0]" * MAX_DEPTH + " == 1",
    ],
    ids=["sum", "member", "equality", "index"],
)
def test_a_chain_the_stack_may_not_hold_is_refused_before_it_is_compiled(text: str) -> None:
    """The parser takes a chain of operators at one level of any length and builds a tree as
    deep; compiling and evaluating it recurse on the thread's stack, and a segmentation fault
    ends the process past what that holds (a 16 KiB release policy killed the key service on
    a 2 MiB thread stack). It is refused from its text, before the library reads it."""
    with pytest.raises(ConfigError) as caught:
        refuse_deep(text, "the policy", ConfigError)
    assert type(caught.value) is ConfigError
    assert caught.value.detail.startswith(
        f"the policy nests its operators {depth(text)} deep, more than the limit of {MAX_DEPTH}"
    )
    refuse_deep("a" + " && a" * 5000, "the policy", ConfigError)  # as long, built balanced


@pytest.mark.parametrize("text", ['"unterminated', "a.`b-c` == 1"])
def test_text_no_cel_compiles_is_refused_before_its_depth_is_read(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        refuse_deep(text, "the policy", ConfigError)
    assert caught.value.detail.startswith("the policy is not valid CEL: ")


@pytest.mark.parametrize("text", REAL)
def test_every_real_policy_form_is_within_the_depth(text: str) -> None:
    refuse_deep(text, "the policy", ConfigError)


def test_a_pattern_whose_estimate_has_thousands_of_digits_is_refused_all_the_same() -> None:
    """Counted repetitions multiply: 5,000 of them would make a number that "{:,}" refuses
    to write (past 4,300 digits), a ValueError in place of the refusal."""
    import cel

    program = cel.compile('a.matches("a' + "{999999999}" * 5000 + '")')
    with pytest.raises(ConfigError) as caught:
        refuse_costly(program, "the policy", ConfigError)
    assert caught.value.detail.startswith(
        f"the policy may take 1,000,000,000,350 steps to evaluate, more than the limit of "
        f"{MAX_COST:,}"
    )
