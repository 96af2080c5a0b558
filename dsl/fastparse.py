"""The fast path of parsing: Lark's own LALR table, driven by a tight loop.

Lark parses a rule file by creating a `Token` object per token, a `Tree` per
rule and then transforming that tree; for a large rule set that was most of
the time of a cold check. This module drives the very same parse table of
`lark_parser()` from one loop, lexes as Lark's contextual lexer does (with
`dsl.fastlex`), makes tokens as plain lists and calls the `Builder` on each
reduction, exactly where Lark would have made a tree (chains of `?rule`s
such as atom -> postfix -> ... -> expr cost one lookup). So the grammar stays
in `ownly.lark` and the syntax trees are the same. It reads Lark's private
tables, so pyproject.toml pins Lark to the minor version it is tested with;
tests/unit/dsl/test_fastparse.py holds both paths equal on every shipped
file, every rule text the suite parses and a fuzz corpus.

It only knows the way through valid input: on anything else (an unexpected
character or token, a bad literal) it raises `Fallback`, and `dsl.parser`
parses the text again with Lark, whose errors become diagnostics. Nesting too
deep is the builder's error, met at the same node on both paths: it is raised
as it is, so that a large file is not parsed again whole to find it there.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lark.lexer import ContextualLexer
from lark.parsers.lalr_analysis import Shift

from dsl.builder import RAW_RULES, VALUE_TOKENS, Builder, NestingError, Shape
from dsl.fastlex import Lexicon, lexicon
from dsl.grammar import BRACKET_CLOSERS, BRACKET_OPENERS, WORD_CHARS, lark_parser

__all__ = ["Fallback", "available", "parse_fast"]


class Fallback(Exception):
    """The fast path cannot parse this text; the Lark parser must (and will explain why)."""


# What the loop does with a token besides parsing it (flags).
_LINES = 1  # count its line breaks
_SKIP = 2  # ignore it (blanks, comments)
_WORD = 4  # a NAME match: a name or a keyword, by state
_NEWLINE = 8  # a newline: dropped inside ( ) and [ ]
_OPEN = 16  # an opening bracket
_CLOSE = 32  # a closing bracket

# How a reduction builds its value (Lark's parse-tree builder, without the tree):
_NODE = 0  # a node: Builder.node(name, children)
_INLINE = 1  # a `_rule`: its children go into its parent's
_EXPAND1 = 2  # a `?rule`: its only child, else a node
_PASS = 3  # a `?rule` over one symbol: the child itself, only the state changes


# A rule: its size, the rule it reduces to, the children to splice, how
# its value is built (_NODE...), the builder's name for it and its Shape.
_Rule = tuple[int, str, frozenset[int], int, str, Shape | None]


@dataclass(frozen=True, slots=True)
class _Tables:
    actions: list[dict[str, int]]  # state -> terminal -> next state, or ~rule index
    gotos: list[dict[str, int]]  # state -> rule name -> next state
    rules: list[_Rule]
    lexicon: Lexicon
    start_states: Mapping[str, int]
    end_states: Mapping[str, int]
    special: Mapping[str, int]  # terminal -> what the loop does with it besides parsing (_LINES...)
    # (state below, state, terminal) -> the state after every `_PASS` reduction
    # that terminal causes there (a chain such as atom -> postfix -> ... -> expr).
    passes: dict[tuple[int, int, str], int]


@functools.cache
def _tables() -> _Tables | None:
    """The tables of `lark_parser()`, or None where this Lark is not what we expect."""
    lark = lark_parser()
    try:
        table = lark.parser.parser.parser.parse_table
        contextual = lark.parser.lexer.lexer
    except AttributeError:  # another Lark version, laid out otherwise
        return None
    if not isinstance(contextual, ContextualLexer):
        return None
    count = len(table.states)
    if set(table.states) != set(range(count)):
        return None
    rule_index: dict[Any, int] = {}
    rules: list[_Rule] = []
    actions: list[dict[str, int]] = [{} for _ in range(count)]
    gotos: list[dict[str, int]] = [{} for _ in range(count)]
    for state, row in table.states.items():
        for symbol, (action, arg) in row.items():
            if not symbol.isupper():
                gotos[state][symbol] = arg
            elif action is Shift:
                actions[state][symbol] = arg
            else:
                if arg not in rule_index:
                    rule_index[arg] = len(rules)
                    rules.append(_rule(arg))
                actions[state][symbol] = ~rule_index[arg]
    if any(rule[3] < 0 for rule in rules):
        return None
    words = lexicon(contextual, actions)
    if words is None:
        return None
    ends = table.end_states
    special = _special(words)
    return _Tables(actions, gotos, rules, words, table.start_states, ends, special, {})


def _special(lexicon: Lexicon) -> dict[str, int]:
    """What the loop does with a terminal besides parsing it; most need nothing."""
    special: dict[str, int] = {}
    for kind in lexicon.newline:
        special[kind] = special.get(kind, 0) | _LINES
    for kind in lexicon.ignore:
        special[kind] = special.get(kind, 0) | _SKIP
    special["NAME"] = special.get("NAME", 0) | _WORD
    special["_NL"] = special.get("_NL", 0) | _NEWLINE
    for kind in BRACKET_OPENERS:
        special[kind] = special.get(kind, 0) | _OPEN
    for kind in BRACKET_CLOSERS:
        special[kind] = special.get(kind, 0) | _CLOSE
    return special


def shape_of(rule: str, symbols: list[tuple[bool, str]]) -> Shape | None:
    """The shape of a rule over `symbols` (is_terminal, name), where it has a fixed one.

    None where `Builder.node` must look at the children: operator rules, empty
    ones, and rules with inlined `_rule`s, whose children vary in number.
    """
    if not symbols or rule in RAW_RULES:
        return None
    if any(not term and name.startswith("_") for term, name in symbols):
        return None
    kept = [i for i, (term, name) in enumerate(symbols) if not term or name in VALUE_TOKENS]
    pick: Callable[[list[Any]], Sequence[Any]] | None
    if len(kept) == len(symbols):
        pick = None
    elif not kept or kept == list(range(kept[0], kept[-1] + 1)):
        pick = operator.itemgetter(slice(kept[0], kept[-1] + 1) if kept else slice(0, 0))
    else:
        pick = operator.itemgetter(*kept)  # two or more: a tuple of them
    inner = tuple(i for i, (term, _) in enumerate(symbols) if not term)
    first = symbols[0][0] and symbols[0][1] != "_NL"
    last = symbols[-1][0] and symbols[-1][1] != "_NL"
    return pick, inner, first, last, getattr(Builder, rule)


def _rule(rule: Any) -> _Rule:
    origin: str = rule.origin.name
    splice = frozenset(
        i for i, sym in enumerate(rule.expansion) if not sym.is_term and sym.name.startswith("_")
    )
    expand1 = bool(rule.options.expand1) and not rule.alias
    name: str = rule.alias or rule.options.template_source or origin
    if origin.startswith("_"):
        mode = -1 if expand1 else _INLINE  # -1: a shape Lark allows and this loop does not
    elif expand1:
        mode = _PASS if len(rule.expansion) == 1 and not splice else _EXPAND1
    else:
        mode = _NODE
    symbols = [(sym.is_term, sym.name) for sym in rule.expansion]
    shape = shape_of(name, symbols) if mode == _NODE else None
    return len(rule.expansion), origin, splice, mode, name, shape


def available() -> bool:
    """Whether the installed Lark has the tables this loop reads."""
    return _tables() is not None


def parse_fast(text: str, file: str, start: str) -> Any:
    """Parse `text` (ending with a newline) from rule `start` and build its AST.

    Raises:
        Fallback: the text is not valid (or this Lark is not the expected one).
        NestingError: the text is valid up to a node nested too deeply.
    """
    tables = _tables()
    if tables is None:
        raise Fallback
    pieces = tables.lexicon.scan(text)
    try:
        return _parse(tables, text, pieces, Builder(file), start)
    except NestingError:
        # Its span is true where `scan` skipped no character (that is Lark's E002).
        if sum(len(blanks) + len(value) for blanks, value in pieces) == len(text):
            raise
        raise Fallback from None
    except Exception:
        # A bad literal, a word only Lark's lexer splits, or anything
        # unforeseen: Lark parses the text again and has the answer.
        raise Fallback from None


def _pass_chain(tables: _Tables, key: tuple[int, int, str]) -> int:
    below, state, kind = key
    while state not in tables.end_states.values():
        act = tables.actions[state].get(kind)
        if act is None or act >= 0:
            break
        _, origin, _, mode, _, _ = tables.rules[~act]
        if mode != _PASS:
            break
        state = tables.gotos[below][origin]
    return state


# The piece after the last: the end of the text.
_END = ("", "")


def _parse(
    tables: _Tables, text: str, pieces: list[tuple[str, str]], builder: Builder, start: str
) -> Any:
    actions, gotos, rules, passes = tables.actions, tables.gotos, tables.rules, tables.passes
    lex = tables.lexicon
    kinds, keywords, words, special = lex.kinds, lex.keywords, lex.words, tables.special
    openers = BRACKET_OPENERS
    node, shaped = builder.node, builder.shaped
    end_state = tables.end_states[start]
    state = tables.start_states[start]
    states = [state]
    values: list[Any] = []
    brackets: list[str] = []
    pos, line, line_start = 0, 1, 0
    last = ""  # the last character of the token before, where it is one the parser sees
    pieces.append(_END)
    token: list[Any]
    for blanks, value in pieces:
        if value:
            # A word glued to the one before (`3times`): Lark's post-lexer refuses it.
            if not blanks and last in WORD_CHARS and value[0] in WORD_CHARS:
                raise Fallback
            last = value[-1]
            begin = pos + len(blanks)
            pos = begin + len(value)
            kind = kinds.get(value) or lex.kind(value)
            column = begin - line_start + 1
            first_line = line
            todo = special.get(kind)
            if todo is not None:
                if todo & _LINES:
                    breaks = value.count("\n")
                    if breaks:
                        line += breaks
                        line_start = begin + value.rindex("\n") + 1
                if todo & _SKIP:
                    last = ""
                    continue
                if todo & _WORD:
                    names = keywords[state]
                    if names is not None:
                        kind = names.get(value, "NAME")
                    else:
                        kind = words[state].get(value) or lex.word(state, text, begin, value)
                # The post-lexer (`grammar._PostLexer`): no newlines inside ( ) or [ ].
                if todo & _NEWLINE:
                    if brackets and brackets[-1] != "{":
                        continue
                elif todo & _OPEN:
                    brackets.append(openers[kind])
                elif todo & _CLOSE and brackets:
                    brackets.pop()
            token = [kind, value, first_line, column, line, pos - line_start + 1]
        elif pos != len(text):  # `scan` skipped a character no token matches
            raise Fallback
        else:
            kind = "$END"
            token = []
        while True:
            act = actions[state].get(kind)
            if act is None:
                raise Fallback
            if act >= 0:
                if kind == "$END":  # pragma: no cover - the table never shifts the end
                    raise Fallback
                state = act
                states.append(state)
                values.append(token)
                break
            count, origin, splice, mode, name, shape = rules[~act]
            if mode == _PASS:
                key = (states[-2], state, kind)
                target = passes.get(key)
                if target is None:
                    target = passes[key] = _pass_chain(tables, key)
                state = states[-1] = target
            else:
                if count:
                    children = values[-count:]
                    del values[-count:]
                    del states[-count:]
                else:
                    children = []
                if splice:
                    spliced: list[Any] = []
                    for i, child in enumerate(children):
                        if i in splice:
                            spliced += child
                        else:
                            spliced.append(child)
                    children = spliced
                if shape is not None:  # only a _NODE rule has one
                    result: Any = shaped(name, shape, children)
                elif mode == _INLINE:
                    result = children
                elif mode == _EXPAND1 and len(children) == 1:
                    result = children[0]
                else:
                    result = node(name, children)
                state = gotos[states[-1]][origin]
                states.append(state)
                values.append(result)
            if kind == "$END" and state == end_state:
                return values[-1]
    raise Fallback  # pragma: no cover - the end is reduced to the start, or has no action
