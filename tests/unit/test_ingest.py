"""Reading and checking events: every problem of an event is listed at once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from dsl import RuleSet, compile_rules
from engine.events.ingest import JSON, Problem, check_event, read_events

ROOT = Path(__file__).parents[2]
UNKNOWN = Problem("type", "unknown event type 'investment.exploded'")


@pytest.fixture(scope="module")
def catalog() -> RuleSet:
    compilation = compile_rules(
        [ROOT / "rules" / "catalog.ownly"], templates_dir=ROOT / "templates"
    )
    assert compilation.rule_set is not None, compilation.render()
    return compilation.rule_set


def problems(catalog: RuleSet, event: dict[str, object], *, accept: bool = False) -> list[Problem]:
    headers = CIMultiDictProxy(CIMultiDict[str]())
    (incoming,), _ = read_events(orjson.dumps(event), JSON, headers, max_batch=1)
    check_event(incoming, catalog, accept_unknown_types=accept)
    return incoming.problems


@pytest.mark.parametrize(
    ("envelope", "other"),
    [
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"id": "evt 1"}, "id"),
        ({"payload": {}}, "payload"),
        ({"source": 7}, "source"),
    ],
)
def test_an_unknown_type_is_reported_with_the_other_problems(
    catalog: RuleSet, envelope: dict[str, object], other: str
) -> None:
    event = {"type": "investment.exploded", "data": {"amout": 1}, **envelope}
    found = problems(catalog, event)
    assert [p.path for p in found] == [other, "type"], "no field is checked without a catalog type"
    assert found[-1] == UNKNOWN


def test_an_unknown_type_alone_is_one_problem(catalog: RuleSet) -> None:
    assert problems(catalog, {"type": "investment.exploded", "data": {}}) == [UNKNOWN]


def test_accepted_unknown_types_report_only_the_other_problems(catalog: RuleSet) -> None:
    event = {"type": "investment.exploded", "data": {"amout": 1}, "id": "evt 1"}
    assert [p.path for p in problems(catalog, event, accept=True)] == ["id"]
    assert problems(catalog, {"type": "investment.exploded", "data": {}}, accept=True) == []


@pytest.mark.parametrize(
    ("levels", "refused"), [(64, False), (65, True), (300, True), (1000, True)]
)
def test_an_accepted_unknown_types_data_may_nest_64_levels(
    catalog: RuleSet, levels: int, refused: bool
) -> None:
    # The data object, then lists in lists: written as text, deeper than orjson writes.
    lists = levels - 1
    body = '{"type": "vendor.deep", "data": {"a": ' + "[" * lists + "]" * lists + "}}"
    headers = CIMultiDictProxy(CIMultiDict[str]())
    (incoming,), _ = read_events(body.encode(), JSON, headers, max_batch=1)
    check_event(incoming, catalog, accept_unknown_types=True)
    expected = [Problem("data", "must not nest deeper than 64 levels")] if refused else []
    assert incoming.problems == expected
