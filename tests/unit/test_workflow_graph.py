"""The step graph: every shipped workflow drawn in Mermaid and DOT, one golden of each."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dsl import RuleSet, compile_rules, ir, rule_files
from engine.workflows.api import step_graph
from engine.workflows.authoring.graph import dot, mermaid
from engine.workflows.program import Program
from tests.unit.dsl.support import Rules

ROOT = Path(__file__).parents[2]
GOLDEN = Path(__file__).with_name("graphs")


def _shipped() -> RuleSet:
    compilation = compile_rules(rule_files([ROOT / "rules"]), templates_dir=ROOT / "templates")
    assert compilation.rule_set is not None, compilation.render()
    return compilation.rule_set


SHIPPED = _shipped()
NAMES = sorted(SHIPPED.workflows)


# ---- a tiny DOT reader: enough to say the text is one well-formed digraph

_DOT_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|->|[{}\[\];,=]|[A-Za-z_][A-Za-z0-9_]*|\s+', re.S)


def _dot_tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text):
        found = _DOT_TOKEN.match(text, position)
        assert found is not None, f"cannot read DOT at {text[position : position + 40]!r}"
        if not found.group().isspace():
            tokens.append(found.group())
        position = found.end()
    return tokens


def _attributes(tokens: list[str]) -> dict[str, str]:
    """``[a=b, c="d"]`` as a mapping; anything else fails."""
    assert tokens[0] == "[" and tokens[-1] == "]", tokens
    inside, found = tokens[1:-1], {}
    while inside:
        name, equals, value, *inside = inside
        assert equals == "=" and not value.startswith(("[", "]", "{", "}", ",")), tokens
        found[name] = value
        if inside:
            assert inside.pop(0) == ",", tokens
    return found


def read_dot(text: str) -> tuple[set[str], list[tuple[str, str]]]:
    """The nodes a digraph declares and its edges, checking braces, brackets and statements."""
    tokens = _dot_tokens(text)
    depth = 0
    for token in tokens:
        depth += {"{": 1, "}": -1}.get(token, 0)
        assert depth >= 0, "a } closes nothing"
    assert depth == 0, "braces are not balanced"
    assert tokens[0] == "digraph" and tokens[1].startswith('"') and tokens[2] == "{"
    assert tokens[-1] == "}"
    body = tokens[3:-1]
    assert body and body[-1] == ";"
    declared: set[str] = set()
    edges: list[tuple[str, str]] = []
    statement: list[str] = []
    for token in body:
        if token != ";":
            statement.append(token)
            continue
        head, rest = statement[0], statement[1:]
        if len(statement) >= 3 and statement[1] == "->":
            edges.append((head, statement[2]))
            if statement[3:]:
                _attributes(statement[3:])
        elif head in ("node", "edge"):
            _attributes(rest)
        elif len(statement) == 3 and statement[1] == "=":
            pass  # a graph attribute: rankdir=TB
        else:
            assert head.startswith('"'), statement
            assert "label" in _attributes(rest), statement
            declared.add(head)
        statement = []
    return declared, edges


_MERMAID_NODE = re.compile(r'^    (n\d+)(\["|\{"|\(\["|\{\{")([^"]*)("\]|"\}|"\]\)|"\}\})$')
_MERMAID_EDGE = re.compile(r'^    (n\d+) (-->|-\.->)(?:\|"([^"]*)"\|)? (n\d+)$')


def read_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Node ids with their labels, and the edges, of a flowchart every line of which reads."""
    first, *lines = text.splitlines()
    assert first == "flowchart TD"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in lines:
        if node := _MERMAID_NODE.match(line):
            nodes[node.group(1)] = node.group(3)
            label = node.group(3)
        elif edge := _MERMAID_EDGE.match(line):
            edges.append((edge.group(1), edge.group(4)))
            label = edge.group(3) or ""
        else:
            raise AssertionError(f"not a node or an edge: {line!r}")
        assert not set(label.replace("<br>", "")) & set('"<>|`'), line
    return nodes, edges


def _step_ids(workflow: ir.Workflow) -> list[str]:
    return list(Program(workflow).steps)


