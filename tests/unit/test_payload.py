"""Event payloads against the catalog: every problem with its path; a typed view for rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import ir
from dsl.payload import FieldProblem, _fast_checker, _Invalid, _object, check_payload, typed_view


def t(kind: str, **extra: Any) -> ir.TypeSpec:
    return ir.TypeSpec(kind=kind, **extra)


def f(name: str, type_: ir.TypeSpec, **extra: Any) -> ir.FieldSpec:
    return ir.FieldSpec(name=name, type=type_, **extra)


SPEC = ir.EventSpec(
    type="investment.created",
    fields=(
        f("amount", t("decimal")),
        f("count", t("int"), optional=True),
        f("currency", t("string"), default="usd"),
        f("status", t("string", values=("pending", "active"))),
        f("email", t("string", format="email")),
        f("site", t("string", format="url"), optional=True),
        f("at", t("timestamp")),
        f("paid", t("bool"), optional=True),
        f("tags", t("list", item=t("string")), optional=True),
        f("investor", t("object", fields=(f("name", t("string")),))),
    ),
    source=ir.Source(file="catalog.ownly", line=1),
)

GOOD: dict[str, Any] = {
    "amount": "2500.50",
    "status": "pending",
    "email": "ada@example.com",
    "at": "2026-11-26T10:00:00Z",
    "investor": {"name": "Ada"},
}


def test_a_good_payload_gets_its_defaults() -> None:
    data, problems = check_payload(SPEC, GOOD)
    assert problems == []
    assert data["currency"] == "usd"
    assert "count" not in data


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"amount": "lots"}, "data.amount", "must be a decimal number, not a string"),
        ({"amount": True}, "data.amount", "must be a decimal number, not a boolean"),
        ({"amount": float("nan")}, "data.amount", "must be a decimal number, not a number"),
        ({"count": 1.5}, "data.count", "must be an integer, not a number"),
        ({"status": "done"}, "data.status", "must be one of 'pending', 'active'"),
        ({"email": "ada"}, "data.email", "must be an email address"),
        ({"site": "ftp://x"}, "data.site", "must be an http(s) URL"),
        ({"at": "2026-11-26"}, "data.at", "must be an RFC 3339 timestamp with a time zone"),
        (
            {"at": "2026-11-26T10:00:00"},
            "data.at",
            "must be an RFC 3339 timestamp with a time zone",
        ),
        ({"paid": "yes"}, "data.paid", "must be true or false, not a string"),
        ({"tags": ["a", 2]}, "data.tags[1]", "must be a string, not a number"),
        ({"tags": "a"}, "data.tags", "must be a list, not a string"),
        ({"investor": "Ada"}, "data.investor", "must be an object, not a string"),
        ({"amout": "1"}, "data.amout", "unknown field; did you mean 'amount'?"),
        ({"status": None}, "data.status", "is required"),
        (
            {"investor": {"name": "Ada\x00"}},
            "data.investor.name",
            "must not contain NUL characters",
        ),
    ],
)
def test_each_problem_names_its_path(change: dict[str, Any], path: str, reason: str) -> None:
    _, problems = check_payload(SPEC, {**GOOD, **change})
    assert [(p.path, p.reason) for p in problems] == [(path, reason)]


def test_a_misspelt_nested_field_is_unknown_and_the_real_one_missing() -> None:
    _, problems = check_payload(SPEC, {**GOOD, "investor": {"nme": "Ada"}})
    assert [(p.path, p.reason) for p in problems] == [
        ("data.investor.nme", "unknown field; did you mean 'name'?"),
        ("data.investor.name", "is required"),
    ]


def test_every_problem_is_reported_at_once() -> None:
    _, problems = check_payload(SPEC, {"amount": "x", "extra": 1})
    assert {p.path for p in problems} == {
        "data.extra",
        "data.amount",
        "data.status",
        "data.email",
        "data.at",
        "data.investor",
    }


def test_data_must_be_an_object() -> None:
    _, problems = check_payload(SPEC, [1, 2])
    assert [(p.path, p.reason) for p in problems] == [("data", "must be an object, not a list")]


def test_the_typed_view_gives_rules_numbers_and_times() -> None:
    data, _ = check_payload(SPEC, {**GOOD, "tags": ["x"]})
    typed = typed_view(SPEC, data)
    assert typed["amount"] == Decimal("2500.50")
    assert typed["at"] == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert typed["investor"] == {"name": "Ada"}
    assert data["amount"] == "2500.50", "the stored data stays JSON"


# The compiled fast path and the walk that names problems must agree on every input.

_SCALARS = st.sampled_from(
    [
        t("string"),
        t("string", values=("a", "b")),
        t("string", format="email"),
        t("string", format="url"),
        t("int"),
        t("decimal"),
        t("bool"),
        t("timestamp"),
        t("any"),
    ]
)
_TYPES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.builds(lambda item: t("list", item=item), inner),
        st.lists(
            st.tuples(st.sampled_from("abcd"), inner, st.booleans()),
            max_size=4,
            unique_by=lambda x: x[0],
        ).map(lambda fs: t("object", fields=tuple(f(n, ty, optional=o) for n, ty, o in fs))),
    ),
    max_leaves=8,
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(["a", "x@y.io", "https://a.b/", "2026-01-01T00:00:00Z", "1.5", "\x00"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abcde"), inner, max_size=4)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(type_=_TYPES, data=_JSON)
def test_the_fast_path_agrees_with_the_walk(type_: ir.TypeSpec, data: Any) -> None:
    fields = type_.fields if type_.kind == "object" else (f("value", type_),)
    spec = ir.EventSpec(type="x.y", fields=fields, source=ir.Source(file="c.ownly", line=1))
    payload = data if type_.kind == "object" else {"value": data}
    problems: list[FieldProblem] = []
    walked = _object(spec.fields, payload, "data", problems, 0) if isinstance(payload, dict) else {}
    try:
        fast: dict[str, Any] | None = _fast_checker(spec)(payload)
    except _Invalid:
        fast = None
    if problems or not isinstance(payload, dict):
        assert fast is None
    else:
        assert fast == walked
        assert check_payload(spec, payload) == (walked, [])


@pytest.mark.parametrize("levels", [30, 31, 32, 33])
def test_the_fast_path_and_the_walk_agree_on_how_deep_is_too_deep(levels: int) -> None:
    type_: ir.TypeSpec = t("string")
    data: Any = "x"
    for _ in range(levels):
        type_ = t("object", fields=(f("a", type_),))
        data = {"a": data}
    spec = ir.EventSpec(type="x.y", fields=type_.fields, source=ir.Source(file="c.ownly", line=1))
    problems: list[FieldProblem] = []
    _object(spec.fields, data, "data", problems, 0)
    try:
        _fast_checker(spec)(data)
        fast_ok = True
    except _Invalid:
        fast_ok = False
    assert fast_ok == (not problems)
