"""What every CEL decision checks of its compiled program: the variables it reads, and a result
that can be a boolean.

Ironroot's CEL policies (the registration policy, appraisal rules, key release policies) decide
by their result being ``true``; anything else fails closed when evaluated. A program whose
result can be known when it is compiled not to be a boolean (``"yes"``, ``1``, ``[true]``)
would fail every evaluation: it is refused where it is compiled, with the error of the layer
that compiles it (ADR 0005: policies are compiled once).

What is known then: a program that reads no variable is a constant, and is evaluated once, with
no context, to learn its result's type.
A program that reads variables is not evaluated here (no claims are at hand): its result's
type is checked at each evaluation, as before. A constant that fails to evaluate (``1/0``) is
left to the evaluation too, where it fails closed like any error.

**The variables a program reads** (:func:`free_variables`). The CEL bindings list every name
an expression references (``Program.variables()``), including the iteration variable of a
comprehension macro: ``x`` in ``[1].all(x, x > 0)``, which the macro binds and the context
never supplies. CEL's macros are ``all``, ``exists``, ``exists_one`` (``existsOne``) and
``filter`` with two arguments and ``map`` with two or three, called on a receiver; the first
argument is a plain name, bound in the other arguments and nowhere else (a nested macro of the
same name shadows it; ``.name`` always names the context's variable). The bindings give no
syntax tree, so :func:`free_variables` reads the (already compiled) text: its tokens, the
brackets of each macro call and the names in them. It answers with the library's list less
the names that are only ever read inside a macro that binds them, and only when its reading
agrees with the library's list (every name the library lists was found, every name found free
is listed); otherwise (syntax it does not read, such as a message literal ``T{f: 1}``) it
answers with the library's list unchanged, which refuses a policy that needs the macro
variables rather than admitting one it misread.

**The cost of an evaluation** (:func:`cost`, :func:`refuse_costly`). The library has no cost
limit, and its ``map`` and ``filter`` copy the list built so far, with every value in it, at
each step. Each compiled policy is refused, before anything evaluates it, when its macros may
take more than :data:`MAX_COST` steps (one step: copying one list item, about 70 ns here; one
pass of a macro's body counts 4): a range the policy writes out (``[1, 2]``, ``{"a": 1}``)
holds its items, any other holds :data:`MAX_RANGE` (4,096: an EAR's containers, a CoRIM's;
fewer when the caller's inputs are bounded lower, ``max_range``); a macro's body runs once per
item for each pass of the macros around it, except that a range read from the element of an
enclosing macro over the input (``g.svns`` in ``groups.all(g, g.svns.exists(s, …))``) holds,
over all that macro's passes, about as many items as the input: one per pass. A pass inside a
map or filter also copies half its list. ``map`` and ``filter`` may range only over a literal
and read no variable but those of such macros (the values they keep are then the program's own,
each of at most its tokens' square of items, the weight of one copy): over the input their cost
grows with the square of the input's size, which no count of items bounds. A selection from a
variable no macro binds, inside a macro's parentheses (``claims.gpus[0]`` in
``gpus.all(g, …)``), copies what it selects at each pass: each of its steps (``.name``,
``[…]``) counts that many items per pass (:func:`_selection_cost`). A ``matches`` call compiles
its pattern each time it runs (a Unicode class such as ``\\w`` to an automaton of hundreds of
states: ``"\\w{1000}"`` took 127 ms a call), so each call counts the steps :func:`regex_steps`
estimates from its pattern, once per pass of the macros around it; a pattern that is not one
string literal (read from the input) has no such bound and is refused.

**The depth of an expression** (:func:`depth`, :func:`refuse_deep`). The library's parser
refuses brackets nested past about a hundred, but not a long chain of operators at one level
(``a.b.c…``, ``a + a + …``, ``a == a == …``): it builds such a chain as a tree as deep as the
chain is long, and compiles and evaluates it by recursion on the thread's stack, about a
kilobyte a level. Past what the stack holds the process dies (a segmentation fault, which no
``except`` catches): a release policy of 16 KiB is a chain of 8,000 (``a+a+…``), which kills
its evaluation on a 4 MiB thread stack (a 2 MiB one already when it is compiled), and a thread
gets 2 MiB under ``ulimit -s unlimited``. So a text is read before it is compiled, and refused
when its operators may nest deeper than :data:`MAX_DEPTH`: each bracket is one level, and
within one, each operator after the last ``&&``, ``||`` or ``,`` one more (``&&`` and ``||``
chains are built balanced, list items and arguments side by side).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

from ironroot.errors import IronrootError

__all__ = [
    "MAX_COST",
    "MAX_DEPTH",
    "MAX_RANGE",
    "cost",
    "depth",
    "free_variables",
    "refuse_costly",
    "refuse_deep",
    "refuse_non_boolean",
    "regex_steps",
]

# CEL's names for the types the bindings return, with the article a sentence needs.
_CEL_TYPES: Final[tuple[tuple[type, str], ...]] = (
    (str, "a string"),
    (bytes, "bytes"),
    (int, "an int"),
    (float, "a double"),
    (list, "a list"),
    (dict, "a map"),
    (type(None), "null"),
    (dt.datetime, "a timestamp"),
    (dt.timedelta, "a duration"),
)


def _cel_type(value: object) -> str:
    for kind, text in _CEL_TYPES:
        if isinstance(value, kind):
            return text
    return f"a {type(value).__name__}"


def refuse_non_boolean(program: Any, what: str, error: type[IronrootError]) -> None:
    """Raise ``error("<what> always evaluates to <a CEL type>, not a boolean")`` when the
    compiled ``program`` reads no variable (:func:`free_variables`) and evaluates to anything
    but a boolean."""
    if free_variables(program):
        return
    try:
        result = program.execute({})
    except Exception:  # the CEL runtime raises several kinds; evaluation fails closed later
        return
    if not isinstance(result, bool):
        raise error(f"{what} always evaluates to {_cel_type(result)}, not a boolean")


# --- the variables a program reads ------------------------------------------------------------

# The comprehension macros and the argument counts for which each is a macro (any other count
# is an ordinary function call, whose first argument is an expression).
_MACROS: Final = {
    "all": (2,),
    "exists": (2,),
    "exists_one": (2,),
    "existsOne": (2,),
    "filter": (2,),
    "map": (2, 3),
}
_KEYWORDS: Final = frozenset(("true", "false", "null", "in"))
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER: Final = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]+|[0-9]+|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[uU]?"
)
_STRING_PREFIXES: Final = frozenset(("r", "b", "rb", "br"))
_OPEN: Final = {"(": ")", "[": "]", "{": "}"}


class _Unread(Exception):
    """The text holds syntax this reading does not follow."""


def _skip_string(text: str, start: int, *, raw: bool) -> int:
    """The index past the string literal whose opening quote is at ``start``."""
    quote = text[start]
    delimiter = quote * 3 if text.startswith(quote * 3, start) else quote
    at = start + len(delimiter)
    while at < len(text):
        if not raw and text[at] == "\\":
            at += 2
        elif text.startswith(delimiter, at):
            return at + len(delimiter)
        else:
            at += 1
    raise _Unread("an unterminated string")


def _tokens(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` of each token: ``name``, ``literal`` (number, string, bytes: its
    source text) or ``punct`` (one character: only brackets, ``.`` and ``,`` matter here)."""
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(text):
        char = text[at]
        if char.isspace():
            at += 1
        elif text.startswith("//", at):
            end = text.find("\n", at)
            at = len(text) if end < 0 else end
        elif name := _NAME.match(text, at):
            end = name.end()
            if end < len(text) and text[end] in "\"'" and name.group().lower() in _STRING_PREFIXES:
                start, at = at, _skip_string(text, end, raw="r" in name.group().lower())
                out.append(("literal", text[start:at]))  # its source: a pattern's cost is read
            else:
                out.append(("name", name.group()))
                at = end
        elif char in "\"'":
            start, at = at, _skip_string(text, at, raw=False)
            out.append(("literal", text[start:at]))
        elif number := _NUMBER.match(text, at):
            out.append(("literal", number.group()))
            at = number.end()
        elif char == "`":
            raise _Unread("a quoted field name")
        else:
            out.append(("punct", char))
            at += 1
    return out


