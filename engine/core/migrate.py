"""Schema migrations: Alembic, kept in the package, run on the engine's connection."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from engine.core.storage import Database
from engine.errors import SchemaTooNewError, StorageError

__all__ = ["MigrationStatus", "head_revision", "migrate", "migration_status"]

_SCRIPTS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the migrations this code knows."""

    current: str | None
    head: str

    @property
    def is_new(self) -> bool:
        return self.current is None

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


async def migration_status(db: Database) -> MigrationStatus:
    """Read the database's revision; refuse one this code does not know."""
    async with db.translate_errors(), db.connect() as conn:
        current = await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
    status = MigrationStatus(current=current, head=head_revision())
    if current is not None:
        scripts = ScriptDirectory.from_config(_alembic_config())
        try:
            scripts.get_revision(current)
        except CommandError:
            raise SchemaTooNewError(
                f"database {db.label} is at migration {current!r}, which this version of Ownly "
                f"does not know (it knows up to {status.head!r}); upgrade Ownly, "
                f"or point [database] url at another database"
            ) from None
    return status


async def migrate(db: Database) -> tuple[MigrationStatus, MigrationStatus]:
    """Apply every pending migration in one transaction; answer (before, after)."""
    before = await migration_status(db)
    if before.is_current:
        return before, before
    config = _alembic_config()

    def upgrade(sync_conn: Any) -> None:
        config.attributes["connection"] = sync_conn
        command.upgrade(config, "head")

    async with db.translate_errors(), db.begin() as conn:
        await conn.run_sync(upgrade)
    after = await migration_status(db)
    if not after.is_current:
        raise StorageError(f"database {db.label}: migrations did not reach {after.head!r}")
    return before, after
