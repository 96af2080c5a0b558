"""Parsing: spans on nodes, comments, and only the language's own errors on any input."""

from __future__ import annotations

import contextlib
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import (
    DslError,
    ParseCache,
    RuleSyntaxError,
    ast,
    compile_rules,
    parse,
    parse_expression,
    stages,
)
from dsl.ast import Span
from dsl.grammar import lark_parser
from dsl.parser import parse_file
from tests.unit.dsl.support import write_generated


def test_nodes_carry_spans() -> None:
    module = parse("webhook w {\n  when event.data.amount >= 10_000\n}\n", "r.ownly")
    (webhook,) = module.definitions
    assert isinstance(webhook, ast.WebhookDef)
    assert webhook.span == ast.Span("r.ownly", 1, 1, 3, 2)
    assert webhook.name_span == ast.Span("r.ownly", 1, 9, 1, 10)
    (clause,) = webhook.body
    assert isinstance(clause, ast.WhenClause)
    expr = clause.expr
    assert isinstance(expr, ast.Binary)
    assert expr.span == ast.Span("r.ownly", 2, 8, 2, 35)
    assert isinstance(expr.left, ast.Path)
    assert expr.left.parts == ("event", "data", "amount")
    assert expr.left.span == ast.Span("r.ownly", 2, 8, 2, 25)


def test_comments_are_kept_with_positions_and_strings_are_not_comments() -> None:
    module = parse('# top\nconst a = "# not a comment"  # real\n')
    assert [(c.line, c.column, c.text) for c in module.comments] == [
        (1, 1, "# top"),
        (2, 30, "# real"),
    ]


def test_keywords_are_names_where_a_name_is_expected() -> None:
    module = parse('event webhook.test {\n  description = "d"\n  on: string\n  timeout: int\n}\n')
    (event,) = module.definitions
    assert isinstance(event, ast.EventDef)
    assert event.name == "webhook.test"
    assert [s.name for s in event.body] == ["description", "on", "timeout"]


@pytest.mark.parametrize(
    ("text", "canonical_op"),
    [
        ("a or b and c", "or"),
        ("not a == b", "not"),
        ("a ?? b > c", ">"),
        ("a + b * c", "+"),
        ("a not in b", "not in"),
    ],
)
def test_precedence(text: str, canonical_op: str) -> None:
    expr = parse_expression(text)
    assert isinstance(expr, ast.Binary | ast.Unary)
    assert expr.op == canonical_op


def test_the_parser_is_built_once() -> None:
    assert lark_parser() is lark_parser()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_dsl_errors(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    with contextlib.suppress(DslError):
        parse(text)


TOKENS = [
    "webhook", "event", "workflow", "template", "hook", "const", "on", "when", "retry", "times",
    "timeout", "wait", "for", "until", "where", "else", "if", "parallel", "send_email", "to",
    "emit", "fail", "set", "retry_from", "exponential", "..", "every", "schedule", "{", "}", "(",
    ")", "[", "]", ",", ":", "=", "==", "!=", "<", ">=", "?", "??", "|", "+", "-", "*", "/", "%",
    ".", "and", "or", "not", "in", "exists", "matches", "x", "event", "data", "amount", "10_000",
    "1.5", "5m", "7d", '"s"', '"{{ a }}"', "true", "null", "list", "\n", "\n\n", "# c\n", "  ",
]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_sequences_only_raise_dsl_errors(tokens: list[str]) -> None:
    with contextlib.suppress(DslError):
        parse(" ".join(tokens))


def test_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(DslError):
        parse("const x = " + "(" * 5000 + "1" + ")" * 5000 + "\n")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("workflow w {\n  on a.b\n  sendemail x to y\n}\n", "did you mean 'send_email'?"),
        ("webhook w {\n  wen a > 1\n}\n", "did you mean 'when'?"),
        ("workflow w {\n  if true {\n    fail\n  }\n  else {\n  }\n}\n", "} else {"),
        ("webhook w {\n  when a = 1\n}\n", "use '==' to compare"),
        ('webhook w {\n  url = "u" }\n', "put '}' on a line of its own"),
        ("const a = 'x'\n", "strings use double quotes"),
    ],
)
def test_syntax_errors_come_with_hints(text: str, hint: str) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text)
    assert hint in (caught.value.diagnostic.hint or "")


def test_parse_cache_reuses_unchanged_files_only() -> None:
    cache = ParseCache()
    first = cache.parse("const a = 1\n", "a.ownly")
    assert cache.parse("const a = 1\n", "a.ownly") is first
    assert cache.parse("const a = 2\n", "a.ownly") is not first
    assert cache.parse("const a = 1\n", "b.ownly").file == "b.ownly"


def test_parse_cache_keeps_the_latest_text_of_each_file_only() -> None:
    cache = ParseCache(max_files=3)
    for version in range(10):
        cache.parse(f"const a = {version}\n", "a.ownly")
    assert cache.get("const a = 9\n", "a.ownly") is not None
    assert cache.get("const a = 8\n", "a.ownly") is None
    for name in ("b.ownly", "c.ownly"):
        cache.parse("const b = 1\n", name)
    assert cache.get("const a = 9\n", "a.ownly") is not None  # three files: all kept
    cache.parse("const b = 1\n", "d.ownly")  # a fourth: the cache starts again
    assert cache.get("const a = 9\n", "a.ownly") is None
    assert cache.get("const b = 1\n", "d.ownly") is not None


def test_a_compilation_keeps_every_tree_in_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_generated(tmp_path, {}, files=6)
    cache = ParseCache()
    templates = tmp_path / "templates"
    assert compile_rules(paths, templates_dir=templates, cache=cache).ok
    for path in paths:
        text = path.read_text()
        assert cache.get(text, str(path)) == parse(text, str(path))
    monkeypatch.setattr(stages, "parse", None)  # nothing left to parse
    monkeypatch.setattr(stages, "lower_webhook", None)  # nor to lower
    assert compile_rules(paths, templates_dir=templates, cache=cache).ok


def test_a_byte_order_mark_is_not_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bom.ownly"
    path.write_bytes("\ufeffconst a = 1\n".encode())
    module, text = parse_file(path)
    assert text == "const a = 1\n"
    assert isinstance(module.definitions[0], ast.ConstDef)


def test_a_span_made_by_the_parser_is_a_span() -> None:
    module = parse("const a = 1\n", "f.ownly")
    span = module.definitions[0].span
    assert type(span) is Span and span == Span("f.ownly", 1, 1, 1, 12)
    assert (span.file, span.line, span.column, span.end_line, span.end_column) == tuple(span)
    assert hash(span) == hash(Span("f.ownly", 1, 1, 1, 12))
    assert pickle.loads(pickle.dumps(span)) == span  # noqa: S301
