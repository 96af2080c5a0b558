"""A workflow's step graph as a flowchart: Mermaid or Graphviz DOT text.

The graph is read from the compiled workflow, top down: a start node (its
triggers), one node per step under the step id the runs use
(``engine.workflows.program``: ``s2``, ``s3.b1.s1``, ``paid.else.s1``, a
named step's name), and an end node. An ``if`` is a decision with an edge per
branch, labelled with its condition or ``else``; a ``parallel`` is a fork and
a join; a ``wait for`` has a ``timeout`` edge into its ``else`` block, or to
the failed node without one; ``fail`` leads to the failed node and
``retry_from`` back to its step (dashed). The end node is drawn when a path
reaches it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from dsl import ir
from engine.workflows.program import children, level

__all__ = ["dot", "mermaid"]

Shape = Literal["step", "decision", "terminal", "fork"]

START, END, FAILED = "(start)", "(end)", "(failed)"


@dataclass(frozen=True)
class _Node:
    key: str  # a step id, or START, END, FAILED, "<id> (join)"
    lines: tuple[str, ...]
    shape: Shape = "step"


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    label: str | None = None
    dashed: bool = False


# A node whose edge to what comes next is still to be drawn, and that edge's label.
_Pending = tuple[str, str | None]


@dataclass
class _Graph:
    nodes: dict[str, _Node] = field(default_factory=dict)
    edges: list[_Edge] = field(default_factory=list)

    def add(self, node: _Node, pending: Sequence[_Pending]) -> None:
        self.nodes.setdefault(node.key, node)
        self.connect(pending, node.key)

    def connect(self, pending: Sequence[_Pending], target: str) -> None:
        self.edges += [_Edge(source, target, label) for source, label in pending]

    def fail(self, source: str, label: str | None = None) -> None:
        self.nodes.setdefault(FAILED, _Node(FAILED, ("failed",), "terminal"))
        self.edges.append(_Edge(source, FAILED, label))

    def block(
        self, prefix: str, steps: Sequence[ir.Step], pending: list[_Pending]
    ) -> list[_Pending]:
        for step_id, step in level(prefix, steps):
            pending = self.step(step_id, step, pending)
        return pending

    def step(self, step_id: str, step: ir.Step, pending: list[_Pending]) -> list[_Pending]:
        """Draw one step after ``pending``; what still leads on from it."""
        shape: Shape = "decision" if isinstance(step, ir.IfStep) else "step"
        if isinstance(step, ir.ParallelStep):
            shape = "fork"
        self.add(_Node(step_id, (step_id, _describe(step)), shape), pending)
        blocks = children(step_id, step)
        if isinstance(step, ir.IfStep):
            out: list[_Pending] = []
            for (prefix, steps), branch in zip(blocks, step.branches, strict=True):
                label = branch.condition if branch.condition is not None else "else"
                out += self.block(prefix, steps, [(step_id, label)])
            if step.branches[-1].condition is not None:
                out.append((step_id, "else"))
            return out
        if isinstance(step, ir.ParallelStep):
            join = f"{step_id} (join)"
            ends = [
                end
                for inner_id, inner in level(blocks[0][0], blocks[0][1])
                for end in self.step(inner_id, inner, [(step_id, None)])
            ]
            if not ends:  # every branch fails or goes back
                return []
            self.add(_Node(join, ("join",), "fork"), ends)
            return [(join, None)]
        if isinstance(step, ir.WaitForStep):
            if blocks:
                return [(step_id, None), *self.block(*blocks[0], [(step_id, "timeout")])]
            self.fail(step_id, "timeout")
        elif isinstance(step, ir.FailStep):
            self.fail(step_id)
            return []
        elif isinstance(step, ir.RetryFromStep):
            self.edges.append(_Edge(step_id, step.step, "retry", dashed=True))
            return []
        return [(step_id, None)]


def _describe(step: ir.Step) -> str:
    """What a step does, in one line of rule-language words."""
    if isinstance(step, ir.SendEmailStep):
        return f"send_email {step.template}"
    if isinstance(step, ir.SendWebhookStep):
        return f"send_webhook {step.webhook}"
    if isinstance(step, ir.EmitStep):
        return f"emit {step.event}"
    if isinstance(step, ir.ActionStep):
        args = {arg.name: arg.expr for arg in step.args}
        if step.action == "http":
            method = args.get("method", '"POST"')
            with contextlib.suppress(ValueError):  # an expression is shown as written
                method = str(json.loads(method))
            return f"http {method} {args.get('url', '')}".rstrip()
        return f"{step.action}({', '.join(args)})"
    if isinstance(step, ir.WaitForStep):
        where = f" where {step.where}" if step.where else ""
        return f"wait for {', '.join(step.events)}{where} timeout {_seconds(step.timeout_seconds)}"
    if isinstance(step, ir.WaitStep):
        return f"wait {step.duration}" if step.duration is not None else f"wait until {step.until}"
    if isinstance(step, ir.IfStep):
        return f"if {step.branches[0].condition}"
    if isinstance(step, ir.ParallelStep):
        return "parallel"
    if isinstance(step, ir.SetStep):
        return f"set {step.name} = {step.value}"
    if isinstance(step, ir.FailStep):
        return f"fail {step.message}" if step.message else "fail"
    return f"retry_from {step.step}"


def _seconds(value: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value // size:g}{unit}"
    return f"{value:g}s"


def _trigger(trigger: ir.Trigger) -> str:
    if trigger.kind == "schedule":
        return f"on schedule {json.dumps(trigger.cron)}"
    if trigger.kind == "hook":
        return f"on hook {trigger.hook}"
    if trigger.kind == "manual":
        return "on manual"
    return f"on {', '.join(trigger.events)}"


def _graph(workflow: ir.Workflow) -> _Graph:
    graph = _Graph()
    graph.add(_Node(START, ("start", *map(_trigger, workflow.triggers)), "terminal"), [])
    ends = graph.block("", workflow.steps, [(START, None)])
    if ends:
        graph.add(_Node(END, ("end",), "terminal"), ends)
    return graph


# ---- Mermaid

# Mermaid reads `#name;` and `#number;` as entities; `<br>` is its line break.
_MERMAID = str.maketrans(
    {
        "#": "#35;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "&": "#amp;",
        "|": "#124;",
        "`": "#96;",
        "%": "#37;",
        "\n": " ",
        "\r": " ",
    }
)
_MERMAID_SHAPES = {
    "step": ('["', '"]'),
    "decision": ('{"', '"}'),
    "terminal": ('(["', '"])'),
    "fork": ('{{"', '"}}'),
}


def _mermaid_text(text: str) -> str:
    return text.translate(_MERMAID)


def mermaid(workflow: ir.Workflow) -> str:
    """The workflow's step graph as a Mermaid flowchart, top down."""
    graph = _graph(workflow)
    # Mermaid ids are plain words (a dot or `end` would be read as syntax): n1, n2, ...
    ids = {key: f"n{i}" for i, key in enumerate(graph.nodes)}
    lines = ["flowchart TD"]
    for key, node in graph.nodes.items():
        opening, closing = _MERMAID_SHAPES[node.shape]
        label = "<br>".join(_mermaid_text(line) for line in node.lines)
        lines.append(f"    {ids[key]}{opening}{label}{closing}")
    for edge in graph.edges:
        arrow = "-.->" if edge.dashed else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label is not None else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    return "\n".join(lines) + "\n"


# ---- DOT

_DOT_SHAPES = {"step": "box", "decision": "diamond", "terminal": "oval", "fork": "hexagon"}


def _quoted(text: str) -> str:
    """A DOT quoted string: only the quote and the backslash are escaped within it."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", " ").replace("\n", " ") + '"'


def dot(workflow: ir.Workflow) -> str:
    """The workflow's step graph as a Graphviz digraph, top down."""
    graph = _graph(workflow)
    lines = [
        f"digraph {_quoted(workflow.name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
    ]
    for key, node in graph.nodes.items():
        # In a DOT label "\n" is a line break; each line escaped on its own.
        label = "\\n".join(_quoted(line)[1:-1] for line in node.lines)
        shape = _DOT_SHAPES[node.shape]
        lines.append(f'  {_quoted(key)} [label="{label}", shape={shape}];')
    for edge in graph.edges:
        attributes = []
        if edge.label is not None:
            attributes.append(f"label={_quoted(edge.label)}")
        if edge.dashed:
            attributes.append("style=dashed")
        listed = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {_quoted(edge.source)} -> {_quoted(edge.target)}{listed};")
    lines.append("}")
    return "\n".join(lines) + "\n"