def _ends_operand(token: tuple[str, str]) -> bool:
    kind, value = token
    return (kind == "name" and value != "in") or kind == "literal" or value in (")", "]", "}")


def _structure(
    tokens: list[tuple[str, str]],
) -> tuple[dict[int, int], dict[int, int], list[tuple[int, str, str]]]:
    """The index of each opening bracket's match, the top-level commas inside each, and each
    macro call as ``(index of its ".", macro, iteration variable)``; its "(" is 2 further."""
    closing: dict[int, int] = {}  # the index of each bracket's match
    commas: dict[int, int] = {}  # the top-level commas inside each "("
    stack: list[int] = []
    for index, (kind, value) in enumerate(tokens):
        if kind != "punct":
            continue
        if value in _OPEN:
            stack.append(index)
            commas[index] = 0
        elif value in (")", "]", "}"):
            if not stack or _OPEN[tokens[stack[-1]][1]] != value:
                raise _Unread("unbalanced brackets")
            closing[stack.pop()] = index
        elif value == "," and stack:
            commas[stack[-1]] += 1
    if stack:
        raise _Unread("unbalanced brackets")
    macros: list[tuple[int, str, str]] = []
    for index in range(1, len(tokens) - 4):
        dot, macro, paren, variable, comma = tokens[index : index + 5]
        if (
            dot == ("punct", ".")
            and _ends_operand(tokens[index - 1])
            and macro[0] == "name"
            and commas.get(index + 2, -1) + 1 in _MACROS.get(macro[1], ())
            and paren == ("punct", "(")
            and variable[0] == "name"
            and comma == ("punct", ",")
        ):
            macros.append((index, macro[1], variable[1]))
    return closing, commas, macros


