"""The contract a capability fulfils to plug into the engine.

A capability (webhooks, email, workflows, payments) is one package under
``engine/`` with a ``CAPABILITY`` object; the composition root,
``engine/app.py``, lists them and is the only module that names one. The core
reads a capability through this contract and nothing else.

The ``Capability`` itself is cheap to import, since the command line reads
it for every command: its name, its ``ownly.toml`` section, its scopes, its
migrations and its CLI commands. What runs is made by ``build`` when the
engine starts, from the ``Services`` the core offers, and answers a
``Runtime``: the job kinds (each a planner and a handler, see
``engine.jobs.kinds``), the HTTP routes and the gauges to refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import click
    from aiohttp import web
    from prometheus_client import CollectorRegistry
    from pydantic import BaseModel
    from sqlalchemy.ext.asyncio import AsyncConnection

    from engine.config import Settings
    from engine.core.clock import Clock
    from engine.core.logs import Logger
    from engine.core.storage import Database
    from engine.core.writer import Writer
    from engine.events.bus import Bus
    from engine.jobs.kinds import Follower, JobKind
    from engine.rules.reload import Rules

__all__ = ["SETTINGS", "Capability", "Runtime", "Services", "settings_of"]

SETTINGS = "ownly.settings"
"""Where the ``ownly`` command keeps, in its root context's ``meta``, what loads the settings."""


def settings_of(ctx: click.Context) -> Settings | None:
    """The engine's settings for a capability's command (loaded on first use), or None
    outside the ``ownly`` command."""
    load = ctx.find_root().meta.get(SETTINGS)
    return load() if callable(load) else None


@dataclass(frozen=True)
class Services:
    """What the core hands a capability when the engine starts."""

    settings: Settings
    section: Any  # the capability's validated ``[name]`` table, or None without one
    clock: Clock
    logger: Logger
    environ: Mapping[str, str]
    database: Database
    writer: Writer
    bus: Bus  # ``bus.emit(conn, events)`` inside any write
    rules: Rules  # ``rules.rule_set()``: the rule set current now
    wake: Callable[[], None]  # wake the workers (a job is due sooner than they think)
    registry: CollectorRegistry  # where its metrics go
    lease: timedelta  # how long a job is leased for one attempt
    concurrency: int  # how many jobs the workers run at once
    # By kind, who hears of the end of the jobs that kind asked for: what a job
    # finished outside the workers (a redelivery) passes to ``finish_for``.
    # Filled once every capability is built.
    followers: Mapping[str, Follower]
    # The other capabilities' runtimes by name (a workflow step sends an email
    # through the email capability's), filled once every capability is built.
    peers: Mapping[str, Runtime]


class Runtime(Protocol):
    """A capability as it runs: its job kinds, its routes, its gauges."""

    @property
    def kinds(self) -> Sequence[JobKind]: ...

    def add_routes(self, app: web.Application) -> None:
        """Add its routes (under ``/api/<name>``) to the engine's application."""

    async def refresh_gauges(self, conn: AsyncConnection) -> None:
        """Read what its gauges show, before ``/metrics`` answers."""


@dataclass(frozen=True)
class Capability:
    """A capability as the engine lists it (see the module docstring)."""

    name: str
    build: Callable[[Services], Runtime]  # imports the runtime when called, not before
    section: type[BaseModel] | None = None  # its ``[name]`` table in ``ownly.toml``
    scopes: tuple[str, ...] = ()
    migrations: Path | None = None  # a folder of Alembic versions: a branch of its own
    tables: str | None = None  # the module that defines its tables on the core's metadata
    commands: Callable[[], Sequence[click.Command]] = field(default=lambda: ())
