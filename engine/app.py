"""The engine: every long-lived part, built in one place and handed down."""

from __future__ import annotations

from typing import TextIO

from engine.auth import Keyring, development_key
from engine.config import Settings
from engine.errors import ConfigError, StorageError
from engine.logs import Logger, make_logger
from engine.metrics import Metrics
from engine.migrate import migrate, migration_status
from engine.reload import Rules
from engine.storage import Database

__all__ = ["Engine"]


class Engine:
    """One running Ownly: configuration, logs, metrics, database, keys and rules."""

    def __init__(
        self,
        settings: Settings,
        *,
        logger: Logger,
        metrics: Metrics,
        database: Database,
        rules: Rules,
    ) -> None:
        self.settings = settings
        self.logger = logger
        self.metrics = metrics
        self.database = database
        self.rules = rules
        self.keyring = Keyring(settings.api_keys)

    @classmethod
    def from_settings(cls, settings: Settings, *, log_stream: TextIO) -> Engine:
        server = settings.config.server
        logger = make_logger(log_stream, fmt=server.log_format, level=server.log_level)
        return cls(
            settings,
            logger=logger,
            metrics=Metrics(),
            database=Database(settings.database_url, settings.config.database),
            rules=Rules(settings.rule_paths, settings.templates_dir, logger),
        )

    async def start(self) -> None:
        """Open and migrate the database, resolve keys, load the rules."""
        if self.settings.production and not self.settings.api_keys:
            raise ConfigError(
                f"{self.settings.source}: [api.keys]: production mode needs at least one API key"
            )
        await self.database.open()
        await self._migrate()
        if not self.settings.production and not self.settings.api_keys:
            key = development_key(self.settings.state_dir)
            self.keyring = Keyring((key,))
            self.logger.info("auth.development_key", path=str(self.settings.state_dir / "dev-key"))
        self.rules.load()

    async def stop(self) -> None:
        await self.database.close()

    async def _migrate(self) -> None:
        status = await migration_status(self.database)
        if status.is_current:
            return
        if not status.is_new and self.settings.production:
            raise StorageError(
                f"database {self.database.label} is at migration {status.current!r}, "
                f"this version needs {status.head!r}: run `ownly migrate`"
            )
        before, after = await migrate(self.database)
        self.logger.info("database.migrated", source=before.current, target=after.current)
