"""The variables a CEL program reads (``ironroot._cel.free_variables``)."""

from __future__ import annotations

import pytest

from ironroot._cel import free_variables


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
