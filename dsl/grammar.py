"""The Lark parser for `ownly.lark`: its trees to AST nodes, its syntax errors in plain words."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from lark.visitors import Transformer_NonRecursive

from dsl.ast import Span
from dsl.builder import Builder, Tok
from dsl.diagnostics import Diagnostic, did_you_mean

__all__ = [
    "BRACKET_CLOSERS",
    "BRACKET_OPENERS",
    "DEFINITION",
    "GLUED",
    "WORD_CHARS",
    "TreeBuilder",
    "lark_parser",
    "lark_token",
    "syntax_diagnostic",
]

BRACKET_OPENERS = MappingProxyType({"LPAR": "(", "LSQB": "[", "LBRACE": "{"})
BRACKET_CLOSERS = frozenset({"RPAR", "RSQB", "RBRACE"})

# Where a top-level definition starts: at the start of a line, its keyword and
# name, then its brace (or a const's "="); not a line of an expression that
# happens to begin with `event.`.
DEFINITION = re.compile(
    r"^(?:(?:event|webhook|template|hook|workflow)[ \t]+[\w.]+[ \t]*\{|const[ \t]+\w+[ \t]*=)",
    re.MULTILINE,
)
_WORD = re.compile(r"\w+")
# The terminals of the keywords that open a top-level block.
_BLOCKS = frozenset({"EVENT", "WEBHOOK", "TEMPLATE", "HOOK", "WORKFLOW"})

# When most expression-starting (or operator) terminals are expected, the
# message says "an expression" ("an operator") instead of listing a dozen tokens.
_EXPR_START = frozenset(
    {"NAME", "STRING", "INT", "DECIMAL", "DURATION"}
    | {"'['", "'('", "'{'", "'-'", "'not'", "'exists'", "'true'", "'false'", "'null'", "'*'"}
)
_OPERATORS = frozenset(
    {"'=='", "'!='", "'<'", "'<='", "'>'", "'>='", "'in'", "'matches'", "'starts_with'"}
    | {"'ends_with'", "'like'", "'+'", "'-'", "'*'", "'/'", "'%'", "'and'", "'or'", "'.'"}
    | {"'['", "'??'", "'not'"}
)
_NAMED = MappingProxyType(
    {
        "NAME": "a name",
        "STRING": 'a string ("...")',
        "INT": "a whole number",
        "DECIMAL": "a decimal number",
        "DURATION": "a duration such as 30s, 5m, 2h or 7d",
        "_NL": "a new line",
        "$END": "the end of the file",
        "OPTIONAL": "'?'",
        "_TIMES": "'times'",
    }
)


# A token is glued to the one before when both are words: the first ends and
# the second starts with one of these, with nothing between them.
WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# The type given to a glued token: no rule accepts it, so the parser stops there.
GLUED = "GLUED"


class _PostLexer:
    """Between the lexer and the parser: no newlines inside ( ) and [ ], no glued words.

    Where a state accepts no name, the contextual lexer takes a keyword off
    the front of a longer word (`eventdeal` as `event` `deal`, `a notin b` as
    `a not in b`), and a number off the front of a word (`3times`); `fmt`
    would then split them. Such a token becomes GLUED instead.
    """

    always_accept = ("_NL",)

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        stack: list[str] = []
        end, word = -1, False  # where the last token ended, whether in a word character
        for token in stream:
            kind = token.type
            text = str(token)
            if word and token.start_pos == end and text[:1] in WORD_CHARS:
                token = Token.new_borrow_pos(GLUED, text, token)
            end, word = token.end_pos or 0, text[-1:] in WORD_CHARS
            if kind == "_NL" and stack and stack[-1] != "{":
                continue
            if kind in BRACKET_OPENERS:
                stack.append(BRACKET_OPENERS[kind])
            elif kind in BRACKET_CLOSERS and stack:
                stack.pop()
            yield token


@functools.cache
def lark_parser() -> Lark:
    """The LALR parser, built once per process (and cached on disk by Lark)."""
    grammar = (Path(__file__).parent / "ownly.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        start=["start", "expression"],
        # Spans are computed by the builder from the tokens, which is several
        # times cheaper than Lark's propagate_positions.
        keep_all_tokens=True,
        maybe_placeholders=False,
        postlex=_PostLexer(),
        cache=True,
    )


@functools.cache
def _terminal_words() -> dict[str, str]:
    words = dict(_NAMED)
    for terminal in lark_parser().terminals:
        if terminal.name in words:
            continue
        pattern = terminal.pattern
        if isinstance(pattern, PatternStr):
            words[terminal.name] = f"'{pattern.value}'"
    return words


def _describe_expected(expected: set[str]) -> str:
    words = _terminal_words()
    names = {n if n in _NAMED else words.get(n, n) for n in expected}
    parts: list[str] = []
    if len(names & _EXPR_START) >= 4:
        names -= _EXPR_START
        parts.append("an expression")
    if len(names & _OPERATORS) >= 4:
        names -= _OPERATORS
        parts.append("an operator")
    parts.extend(sorted(words.get(n, n) for n in names))
    if not parts:
        return "something else"
    if len(parts) > 8:
        parts = [*parts[:8], "..."]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _describe_token(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    if token.type == "$END":
        return "end of file"
    if token.type == "STRING":
        return f"string {token.value}"
    text = str(token.value)
    return f"'{text[:40]}'"


def syntax_diagnostic(error: UnexpectedInput, file: str, text: str) -> Diagnostic:
    """Translate a Lark error into a diagnostic that names what was expected."""
    if isinstance(error, UnexpectedToken):
        expected = _accepted(error)
        token = error.token
        line, column = token.line or 1, token.column or 1
        opened = _open_block(error)
        if token.type == "$END":
            message = "unexpected end of file, expected " + _describe_expected(expected)
            if opened is not None and "RBRACE" in expected:
                message += f": {opened} is not closed"
            return _at(file, text, None, "E003", message)
        line_start = text.rfind("\n", 0, token.start_pos or 0) + 1
        if opened is not None and DEFINITION.match(text, line_start):
            # The next definition, taken for statements of the block before it.
            message = f"{opened} is not closed: a '}}' is missing before line {line}"
            keyword = _WORD.match(text, line_start)
            end = 1 + (len(keyword.group()) if keyword else 1)
            return Diagnostic("E001", message, Span(file, line, 1, line, end))
        width = max(len(str(token.value)), 1) if token.type != "_NL" else 1
        if token.type == "_NL":
            line, column = _end_of_line(text, token.start_pos or 0)
        span = Span(file, line, column, line, column + width)
        start = token.start_pos or 0
        if start and text[start - 1] in WORD_CHARS and str(token)[:1] in WORD_CHARS:
            # GLUED, or a word the lexer of this state has no token for (`5sec`)
            return _glued(token, expected, text, span)
        message = f"unexpected {_describe_token(token)}, expected " + _describe_expected(expected)
        return Diagnostic("E001", message, span, _hint(token, expected, text))
    if isinstance(error, UnexpectedCharacters):
        pos = error.pos_in_stream or 0
        char = text[pos] if pos < len(text) else "?"
        span = Span(file, error.line, error.column, error.line, error.column + 1)
        hint = "strings use double quotes" if char == "'" else None
        return Diagnostic("E002", f"unexpected character {char!r}", span, hint)
    if isinstance(error, UnexpectedEOF):
        return _at(
            file,
            text,
            None,
            "E003",
            "unexpected end of file, expected " + _describe_expected(set(error.expected)),
        )
    return _at(file, text, None, "E001", "syntax error")  # pragma: no cover - other lark errors


# Words that start a statement; a misspelt one parses as a name, so the error
# comes one token later and the hint looks back at it.
_STATEMENT_WORDS = (
    "send_email", "send_webhook", "emit", "wait", "set", "fail", "retry_from", "parallel",
    "if", "on", "timeout", "concurrency", "debounce", "dedup", "cancel", "description",
    "when", "retry", "rate_limit",
)  # fmt: skip
_LINE_START_WORD = re.compile(r"(?:^|\n)[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*$")


def _hint(token: Token, expected: set[str], text: str) -> str | None:
    readable = {_terminal_words().get(n, n) for n in expected}
    if token.type == "EQUAL" and "'=='" in readable:
        return "use '==' to compare"
    if token.type == "RBRACE" and expected == {"_NL"}:
        return "one statement per line: put '}' on a line of its own"
    match = _LINE_START_WORD.search(text, 0, token.start_pos or 0)
    word = match.group(1) if match else None
    if word == "else":
        return "'else' goes on the line of the '}' it follows: } else {"
    if word and word not in _STATEMENT_WORDS:
        return did_you_mean(word, _STATEMENT_WORDS)
    return None


# What a glued token follows: a keyword or a number (a name would have taken it in).
_BEFORE_GLUED = re.compile(r"(?:\d(?:_?\d)*\.)?[A-Za-z0-9_]+\Z")


def _glued(token: Token, expected: set[str], text: str, span: Span) -> Diagnostic:
    start = token.start_pos or 0
    found = _BEFORE_GLUED.search(text, text.rfind("\n", 0, start) + 1, start)
    before = found.group() if found else text[start - 1 : start]
    hint = None
    readable = {_terminal_words().get(n, n) for n in expected}
    if before[0].isdigit() and "NAME" not in expected and f"'{token}'" not in readable:
        hint = "a duration is a number and its unit, with no space: 500ms, 30s, 5m, 2h, 7d or 2w"
    return Diagnostic("E001", f"expected a space after '{before}'", span, hint)


def _open_block(error: UnexpectedToken) -> str | None:
    """The top-level block the parser is inside, as "the webhook 'crm' opened at 3:1"."""
    parser = error.interactive_parser
    stack = getattr(getattr(parser, "parser_state", None), "value_stack", None) or []
    for at, value in enumerate(stack):
        if isinstance(value, Tree) or (isinstance(value, Token) and value.type == "_NL"):
            continue  # the definitions before it, and the blank lines between them
        if not isinstance(value, Token) or value.type not in _BLOCKS or len(stack) < at + 3:
            return None
        name, brace = stack[at + 1], stack[at + 2]
        if not isinstance(brace, Token) or brace.type != "LBRACE":
            return None
        if isinstance(name, Tree):  # an event's dotted name
            name = "".join(str(part) for part in name.scan_values(lambda _: True))
        return f"the {value} '{name}' opened at {value.line}:{value.column}"
    return None


def _accepted(error: UnexpectedToken) -> set[str]:
    """The terminals the parser would really accept here (LALR lookaheads overstate it)."""
    parser = error.interactive_parser
    if parser is not None:
        try:
            return set(parser.accepts())  # type: ignore[no-untyped-call]
        except UnexpectedInput:  # pragma: no cover - accepts() only feeds known terminals
            pass
    return set(error.expected)


def _end_of_line(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    return line, pos - start + 1


def _at(file: str, text: str, pos: int | None, code: str, message: str) -> Diagnostic:
    body = text.rstrip("\n")
    where = len(body) if pos is None else pos
    line, column = _end_of_line(text, where)
    return Diagnostic(code, message, Span(file, line, column, line, column + 1))


def lark_token(token: Token) -> Tok:
    """A Lark token as the builder's list."""
    line = token.line or 1
    column = token.column or 1
    end_line = token.end_line or line
    end_column = token.end_column or column + 1
    return [token.type, str(token), line, column, end_line, end_column]


class TreeBuilder(Transformer_NonRecursive[Token, Any]):
    """Lark's parse tree through a `Builder` (the fallback parser's path)."""

    def __init__(self, file: str) -> None:
        super().__init__(visit_tokens=False)
        self._builder = Builder(file)

    def _call_userfunc(self, tree: Tree[Token], new_children: list[Any] | None = None) -> Any:
        children = tree.children if new_children is None else new_children
        converted = [lark_token(c) if isinstance(c, Token) else c for c in children]
        return self._builder.node(tree.data, converted)