def _read_names(text: str) -> tuple[set[str], set[str], set[str]]:
    """The names ``text`` reads outside any macro binding them, those it reads only inside
    one, and the macros' iteration variables."""
    tokens = _tokens(text)
    closing, _, macros = _structure(tokens)
    scopes: dict[int, list[tuple[int, str]]] = {}  # first token index: (last, name) bound there
    binders: set[int] = set()
    for index, _, variable in macros:
        scopes.setdefault(index + 5, []).append((closing[index + 2], variable))
        binders.add(index + 3)
    free: set[str] = set()
    bound: set[str] = set()
    active: list[tuple[int, str]] = []  # the scopes around this token; nested, so a stack
    for index, (kind, value) in enumerate(tokens):
        while active and active[-1][0] < index:
            active.pop()
        active.extend(scopes.get(index, ()))
        if kind != "name" or value in _KEYWORDS or index in binders:
            continue
        after = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if after == ("punct", "{"):
            raise _Unread("a message literal")
        if after == ("punct", "("):
            continue  # a function or a method
        before = tokens[index - 1] if index else ("", "")
        if before == ("punct", "."):
            if index >= 2 and _ends_operand(tokens[index - 2]):
                continue  # a field or a method
            free.add("." + value)  # a leading dot names the context's variable
        elif any(name == value for _, name in active):
            bound.add(value)
        else:
            free.add(value)
    return free, bound - free, {tokens[i][1] for i in binders}


def free_variables(program: Any) -> frozenset[str]:
    """The variables the compiled ``program`` reads from its context: the names its CEL
    bindings list (``program.variables()``) less those a comprehension macro binds wherever
    they are read (module docs). When the text's reading disagrees with the bindings' list,
    that list unchanged."""
    listed = frozenset(program.variables())
    try:
        free, bound, binders = _read_names(program.source)
    except _Unread:
        return listed
    if not free <= listed or not listed <= free | bound | binders:
        return listed
    return frozenset(free)


# --- the depth of an expression ----------------------------------------------------------------

# The deepest an expression's operators may nest (module docs): a hundred times what any policy
# writes, and a few hundred kilobytes of stack to compile and evaluate it.
MAX_DEPTH: Final = 128
_SEPARATORS: Final = frozenset(",&|")


