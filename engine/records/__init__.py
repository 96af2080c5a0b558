"""Records: the platform's records a workflow updates, kept by the engine or by the platform.

The capability as the engine lists it; ``engine.records.store.update_record``
writes one inside any write, and its runtime (``engine.records.runtime``) is
imported when the engine starts.
"""

from __future__ import annotations

import typing as _typing
from pathlib import Path as _Path

from engine.capability import Capability as _Capability
from engine.records.config import RecordsConfig as _RecordsConfig

if _typing.TYPE_CHECKING:
    from engine.capability import Runtime, Services

__all__ = ["CAPABILITY", "KIND"]

KIND = "record"


def _build(services: Services) -> Runtime:
    from engine.records.runtime import Records

    return Records(services)


CAPABILITY = _Capability(
    name="records",
    build=_build,
    section=_RecordsConfig,
    scopes=("records:read", "records:write"),
    migrations=_Path(__file__).with_name("migrations"),
    tables="engine.records.tables",
)
