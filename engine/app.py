"""The composition root: the capabilities this engine runs, and the engine made of them.

This is the one module that names a capability. Everything else reads them
through ``engine.capability``: the configuration (their sections and scopes),
the command line (their commands), the runtime (their kinds and routes).
Importing it is cheap; ``build_engine`` imports the runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine import email, records, webhooks, workflows
from engine.capability import Capability
from engine.config import Settings
from engine.config import load_settings as _load_settings

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from engine.core.clock import Clock
    from engine.runtime import Engine

__all__ = ["CAPABILITIES", "build_engine", "load_settings", "metadata", "migration_folders"]

CAPABILITIES: tuple[Capability, ...] = (
    webhooks.CAPABILITY,
    email.CAPABILITY,
    records.CAPABILITY,
    workflows.CAPABILITY,
)


def load_settings(
    path: Path | None,
    environ: Mapping[str, str],
    capabilities: tuple[Capability, ...] = CAPABILITIES,
) -> Settings:
    """``ownly.toml`` with the sections and scopes of ``capabilities``."""
    return _load_settings(
        path,
        environ,
        sections={c.name: c.section for c in capabilities if c.section is not None},
        scopes=[scope for c in capabilities for scope in c.scopes],
    )


def migration_folders(capabilities: tuple[Capability, ...] = CAPABILITIES) -> list[Path]:
    """The capabilities' own migration folders, beside the core's."""
    return [c.migrations for c in capabilities if c.migrations is not None]


def metadata(capabilities: tuple[Capability, ...] = CAPABILITIES) -> MetaData:
    """Every table: the core's and the capabilities' (their modules imported)."""
    for capability in capabilities:
        if capability.tables is not None:
            importlib.import_module(capability.tables)
    from engine.core.schema import metadata

    return metadata


def build_engine(
    settings: Settings,
    *,
    log_stream: TextIO,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    capabilities: tuple[Capability, ...] = CAPABILITIES,
) -> Engine:
    """The engine for ``settings``, running ``capabilities``."""
    from engine.runtime import Engine

    return Engine.from_settings(
        settings, capabilities, log_stream=log_stream, clock=clock, environ=environ
    )
