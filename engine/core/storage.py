"""The database: one async SQLAlchemy engine, configured for durability.

SQLite connections get WAL, the configured ``synchronous`` level, a busy
timeout and foreign keys on every connect, and transactions that really begin
where SQLAlchemy says they do (pysqlite's own implicit BEGIN is switched off, as
SQLAlchemy's documentation recommends), so migrations are transactional too.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from engine.config import DatabaseConfig
from engine.errors import StorageError

__all__ = ["Database", "table_names"]


# A run of 19 digits or more may be an integer past 64 bits, which orjson reads as
# a float. Found by turning every digit into "0" and looking for 19 of them: a
# regular expression takes twenty times as long over a job's payload.
_DIGITS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19


def json_loads(text: str | float) -> object:
    """A stored JSON column's value: orjson, about twice as fast as the standard
    library, where it reads the same value; the standard library for integers past
    64 bits (orjson would round them) and for what orjson refuses (``NaN``,
    ``Infinity``). SQLite gives a column declared JSON numeric affinity: a value
    that is one number comes back as that number, not as its text."""
    if isinstance(text, int | float):
        return text
    raw = text.encode("utf-8", "surrogatepass")  # orjson refuses a lone surrogate: below
    if raw.translate(_DIGITS).find(_LONG_NUMBER) >= 0:
        return json.loads(text)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(text)


class Database:
    """The engine's database; ``open()`` before use, ``close()`` after."""

    def __init__(self, url: URL, config: DatabaseConfig) -> None:
        self.url = url
        self.config = config
        self._engine: AsyncEngine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def path(self) -> Path | None:
        """The SQLite file, when there is one."""
        database = self.url.database
        if not self.is_sqlite or not database or database == ":memory:":
            return None
        return Path(database.removeprefix("file:").split("?", 1)[0])

    @property
    def label(self) -> str:
        return str(self.path) if self.path else self.url.render_as_string(hide_password=True)

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StorageError("the database is not open")
        return self._engine

    async def open(self) -> None:
        """Create the engine and prove the database can be reached and written."""
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the database directory {self.path.parent}: {exc.strerror}"
                ) from exc
        # Errors never carry the statement's values: event data may hold personal data.
        self._engine = create_async_engine(
            self.url, hide_parameters=True, json_deserializer=json_loads
        )
        if self.is_sqlite:
            self._configure_sqlite(self._engine.sync_engine)
        async with self.translate_errors(), self._engine.begin() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def ping(self) -> None:
        """Raise ``StorageError`` unless the database answers."""
        async with self.translate_errors(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def connect(self) -> Any:
        return self.engine.connect()

    def begin(self) -> Any:
        return self.engine.begin()

    def translate_errors(self) -> _Translate:
        """A context that turns driver errors into one readable ``StorageError``."""
        return _Translate(self.label)

    def create_sync_engine(self) -> Engine:
        """A synchronous engine on the same database, for a thread that owns its connection."""
        url = self.url.set(drivername="sqlite+pysqlite") if self.is_sqlite else self.url
        engine = create_engine(
            url, pool_size=1, max_overflow=0, hide_parameters=True, json_deserializer=json_loads
        )
        if self.is_sqlite:
            self._configure_sqlite(engine)
        return engine

    def _configure_sqlite(self, engine: Engine) -> None:
        pragmas = (
            "PRAGMA journal_mode = WAL",
            f"PRAGMA synchronous = {self.config.synchronous}",
            f"PRAGMA busy_timeout = {int(self.config.busy_timeout * 1000)}",
            "PRAGMA foreign_keys = ON",
        )

        @event.listens_for(engine, "connect")
        def on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                for pragma in pragmas:
                    cursor.execute(pragma)
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")


class _Translate:
    def __init__(self, label: str) -> None:
        self._label = label

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self.__exit__(kind, exc, tb)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, StorageError):
            return
        if isinstance(exc, DBAPIError | sqlite3.Error | OSError):
            original = getattr(exc, "orig", None) or exc
            reason = str(original).splitlines()[0] if str(original) else type(original).__name__
            if "readonly" in reason or "read-only" in reason:
                reason = "the database is read-only"
            raise StorageError(f"database {self._label}: {reason}") from exc


async def table_names(conn: AsyncConnection) -> set[str]:
    """The tables that exist, for migrations and tests."""

    def names(sync_conn: Any) -> set[str]:
        return set(inspect(sync_conn).get_table_names())

    return await conn.run_sync(names)
