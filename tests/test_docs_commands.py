"""Every ``ironroot …`` command shown in README.md and docs/*.md parses with the real CLI.

Users copy commands from the docs. Each command line in a code block (fenced or indented) or an
inline code span is checked, without running it, against the parser
``ironroot.cli._main.build_parser`` builds: its group and verb exist, every option it uses is
one that verb accepts, an option that takes no value is given none, a value shown for an
argument with choices is one of them, and no more positional arguments are given than the verb
takes. Doc conventions are understood: ``$ `` prompts, ``\\`` continuations,
``<placeholders>``, ``[optional]`` brackets, ``a|b`` alternatives, ``…``/``...`` elisions (an
elided verb path means "some verb under here"), pipes, redirections, ``$(...)``, ``<(...)``,
here-documents and ``# comments`` (a comment or a non-shell block is read as prose: there
``ironroot`` starts a command only before a known group). In a block that uses ``$ `` prompts,
the lines without one are output and are skipped. All problems are reported at once, each as
``file:line: problem``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ironroot.cli._main import GROUPS, _leaves, build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Command lines that are deliberately wrong, each with its reason: "file:line" -> reason.
# Keep it empty unless a doc shows a command *because* the CLI refuses it.
ALLOWED: dict[str, str] = {}

_ELISIONS = frozenset({"…", "...", "…]", "...]"})
_SHELL_BLOCKS = frozenset({"", "sh", "bash", "shell", "console", "zsh"})
_PATH_PLACEHOLDER = re.compile(r"^(<[^>]*>|[A-Z][A-Z_]*)$")  # <group>, GROUP: any verb
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_REDIRECT = re.compile(r"\d*(?:<<-?|>>|>|<)(?:&\d+|&-)?")
_HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_]+)['\"]?")


@dataclass(frozen=True, slots=True)
class Command:
    """One ``ironroot`` invocation found in a doc: its words after ``ironroot``."""

    where: str  # "file:line"
    words: tuple[str, ...]
    text: str


# -- extraction ------------------------------------------------------------------------------


def _match_paren(text: str, start: int) -> int:
    """The index just after the ``)`` closing the ``(`` before ``start`` (or the end)."""
    depth = 1
    i = start
    while i < len(text):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _tokenize(line: str) -> tuple[list[list[str]], list[str]]:
    """Shell-ish words of ``line`` split into simple commands, and the nested texts found in
    it (``$(...)``, ``<(...)``, backticks, ``<placeholders>``, ``# comments``) to read on their
    own. Tolerant: an unclosed quote ends at the end of the line."""
    commands: list[list[str]] = [[]]
    nested: list[str] = []
    word: list[str] = []
    in_word = False
    skip_next = False  # the word after a redirection is its target, not an argument

    def end_word() -> None:
        nonlocal in_word, skip_next
        if in_word:
            text = "".join(word)
            if skip_next:
                skip_next = False
            else:
                commands[-1].append(text)
        word.clear()
        in_word = False

    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t":
            end_word()
            i += 1
        elif c == "#" and not in_word:
            nested.append("#" + line[i + 1 :])
            break
        elif c in "'\"":
            close = line.find(c, i + 1)
            close = n if close < 0 else close
            inner = line[i + 1 : close]
            if c == '"':
                for m in re.finditer(r"\$\(", inner):
                    nested.append(inner[m.end() : _match_paren(inner, m.end()) - 1])
            word.append(inner)
            in_word = True
            i = close + 1
        elif line.startswith(("$(", "<("), i):
            end = _match_paren(line, i + 2)
            nested.append(line[i + 2 : end - 1])
            word.append("SUBST")
            in_word = True
            i = end
        elif c == "`":
            close = line.find("`", i + 1)
            close = n if close < 0 else close
            nested.append(line[i + 1 : close])
            word.append("SUBST")
            in_word = True
            i = close + 1
        elif c == "<" and i + 1 < n and (line[i + 1].isalpha() or line[i + 1] in "-…"):
            close = line.find(">", i)
            close = n if close < 0 else close
            inner = line[i + 1 : close]
            nested.append("# " + inner)  # a placeholder's text is prose: "<hex from: ironroot …>"
            word.append(f"<{inner}>")
            in_word = True
            i = close + 1
        elif (redirect := _REDIRECT.match(line, i)) is not None and not in_word:
            end_word()
            i = redirect.end()
            if "&" in redirect.group():
                continue  # 2>&1: no target
            if i < n and line[i] in " \t":
                skip_next = True
            else:
                while i < n and line[i] not in " \t;|&":
                    i += 1  # >file: the file is no argument
        elif c in ";&" or (c == "|" and not in_word):
            end_word()
            while i < n and line[i] in ";&|":
                i += 1
            commands.append([])
        elif c == "\\" and i + 1 < n:
            word.append(line[i + 1])
            in_word = True
            i += 2
        else:
            word.append(c)
            in_word = True
            i += 1
    end_word()
    return [cmd for cmd in commands if cmd], nested


def _is_ironroot(word: str) -> bool:
    return word == "ironroot" or word.endswith("/ironroot")


def _commands_in(text: str, where: str, *, prose: bool) -> Iterator[Command]:
    """The ``ironroot`` commands in one logical command line. In prose (comments, non-shell
    blocks) a command is ``ironroot`` followed by a known group only."""
    if prose:
        text = text.lstrip("#").strip()
    simple, nested = _tokenize(text)
    for words in simple:
        start = None
        first = next((k for k, w in enumerate(words) if not _ENV.match(w)), len(words))
        if not prose and first < len(words) and _is_ironroot(words[first]):
            start = first + 1
        elif not prose and words[first : first + 2] == ["docker", "run"]:
            start = next((k + 1 for k in range(first, len(words)) if words[k] == "ironroot"), None)
        else:
            for k, w in enumerate(words[:-1]):
                if _is_ironroot(w) and words[k + 1].strip("[]").split("|")[0] in GROUPS:
                    start = k + 1
                    break
        if start is not None and start < len(words):
            yield Command(where, tuple(words[start:]), text)
    for inner in nested:
        yield from _commands_in(inner, where, prose=prose or inner.startswith("#"))


def _inline_spans(text: str) -> Iterator[tuple[int, str]]:
    """(offset, content) of each inline code span of ``text`` (CommonMark backtick runs)."""
    i = 0
    while (m := re.compile(r"`+").search(text, i)) is not None:
        run = m.group()
        close = re.compile(rf"(?<!`){run}(?!`)").search(text, m.end())
        if close is None:
            i = m.end()
            continue
        yield m.start(), text[m.end() : close.start()]
        i = close.end()


def _block_commands(body: list[str], first: int, name: str, lang: str) -> Iterator[Command]:
    """The commands of a code block whose first line is line ``first`` of the file."""
    prompts = any(line.lstrip().startswith("$ ") for line in body)
    shell = lang in _SHELL_BLOCKS
    k = 0
    while k < len(body):
        lineno, line = first + k, body[k].strip()
        while line.endswith("\\") and k + 1 < len(body):
            k += 1
            line = line[:-1] + " " + body[k].strip()
        k += 1
        if shell and (heredoc := _HEREDOC.search(line)) is not None:
            while k < len(body) and body[k].strip() != heredoc.group(1):
                k += 1  # the here-document's lines are data, not commands
            k += 1
        if prompts and shell:
            if not line.startswith("$ "):
                continue  # output of the command above
            line = line[2:]
        yield from _commands_in(line, f"{name}:{lineno}", prose=not shell)


def _indented(line: str) -> bool:
    return line.startswith("    ") and line.strip() != ""


def extract(markdown: str, name: str) -> Iterator[Command]:
    """Every ``ironroot`` command shown in ``markdown`` (code blocks and inline spans)."""
    lines = markdown.splitlines()
    paragraph: list[tuple[int, str]] = []  # outside code blocks, for inline spans
    last_text = ""  # the last non-blank line outside code blocks
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*(`{3,}|~{3,})\s*([\w-]*)", lines[i])
        indented_block = (
            _indented(lines[i])
            and i > 0
            and lines[i - 1].strip() == ""
            and not last_text.startswith((" ", "\t"))
            and re.match(r"^([-*+]|\d+[.)])\s", last_text) is None
        )
        if fence is None and not indented_block:
            if lines[i].strip() == "":
                yield from _span_commands(paragraph, name)
                paragraph = []
            else:
                paragraph.append((i + 1, lines[i]))
                last_text = lines[i]
            i += 1
            continue
        yield from _span_commands(paragraph, name)
        paragraph = []
        if fence is not None:
            marker, lang = fence.group(1), fence.group(2).lower()
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(marker):
                end += 1
            yield from _block_commands(lines[i + 1 : end], i + 2, name, lang)
            i = end + 1
        else:  # an indented code block: indented lines, and blank lines between them
            end = i
            while end < len(lines) and (_indented(lines[end]) or lines[end].strip() == ""):
                end += 1
            yield from _block_commands(lines[i:end], i + 1, name, "")
            i = end
    yield from _span_commands(paragraph, name)


def _span_commands(paragraph: list[tuple[int, str]], name: str) -> Iterator[Command]:
    """The commands in the inline code spans of one paragraph (a span may run over a line)."""
    text = "\n".join(line for _, line in paragraph)
    starts = list(itertools.accumulate((len(line) + 1 for _, line in paragraph), initial=0))
    for offset, span in _inline_spans(text):
        lineno = paragraph[bisect.bisect_right(starts, offset) - 1][0]
        content = " ".join(span.replace("\\|", "|").split())
        yield from _commands_in(content, f"{name}:{lineno}", prose=False)


# -- checking --------------------------------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parsers: list[argparse.ArgumentParser]) -> dict[str, argparse.Action]:
    return {s: a for p in parsers for a in p._actions for s in a.option_strings}


def _not_chosen(action: argparse.Action, values: list[str], what: str) -> list[str]:
    """A value shown that is none of ``action``'s choices (``a|b``: each; placeholders and
    ``$VARIABLES`` are any value)."""
    if action.choices is None:
        return []
    choices = {str(c) for c in action.choices}
    shown = [
        alt
        for value in values
        if not _PATH_PLACEHOLDER.match(value) and "$" not in value and value not in _ELISIONS
        for alt in value.split("|")
    ]
    return [f"{what} does not take {alt!r}" for alt in shown if alt not in choices]


def _positional_slots(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The positional arguments of ``parser``, one per word, up to the first of many words."""
    slots: list[argparse.Action] = []
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.nargs is None or action.nargs == "?":
            slots.append(action)
        elif isinstance(action.nargs, int):
            slots += [action] * action.nargs
        else:
            break
    return slots


def _max_positionals(parser: argparse.ArgumentParser) -> float:
    total = 0.0
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        nargs = action.nargs
        if nargs is None or nargs == "?":
            total += 1
        elif isinstance(nargs, int):
            total += nargs
        else:
            return float("inf")
    return total


def _prog(parser: argparse.ArgumentParser) -> str:
    return f"`{parser.prog}`"


def check(command: Command, root: argparse.ArgumentParser) -> list[str]:
    """The problems of one command: empty when the real parser would accept its shape."""
    words = [w.strip("[]") for w in command.words]
    words = [w for w in words if w]
    return _check_from(root, words, command.where)


def _check_from(node: argparse.ArgumentParser, words: list[str], where: str) -> list[str]:
    problems: list[str] = []
    candidates = [node]  # after an elided verb path: every verb under ``node``
    elided = False  # something elided or unknown: positional arguments are not counted
    positionals = 0
    k = 0
    while k < len(words):
        word = words[k]
        k += 1
        if word in _ELISIONS:
            elided = True
            if _subparsers(node) and candidates == [node]:
                candidates = list(_leaves(node))
            continue
        if word == "--":
            break
        if word.startswith("-") and len(word) > 1 and word != "-":
            name, eq, _ = word.partition("=")
            if not name.startswith("--"):
                name, eq = name[:2], "=" if len(word) > 2 else ""
            accepted = _options(candidates)
            action = accepted.get(name)
            if action is None:
                where_ = _prog(node) if candidates == [node] else f"any verb under {_prog(node)}"
                problems.append(f"{where}: {where_} has no option {name}")
                elided = True  # its value, if any, is no positional argument
                continue
            if action.nargs == 0:
                # --flag=value, or -xVALUE where VALUE is not more flags (-vv is -v -v)
                bundled = word[2:] if not word.startswith("--") else ""
                valued = bool(eq) if word.startswith("--") else bundled != ""
                if valued and not all(f"-{ch}" in accepted for ch in bundled or "?"):
                    problems.append(f"{where}: {name} of {_prog(node)} takes no value ({word})")
                continue
            values = [word.partition("=")[2]] if eq else []
            if not eq and k < len(words):
                if action.nargs in ("*", "+"):
                    while k < len(words) and not words[k].startswith("-"):
                        values.append(words[k])
                        k += 1
                elif action.nargs != "?" or not words[k].startswith("-"):
                    values.append(words[k])
                    k += 1
            problems += _not_chosen(action, values, f"{where}: {name} of {_prog(node)}")
            continue
        children = _subparsers(node)
        if children and candidates == [node]:
            if _PATH_PLACEHOLDER.match(word):
                return problems  # `ironroot <group> <verb> --help`: any verb
            alternatives = word.split("|")
            unknown = [a for a in alternatives if a not in children]
            if node.get_default("func") is None or not unknown or _max_positionals(node) == 0:
                kind = "group" if node.prog == "ironroot" else "verb"
                for alt in unknown:
                    problems.append(f"{where}: {_prog(node)} has no {kind} {alt!r}")
                for alt in alternatives:
                    if alt in children:
                        problems += _check_from(children[alt], words[k:], where)
                return problems
        if not elided and positionals < len(slots := _positional_slots(node)):
            problems += _not_chosen(slots[positionals], [word], f"{where}: {_prog(node)}")
        positionals += 1
    if not elided and len(candidates) == 1 and positionals > _max_positionals(node):
        problems.append(
            f"{where}: {_prog(node)} takes at most {_max_positionals(node):.0f} "
            f"positional arguments, given {positionals} ({' '.join(words)})"
        )
    return problems


def problems_in(markdown: str, name: str, root: argparse.ArgumentParser) -> list[str]:
    """Every problem of every command in ``markdown``, ``ALLOWED`` lines included."""
    return [p for c in extract(markdown, name) for p in check(c, root)]


# -- tests -----------------------------------------------------------------------------------

_PARSER = build_parser()


def test_every_command_in_the_docs_parses() -> None:
    found = []
    for path in DOCS:
        found += problems_in(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), _PARSER)
    problems = [p for p in found if p.split(": ", 1)[0] not in ALLOWED]
    assert problems == [], "\n".join(problems)
    stale = set(ALLOWED) - {p.split(": ", 1)[0] for p in found}
    assert stale == set(), f"ALLOWED names lines that are no longer wrong: {sorted(stale)}"


