"""Workflows: durable runs of the rule set's `workflow` blocks.

A run is a row; each step's result is a checkpoint in the transaction that
causes its jobs or events; a sleeping or waiting run is a row with a due time.
Action steps are jobs of their capability (a delivery, an email, an HTTP call,
a record update) whose end advances the run where it is recorded. This
module is the cheap descriptor; ``runtime`` is what runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.capability import Capability, Services

if TYPE_CHECKING:
    from collections.abc import Sequence

    import click

    from engine.capability import Runtime

__all__ = ["CAPABILITY", "KIND"]

KIND = "workflow"


def _build(services: Services) -> Runtime:
    from engine.workflows.runtime import Workflows

    return Workflows(services)


def _commands() -> Sequence[click.Command]:
    from engine.workflows.cli import graph, new, workflows

    return (workflows, graph, new)


CAPABILITY = Capability(
    name="workflows",
    build=_build,
    scopes=("workflows:read", "workflows:write"),
    migrations=Path(__file__).parent / "migrations",
    tables="engine.workflows.tables",
    commands=_commands,
)
