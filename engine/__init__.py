"""Ownly's runtime: configuration, storage, the server and the command line."""

from engine.app import Engine
from engine.auth import Keyring, development_key
from engine.config import ApiKey, Config, Settings, load_settings
from engine.errors import ConfigError, OwnlyError, SchemaTooNewError, ServeError, StorageError
from engine.logs import Logger, make_logger
from engine.metrics import Metrics
from engine.migrate import MigrationStatus, migrate, migration_status
from engine.reload import Rules, RulesError
from engine.server import build_app, serve
from engine.storage import Database
from engine.version import VERSION

__all__ = [
    "VERSION",
    "ApiKey",
    "Config",
    "ConfigError",
    "Database",
    "Engine",
    "Keyring",
    "Logger",
    "Metrics",
    "MigrationStatus",
    "OwnlyError",
    "Rules",
    "RulesError",
    "SchemaTooNewError",
    "ServeError",
    "Settings",
    "StorageError",
    "build_app",
    "development_key",
    "load_settings",
    "make_logger",
    "migrate",
    "migration_status",
    "serve",
]
