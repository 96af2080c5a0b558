"""The contract of a job kind: how a capability plans, runs and records its jobs.

A kind is a name (the ``jobs.kind`` of its jobs), a ``Planner`` that turns a
matched subscription of that name into jobs inside the writer's transaction,
and a ``Handler`` that carries one job out. The handler answers a ``Result``:
what the worker does next (done, retry after a delay, give up, not started),
the attempt to log (``AttemptRecord``, kept in the one attempt log of every
kind) and, optionally, a ``FinishHook``: the kind's own writes, in the
transaction that records the outcome.

The core (bus, queue, worker) reads these types and nothing else of a kind,
so a new kind plugs in without a line of the core changing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from dsl import RuleSet, Subscription
    from engine.events.bus import StoredEvent
    from engine.jobs.queue import FinishJob, Job, NewJob

__all__ = [
    "AttemptRecord",
    "Deferred",
    "Ended",
    "Failed",
    "FinishHook",
    "Follower",
    "Handler",
    "JobKind",
    "Planner",
    "Result",
    "Retry",
    "Succeeded",
    "Watcher",
    "by_name",
    "caller_kind",
]


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt as the attempt log keeps it, whatever the kind.

    ``outcome`` is the kind's own word for what happened (``delivered``,
    ``timeout``, ``bounced``, ...); ``detail`` is its kind-specific JSON (a
    webhook's status, headers and body), capped in size when stored.
    """

    outcome: str
    started_at: datetime
    duration: float
    error_class: str | None = None
    error_message: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


class FinishHook(Protocol):
    """More to write in the transaction that records a job's outcome (its kind's own records).

    The hooks of one class in a group of finishes are applied together, with
    each finish and whether its lease was still held (``kept``: when False, a
    newer attempt's outcome counts, and the hook should change nothing that
    depends on the outcome).
    """

    @classmethod
    def apply_all(cls, conn: Connection, finished: Sequence[tuple[FinishJob, bool]]) -> None:
        """Write on ``conn``, on the writer's thread, for every finish of the group."""

    def committed(self) -> None:
        """Called on the event loop once the finish is committed."""


@dataclass(frozen=True)
class Succeeded:
    """The job is done."""

    attempt: AttemptRecord | None = field(default=None, kw_only=True)
    hook: FinishHook | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay`` seconds (unless the attempts are used up)."""

    delay: float
    error: str
    attempt: AttemptRecord | None = field(default=None, kw_only=True)
    hook: FinishHook | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Failed:
    """Give up now: retrying cannot help."""

    error: str
    attempt: AttemptRecord | None = field(default=None, kw_only=True)
    hook: FinishHook | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Deferred:
    """Not started (a rate limit, a busy host): run again after ``delay`` seconds,
    the attempt not counted."""

    delay: float
    attempt: ClassVar[None] = None
    hook: FinishHook | None = field(default=None, kw_only=True)


Result = Succeeded | Retry | Failed | Deferred


class Planner(Protocol):
    """Turns one matched subscription into the jobs that carry it out.

    It runs inside the writer's transaction with its connection, so that it
    can read and write what planning needs (a dedup row, a waiting run), and
    may plan zero or more jobs. It must not touch the event loop.
    """

    def plan(
        self, conn: Connection, rules: RuleSet, subscription: Subscription, event: StoredEvent
    ) -> Sequence[NewJob]: ...


class Watcher(Protocol):
    """Sees every new event the bus stores, whatever rules it matched.

    It runs in the transaction that stores them, before they are inserted,
    and may plan jobs (a waiting run resumed by the event it waited for).
    """

    def watch(
        self, conn: Connection, rules: RuleSet | None, events: Sequence[StoredEvent], now: datetime
    ) -> Sequence[NewJob]: ...


@dataclass(frozen=True)
class Ended:
    """A job that ended for good (succeeded, or failed with no attempt left), as the
    kind that asked for it hears of it."""

    job_id: int
    kind: str
    caller: str  # ``<kind>:<its own reference>``
    outcome: Literal["succeeded", "failed"]
    error: str | None
    record: AttemptRecord | None  # the last attempt, as the attempt log keeps it
    now: datetime


class Follower(Protocol):
    """Hears of the end of the jobs its kind asked for (their ``caller`` names it),
    in the transaction that records the end: a workflow run advances there."""

    def follow(self, conn: Connection, ended: Sequence[Ended]) -> None: ...


def caller_kind(caller: str) -> str:
    """The kind that asked for a job: its caller's text before the first colon."""
    return caller.partition(":")[0]


class Handler(Protocol):
    """Carries out jobs of one kind, between ``start`` and ``stop``."""

    async def start(self) -> None:
        """Acquire what running needs (an HTTP session), on the engine's loop."""

    async def run(self, job: Job) -> Result:
        """One attempt of ``job``; a raised exception is retried as a crash."""

    def stop(self) -> None:
        """The engine is stopping: start no more attempts (answer ``Deferred``)."""

    async def close(self) -> None:
        """Release what ``start`` acquired, once no job runs."""


def _no_target(job: Job) -> str | None:
    return None


@dataclass(frozen=True)
class JobKind:
    """One kind of job: its name, how it is planned and run, what the API shows of it.

    ``planner`` plans the subscriptions of the same name (a rule's kind, such
    as ``webhook``); a kind planned only by its capability (a test send, a
    workflow step) has none. ``target`` names what a job acts on (the
    webhook, the template), read from its payload. ``watcher`` sees every
    new event; ``follower`` hears of the end of every job whose ``caller``
    names this kind.
    """

    name: str
    handler: Handler
    planner: Planner | None = None
    target: Callable[[Job], str | None] = _no_target
    watcher: Watcher | None = None
    follower: Follower | None = None


def by_name(kinds: Sequence[JobKind]) -> Mapping[str, JobKind]:
    """The kinds by name; two kinds of one name are a wiring mistake."""
    found: dict[str, JobKind] = {}
    for kind in kinds:
        if kind.name in found:
            raise ValueError(f"two job kinds are named {kind.name!r}")
        found[kind.name] = kind
    return found