def depth(text: str) -> int:
    """An upper bound on how deep the syntax tree of the CEL expression ``text`` nests (module
    docs); ``ValueError`` for text this reading does not follow (an unterminated string, a
    quoted field name: neither compiles)."""
    try:
        tokens = _tokens(text)
    except _Unread as exc:
        raise ValueError(str(exc)) from exc
    runs = [0]  # operators since the last separator, one count per open bracket
    total = deepest = 0
    previous: tuple[str, str] = ("", "")
    for token in tokens:
        kind, value = token
        if kind == "punct" and value in _OPEN:
            if _ends_operand(previous):  # a call or an index applies to what precedes it
                runs[-1] += 1
                total += 1
            runs.append(0)
        elif kind == "punct" and value in (")", "]", "}"):
            if len(runs) > 1:
                total -= runs.pop()
        elif kind == "punct" and value in _SEPARATORS:
            total -= runs[-1]
            runs[-1] = 0
        elif kind == "punct" or token == ("name", "in"):
            runs[-1] += 1
            total += 1
        deepest = max(deepest, total + len(runs) - 1)
        previous = token
    return deepest


def refuse_deep(text: str, what: str, error: type[IronrootError]) -> None:
    """Raise ``error`` when the CEL expression ``text`` may nest deeper than :data:`MAX_DEPTH`
    (:func:`depth`), or is text no CEL compiles; call it before compiling ``text``."""
    try:
        found = depth(text)
    except ValueError as exc:
        raise error(f"{what} is not valid CEL: {exc}") from exc
    if found > MAX_DEPTH:
        raise error(
            f"{what} nests its operators {found} deep, more than the limit of {MAX_DEPTH}: a "
            f"chain that long is compiled and evaluated by recursion, which could exhaust the "
            f"stack (split it with && or ||, or into a list)"
        )


# --- the cost of evaluating a program ---------------------------------------------------------

# The items of the largest list or map a policy's variables may hold: an EAR's claims, read by a
# release policy (``ear._token``'s and ``hsm._release``'s token limits, 4,096 entries a
# container), and the evidence and endorsements an appraisal rule reads (a CoRIM's 4,096).
# Any range that is not a literal is taken to be this long, unless the caller knows a smaller
# bound of its inputs (``max_range``: a transparency policy's statement, ``cose.Limits``'
# 1,024). It was 1,024 for every policy: a policy over an EAR then passed the check and took
# four times (nested, sixteen times) the budget on an input of 4,096 items.
MAX_RANGE: Final = 4096
# The most steps an evaluation may take, in copies of one list element (about 70 ns here):
# about 50 ms, one ``map`` over a list of 1,024 items.
MAX_COST: Final = 750_000
_STEP: Final = 4  # one pass of a macro's body, in element copies (about 250 ns)


def _receiver(tokens: list[tuple[str, str]], opening: dict[int, int], end: int) -> int:
    """The index of the first token of the operand that ends at ``end`` (a macro's receiver:
    names, calls, selections and indexes chained by ``.``)."""
    at = end
    while True:
        if tokens[at][0] == "punct" and tokens[at][1] in (")", "]", "}"):
            at = opening[at]
            if at and tokens[at][1] in "[{" and _ends_operand(tokens[at - 1]):
                at -= 1  # an index, or a message literal's type
                continue
            if at and tokens[at][1] == "(" and tokens[at - 1][0] == "name":
                at -= 1  # a call
        if at >= 2 and tokens[at - 1] == ("punct", ".") and _ends_operand(tokens[at - 2]):
            at -= 2
            continue
        return at


# What the CEL runtime's ``matches`` costs (it compiles its pattern at every call), in steps:
# a call, and each copy of an atom the compiled pattern holds once its counted repetitions are
# expanded (measured: "^m" 25 us a call; "a{1000}" 120 us, "(a{100}){100}" 3.4 ms; "." and a
# negated class, Unicode's every character, about 8 us a copy; a Unicode class such as \w,
# \d or \pL 300 to 400 us a copy; case-insensitive matching some times a plain atom).
_REGEX_CALL: Final = 350
_REGEX_ATOM: Final = 8
_REGEX_ATOM_NOCASE: Final = 40
_REGEX_ANY: Final = 150
_REGEX_UNICODE: Final = 7_000
_REGEX_BRANCH: Final = 40
_REGEX_MOST: Final = 10**12  # an estimate is held below this: "{:,}" writes at most 4,300 digits
_UNICODE_CLASSES: Final = frozenset("wWdDsSpP")
_REPEAT: Final = re.compile(r"\{([0-9]+)(,([0-9]*))?\}\??")


