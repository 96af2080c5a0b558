"""Errors the engine reports to its operator.

The tree::

    OwnlyError                 root: one readable line, exit code 1 at the CLI
    ├── ConfigError            ownly.toml or an OWNLY_* override is wrong
    ├── StorageError           the database cannot be opened, written or migrated
    │   └── SchemaTooNewError  the database was migrated by a newer Ownly
    └── ServeError             the server cannot start (address in use, ...)

Foreign exceptions are translated at the boundary that meets them
(``raise StorageError(...) from exc``), so the CLI prints one line (and the
error's ``details``, such as compiler diagnostics) and only ``--debug`` shows
the chain.
"""

from __future__ import annotations

__all__ = ["ConfigError", "OwnlyError", "SchemaTooNewError", "ServeError", "StorageError"]


class OwnlyError(Exception):
    """Ownly failed."""

    def __init__(self, message: str | None = None, *, details: str = "") -> None:
        super().__init__(message or self.__doc__ or "")
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(OwnlyError):
    """The configuration is not valid."""


class StorageError(OwnlyError):
    """The database cannot be used."""


class SchemaTooNewError(StorageError):
    """The database was migrated by a newer version of Ownly."""


class ServeError(OwnlyError):
    """The server cannot start."""
