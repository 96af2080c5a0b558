"""Broken rule sets, however broken, only ever produce diagnostics."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import DslError, compile_rules, parse
from dsl.fmt import format_source

ROOT = Path(__file__).parents[3]
FILES = {p.name: p.read_text() for p in sorted((ROOT / "rules").glob("*.ownly"))}
WORDS = sorted(
    {w for text in FILES.values() for w in re.findall(r'[\w.*]+|"[^"]*"|[{}()\[\],:=<>?|+-]', text)}
)


def mutate(rng: random.Random) -> dict[str, str]:
    name = rng.choice(sorted(FILES))
    lines = FILES[name].splitlines()
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(len(lines))
        roll = rng.random()
        if roll < 0.3:
            del lines[k]
        elif roll < 0.5:
            lines.insert(k, lines[rng.randrange(len(lines))])
        else:
            words = lines[k].split(" ")
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            lines[k] = " ".join(words)
    return {**FILES, name: "\n".join(lines)}


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_mutated_rules_give_diagnostics_not_exceptions(
    tmp_path_factory: pytest.TempPathFactory, rng: random.Random
) -> None:
    root = tmp_path_factory.mktemp("mutant")
    for name, text in mutate(rng).items():
        (root / name).write_text(text)
    compilation = compile_rules([root], templates_dir=ROOT / "templates")
    # Either a rule set or the errors that explain why there is none.
    assert (compilation.rule_set is None) == bool(compilation.errors)
    # Whatever parses formats idempotently, keeps its comments and its meaning.
    for path in sorted(root.glob("*.ownly")):
        text = path.read_text()
        try:
            formatted = format_source(text)
        except DslError:
            continue
        assert format_source(formatted) == formatted
        assert len(parse(formatted).comments) == len(parse(text).comments)
        path.write_text(formatted)
    if compilation.rule_set is not None:
        again = compile_rules([root], templates_dir=ROOT / "templates").rule_set
        assert again is not None
        assert again.version == compilation.rule_set.version


@pytest.mark.parametrize(
    "expression",
    [
        "(" * 90 + "event.data.amount" + ")" * 90,
        " + ".join(["event.data.amount"] * 90),
        "-" * 90 + "event.data.amount",
        "len(" + "[" * 80 + "]" * 80 + ")",
    ],
    ids=["parentheses", "sum", "negations", "lists"],
)
def test_the_deepest_accepted_expressions_compile_format_and_evaluate(
    tmp_path: Path, expression: str
) -> None:
    from dsl import Context
    from dsl.fmt import format_source

    text = (
        "event e.x {\n  amount: int\n}\n"
        'webhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n'
        f"  events = [e.x]\n  when {expression} != 0\n}}\n"
    )
    (tmp_path / "r.ownly").write_text(text)
    compilation = compile_rules([tmp_path], templates_dir=tmp_path)
    assert compilation.rule_set is not None, compilation.render()
    rules = compilation.rule_set
    (subscription,) = rules.match("e.x")
    assert rules.accepts(subscription, Context({"event": {"data": {"amount": 1}}}))
    assert format_source(format_source(text)) == format_source(text)