def test_the_docs_show_commands_at_all() -> None:
    # the extractor finds the commands of README.md: a broken extractor fails here, not silently
    found = {" ".join(c.words[:2]) for c in extract((ROOT / "README.md").read_text(), "README.md")}
    assert {"serve --data", "statement sign", "log verify", "completion bash|zsh|fish"} <= found


_SAMPLE = """\
Sign it with `ironroot statement sign r.json --key k.key --issuer https://v.example`, show
it with `ironroot key show k.pem --json true`.

```sh
$ ironroot statement register r.cose --url http://127.0.0.1:8000 --witnes-key VKEY \\
    --json
{"ok": true, "output": "ironroot statement register --bogus"}
$ cat out | ironroot key show --jsn
$ X=$(ironroot statment sign r.json) && ironroot log verify DIR --json=yes
```

```toml
dir = "hsm"   # ironroot hsm init --dri …
```

Or `ironroot hsm ... --no-such-flag FILE` and `ironroot hsm verifier add|remve|list`;
`ironroot completion bash|tcsh` and `ironroot dashboard passwrd --data dc`;
`ironroot hsm key generate --type EC-P385 --label k`.

### Indented

    ironroot serve --data ts --replicaa
"""


def test_a_misspelt_option_in_a_sample_is_named_with_its_line() -> None:
    assert problems_in(_SAMPLE, "sample.md", _PARSER) == [
        "sample.md:1: `ironroot statement sign` has no option --issuer",
        "sample.md:2: `ironroot key show` takes at most 1 positional arguments, given 2"
        " (k.pem --json true)",
        "sample.md:5: `ironroot statement register` has no option --witnes-key",
        "sample.md:8: `ironroot key show` has no option --jsn",
        "sample.md:9: --json of `ironroot log verify` takes no value (--json=yes)",
        "sample.md:9: `ironroot` has no group 'statment'",
        "sample.md:13: `ironroot hsm init` has no option --dri",
        "sample.md:16: any verb under `ironroot hsm` has no option --no-such-flag",
        "sample.md:16: `ironroot hsm verifier` has no verb 'remve'",
        "sample.md:17: `ironroot completion` does not take 'tcsh'",
        "sample.md:17: `ironroot dashboard` has no verb 'passwrd'",
        "sample.md:18: --type of `ironroot hsm key generate` does not take 'EC-P385'",
        "sample.md:22: `ironroot serve` has no option --replicaa",
    ]
