"""The subscription index: exact types, wildcards, order, and no duplicates."""

from __future__ import annotations

import random

from dsl.catalog import pattern_matches
from dsl.matcher import Matcher, Subscription


def sub(name: str, pattern: str, order: int, kind: str = "webhook") -> Subscription:
    return Subscription(kind=kind, name=name, pattern=pattern, order=order)  # type: ignore[arg-type]


def names(matcher: Matcher, event_type: str) -> list[str]:
    return [s.name for s in matcher.match(event_type)]


def test_exact_and_wildcard_patterns() -> None:
    matcher = Matcher(
        [
            sub("a", "investment.created", 0),
            sub("b", "investment.*", 1),
            sub("c", "*.created", 2),
            sub("d", "deal.funded", 3),
            sub("e", "*.*", 4),
        ]
    )
    assert names(matcher, "investment.created") == ["a", "b", "c", "e"]
    assert names(matcher, "investment.updated") == ["b", "e"]
    assert names(matcher, "deal.created") == ["c", "e"]
    assert names(matcher, "deal.funded") == ["d", "e"]
    assert names(matcher, "deal") == []
    assert names(matcher, "deal.funded.late") == []
    assert names(matcher, "") == []


def test_results_follow_rule_set_order_whatever_the_insertion_order() -> None:
    subs = [sub(f"s{i}", p, i) for i, p in enumerate(["x.*", "x.y", "*.y", "x.y", "*.*"])]
    shuffled = subs[:]
    random.Random(7).shuffle(shuffled)
    assert Matcher(subs).match("x.y") == Matcher(shuffled).match("x.y")
    assert [s.order for s in Matcher(shuffled).match("x.y")] == [0, 1, 2, 3, 4]


def test_one_result_per_subscription_even_when_two_patterns_match() -> None:
    matcher = Matcher([sub("w", "deal.*", 0), sub("w", "deal.funded", 0)])
    assert names(matcher, "deal.funded") == ["w"]


def test_webhooks_and_workflows_with_the_same_name_are_distinct() -> None:
    matcher = Matcher([sub("n", "deal.funded", 0), sub("n", "deal.funded", 1, kind="workflow")])
    assert [(s.kind, s.name) for s in matcher.match("deal.funded")] == [
        ("webhook", "n"),
        ("workflow", "n"),
    ]


def test_agrees_with_the_pattern_definition_on_random_rules() -> None:
    rng = random.Random(3)
    segments = ["investment", "deal", "created", "funded", "x", "*"]
    patterns = [
        ".".join(rng.choice(segments) for _ in range(rng.randint(1, 3))) for _ in range(300)
    ]
    subs = [sub(f"s{i}", p, i) for i, p in enumerate(patterns)]
    matcher = Matcher(subs)
    for _ in range(300):
        event_type = ".".join(rng.choice(segments[:-1]) for _ in range(rng.randint(1, 3)))
        expected = [s.name for s in subs if pattern_matches(s.pattern, event_type)]
        assert names(matcher, event_type) == expected


def test_pattern_star_is_exactly_one_segment() -> None:
    assert pattern_matches("investment.*", "investment.created")
    assert not pattern_matches("investment.*", "investment")
    assert not pattern_matches("*", "investment.created")
    assert pattern_matches("*.*", "deal.funded")
