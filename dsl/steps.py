"""Checking and lowering of workflow action steps: email, webhook, emit, actions, wait for."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dsl import ast, ir
from dsl.actions import ACTIONS, RESULTS, assignable
from dsl.blocks import retry_policy
from dsl.diagnostics import did_you_mean
from dsl.expr import Scope, check_enum_value
from dsl.lowering import Lowering
from dsl.types import ANY, BOOL, ERROR, Type

__all__ = ["RESERVED", "BlockLowerer", "Names", "lower_action"]

RESERVED = ("event", "incoming")


@dataclass(slots=True)
class Names:
    """What is visible at a point of a workflow: values and named action steps."""

    values: dict[str, Type]
    actions: set[str] = field(default_factory=set)

    def copy(self) -> Names:
        return Names(dict(self.values), set(self.actions))

    def scope(self) -> Scope:
        return Scope(self.values)


BlockLowerer = Callable[[Sequence[ast.Step], Names], tuple[ir.Step, ...]]


def lower_action(
    low: Lowering, step: ast.Action, names: Names, block: BlockLowerer, name: str | None
) -> tuple[ir.Step | None, Type]:
    """Check an action step; returns its IR (None on errors) and the type of its result."""
    if isinstance(step, ast.WaitFor):
        return _wait_for(low, step, names, block, name)
    options = _options(low, step.options)
    if isinstance(step, ast.SendEmail):
        return _send_email(low, step, names, options), RESULTS["send_email"]
    if isinstance(step, ast.SendWebhook):
        if step.webhook not in low.defs.webhooks:
            hint = did_you_mean(step.webhook, low.defs.webhooks)
            low.report("E014", f"unknown webhook '{step.webhook}'", step.webhook_span, hint)
            return None, ERROR
        payload = _map(low, step.payload, names) if step.payload else None
        lowered = ir.SendWebhookStep(webhook=step.webhook, payload=payload, **options)
        return lowered, RESULTS["send_webhook"]
    if isinstance(step, ast.Emit):
        return _emit(low, step, names, options), RESULTS["emit"]
    return _call(low, step, names, options)


def _options(
    low: Lowering, options: Sequence[ast.RetryClause | ast.TimeoutClause]
) -> dict[str, object]:
    out: dict[str, object] = {}
    for option in options:
        key = "retry" if isinstance(option, ast.RetryClause) else "timeout_seconds"
        if key in out:
            low.report("E010", "this step option is given twice", option.span)
        elif isinstance(option, ast.RetryClause):
            out[key] = retry_policy(low, option)
        else:
            out[key] = low.duration(option.duration, "step timeout", "1s", "1d")
    return out


def _map(low: Lowering, expr: ast.MapExpr, names: Names) -> tuple[ir.Arg, ...]:
    args = []
    seen: set[str] = set()
    for entry in expr.entries:
        if entry.key in seen:
            low.report("E010", f"'{entry.key}' is given twice", entry.span)
            continue
        seen.add(entry.key)
        text, _ = low.typed(entry.value, names.scope())
        args.append(ir.Arg(name=entry.key, expr=text))
    return tuple(args)


def _send_email(
    low: Lowering, step: ast.SendEmail, names: Names, options: dict[str, object]
) -> ir.Step | None:
    _, to = low.typed(step.to, names.scope())
    if to.kind not in ("string", "any", "error"):
        low.report("E020", f"an email address is a string, got {to.describe()}", step.to.span)
    if step.template not in low.defs.templates:
        hint = did_you_mean(step.template, low.defs.templates)
        low.report("E013", f"unknown template '{step.template}'", step.template_span, hint)
        return None
    declared = low.template_variables.get(step.template) or ()
    variables = None
    if step.variables is not None:
        variables = _map(low, step.variables, names)
        for entry in step.variables.entries:
            if entry.key not in declared:
                hint = did_you_mean(entry.key, declared) or "declare it in the template's variables"
                message = f"template {step.template} has no variable '{entry.key}'"
                low.report("E030", message, entry.span, hint)
        given = {e.key for e in step.variables.entries}
        for missing in [v for v in declared if v not in given]:
            message = f"template {step.template} needs variable '{missing}'"
            low.report("E031", message, step.variables.span, f"add {missing}: ...")
    else:
        data = names.values["event"].field("data")
        if data is not None and data.kind == "object" and not data.open:
            for missing in [v for v in declared if data.field(v) is None]:
                where = data.label or "the event data"
                message = f"template {step.template} needs variable '{missing}', not in {where}"
                hint = f"pass variables: send_email {step.template} to ... {{ {missing}: ... }}"
                low.report("E031", message, step.span, hint)
    text, _ = low.typed(step.to, names.scope())
    return ir.SendEmailStep(template=step.template, to=text, variables=variables, **options)


def _emit(
    low: Lowering, step: ast.Emit, names: Names, options: dict[str, object]
) -> ir.Step | None:
    patterns = low.patterns(step.event, "emit needs an event type")
    if len(patterns) != 1 or "*" in patterns[0][0]:
        if patterns:
            low.report("E045", "emit takes one event type, not a pattern or list", step.event.span)
        return None
    event_type = patterns[0][0]
    fields = low.catalog.events[event_type].data
    given: dict[str, ast.MapEntry] = {e.key: e for e in step.data.entries} if step.data else {}
    data = _map(low, step.data, names) if step.data else ()
    for key, entry in given.items():
        want = fields.field(key)
        if want is None:
            hint = did_you_mean(key, fields.field_names())
            low.report("E012", f"unknown field '{key}' on event {event_type}", entry.span, hint)
            continue
        got = low.typed(entry.value, names.scope())[1]
        if not assignable(want, got):
            message = f"field '{key}' of {event_type} is {want.describe()}, got {got.describe()}"
            low.report("E020", message, entry.value.span)
        elif got.kind != "error":
            _enum_values(low, want, low.literal(entry.value, frozenset(names.values)))
    spec = low.catalog.events[event_type].spec
    for field_spec in spec.fields:
        if not field_spec.optional and field_spec.default is None and field_spec.name not in given:
            message = f"emit {event_type} needs field '{field_spec.name}'"
            low.report("E019", message, step.span, f"add {field_spec.name}: ...")
    return ir.EmitStep(event=event_type, data=data, **options)


def _enum_values(low: Lowering, want: Type, expr: ast.Expr) -> None:
    """Report the strings written in `expr` that are not values of the enums of `want` (E023).

    As in a comparison: a string given for an enum, in a list of them or in
    an object's field, is one of its values.
    """
    while isinstance(expr, ast.Group):
        expr = expr.expr
    if want.values:
        check_enum_value(want, expr, low.report)
    elif want.kind == "list" and want.item is not None and isinstance(expr, ast.ListExpr):
        for item in expr.items:
            _enum_values(low, want.item, item)
    elif want.kind == "object" and isinstance(expr, ast.MapExpr):
        for entry in expr.entries:
            field = want.field(entry.key)
            if field is not None:
                _enum_values(low, field, entry.value)


def _call(
    low: Lowering, step: ast.CallStep, names: Names, options: dict[str, object]
) -> tuple[ir.Step | None, Type]:
    spec = ACTIONS.get(step.action)
    if spec is None:
        hint = did_you_mean(step.action, ACTIONS) or "actions: " + ", ".join(ACTIONS)
        low.report("E048", f"unknown action '{step.action}'", step.action_span, hint)
        return None, ERROR
    args: list[ir.Arg] = []
    seen: set[str] = set()
    for arg in step.args:
        if arg.name is None:
            message = f"{step.action}() takes named arguments, e.g. {spec.names()[0]}: ..."
            low.report("E021", message, arg.span)
            continue
        want = spec.arg(arg.name)
        if want is None:
            hint = did_you_mean(arg.name, spec.names()) or "arguments: " + ", ".join(spec.names())
            low.report("E021", f"{step.action}() has no argument '{arg.name}'", arg.span, hint)
            continue
        if arg.name in seen:
            low.report("E010", f"argument '{arg.name}' is given twice", arg.span)
            continue
        seen.add(arg.name)
        text, got = low.typed(arg.value, names.scope())
        if step.action == "http" and arg.name == "url":
            low.url_literal(arg.value, "url of http()")
        if not assignable(want[0], got):
            expected = want[0].describe()
            message = (
                f"argument '{arg.name}' of {step.action}() is {expected}, got {got.describe()}"
            )
            low.report("E020", message, arg.value.span)
        args.append(ir.Arg(name=arg.name, expr=text))
    for key, _, required in spec.args:
        if required and key not in seen:
            low.report(
                "E019", f"{step.action}() needs argument '{key}'", step.span, f"add {key}: ..."
            )
    action = step.action
    assert action in ("charge", "refund", "http", "update_record")
    return ir.ActionStep(action=action, args=tuple(args), **options), spec.result


def _wait_for(
    low: Lowering, step: ast.WaitFor, names: Names, block: BlockLowerer, name: str | None
) -> tuple[ir.Step | None, Type]:
    patterns = low.patterns(step.event, "'wait for' needs at least one event pattern")
    types = low.event_types(patterns)
    label = "events " + ", ".join(p for p, _ in patterns)
    awaited = low.catalog.envelope(types, low.catalog.data_type(types, label))
    where = None
    if step.where is not None:
        if name is None:
            hint = (
                "name the step and use the name: signed = wait for ... where signed.data.x == ..."
            )
            low.report("E046", "'wait for ... where' needs a named result", step.span, hint)
        else:
            inner = names.copy()
            inner.values[name] = awaited
            where, _ = low.typed(step.where, inner.scope(), BOOL, "the where condition")
    timeout = low.duration(step.timeout, "wait timeout", "1m", "365d")
    on_timeout = block(step.on_timeout.steps, names.copy()) if step.on_timeout else None
    result = awaited.as_optional(True) if step.on_timeout else awaited
    if not patterns or timeout is None:
        return None, result if patterns else ANY
    events = tuple(p for p, _ in patterns)
    return ir.WaitForStep(
        events=events, where=where, timeout_seconds=timeout, on_timeout=on_timeout
    ), result
