"""The base every part stands on: clock, logs, metrics, storage, schema, the writer, migrations.

Its names are imported on first use (``engine.lazy``).
"""

from __future__ import annotations

import typing as _typing

from engine.lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine.core.clock import Clock, ManualClock, SystemClock
    from engine.core.logs import Logger, make_logger
    from engine.core.metrics import Metrics
    from engine.core.migrate import MigrationStatus, migration_status
    from engine.core.schema import metadata
    from engine.core.storage import Database
    from engine.core.writer import BatchWrite, Writer, after_commit

__all__ = [
    "BatchWrite",
    "Clock",
    "Database",
    "Logger",
    "ManualClock",
    "Metrics",
    "MigrationStatus",
    "SystemClock",
    "Writer",
    "after_commit",
    "make_logger",
    "metadata",
    "migration_status",
]

_HOMES = {
    "BatchWrite": "engine.core.writer",
    "Clock": "engine.core.clock",
    "Database": "engine.core.storage",
    "Logger": "engine.core.logs",
    "ManualClock": "engine.core.clock",
    "Metrics": "engine.core.metrics",
    "MigrationStatus": "engine.core.migrate",
    "SystemClock": "engine.core.clock",
    "Writer": "engine.core.writer",
    "after_commit": "engine.core.writer",
    "make_logger": "engine.core.logs",
    "metadata": "engine.core.schema",
    "migration_status": "engine.core.migrate",
}

if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports
    __getattr__, __dir__ = _exports(__name__, _HOMES, globals())