@pytest.mark.parametrize("name", NAMES)
def test_each_shipped_workflow_draws_as_dot_with_every_step(name: str) -> None:
    workflow = SHIPPED.workflows[name]
    text = dot(workflow)
    declared, edges = read_dot(text)
    assert {f'"{step}"' for step in _step_ids(workflow)} | {'"(start)"'} <= declared
    assert edges
    for source, target in edges:
        assert source in declared and target in declared, (source, target)


@pytest.mark.parametrize("name", NAMES)
def test_each_shipped_workflow_draws_as_mermaid_with_every_step(name: str) -> None:
    workflow = SHIPPED.workflows[name]
    nodes, edges = read_mermaid(mermaid(workflow))
    shown = {label.split("<br>")[0] for label in nodes.values()}
    assert set(_step_ids(workflow)) | {"start"} <= shown
    assert edges
    for source, target in edges:
        assert source in nodes and target in nodes, (source, target)


def test_the_step_graph_reads_as_the_runs_walk_it() -> None:
    nodes, edges = read_mermaid(mermaid(SHIPPED.workflows["collect_investment"]))
    by_id = {label.split("<br>")[0]: node for node, label in nodes.items()}
    assert (by_id["s2.b2.s2"], by_id["payment"]) in edges  # retry_from back to its step
    assert (by_id["s2.b3.s2"], by_id["failed"]) in edges
    assert (by_id["s2.b1.s1"], by_id["end"]) in edges
    assert (by_id["s2.b3.s2"], by_id["end"]) not in edges


@pytest.fixture
def chase(tmp_path: Path) -> ir.Workflow:
    compilation = Rules(tmp_path).compile((GOLDEN / "chase.ownly").read_text(encoding="utf-8"))
    assert compilation.rule_set is not None, compilation.render()
    return compilation.rule_set.workflows["chase"]


@pytest.mark.parametrize(("draw", "golden"), [(mermaid, "chase.mmd"), (dot, "chase.dot")])
def test_a_small_workflow_draws_as_its_golden(
    chase: ir.Workflow, draw: Callable[[ir.Workflow], str], golden: str
) -> None:
    assert draw(chase) == (GOLDEN / golden).read_text(encoding="utf-8")


def test_labels_are_escaped_for_each_format(chase: ir.Workflow) -> None:
    declared, _ = read_dot(dot(chase))
    assert '"s3 (join)"' in declared
    text = dot(chase)
    assert r'label="event.data.note == \"\\\"x\\\" \\\\ y\""' in text
    nodes, _ = read_mermaid(mermaid(chase))
    (seen,) = (label for label in nodes.values() if label.startswith("seen<br>"))
    assert (
        seen == "seen<br>set seen = #quot;a [b] {c} #lt;d#gt; #124; #35;e #96;f#96; 100#37;#quot;"
    )


def test_a_workflow_whose_every_path_fails_has_no_end(tmp_path: Path) -> None:
    text = 'workflow f {\n  on manual\n  fail "no"\n}\n'
    compilation = Rules(tmp_path).compile(text)
    assert compilation.rule_set is not None, compilation.render()
    workflow = compilation.rule_set.workflows["f"]
    declared, edges = read_dot(dot(workflow))
    assert declared == {'"(start)"', '"s1"', '"(failed)"'}
    assert edges == [('"(start)"', '"s1"'), ('"s1"', '"(failed)"')]


def _api_ids(steps: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for step in steps:
        found.add(str(step["id"]))
        inner = [b["steps"] for b in step.get("branches", ())]
        inner += [step[k] for k in ("steps", "else") if k in step]
        for block in inner:
            found |= _api_ids(block)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_the_graph_names_the_steps_as_the_api_does(name: str) -> None:
    workflow = SHIPPED.workflows[name]
    declared, _ = read_dot(dot(workflow))
    steps = {key.strip('"') for key in declared} - {"(start)", "(end)", "(failed)"}
    steps = {key for key in steps if not key.endswith(" (join)")}
    assert steps == _api_ids(step_graph("", workflow.steps))
