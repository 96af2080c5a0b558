"""Ownly's runtime: configuration, storage, the server and the command line.

Names are imported on first use, so that ``ownly check`` and ``ownly fmt`` do
not pay for loading the server, the database layer and the HTTP client.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from engine.config import ApiKey, Config, Settings, load_settings
    from engine.core.clock import Clock, ManualClock, SystemClock
    from engine.core.logs import Logger, make_logger
    from engine.core.metrics import Metrics
    from engine.core.migrate import MigrationStatus, migration_status
    from engine.core.storage import Database
    from engine.core.writer import BatchWrite, Writer
    from engine.errors import ConfigError, OwnlyError, SchemaTooNewError, ServeError, StorageError
    from engine.http.auth import Keyring, development_key
    from engine.http.server import build_app, serve
    from engine.jobs.kinds import Failed, Handler, Retry, Succeeded
    from engine.jobs.queue import Job, NewJob
    from engine.jobs.worker import Worker
    from engine.rules.reload import Rules, RulesError
    from engine.runtime import Engine
    from engine.version import VERSION

__all__ = [
    "VERSION",
    "ApiKey",
    "BatchWrite",
    "Clock",
    "Config",
    "ConfigError",
    "Database",
    "Engine",
    "Failed",
    "Handler",
    "Job",
    "Keyring",
    "Logger",
    "ManualClock",
    "Metrics",
    "MigrationStatus",
    "NewJob",
    "OwnlyError",
    "Retry",
    "Rules",
    "RulesError",
    "SchemaTooNewError",
    "ServeError",
    "Settings",
    "StorageError",
    "Succeeded",
    "SystemClock",
    "Worker",
    "Writer",
    "build_app",
    "development_key",
    "load_settings",
    "make_logger",
    "migration_status",
    "serve",
]

_HOMES = {
    "ApiKey": "engine.config",
    "BatchWrite": "engine.core.writer",
    "Clock": "engine.core.clock",
    "Config": "engine.config",
    "ConfigError": "engine.errors",
    "Database": "engine.core.storage",
    "Engine": "engine.runtime",
    "Failed": "engine.jobs.kinds",
    "Handler": "engine.jobs.kinds",
    "Job": "engine.jobs.queue",
    "Keyring": "engine.http.auth",
    "Logger": "engine.core.logs",
    "ManualClock": "engine.core.clock",
    "Metrics": "engine.core.metrics",
    "MigrationStatus": "engine.core.migrate",
    "NewJob": "engine.jobs.queue",
    "OwnlyError": "engine.errors",
    "Retry": "engine.jobs.kinds",
    "Rules": "engine.rules.reload",
    "RulesError": "engine.rules.reload",
    "SchemaTooNewError": "engine.errors",
    "ServeError": "engine.errors",
    "Settings": "engine.config",
    "StorageError": "engine.errors",
    "Succeeded": "engine.jobs.kinds",
    "SystemClock": "engine.core.clock",
    "VERSION": "engine.version",
    "Worker": "engine.jobs.worker",
    "Writer": "engine.core.writer",
    "build_app": "engine.http.server",
    "development_key": "engine.http.auth",
    "load_settings": "engine.config",
    "make_logger": "engine.core.logs",
    "migration_status": "engine.core.migrate",
    "serve": "engine.http.server",
}


if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports

    def __getattr__(name: str) -> _typing.Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module 'engine' has no attribute {name!r}")
        value = getattr(_importlib.import_module(home), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(__all__)
