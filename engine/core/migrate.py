"""Schema migrations: Alembic, kept in the package, run on the engine's connection.

The core's migrations are one line of revisions (``engine/core/migrations``);
a capability with tables of its own keeps its migrations in a folder of its
own, a branch that depends on the core revision it needs. A database is
current when it stands at every head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError, to_tuple

from engine.core.storage import Database
from engine.errors import SchemaTooNewError, StorageError

__all__ = ["MigrationStatus", "head_revision", "migrate", "migration_status"]

_SCRIPTS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the migrations this code knows."""

    current: tuple[str, ...]  # the revisions its version table holds, sorted
    head: tuple[str, ...]  # the heads this code knows, sorted
    reached: frozenset[str] = frozenset()  # what it has applied: current and what they need

    @property
    def is_new(self) -> bool:
        return not self.current

    @property
    def is_current(self) -> bool:
        return set(self.head) <= self.reached

    @property
    def label(self) -> str:
        """The revisions it holds, with each head it reached through another (a core head a
        capability's branch depends on is not kept in the version table)."""
        shown = set(self.current) | (set(self.head) & self.reached)
        return ", ".join(sorted(shown)) or "empty"


def _alembic_config(locations: Sequence[Path] = ()) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_SCRIPTS))
    folders = [_SCRIPTS / "versions", *locations]
    config.set_main_option("version_locations", " ".join(str(folder) for folder in folders))
    config.set_main_option("path_separator", "space")
    return config


def head_revision(locations: Sequence[Path] = ()) -> tuple[str, ...]:
    """The heads of the core's migrations and of the capabilities' in ``locations``."""
    return _heads(ScriptDirectory.from_config(_alembic_config(locations)))


def _heads(scripts: ScriptDirectory) -> tuple[str, ...]:
    heads = scripts.get_heads()
    assert heads, "the package ships at least one migration"
    return tuple(sorted(heads))


async def migration_status(db: Database, locations: Sequence[Path] = ()) -> MigrationStatus:
    """Read the database's revisions; refuse one this code does not know."""
    async with db.translate_errors(), db.connect() as conn:
        current = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    # One read of the migration folders, for the heads and the revisions known.
    scripts = ScriptDirectory.from_config(_alembic_config(locations))
    heads = _heads(scripts)
    for revision in current:
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise SchemaTooNewError(
                f"database {db.label} is at migration {revision!r}, which this version of "
                f"Ownly does not know (it knows up to {', '.join(heads)}); upgrade "
                f"Ownly, or point [database] url at another database"
            ) from None
    return MigrationStatus(tuple(sorted(current)), heads, _reached(scripts, current))


def _reached(scripts: ScriptDirectory, current: Sequence[str]) -> frozenset[str]:
    """The revisions applied to stand at ``current``: each, what it revises and what it
    depends on (a branch that depends on a core revision is stored alone in the version
    table), all the way down."""
    reached: set[str] = set()
    todo = list(current)
    while todo:
        revision = todo.pop()
        if revision in reached:
            continue
        reached.add(revision)
        script = scripts.get_revision(revision)
        if script is not None:
            todo.extend(to_tuple(script.down_revision, default=()))
            todo.extend(to_tuple(script.dependencies, default=()))
    return frozenset(reached)


async def migrate(
    db: Database, locations: Sequence[Path] = ()
) -> tuple[MigrationStatus, MigrationStatus]:
    """Apply every pending migration (core and ``locations``) in one transaction;
    answer (before, after)."""
    before = await migration_status(db, locations)
    if before.is_current:
        return before, before
    config = _alembic_config(locations)

    def upgrade(sync_conn: Any) -> None:
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "heads")

    async with db.translate_errors(), db.begin() as conn:
        await conn.run_sync(upgrade)
    after = await migration_status(db, locations)
    if not after.is_current:
        raise StorageError(f"database {db.label}: migrations did not reach {after.head!r}")
    return before, after
