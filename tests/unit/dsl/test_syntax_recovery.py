"""Several syntax errors in one file: one per broken definition, none caused by another."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import RuleSyntaxError, compile_rules, parse, parser
from dsl.parser import MAX_SYNTAX_ERRORS

THREE_BROKEN = """\
const limit = 10_000

webhook first {
  url     = "https://a.example.com/hook"
  when      event.data.amount >= >= limit
}

webhook fine {
  url     = "https://b.example.com/hook"
}

template second {
  subject = = "broken"
}

workflow third {
  on investment.created
  send_email x to [event.data.email
}
"""


def errors_of(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text, "f.ownly")
    assert caught.value.diagnostics[0] is caught.value.diagnostic
    return [(d.span.line, d.span.column, d.message) for d in caught.value.diagnostics]


def test_each_broken_definition_is_reported_where_it_breaks() -> None:
    assert errors_of(THREE_BROKEN) == [
        (5, 34, "unexpected '>=', expected an expression"),
        (13, 13, "unexpected '=', expected an expression"),
        (19, 1, "unexpected '}', expected ',' or ']'"),
    ]


def test_a_definition_cut_short_is_one_error() -> None:
    text = 'webhook a {\n  url = "https://a.example.com"\n\nwebhook b {\n  url = "u"\n}\n'
    assert [line for line, _, _ in errors_of(text)] == [4]


def test_the_definition_after_a_block_not_closed_is_parsed_too() -> None:
    text = 'webhook a {\n  url = "u"\n\nwebhook b {\n  url = = "u"\n}\n'
    assert errors_of(text) == [
        (4, 1, "the webhook 'a' opened at 1:1 is not closed: a '}' is missing before line 4"),
        (5, 9, "unexpected '=', expected an expression"),
    ]


def test_a_line_of_an_expression_is_no_place_to_resume() -> None:
    # `event.type` starts a line inside the broken webhook's list: not a definition.
    text = (
        'webhook a {\n  url = = "u"\n  when event.type in [\n'
        'event.type, "x"]\n}\n\nwebhook b {\n  url = "u"\n}\n'
    )
    assert [line for line, _, _ in errors_of(text)] == [2]


def test_a_broken_last_definition_is_one_error() -> None:
    text = 'webhook a {\n  url = "https://a.example.com"\n}\n\nwebhook b {\n  url = = "u"\n}\n'
    assert [line for line, _, _ in errors_of(text)] == [6]


def test_text_after_the_last_definition_is_not_parsed_again() -> None:
    # The unclosed string runs to the end of the file: there is nowhere to resume.
    text = 'webhook a {\n  url = "https://a.example.com\n}\n'
    assert len(errors_of(text)) == 1


def test_an_expression_nested_too_deeply_is_one_error_and_the_rest_is_parsed_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks = "".join(
        f'webhook w{i} {{\n  url = "https://a.example.com/{i}"\n}}\n' for i in range(30)
    )
    deep = "const deep = " + " + ".join(["1"] * 600) + "\n"
    text = hooks + deep + hooks.replace("webhook w", "webhook v")
    parsed: list[int] = []  # the line each parse starts at
    by_lark: list[int] = []
    run, run_lark = parser._run, parser._run_lark

    def counted(source: str, file: str, start: str) -> object:
        parsed.append(len(source) - len(source.lstrip("\n")) + 1)
        return run(source, file, start)

    def counted_lark(source: str, file: str, start: str) -> object:
        by_lark.append(1)
        return run_lark(source, file, start)

    monkeypatch.setattr(parser, "_run", counted)
    monkeypatch.setattr(parser, "_run_lark", counted_lark)
    with pytest.raises(RuleSyntaxError) as caught:
        parse(text, "f.ownly")
    (error,) = caught.value.diagnostics
    assert (error.span.line, error.span.column) == (91, 14)
    assert error.message == "nested too deeply: more than 100 levels"
    assert error.hint == "the limit is 100 levels; a const can name part of an expression"
    assert parsed == [1, 92]  # the file, then once what follows the const
    assert by_lark == []  # the fast path stops at the const: Lark parses nothing again


def test_the_errors_of_one_file_are_bounded() -> None:
    text = "".join(f"webhook w{i} {{\n  url = = 1\n}}\n" for i in range(MAX_SYNTAX_ERRORS + 5))
    found = errors_of(text)
    assert len(found) == MAX_SYNTAX_ERRORS
    assert [line for line, _, _ in found] == [2 + 3 * i for i in range(MAX_SYNTAX_ERRORS)]


def test_the_checker_reports_every_syntax_error_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.ownly").write_text(THREE_BROKEN)
    (tmp_path / "rules" / "b.ownly").write_text("const x = = 1\n")
    result = compile_rules([tmp_path / "rules"], templates_dir=tmp_path)
    assert result.rule_set is None
    assert [(Path(d.span.file).name, d.span.line, d.code) for d in result.diagnostics] == [
        ("a.ownly", 5, "E001"),
        ("a.ownly", 13, "E001"),
        ("a.ownly", 19, "E001"),
        ("b.ownly", 1, "E001"),
    ]
