"""Checking and lowering of `workflow` blocks: triggers, options and steps."""

from __future__ import annotations

import datetime
import functools
import zoneinfo
from collections.abc import Sequence

from croniter import CroniterBadDateError, croniter

from dsl import ast, ir
from dsl.diagnostics import did_you_mean
from dsl.lowering import Lowering, duration_literal
from dsl.steps import RESERVED, Names, lower_action
from dsl.types import ANY, BOOL, Type, join, object_of

__all__ = ["lower_workflow"]

_TRIGGERS = (ast.OnEvent, ast.OnSchedule, ast.OnManual, ast.OnHook)
_ONCE = (ast.TimeoutClause, ast.Concurrency, ast.Debounce, ast.Dedup, ast.Description)


class _Workflow:
    def __init__(self, low: Lowering, node: ast.WorkflowDef) -> None:
        self.low = low
        self.node = node
        self.step_names: dict[str, int] = {}
        # Event types the workflow can start on; None once a trigger is not an event.
        self.event_types: list[str] | None = []

    # ---- triggers and options

    def lower(self) -> ir.Workflow | None:
        low, node = self.low, self.node
        body = self.unique(node.body)
        triggers: list[ir.Trigger] = []
        data: list[Type] = []
        for stmt in body:
            if isinstance(stmt, _TRIGGERS):
                trigger, t = self.trigger(stmt)
                data.append(t)
                if trigger is not None:
                    triggers.append(trigger)
        if not data:
            hint = 'add a trigger: on <event>, on schedule "...", on manual or on hook <name>'
            low.report("E053", f"workflow {node.name} has no trigger", node.name_span, hint)
        event = self.event_type(data)
        names = Names({"event": event})
        options = {type(s): s for s in body if isinstance(s, _ONCE)}
        timeout = None
        if isinstance(clause := options.get(ast.TimeoutClause), ast.TimeoutClause):
            timeout = low.duration(clause.duration, "workflow timeout", "1m", "365d")
        description = None
        if isinstance(text := options.get(ast.Description), ast.Description):
            description = low.string(text.value, "description")
        concurrency = debounce = dedup = None
        if isinstance(limit := options.get(ast.Concurrency), ast.Concurrency):
            concurrency = self.concurrency(limit, names)
        if isinstance(window := options.get(ast.Debounce), ast.Debounce):
            debounce = self.debounce(window, names)
        if isinstance(key := options.get(ast.Dedup), ast.Dedup):
            dedup = self.dedup(key, names)
        cancel_on = [self.cancel_on(s, event) for s in body if isinstance(s, ast.CancelOn)]
        steps = [s for s in body if not isinstance(s, (*_TRIGGERS, *_ONCE, ast.CancelOn))]
        lowered = self.block(steps, names)
        if any(t is None for t in cancel_on) or not triggers:
            return None
        return ir.Workflow(
            name=node.name,
            description=description,
            triggers=tuple(triggers),
            timeout_seconds=timeout,
            concurrency=concurrency,
            debounce=debounce,
            dedup=dedup,
            cancel_on=tuple(t for t in cancel_on if t is not None),
            steps=lowered,
            source=ir.Source(file=node.span.file, line=node.span.line),
        )

    def unique(self, body: Sequence[ast.WorkflowStmt]) -> list[ast.WorkflowStmt]:
        """The body without repeats of once-only options (each reported)."""
        seen: dict[type, ast.Span] = {}
        kept = []
        for stmt in body:
            if isinstance(stmt, _ONCE):
                first = seen.get(type(stmt))
                if first is not None:
                    message = f"this option is already given on line {first.line}"
                    self.low.report("E010", message, stmt.span)
                    continue
                seen[type(stmt)] = stmt.span
            kept.append(stmt)
        return kept

    def event_type(self, data: list[Type]) -> Type:
        merged: Type | None = None
        for t in data:
            if t.kind == "any":
                merged = object_of((), open=True)
                break
            merged = t if merged is None else _join_data(merged, t)
        types = list(dict.fromkeys(self.event_types)) if self.event_types else []
        return self.low.catalog.envelope(types, merged or object_of((), open=True))

    def trigger(self, stmt: ast.WorkflowStmt) -> tuple[ir.Trigger | None, Type]:
        low = self.low
        if not isinstance(stmt, ast.OnEvent):
            self.event_types = None
        if isinstance(stmt, ast.OnManual):
            return ir.Trigger(kind="manual"), ANY
        if isinstance(stmt, ast.OnSchedule):
            cron = low.string(stmt.cron, "cron expression")
            problem = _cron_problem(cron) if cron is not None else None
            if problem is not None:
                hint = 'five fields: minute hour day month weekday, e.g. "0 9 * * 1"'
                low.report("E041", problem, stmt.cron.span, hint)
                cron = None
            zone = None
            if stmt.timezone is not None:
                zone = low.string(stmt.timezone, "time zone")
                if zone is not None and zone not in _zones():
                    self.unknown_zone(zone, stmt.timezone.span)
                    zone = None
            empty = object_of((), label="a scheduled run")
            if cron is None:
                return None, empty
            return ir.Trigger(kind="schedule", cron=cron, timezone=zone), empty
        if isinstance(stmt, ast.OnHook):
            if stmt.hook not in low.defs.hooks:
                near = did_you_mean(stmt.hook, low.defs.hooks)
                low.report("E015", f"unknown hook '{stmt.hook}'", stmt.hook_span, near)
                return None, ANY
            when = self.condition(stmt.when, Names({"event": low.catalog.envelope([], ANY)}))
            return ir.Trigger(kind="hook", hook=stmt.hook, when=when), ANY
        assert isinstance(stmt, ast.OnEvent)
        patterns = low.patterns(stmt.patterns, "an 'on' trigger needs at least one event pattern")
        types = low.event_types(patterns)
        if self.event_types is not None:
            self.event_types.extend(types)
        data = low.catalog.data_type(types, "events " + ", ".join(p for p, _ in patterns))
        if len(patterns) == 1 and "*" not in patterns[0][0]:
            data = low.catalog.data_type(types, f"event {patterns[0][0]}")
        when = self.condition(stmt.when, Names({"event": low.catalog.envelope(types, data)}))
        if not patterns:
            return None, ANY
        return ir.Trigger(kind="event", events=tuple(p for p, _ in patterns), when=when), data

    def condition(self, expr: ast.Expr | None, names: Names) -> str | None:
        if expr is None:
            return None
        text, _ = self.low.typed(expr, names.scope(), BOOL, "the condition")
        return text

    def concurrency(self, stmt: ast.Concurrency, names: Names) -> ir.Concurrency | None:
        limit = self.low.integer(stmt.limit, "concurrency limit", 1, 10_000)
        key = self.low.typed(stmt.key, names.scope())[0] if stmt.key else None
        return None if limit is None else ir.Concurrency(limit=limit, key=key)

    def debounce(self, stmt: ast.Debounce, names: Names) -> ir.Debounce | None:
        seconds = self.low.duration(stmt.window, "debounce window", "1s", "1d")
        key = self.low.typed(stmt.key, names.scope())[0] if stmt.key else None
        return None if seconds is None else ir.Debounce(seconds=seconds, key=key)

    def dedup(self, stmt: ast.Dedup, names: Names) -> ir.Dedup:
        key, _ = self.low.typed(stmt.key, names.scope())
        window = None
        if stmt.window is not None:
            window = self.low.duration(stmt.window, "dedup window", "1m", "365d")
        return ir.Dedup(key=key, window_seconds=window)

    def cancel_on(self, stmt: ast.CancelOn, event: Type) -> ir.Trigger | None:
        empty = "'cancel on' needs at least one event pattern"
        patterns = self.low.patterns(stmt.patterns, empty)
        types = self.low.event_types(patterns)
        incoming = self.low.catalog.envelope(
            types, self.low.catalog.data_type(types, "the cancelling event")
        )
        when = self.condition(stmt.when, Names({"event": event, "incoming": incoming}))
        if not patterns:
            return None
        return ir.Trigger(kind="event", events=tuple(p for p, _ in patterns), when=when)

    def unknown_zone(self, zone: str, span: ast.Span) -> None:
        if zone == _HOST_ZONE:
            message = f"time zone {zone!r} is whatever the host is set to"
            self.low.report("E042", message, span, 'name the zone, e.g. "Europe/Paris"')
            return
        near = did_you_mean(zone, _zones())
        self.low.report("E042", f"unknown time zone {zone!r}", span, near)

    # ---- steps

    def block(self, steps: Sequence[ast.Step], names: Names) -> tuple[ir.Step, ...]:
        lowered: list[ir.Step] = []
        ended: ast.Span | None = None
        for step in steps:
            if ended is not None:
                message = f"unreachable: the workflow stops at line {ended.line}"
                self.low.report("E040", message, step.span, "remove it, or move it before the stop")
                break
            result = self.step(step, names)
            if result is not None:
                lowered.append(result)
            if _stops(step):
                ended = step.span
        return tuple(lowered)

    def name(self, name: str, span: ast.Span, names: Names) -> bool:
        if name in RESERVED:
            self.low.report("E010", f"'{name}' is a reserved name", span)
            return False
        if name in self.step_names:
            first = self.step_names[name]
            self.low.report("E010", f"step name '{name}' is already used on line {first}", span)
            return False
        self.step_names[name] = span.line
        return True

    def step(self, step: ast.Step, names: Names) -> ir.Step | None:
        low = self.low
        if isinstance(step, ast.NamedStep):
            fresh = self.name(step.name, step.span, names)
            lowered, result = lower_action(self.low, step.action, names, self.block, step.name)
            if fresh:
                names.values[step.name] = result
                names.actions.add(step.name)
            return lowered.model_copy(update={"name": step.name}) if lowered else None
        if isinstance(
            step, ast.SendEmail | ast.SendWebhook | ast.Emit | ast.CallStep | ast.WaitFor
        ):
            return lower_action(self.low, step, names, self.block, None)[0]
        if isinstance(step, ast.IfStep):
            branches = [(step.condition, step.body)] + [(e.condition, e.body) for e in step.elifs]
            out = [
                ir.Branch(
                    condition=self.condition(cond, names),
                    steps=self.block(body.steps, names.copy()),
                )
                for cond, body in branches
            ]
            if step.orelse is not None:
                out.append(
                    ir.Branch(condition=None, steps=self.block(step.orelse.steps, names.copy()))
                )
            return ir.IfStep(branches=tuple(out))
        if isinstance(step, ast.Parallel):
            return ir.ParallelStep(steps=self.block(step.body.steps, names))
        if isinstance(step, ast.WaitDuration):
            text, t = low.typed(step.duration, names.scope())
            if t.kind not in ("duration", "any", "error"):
                low.report("E020", f"wait needs a duration, got {t.describe()}", step.duration.span)
            if duration_literal(low.literal(step.duration)) is not None:
                low.duration(step.duration, "wait", "1s", "365d")
            return ir.WaitStep(duration=text)
        if isinstance(step, ast.WaitUntil):
            text, t = low.typed(step.time, names.scope())
            if t.kind not in ("timestamp", "any", "error"):
                low.report(
                    "E020", f"wait until needs a timestamp, got {t.describe()}", step.time.span
                )
            return ir.WaitStep(until=text)
        if isinstance(step, ast.SetStep):
            text, t = low.typed(step.value, names.scope())
            if step.name in RESERVED or step.name in names.actions:
                low.report("E010", f"'{step.name}' is already a step result", step.span)
            names.values[step.name] = t
            return ir.SetStep(name=step.name, value=text)
        if isinstance(step, ast.FailStep):
            message = None
            if step.message is not None:
                message, t = low.typed(step.message, names.scope())
                if t.kind not in ("string", "any", "error"):
                    low.report(
                        "E020",
                        f"fail takes a message string, got {t.describe()}",
                        step.message.span,
                    )
            return ir.FailStep(message=message)
        assert isinstance(step, ast.RetryFrom)
        if step.step not in names.actions:
            hint = did_you_mean(step.step, names.actions) or "name the step: payment = charge(...)"
            low.report("E050", f"retry_from '{step.step}' names no earlier step", step.span, hint)
            return None
        return ir.RetryFromStep(step=step.step)


