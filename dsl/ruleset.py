"""The compiled rule set: the IR, its version, compiled predicates and the matcher."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType

from pydantic import BaseModel, TypeAdapter

from dsl import ast, ir
from dsl.evaluate import Context, Evaluator, compile_expr, truthy
from dsl.expr import walk
from dsl.matcher import Matcher, Subscription
from dsl.parser import parse_expression

__all__ = ["RuleSet", "version_of"]


def version_of(rules: ir.RuleSetIR) -> str:
    """sha256 of the IR's JSON (template file digests included, sources left out).

    Field order is fixed by the models, so the JSON text is canonical.
    """
    text = rules.model_dump_json(context={ir.VERSION_CONTEXT: True})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _subscribers(rules: ir.RuleSetIR) -> Iterator[tuple[str, str, Iterable[str], str | None]]:
    """Every definition that reacts to events: (kind, name, patterns, when), in rule order."""
    for webhook in rules.webhooks:
        yield "webhook", webhook.name, webhook.events, webhook.when
    for workflow in rules.workflows:
        for trigger in workflow.triggers:
            if trigger.kind == "event":
                yield "workflow", workflow.name, trigger.events, trigger.when
            elif trigger.kind == "hook" and trigger.hook is not None:
                # A hook's verified request is stored as an event of this type.
                yield "workflow", workflow.name, ("hook." + trigger.hook,), trigger.when


def _subscriptions(rules: ir.RuleSetIR) -> list[Subscription]:
    """One subscription per pattern; the patterns of one rule share its place in the order."""
    subs: list[dict[str, object]] = []
    for kind, name, patterns, when in _subscribers(rules):
        order = len(subs)
        subs.extend(
            {"kind": kind, "name": name, "pattern": pattern, "when": when, "order": order}
            for pattern in patterns
        )
    # Validated in one call: cheaper than one model at a time (0.06 s against
    # 0.09 s for 19,000), and than `model_construct`, which skips validation.
    return _SUBSCRIPTIONS.validate_python(subs)


_SUBSCRIPTIONS = TypeAdapter(list[Subscription])


# IR fields that hold canonical expression text (Header.value and
# RetryPolicy are plain data and are not visited).
_EXPRESSION_FIELDS = frozenset(
    {"when", "key", "to", "expr", "where", "duration", "until", "value", "message", "condition"}
)


def _expressions(node: object) -> Iterator[str]:
    if isinstance(node, ir.Header | ir.EnvRef | ir.RetryPolicy | ir.EventSpec | ir.TemplateFile):
        return
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if name in _EXPRESSION_FIELDS and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, tuple):
        for item in node:
            yield from _expressions(item)


def _reads_event_data(expr: ast.Expr) -> bool:
    return any(
        isinstance(node, ast.Path)
        and node.parts[0] == "event"
        and (len(node.parts) == 1 or node.parts[1] == "data")
        for node in walk(expr)
    )


class RuleSet:
    """An immutable compiled rule set, as the engine uses it.

    Attributes:
        ir: the rule set as plain data (`RuleSetIR`), what the engine stores.
        version: stable sha256 of the IR and the template files it uses.
    """

    def __init__(self, rules: ir.RuleSetIR, expressions: Mapping[str, ast.Expr]) -> None:
        self.ir = rules
        self.version = version_of(rules)
        self._evaluators: Mapping[str, Evaluator] = MappingProxyType(
            {text: compile_expr(expr) for text, expr in expressions.items()}
        )
        self._ignores_data = frozenset(
            text for text, expr in expressions.items() if not _reads_event_data(expr)
        )
        self._matcher = Matcher(_subscriptions(rules))
        self.events = MappingProxyType({e.type: e for e in rules.events})
        self.webhooks = MappingProxyType({w.name: w for w in rules.webhooks})
        self.templates = MappingProxyType({t.name: t for t in rules.templates})
        self.hooks = MappingProxyType({h.name: h for h in rules.hooks})
        self.workflows = MappingProxyType({w.name: w for w in rules.workflows})

    @classmethod
    def from_ir(cls, rules: ir.RuleSetIR) -> RuleSet:
        """Rebuild a rule set from its stored IR, compiling its expressions again.

        Raises:
            RuleSyntaxError: an expression text in the IR does not parse.
        """
        texts = dict.fromkeys(_expressions(rules))
        return cls(rules, {text: parse_expression(text) for text in texts})

    def match(self, event_type: str) -> tuple[Subscription, ...]:
        """Subscriptions whose event pattern matches, before their `when` is evaluated."""
        return self._matcher.match(event_type)

    def evaluator(self, expression: str) -> Evaluator:
        """The compiled closure for an expression text found in the IR.

        Raises:
            KeyError: the text is not an expression of this rule set.
        """
        return self._evaluators[expression]

    def reads_event_data(self, expression: str) -> bool:
        """Whether an expression of this rule set may read the event's data.

        One that does not (`event.type != "x.y"`) can be evaluated without
        typing the payload first.
        """
        return expression not in self._ignores_data  # an unknown text: assume it does

    def evaluate(self, expression: str, context: Context) -> object:
        """Evaluate an expression of this rule set (total: never raises on data)."""
        return self._evaluators[expression](context)

    def accepts(self, subscription: Subscription, context: Context) -> bool:
        """Whether a matched subscription's `when` holds (true when it has none)."""
        if subscription.when is None:
            return True
        return truthy(self._evaluators[subscription.when](context))

    def missing_env(self, env: Mapping[str, str]) -> list[str]:
        """Names of env() variables without a default that `env` does not set."""
        return sorted(r.name for r in self.ir.env if not r.has_default and r.name not in env)

    def to_json(self) -> str:
        """The IR with its version, as JSON (what the engine stores per version)."""
        body = self.ir.model_dump(mode="json")
        return json.dumps({"version": self.version, **body}, sort_keys=True, indent=2)