def _class_end(pattern: str, at: int) -> int:
    """The index past the bracketed class that opens at ``at`` (nested classes included)."""
    level, i = 0, at
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[" and (i == at or pattern[i + 1 : i + 2] == ":" or level):
            level += 1
            if pattern[i + 1 : i + 2] == ":":  # [:alpha:]
                close = pattern.find(":]", i + 2)
                if close >= 0:
                    level -= 1
                    i = close + 2
                    continue
            i += 1
            if pattern[i : i + 1] == "^":
                i += 1
            if pattern[i : i + 1] == "]":  # a "]" first is a member
                i += 1
            continue
        if char == "]":
            level -= 1
            if not level:
                return i + 1
        i += 1
    return len(pattern)


def regex_steps(pattern: str) -> int:
    """An upper estimate of the steps one ``matches`` call with ``pattern`` takes (the
    constants above): each atom weighs as it compiles, times the counted repetitions around it
    (``x{n,m}`` m copies, ``x+`` two, ``x*`` and ``x?`` one); alternatives add up."""
    nocase = bool(re.search(r"\(\?[a-zA-Z]*i", pattern))
    atom = _REGEX_ATOM_NOCASE if nocase else _REGEX_ATOM
    frames: list[list[int]] = [[0, 0]]  # per open group: its total, the weight of its last atom
    i = 0
    while i < len(pattern):
        char = pattern[i]
        weight: int | None = None
        if char == "\\":
            kind = pattern[i + 1 : i + 2]
            i += 2
            if kind in ("p", "P", "x") and pattern[i : i + 1] == "{":
                close = pattern.find("}", i)
                i = len(pattern) if close < 0 else close + 1
            elif kind in ("p", "P"):
                i += 1
            weight = _REGEX_UNICODE if kind in _UNICODE_CLASSES else atom
        elif char == "[":
            end = _class_end(pattern, i)
            body = pattern[i:end]
            if any(
                body[j] == "\\" and body[j + 1 : j + 2] in _UNICODE_CLASSES
                for j in range(len(body))
            ):
                weight = _REGEX_UNICODE
            elif body[1:2] == "^":
                weight = _REGEX_ANY
            else:
                weight = atom * max(1, len(body) - 2)
            i = end
        elif char == ".":
            weight, i = _REGEX_ANY, i + 1
        elif char == "(":
            i += 1
            if pattern[i : i + 1] == "?":  # (?:…), (?P<name>…), (?<name>…), (?flags) …
                while i < len(pattern) and pattern[i] not in ":)>":
                    i += 1
                if pattern[i : i + 1] == ")":  # flags alone: no group
                    i += 1
                    continue
                i += 1
            frames.append([0, 0])
            continue
        elif char == ")" and len(frames) > 1:
            total = frames.pop()[0]
            weight, i = total, i + 1
        elif char == "|":  # an alternative: a branch more to try
            frames[-1][0] += _REGEX_BRANCH
            frames[-1][1] = 0
            i += 1
            continue
        elif char in "*?":
            i += 1 + (pattern[i + 1 : i + 2] == "?")
            continue
        elif char == "+":
            frames[-1][0] = min(frames[-1][0] + frames[-1][1], _REGEX_MOST)  # x+ is x x*
            frames[-1][1] = min(frames[-1][1] * 2, _REGEX_MOST)
            i += 1 + (pattern[i + 1 : i + 2] == "?")
            continue
        elif char == "{" and (repeat := _REPEAT.match(pattern, i)):
            low, upper, high = repeat.group(1), repeat.group(2), repeat.group(3)
            copies = int(high) if upper and high else int(low) + (1 if upper else 0)
            copies = min(max(copies, 1), _REGEX_MOST)
            frames[-1][0] = min(frames[-1][0] + frames[-1][1] * (copies - 1), _REGEX_MOST)
            frames[-1][1] = min(frames[-1][1] * copies, _REGEX_MOST)
            i = repeat.end()
            continue
        else:
            weight, i = atom, i + 1
        frames[-1][0] = min(frames[-1][0] + weight, _REGEX_MOST)
        frames[-1][1] = weight
    return _REGEX_CALL + min(sum(frame[0] for frame in frames), _REGEX_MOST)


def _pattern(literal: tuple[str, str]) -> str:
    """The text of a CEL string literal token (its escapes undone by CEL itself)."""
    import cel

    kind, text = literal
    value = cel.evaluate(text) if kind == "literal" and text[-1:] in ('"', "'") else None
    if not isinstance(value, str):
        raise _Unread("a matches pattern that is not one string literal")
    return value


def _regex_cost(
    tokens: list[tuple[str, str]],
    closing: dict[int, int],
    commas: dict[int, int],
    passes: dict[int, int],
) -> int:
    """The steps of every ``matches`` call, each as often as the macros around it run."""
    total = 0
    for at, token in enumerate(tokens[:-1]):
        if token != ("name", "matches") or tokens[at + 1] != ("punct", "("):
            continue
        paren = at + 1
        method = at >= 2 and tokens[at - 1] == ("punct", ".") and _ends_operand(tokens[at - 2])
        if commas[paren] != (0 if method else 1):
            raise _Unread("a matches call of another arity")
        first = paren + 1
        if not method:  # matches(text, pattern): the pattern follows the top-level comma
            level = 0
            for first in range(paren + 1, closing[paren]):
                kind, value = tokens[first]
                level += kind == "punct" and value in _OPEN
                level -= kind == "punct" and value in (")", "]", "}")
                if not level and tokens[first] == ("punct", ","):
                    first += 1
                    break
        if closing[paren] != first + 1:
            raise _Unread("a matches pattern that is not one string literal")
        steps = regex_steps(_pattern(tokens[first]))
        around = [p for p in passes if p < at < closing[p]]
        total += (passes[max(around)] if around else 1) * steps
    return total


def cost(program: Any, *, max_range: int = MAX_RANGE) -> int:
    """The most steps (element copies, :data:`MAX_COST`) the comprehension macros and the
    ``matches`` calls of the compiled ``program`` may take when every list or map it reads
    holds at most ``max_range`` items (:data:`MAX_RANGE` unless the caller's inputs are known
    to hold fewer; module docs)."""
    return sum(_costs(program, max_range))


def _costs(program: Any, max_range: int = MAX_RANGE) -> tuple[int, int]:
    """:func:`cost` as the steps of its macros and those of its ``matches`` calls."""
    tokens = _tokens(program.source)
    closing, commas, macros = _structure(tokens)
    opening = {last: first for first, last in closing.items()}
    variables = {dot + 2: variable for dot, _, variable in macros}  # by the macro's "("
    sizes: dict[int, tuple[int, bool]] = {}  # by "(": its range's length, whether input
    passes: dict[int, int] = {}  # by "(": how many times its body runs
    building: set[int] = set()  # "(" of each map and filter
    pure: set[int] = set()  # "(" of each macro over values the policy writes out
    total = 0
    for dot, macro, _ in macros:  # in order: enclosing macros and receivers come first
        around = [p for p in sizes if p < dot < closing[p]]  # outermost first
        start = _receiver(tokens, opening, dot - 1)
        size, from_input, part_of = max_range, True, None
        if tokens[start] in (("punct", "["), ("punct", "{")) and closing[start] == dot - 1:
            size, from_input = (commas[start] + 1 if dot - 1 > start + 1 else 0), False
        elif tokens[dot - 1] == ("punct", ")") and opening[dot - 1] in sizes:
            size, from_input = sizes[opening[dot - 1]]  # map and filter keep at most as many
        elif tokens[start][0] == "name" and (not start or tokens[start - 1] != ("punct", ".")):
            binders = [p for p in around if variables[p] == tokens[start][1]]
            if binders and sizes[binders[-1]][1]:
                part_of = binders[-1]
        # Pure: it ranges over a literal and reads no value but those of pure macros.
        free = [
            value
            for at, (kind, value) in enumerate(tokens[start : closing[dot + 2]], start)
            if kind == "name"
            and value not in _KEYWORDS
            and tokens[at + 1] != ("punct", "(")
            and not (at >= 2 and tokens[at - 1] == ("punct", ".") and _ends_operand(tokens[at - 2]))
        ]
        inside = {variables[p] for p in variables if start < p <= closing[dot + 2]}
        bound = inside | {variables[p] for p in pure if p in around}  # (inside: checked later)
        if not from_input and all(name in bound for name in free):
            pure.add(dot + 2)
        elif macro in ("filter", "map"):
            raise ValueError(
                f"{macro} over values the policy does not write out: each of its steps copies"
                " every value kept so far, a cost that grows with the square of their size (use"
                " all, exists or exists_one)"
            )
        runs = passes[around[-1]] if around else 1
        # Part of an element of an input list: over one run of that macro, all these ranges
        # together hold about as many items as the input, one per pass on average.
        passes[dot + 2] = runs if part_of is not None else runs * size
        sizes[dot + 2] = (size, from_input)
        # Each pass copies the list built so far by this macro and by each map or filter
        # around it (measured: a pass inside a map over 100 items costs 50 copies more).
        # A value the policy writes out holds at most its tokens' square of items: its text,
        # read again through a macro variable in each ``+``.
        weight = len(tokens) ** 2
        built = sum(sizes[p][0] for p in around if p in building) // 2 * weight
        total += passes[dot + 2] * (_STEP + built)
        if macro in ("filter", "map"):
            building.add(dot + 2)
            total += runs * size * (size + 1) // 2 * weight
    total += _selection_cost(tokens, closing, macros, passes, max_range)
    return total, _regex_cost(tokens, closing, commas, passes)


def _selection_cost(
    tokens: list[tuple[str, str]],
    closing: dict[int, int],
    macros: list[tuple[int, str, str]],
    passes: dict[int, int],
    max_range: int = MAX_RANGE,
) -> int:
    """The copies the selections from the input inside macros make: the runtime copies what
    ``b.c`` or ``b[0]`` yields each time it runs, a value of up to ``max_range`` items,
    so each selection step from a variable no macro binds counts that many, once per pass of
    the macros around it (a selection from an iteration variable is part of one element, and
    a macro's receiver runs once)."""
    total = 0
    opens = {dot + 2: variable for dot, _, variable in macros}  # by "(": its variable
    active: list[tuple[int, str]] = []  # the "(" and variable of each macro around the token
    for at, (kind, value) in enumerate(tokens):
        while active and closing[active[-1][0]] < at:
            active.pop()
        if at - 1 in opens:
            active.append((at - 1, opens[at - 1]))
        if kind != "name" or value in _KEYWORDS or at + 1 >= len(tokens) or not active:
            continue  # not a name, or outside every macro's parentheses
        if tokens[at + 1] == ("punct", "(") or (
            at >= 2 and tokens[at - 1] == ("punct", ".") and _ends_operand(tokens[at - 2])
        ):
            continue  # a call, or a field of something else
        if any(variable == value for _, variable in active):
            continue  # a macro's own variable
        steps, after = 0, at + 1
        while after < len(tokens):
            if (
                tokens[after] == ("punct", ".")
                and after + 1 < len(tokens)
                and tokens[after + 1][0] == "name"
                and (after + 2 >= len(tokens) or tokens[after + 2] != ("punct", "("))
            ):
                steps, after = steps + 1, after + 2
            elif tokens[after] == ("punct", "["):
                steps, after = steps + 1, closing[after] + 1
            else:
                break
        total += passes[active[-1][0]] * steps * max_range
    return total


def refuse_costly(
    program: Any, what: str, error: type[IronrootError], *, max_range: int = MAX_RANGE
) -> None:
    """Raise ``error`` when the compiled ``program`` may cost more than :data:`MAX_COST` to
    evaluate (:func:`cost`) over lists of up to ``max_range`` items (:data:`MAX_RANGE`, the
    largest any policy input holds, unless the caller's inputs are known to hold fewer), or
    uses syntax whose cost this reading cannot bound."""
    try:
        macros, patterns = _costs(program, max_range)
    except _Unread as exc:
        raise error(f"{what} uses syntax whose evaluation cost cannot be bounded: {exc}") from exc
    except ValueError as exc:
        raise error(f"{what} uses {exc}") from exc
    steps = macros + patterns
    if steps > MAX_COST:
        regex = (
            f", or its matches patterns compile to too much ({patterns:,} steps: a Unicode"
            f" class such as \\w weighs {_REGEX_UNICODE:,} a copy)"
            if patterns
            else ""
        )
        raise error(
            f"{what} may take {steps:,} steps to evaluate, more than the limit of {MAX_COST:,}:"
            f" its comprehension macros (all, exists, exists_one, filter, map) nest or copy too"
            f" much over lists of up to {max_range} items{regex}"
        )