# The system's zone database lists the host's own zone under this name: a
# schedule in it would fire at different times on different machines.
_HOST_ZONE = "localtime"

# A schedule's next run is searched from a fixed instant, so that the check is
# the same whenever it runs, over the 400 years after which the Gregorian
# calendar repeats itself: a schedule that fires at all fires in them (the 5th
# Monday of February, the 29th, comes 16 years after 2000, then 28 years
# later). Refusing a schedule that never fires takes 10 to 160 ms.
_CRON_FROM = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
_CRON_YEARS = 400


def _cron_problem(cron: str) -> str | None:
    """Why `cron` is no five-field schedule that fires, if it is not.

    croniter also takes seconds and years as a sixth and seventh field, and
    dates that never come (the 30th of February).
    """
    fields = len(cron.split())
    if fields != 5:
        plural = "" if fields == 1 else "s"
        return f"invalid cron expression {cron!r}: {fields} field{plural}, not five"
    if not croniter.is_valid(cron):
        return f"invalid cron expression {cron!r}"
    try:
        croniter(cron, _CRON_FROM, max_years_between_matches=_CRON_YEARS).get_next()
    except CroniterBadDateError:
        return f"cron expression {cron!r} never fires"
    return None


@functools.cache
def _zones() -> frozenset[str]:
    """The IANA time zone names (read once: listing them takes some 25 ms)."""
    return frozenset(zoneinfo.available_timezones()) - {_HOST_ZONE}


def _stops(step: ast.Step) -> bool:
    """Whether the workflow goes no further than `step`: `fail`, `retry_from`,
    or an `if` with an `else` whose every branch comes to one of those."""
    if isinstance(step, ast.FailStep | ast.RetryFrom):
        return True
    if not isinstance(step, ast.IfStep) or step.orelse is None:
        return False
    bodies = [step.body, *(e.body for e in step.elifs), step.orelse]
    return all(any(_stops(s) for s in body.steps) for body in bodies)


def _join_data(a: Type, b: Type) -> Type:
    merged = join(a, b)
    return merged if merged.kind == "object" else object_of((), open=True)


def lower_workflow(low: Lowering, node: ast.WorkflowDef) -> ir.Workflow | None:
    """Check a workflow and lower it to the IR (None when it has errors)."""
    return _Workflow(low, node).lower()
