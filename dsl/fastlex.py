"""The fast parser's lexer: Lark's contextual lexer, with one regular expression for all states.

Lark's contextual lexer matches, in each parser state, a regular expression of
only the terminals that state accepts, so that keywords stay usable as names
(`event webhook.test`). Switching expressions per token is most of its cost.
`Lexicon` instead matches one expression, that of Lark's root lexer (every
terminal, in Lark's order, blanks folded in), and decides per state only what
a word is. The tokens are the same wherever the parse can succeed:

- A word (`[A-Za-z_]\\w*`) is one NAME match. In a state that accepts NAME,
  Lark's state lexer also matches the whole word as NAME and renames it to a
  keyword that state accepts if the word is that keyword (its
  `UnlessCallback`); `Lexicon.keywords` holds that mapping per state. In a
  state that does not accept NAME, the state's own Lark lexer decides, once
  per (state, word), and a keyword that is only the start of the word is
  left to the Lark parser (`Unknown`).
- Any other token is the longest literal or the first pattern (numbers by
  priority) that matches. The state's lexer holds a subset of the same
  terminals in the same order, so where it accepts the master's token it
  produces it too; where it does not, the parser has no action for the token
  and the Lark parser takes over.
- Numbers: a state accepts all of DURATION, DECIMAL and INT or none (checked
  when the lexicon is made), so their priorities decide alike.

A file is cut into tokens in one call (`Lexicon.scan`: the same expression,
its blanks and its token in two groups, through `findall`, which makes no
match object per token); a token's terminal is the one the expression finds
for its text alone (`Lexicon.kind`, remembered: most texts recur). Only a
terminal with a lookahead could tell its text apart from its context, and
the one there is (DURATION's, no word character after the unit) is the first
tried and only ever matches text that ends with a unit. Where the text holds
a character no token matches, `findall` skips it: the lengths of the pieces
then fall short of the text, which the parser checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lark.lexer import BasicLexer, ContextualLexer, PatternStr, UnlessCallback

__all__ = ["Lexicon", "Unknown", "lexicon"]

_NUMBERS = frozenset({"DURATION", "DECIMAL", "INT"})
_MAX_KINDS = 100_000


class Unknown(Exception):
    """The word is not a whole token in this state (or no token at all)."""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """What the fast parser needs to lex like Lark's contextual lexer."""

    match: Callable[[str, int], re.Match[str] | None]  # blanks, then one token
    scan: Callable[[str], list[tuple[str, str]]]  # the (blanks, token) pairs of a text
    ignore: frozenset[str]
    newline: frozenset[str]  # terminals whose text may hold line breaks
    keywords: Sequence[Mapping[str, str] | None]  # state -> {word: keyword}, where NAME is accepted
    words: Sequence[dict[str, str]]  # state -> {word: terminal}, learnt, where it is not
    lexers: Sequence[BasicLexer]
    kinds: dict[str, str]  # token text -> terminal, learnt

    def kind(self, token: str) -> str:
        """The terminal of a token's text (see the module's docstring)."""
        found = self.match(token, 0)
        if found is None or found.end() != len(token) or found.lastgroup is None:
            raise Unknown(token)
        if len(self.kinds) >= _MAX_KINDS:  # names and strings are many; the common ones recur
            self.kinds.clear()
        self.kinds[token] = found.lastgroup
        return found.lastgroup

    def word(self, state: int, text: str, pos: int, word: str) -> str:
        """The terminal of `word` at `pos` in a state that does not accept names."""
        lexer = self.lexers[state]
        found = lexer.scanner._mres[0].match(text, pos)
        if found is None or found.group() != word or found.lastgroup is None:
            raise Unknown(word)
        kind: str = found.lastgroup
        callback = lexer.callback.get(kind)
        if callback is not None:
            kind = _unless(callback).get(word, kind)
        self.words[state][word] = kind
        return kind


def _unless(callback: Any) -> dict[str, str]:
    if not isinstance(callback, UnlessCallback):
        raise TypeError(callback)
    words: dict[str, str] = {}
    for terminal in callback.scanner.terminals:
        if not isinstance(terminal.pattern, PatternStr) or terminal.pattern.flags:
            raise TypeError(terminal)
        words.setdefault(terminal.pattern.value, terminal.name)
    return words


def lexicon(contextual: ContextualLexer, accepts: Sequence[Mapping[str, int]]) -> Lexicon | None:
    """The lexicon of Lark's contextual lexer, or None where it is not shaped as expected.

    `accepts[state]` holds the terminals the parser has an action for in that state.
    """
    root = contextual.root_lexer
    if not isinstance(root, BasicLexer) or len(root.scanner._mres) != 1:
        return None
    if set(root.callback) != {"NAME"}:
        return None
    blanks = [t for t in root.terminals if t.name in root.ignore_types and t.name != "COMMENT"]
    if len(blanks) != 1:
        return None
    blank, tokens = blanks[0].pattern.to_regexp(), root.scanner._mres[0].pattern
    master = re.compile(f"(?:{blank})?(?:{tokens})")
    scan = _scanner(blank, tokens)
    if scan is None:
        return None
    keywords: list[Mapping[str, str] | None] = []
    lexers: list[BasicLexer] = []
    try:
        for state, row in enumerate(accepts):
            lexer = contextual.lexers[state]
            if not isinstance(lexer, BasicLexer) or len(lexer.scanner._mres) != 1:
                return None
            if len(_NUMBERS & set(row)) not in (0, len(_NUMBERS)):
                return None
            if "NAME" in row:
                callback = lexer.callback.get("NAME")
                keywords.append(_unless(callback) if callback is not None else {})
            else:
                keywords.append(None)
            lexers.append(lexer)
    except TypeError:
        return None
    return Lexicon(
        master.match,
        scan.findall,
        frozenset(root.ignore_types),
        frozenset(root.newline_types),
        keywords,
        [{} for _ in accepts],
        lexers,
        {},
    )


def _scanner(blank: str, tokens: str) -> re.Pattern[str] | None:
    """The master expression with two groups, blanks and token, and no other; None if it cannot."""
    plain = _GROUP.sub("(?:", tokens)
    try:
        scan = re.compile(f"((?:{blank})?)((?:{plain}))")
    except re.error:
        return None
    return scan if scan.groups == 2 else None


# An opening parenthesis that captures (named or not), not escaped; the
# expressions Lark makes put none inside a character class.
_GROUP = re.compile(r"(?<!\\)\((?:\?P<\w+>|(?!\?))")
