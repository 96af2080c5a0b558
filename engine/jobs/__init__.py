"""Durable jobs of every kind: the contract of a kind, the queue, the workers, retention.

Its names are imported on first use (``engine.lazy``).
"""

from __future__ import annotations

import typing as _typing

from engine.lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine.jobs.kinds import (
        AttemptRecord,
        Deferred,
        Failed,
        FinishHook,
        Handler,
        JobKind,
        Planner,
        Result,
        Retry,
        Succeeded,
    )
    from engine.jobs.queue import FinishJob, Job, NewJob
    from engine.jobs.retention import Retention
    from engine.jobs.worker import Worker

__all__ = [
    "AttemptRecord",
    "Deferred",
    "Failed",
    "FinishHook",
    "FinishJob",
    "Handler",
    "Job",
    "JobKind",
    "NewJob",
    "Planner",
    "Result",
    "Retention",
    "Retry",
    "Succeeded",
    "Worker",
]

_HOMES = {
    "AttemptRecord": "engine.jobs.kinds",
    "Deferred": "engine.jobs.kinds",
    "Failed": "engine.jobs.kinds",
    "FinishHook": "engine.jobs.kinds",
    "FinishJob": "engine.jobs.queue",
    "Handler": "engine.jobs.kinds",
    "Job": "engine.jobs.queue",
    "JobKind": "engine.jobs.kinds",
    "NewJob": "engine.jobs.queue",
    "Planner": "engine.jobs.kinds",
    "Result": "engine.jobs.kinds",
    "Retention": "engine.jobs.retention",
    "Retry": "engine.jobs.kinds",
    "Succeeded": "engine.jobs.kinds",
    "Worker": "engine.jobs.worker",
}

if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports
    __getattr__, __dir__ = _exports(__name__, _HOMES, globals())
