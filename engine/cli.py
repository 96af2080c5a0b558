"""The ``ownly`` command line.

Exit codes: 0 success, 1 failure (one readable line; ``--debug`` adds the
traceback), 2 usage error.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from engine.capability import SETTINGS
from engine.errors import OwnlyError
from engine.version import VERSION

if TYPE_CHECKING:
    from engine.config import Settings

# A command imports what it needs when it runs, and the commands of other
# modules are imported when named: `ownly version` loads neither the language
# nor pydantic, `ownly check` not the server, the database layer or the
# capabilities (measured in bench/RESULTS.md).

__all__ = ["main"]

T = TypeVar("T")

# Commands defined in other modules, by name: imported when one is run or listed.
_ELSEWHERE = {
    "check": "engine.rules.cli:check",
    "fmt": "engine.rules.cli:fmt",
    "simulate": "engine.rules.cli:simulate",
}


class _Group(click.Group):
    """Loads commands when named; turns an ``OwnlyError`` into one line on stderr and
    exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_ELSEWHERE, *_capability_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        home = _ELSEWHERE.get(cmd_name)
        if home is not None:
            module, _, name = home.partition(":")
            found = getattr(importlib.import_module(module), name)
            assert isinstance(found, click.Command)
            return found
        return _capability_commands().get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OwnlyError as exc:
            if ctx.find_root().params.get("debug"):
                raise
            from rich.console import Console
            from rich.markup import escape

            console = Console(stderr=True, highlight=False, soft_wrap=True)
            for line in exc.message.splitlines() or [type(exc).__name__]:
                console.print(f"[bold red]error:[/] {escape(line)}")
            if exc.details:
                console.print(escape(exc.details.rstrip("\n")))
            ctx.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="OWNLY_CONFIG",
    default="ownly.toml",
    show_default=True,
    help="The engine configuration file.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(VERSION, "--version", prog_name="ownly")
@click.pass_context
def main(ctx: click.Context, config_path: Path, debug: bool) -> None:
    """Ownly: integrations and automation as code."""
    ctx.obj = config_path
    ctx.meta[SETTINGS] = functools.cache(lambda: _settings(ctx))


@functools.cache
def _capability_commands() -> dict[str, click.Command]:
    from engine.app import CAPABILITIES

    commands = (command for c in CAPABILITIES for command in c.commands())
    return {command.name: command for command in commands if command.name is not None}


def _settings(ctx: click.Context) -> Settings:
    from engine.app import load_settings

    path = ctx.find_root().obj
    assert isinstance(path, Path)
    return load_settings(path, os.environ)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Start the engine: migrate a new database, load the rules, serve until SIGTERM."""
    import gc

    from rich.console import Console

    from engine.app import build_engine
    from engine.http.server import serve

    settings = _settings(ctx)
    engine = build_engine(settings, log_stream=sys.stderr)
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def listening(addresses: list[str]) -> None:
        if settings.production:
            return
        key = engine.keyring.keys[0] if engine.keyring.keys else None
        if key is not None and key.name == "development":
            console.print(
                f"development API key: {key.secret.get_secret_value()} "
                f"(kept in {settings.state_dir / 'dev-key'}; not used in production mode)"
            )

    async def main_task() -> None:
        await engine.start()
        # What start-up built (modules, the rule set, the catalog) lives as long
        # as the process: out of the collector's way, a full collection under
        # load walks only what requests create (p99 latency).
        gc.collect()
        gc.freeze()
        try:
            await serve(engine, on_listening=listening)
        finally:
            await engine.stop()

    _run(main_task())


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending database migrations."""
    from engine.app import migration_folders
    from engine.core.migrate import migrate as apply_migrations
    from engine.core.storage import Database

    settings = _settings(ctx)

    async def upgrade() -> tuple[str, str]:
        database = Database(settings.database_url, settings.config.database)
        await database.open()
        try:
            before, after = await apply_migrations(database, migration_folders())
        finally:
            await database.close()
        return before.label, after.label

    before, after = _run(upgrade())
    if before == after:
        click.echo(f"database is up to date at {after}")
    else:
        click.echo(f"migrated database from {before} to {after}")


@main.command()
@click.pass_context
def config(ctx: click.Context) -> None:
    """Print the effective configuration as JSON, with secrets redacted."""
    import json

    settings = _settings(ctx)
    click.echo(json.dumps(settings.redacted(), indent=2))


@main.command()
def version() -> None:
    """Print the version of Ownly."""
    click.echo(f"ownly {VERSION}")
