"""Ownly's runtime: configuration, storage, the server and the command line.

Names are imported on first use, so that ``ownly check`` and ``ownly fmt`` do
not pay for loading the server, the database layer and the HTTP client.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from engine.app import Engine
    from engine.auth import Keyring, development_key
    from engine.clock import Clock, ManualClock, SystemClock
    from engine.config import ApiKey, Config, Settings, load_settings
    from engine.errors import ConfigError, OwnlyError, SchemaTooNewError, ServeError, StorageError
    from engine.logs import Logger, make_logger
    from engine.metrics import Metrics
    from engine.migrate import MigrationStatus, migration_status
    from engine.queue import Job, NewJob
    from engine.reload import Rules, RulesError
    from engine.server import build_app, serve
    from engine.storage import Database
    from engine.version import VERSION
    from engine.worker import Failed, Handler, Retry, Succeeded, Worker
    from engine.writer import BatchWrite, Writer

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
    "BatchWrite": "engine.writer",
    "Clock": "engine.clock",
    "Config": "engine.config",
    "ConfigError": "engine.errors",
    "Database": "engine.storage",
    "Engine": "engine.app",
    "Failed": "engine.worker",
    "Handler": "engine.worker",
    "Job": "engine.queue",
    "Keyring": "engine.auth",
    "Logger": "engine.logs",
    "ManualClock": "engine.clock",
    "Metrics": "engine.metrics",
    "MigrationStatus": "engine.migrate",
    "NewJob": "engine.queue",
    "OwnlyError": "engine.errors",
    "Retry": "engine.worker",
    "Rules": "engine.reload",
    "RulesError": "engine.reload",
    "SchemaTooNewError": "engine.errors",
    "ServeError": "engine.errors",
    "Settings": "engine.config",
    "StorageError": "engine.errors",
    "Succeeded": "engine.worker",
    "SystemClock": "engine.clock",
    "VERSION": "engine.version",
    "Worker": "engine.worker",
    "Writer": "engine.writer",
    "build_app": "engine.server",
    "development_key": "engine.auth",
    "load_settings": "engine.config",
    "make_logger": "engine.logs",
    "migration_status": "engine.migrate",
    "serve": "engine.server",
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
