"""The fast parser builds exactly the trees the Lark parser builds, and declines the rest.

Held equal on every shipped rule file, on every rule text the suite parses
(tests/conftest.py checks each at the parser's seam), and on a fuzz corpus:
generated rules, mutated shipped files, random token sequences, random text.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.dsl import _write_rules
from dsl import fastparse, parse
from dsl.ast import Span
from dsl.builder import LiteralError, NestingError
from dsl.fastparse import Fallback, available, parse_fast
from dsl.grammar import TreeBuilder, lark_parser
from tests.support.differential import DECLINED, TooDeep, assert_same, fast_tree, lark_tree
from tests.support.rules import RECEIVER_WEBHOOK
from tests.unit.dsl.support import BASE_RULES
from tests.unit.dsl.test_fmt import random_rules
from tests.unit.dsl.test_parser import TOKENS
from tests.unit.dsl.test_robustness import mutate

RULES_DIR = Path(__file__).parents[3] / "rules"


def test_the_fast_path_is_available() -> None:
    assert available()


@pytest.mark.parametrize("path", sorted(RULES_DIR.rglob("*.ownly")), ids=lambda p: p.name)
def test_shipped_rules(path: Path) -> None:
    assert_same(path.read_text(), fast=True)


def test_every_rule_text_a_test_parses_is_held_to_lark(monkeypatch: pytest.MonkeyPatch) -> None:
    text = 'const held = "to lark"\n'
    assert parse(text).definitions  # through the seam: the parsers agree
    monkeypatch.setattr(fastparse, "parse_fast", lambda source, file, start: [])
    with pytest.raises(AssertionError, match="the parsers differ"):
        parse('const held = "to lark, once more"\n')


def test_the_benchmark_rules_and_test_catalog(tmp_path: Path) -> None:
    paths = _write_rules(tmp_path, files=4, per_file=10, namespaces=5)
    for path in paths:
        assert_same(path.read_text(), fast=True)
    assert_same(BASE_RULES, fast=True)
    assert_same(RECEIVER_WEBHOOK, fast=True)


@pytest.mark.parametrize(
    "expression",
    [
        "a or b and c",
        "not a == b",
        "a ?? b > c",
        "a + b * c - -d % 2 / e",
        "a not in [1, 2.5, 3d,]",
        'x.y[0].*.z matches "^a" and exists p.q',
        'f(a, b: {"k": 1, m: [true, false, null]})',
        "(" * 99 + "1" + ")" * 99,
        "(" * 100 + "1" + ")" * 100,
    ],
)
def test_expressions(expression: str) -> None:
    valid = lark_tree(expression + "\n", "expression") is not DECLINED
    assert_same(expression, "expression", fast=valid)


@pytest.mark.parametrize(
    "text",
    [
        'const a = "bad \\q escape"\n',
        "const a = " + "-" * 120 + "1\n",
        "const a = 'x'\n",
        "webhook w {\n  when a = 1\n}\n",
        'event e {\n  a?: string\n  b: list[{ c: int, d?: "x" | "y" }]\n}\n',
        "",
        "\n\n# only a comment\n",
        'webhook w {\r\n  url = "u"\t# tab\r\n\f  when a.b >= 1.5\r\n}\r\n',
        "\ufeffconst a = 1\n",
        "const caf\u00e9 = 1\n",
        "const a = [1,\n  2, # two\n  3]\nconst b = f(\n)\n",
        "workflow w {\n  on a.b\n  retry 3 timesx\n}\n",
    ],
)
def test_errors_and_edges(text: str) -> None:
    assert_same(text)


@pytest.mark.parametrize(
    ("glued", "spaced"),
    [
        ("eventdeal.funded {\n  a: string\n}\n", "event deal.funded {\n  a: string\n}\n"),
        ("webhookcrm {\n}\n", "webhook crm {\n}\n"),
        ("webhook w {\n  retry 3times\n}\n", "webhook w {\n  retry 3 times\n}\n"),
        ("webhook w {\n  when a notin b\n}\n", "webhook w {\n  when a not in b\n}\n"),
        ("workflow w {\n  cancel onion.x\n}\n", "workflow w {\n  cancel on ion.x\n}\n"),
        ("const a = 10_000and b\n", "const a = 10_000 and b\n"),
        ("const a = 1.5s\n", None),
    ],
)
def test_a_word_glued_to_a_keyword_or_a_number_is_refused_by_both_paths(
    glued: str, spaced: str | None
) -> None:
    # Where names are not expected, Lark's state lexer would take the keyword
    # `on` off `onion`, or the number off `3times`, and `fmt` split them.
    assert fast_tree(glued) is DECLINED
    assert lark_tree(glued) is DECLINED
    if spaced is not None:
        assert_same(spaced, fast=True)


@pytest.mark.parametrize(
    "text",
    ["const a = 1 $\n", "const a = 1\n@\nconst b = 2\n", "const a = \u00e9\n", "const a = 1\n!"],
)
def test_a_character_no_token_matches_falls_back(text: str) -> None:
    # The scanner skips it; the parser must not build a tree around the gap.
    with pytest.raises(Fallback):
        parse_fast(text, "f", "start")
    assert lark_tree(text) is DECLINED


def test_a_token_text_has_the_same_terminal_in_every_context() -> None:
    text = "const a = [5s, 5, 5.5, 5_000, time, times]\nconst times = 5ms\n"
    assert_same(text, fast=True)
    assert_same(text, fast=True)  # with what the first parse learnt


@pytest.mark.parametrize(
    "nest",
    [
        lambda n: "(" * n + "1" + ")" * n,
        lambda n: "-" * n + "1",
        lambda n: "a" + ".b" * n,
        lambda n: " + ".join(["1"] * n),
        lambda n: "[" * n + "]" * n,
        lambda n: "not " * n + "a",
        lambda n: "{ a: " * n + "1" + " }" * n,
    ],
)
def test_nesting_is_refused_at_the_same_node_by_both_paths(nest: Callable[[int], str]) -> None:
    # assert_same: the same tree, or the same TooDeep with the same span
    trees = [assert_same(f"const a = {nest(levels)}\n") for levels in range(40, 104)]
    refused = [isinstance(tree, TooDeep) for tree in trees]
    assert refused[0] is False and refused[-1] is True  # the limit is in the range
    assert DECLINED not in trees


def test_a_bad_literal_falls_back_and_nesting_too_deep_does_not() -> None:
    with pytest.raises(Fallback):
        parse_fast('const a = "\\q"\n', "f", "start")
    text = "const a = " + "(" * 101 + "1" + ")" * 101 + "\n"
    with pytest.raises(NestingError) as fast:
        parse_fast(text, "f", "start")
    # The Lark path raises what becomes the diagnostic.
    with pytest.raises(LiteralError):
        TreeBuilder("f").transform(lark_parser().parse('const a = "\\q"\n', start="start"))
    with pytest.raises(NestingError) as lark:
        TreeBuilder("f").transform(lark_parser().parse(text, start="start"))
    assert fast.value.span == lark.value.span == Span("f", 1, 12, 1, 213)


@pytest.mark.parametrize(
    "text",
    [
        "const a = 1 $\nconst b = " + "(" * 101 + "1" + ")" * 101 + "\n",
        "const a = " + "(" * 101 + "1" + ")" * 101 + " +\n",
        "const a = " + "(" * 101 + "1" + ")" * 101 + "\nconst b = = 2\n",
    ],
    ids=["a character before", "a syntax error right after", "a syntax error further on"],
)
def test_nesting_too_deep_with_a_syntax_error(text: str) -> None:
    # Before the node the fast path leaves the text to Lark; after it, the
    # fast path has stopped at the node, and Lark finds the syntax error there.
    assert_same(text)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_generated_rules(rng: random.Random) -> None:
    assert_same(random_rules(rng), fast=True)


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_mutated_shipped_rules(rng: random.Random) -> None:
    for text in mutate(rng).values():
        assert_same(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_random_token_sequences(tokens: list[str]) -> None:
    assert_same(" ".join(tokens))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from('ab_19."{}()[],:=<>?*\n #\\\r\t\u00e9'), max_size=60))
def test_random_text(text: str) -> None:
    assert_same(text)
    assert_same(text, "expression")
