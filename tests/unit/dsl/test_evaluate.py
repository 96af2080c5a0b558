"""Compiled expressions: values, operators, functions, and total evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import Context, compile_expr, parse_expression, truthy

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
EVENT = {
    "type": "investment.created",
    "data": {
        "amount": 25000,
        "price": 12.5,
        "currency": "usd",
        "email": "ada@ownly.com",
        "tags": ["vip", "early"],
        "investor": {"name": "Ada", "email": "ada@example.com"},
        "created_at": "2026-01-10T09:00:00Z",
        "flag": True,
        "nothing": None,
    },
}


def run(text: str, event: object = EVENT, env: dict[str, str] | None = None) -> object:
    evaluator = compile_expr(parse_expression(text))
    return evaluator(Context({"event": event}, now=NOW, env=env or {}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("event.data.amount", 25000),
        ("event.data.investor.name", "Ada"),
        ("event.data.missing", None),
        ("event.data.investor.missing.deeper", None),
        ("event.data.tags[0]", "vip"),
        ("event.data.tags[5]", None),
        ('event.data["currency"]', "usd"),
        ("10_000", 10000),
        ("12.50", Decimal("12.50")),
        ("5m", timedelta(minutes=5)),
        ("250ms", timedelta(milliseconds=250)),
        ("[1, 2, 3,]", [1, 2, 3]),
        ('{ a: 1, "b c": 2 }', {"a": 1, "b c": 2}),
        ("null", None),
        ("event.data.amount >= 10_000", True),
        ("event.data.amount >= 10_000.01", True),
        ("event.data.amount < 25000", False),
        ("event.data.price == 12.5", True),
        ('event.data.amount == "25000"', False),
        ('event.data.amount > "1"', False),
        ("event.data.missing > 1", False),
        ("event.data.missing == null", True),
        ("event.data.flag == 1", False),
        ('"vip" in event.data.tags', True),
        ('"gold" not in event.data.tags', True),
        ('"ow" in event.data.email', True),
        ('"name" in event.data.investor', True),
        ("1 in event.data.missing", False),
        ('event.data.email ends_with "@ownly.com"', True),
        ('event.data.email starts_with "ada"', True),
        ('event.data.email matches "^[a-z]+@"', True),
        ('event.type like "investment.*"', True),
        ('event.type like "deal.*"', False),
        ("exists event.data.investor.name", True),
        ("exists event.data.nothing", False),
        ("not exists event.data.missing", True),
        ("event.data.missing ?? 7", 7),
        ("event.data.amount ?? 7", 25000),
        ("event.data.flag and event.data.amount > 1", True),
        ("event.data.missing and true", False),
        ("event.data.missing or true", True),
        ("not event.data.flag", False),
        ("event.data.amount + 1", 25001),
        ("event.data.amount / 4", Decimal("6250")),
        ("event.data.amount / 0", None),
        ("event.data.amount % 0", None),
        ("7 % 3", 1),
        ("event.data.price * 2", Decimal("25.0")),
        ('event.data.currency + "!"', "usd!"),
        ("event.data.currency + 1", None),
        ("-event.data.amount", -25000),
        ("-event.data.currency", None),
        ("2 * (3 + 4)", 14),
        ("len(event.data.tags)", 2),
        ("len(event.data.amount)", None),
        ("upper(event.data.currency)", "USD"),
        ("lower(event.data.investor.name)", "ada"),
        ("lower(event.data.amount)", None),
        ("now()", NOW),
        ("now() - 1d", NOW - timedelta(days=1)),
        ("event.data.created_at < now()", True),
        ("event.data.created_at + 7d > now()", True),
        ("now() - event.data.created_at", timedelta(days=5, hours=3)),
        ("1d + 2h", timedelta(hours=26)),
        ("1h * 2", timedelta(hours=2)),
        ("[1, 2] == [1, 2]", True),
        ("1.0 == 1", True),
    ],
)
def test_evaluation(text: str, expected: object) -> None:
    assert run(text) == expected


def test_env_reads_the_context_environment() -> None:
    assert run('env("REGION", "eu")') == "eu"
    assert run('env("REGION", "eu")', env={"REGION": "us"}) == "us"
    assert run('env("REGION")') is None


def test_regex_subject_length_is_bounded() -> None:
    event = {"data": {"text": "a" * 20_000}}
    assert run('event.data.text matches "a"', event=event) is False
    assert run('event.data.text matches "a"', event={"data": {"text": "a"}}) is True


def test_conditions_hold_only_when_exactly_true() -> None:
    assert truthy(True)
    assert not truthy(1)
    assert not truthy("yes")
    assert not truthy(None)


def test_no_access_to_python_attributes() -> None:
    class Secretive:
        password = "hunter2"

    assert run("event.password", event=Secretive()) is None
    assert run("event.__class__", event={"data": 1}) is None
    assert run("event.data.__len__", event={"data": [1]}) is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["amount", "data", "tags", "x", "investor"]), children, max_size=4
        )
    ),
    max_leaves=20,
)
EXPRESSIONS = [
    "event.data.amount >= 10_000 and event.data.x != null",
    "event.data.tags[0] ?? event.data.x",
    'lower(event.data.x) ends_with "a" or event.data.x matches "^[0-9]+$"',
    "len(event.data.tags) > 1 and event.data.amount / event.data.x > 2",
    "event.data.amount - event.data.x * 2 % 3",
    "now() - event.data.x > 1d or event.data.x + 1h < now()",
    '"a" in event.data.tags or event.data.investor.name like "A*"',
    "-event.data.amount < -1 and not exists event.data.investor",
]


@settings(max_examples=300, deadline=None)
@given(event=json_values, index=st.integers(0, len(EXPRESSIONS) - 1))
def test_evaluation_is_total(event: object, index: int) -> None:
    # Any payload at all: a value or null comes back, never an exception.
    run(EXPRESSIONS[index], event=event)
    run(EXPRESSIONS[index], event={"type": "x.y", "data": event})
