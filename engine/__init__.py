"""Ownly's runtime: configuration, storage, the server and the command line."""

from engine.app import Engine
from engine.auth import Keyring, development_key
from engine.clock import Clock, ManualClock, SystemClock
from engine.config import ApiKey, Config, Settings, load_settings
from engine.errors import ConfigError, OwnlyError, SchemaTooNewError, ServeError, StorageError
from engine.logs import Logger, make_logger
from engine.metrics import Metrics
from engine.migrate import MigrationStatus, migrate, migration_status
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
    "migrate",
    "migration_status",
    "serve",
]
