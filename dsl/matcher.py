"""The subscription index: event type -> subscriptions, exact by dict, wildcards by trie.

Matching cost depends on the number of segments of the event type and on the
number of subscriptions that match, not on the number of rules. Results for
event types already seen are memoised per index, which is immutable.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

__all__ = ["Matcher", "Subscription"]


class Subscription(BaseModel):
    """Something that reacts to an event: a webhook or a workflow trigger.

    `kind` names what carries it out (`webhook`, `workflow`): the engine plans
    it with the job kind of that name, and says so when it has none. `order`
    is the position of the webhook or workflow trigger in the rule set: it
    fixes the order of results, and patterns of one definition share it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    name: str
    pattern: str
    when: str | None = None
    order: int


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    star: _Node | None = None
    subscriptions: tuple[Subscription, ...] = ()


def _ordered(subs: Iterable[Subscription]) -> tuple[Subscription, ...]:
    # `order` identifies a definition (or workflow trigger): two patterns of one
    # webhook that both match give one result.
    unique = {s.order: s for s in subs}
    return tuple(unique[k] for k in sorted(unique))


class Matcher:
    """An immutable index from event types to the subscriptions whose pattern matches."""

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        exact: dict[str, list[Subscription]] = {}
        self._root = _Node()
        self._has_wildcards = False
        for sub in subscriptions:
            if "*" in sub.pattern:
                self._insert(sub)
            else:
                exact.setdefault(sub.pattern, []).append(sub)
        self._exact = {k: _ordered(v) for k, v in exact.items()}
        self._memo: dict[str, tuple[Subscription, ...]] = {}

    def _insert(self, sub: Subscription) -> None:
        self._has_wildcards = True
        node = self._root
        for segment in sub.pattern.split("."):
            if segment == "*":
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                node = node.children.setdefault(segment, _Node())
        node.subscriptions = _ordered([*node.subscriptions, sub])

    def match(self, event_type: str) -> tuple[Subscription, ...]:
        """Subscriptions whose pattern matches `event_type`, in rule-set order, each once."""
        found = self._memo.get(event_type)
        if found is None:
            found = self._lookup(event_type)
            if len(self._memo) < 100_000:  # bound memory for unknown, ever-new types
                self._memo[event_type] = found
        return found

    def _lookup(self, event_type: str) -> tuple[Subscription, ...]:
        """The index itself: one dict lookup, then one trie walk per segment."""
        groups = [self._exact.get(event_type, ())]
        if self._has_wildcards:
            nodes = [self._root]
            for segment in event_type.split("."):
                following: list[_Node] = []
                for node in nodes:
                    child = node.children.get(segment)
                    if child is not None:
                        following.append(child)
                    if node.star is not None:
                        following.append(node.star)
                nodes = following
                if not nodes:
                    break
            groups.extend(node.subscriptions for node in nodes)
        found = [g for g in groups if g]
        if len(found) <= 1:
            return found[0] if found else ()
        return _ordered(s for group in found for s in group)
