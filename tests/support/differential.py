"""The two parsers side by side: the fast path must build what Lark builds, or decline.

`dsl.fastparse` drives Lark's private parse tables; `assert_same` holds it to
Lark's own parser on one text, and `checking_run` wraps the parser's seam so
that every rule text a test parses is held to it too (tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lark.exceptions import UnexpectedInput

from dsl import ast, fastparse
from dsl.builder import NestingError
from dsl.grammar import TreeBuilder, lark_parser

__all__ = ["DECLINED", "TooDeep", "assert_same", "checking_run", "fast_tree", "lark_tree"]


# What a parser gives for text it has a syntax error to report on.
DECLINED: Any = object()


@dataclass(frozen=True)
class TooDeep:
    """What both paths give for a node nested too deeply: the builder's error, with its span."""

    span: ast.Span


_Run = Callable[[str, str, str], Any]


def lark_tree(text: str, start: str = "start", file: str = "f.ownly") -> Any:
    """What the Lark path builds, TooDeep, or DECLINED where it has an error to report."""
    try:
        return TreeBuilder(file).transform(lark_parser().parse(text, start=start))
    except NestingError as exc:
        return TooDeep(exc.span)
    except Exception:
        return DECLINED


def _lark_error_at(text: str, start: str) -> tuple[int, int]:
    """Where Lark finds a syntax error in `text`."""
    try:
        lark_parser().parse(text, start=start)
    except UnexpectedInput as exc:
        return exc.line, exc.column
    raise AssertionError(f"no syntax error in {text!r}")


def fast_tree(text: str, start: str = "start", file: str = "f.ownly") -> Any:
    """What the fast path builds, TooDeep, or DECLINED where it leaves the text to Lark."""
    try:
        return fastparse.parse_fast(text, file, start)
    except NestingError as exc:
        return TooDeep(exc.span)
    except fastparse.Fallback:
        return DECLINED


def assert_same(
    text: str, start: str = "start", *, fast: bool = False, file: str = "f.ownly"
) -> Any:
    """The fast path builds what Lark builds, or declines (and Lark answers); Lark's result.

    A node nested too deeply is the same error on both paths, but Lark parses
    the whole text before it builds anything: where it finds a syntax error
    after that node, the fast path has stopped at the node. With `fast`, the
    fast path must not decline: the text is ordinary valid rules.
    """
    source = text if text.endswith("\n") else text + "\n"
    expected = lark_tree(source, start, file)
    got = fast_tree(source, start, file)
    if isinstance(got, TooDeep) and expected is DECLINED:
        where = _lark_error_at(source, start)
        assert where >= (got.span.end_line, got.span.end_column), source
    elif fast:
        assert expected is not DECLINED, source
        assert got == expected, source
    elif got is not DECLINED:
        assert got == expected, source
    return expected


def checking_run(run: _Run, seen: set[tuple[str, str, str]]) -> _Run:
    """`dsl.parser._run`, also holding the fast path to Lark on each text not `seen` before."""

    def checked(source: str, file: str, start: str) -> Any:
        result = run(source, file, start)  # a syntax error raised here: the fast path declined
        key = (source, file, start)
        if key not in seen:
            seen.add(key)
            got = fast_tree(source, start, file)
            if got is not DECLINED:
                assert got == lark_tree(source, start, file), f"the parsers differ on {source!r}"
        return result

    return checked
