"""The workflow tables: runs, their step checkpoints, what they wait for, per-workflow state.

A run (``workflow_runs``) is pinned to the rule-set version it started under.
Each step it reaches has one row per round (``workflow_steps``; a
``retry_from`` starts the next round): the checkpoint, whose primary key is
why no step is recorded twice. A run waiting for an event has one row per
pattern in ``workflow_waits``, looked up by pattern when events arrive.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, Text

from engine.core.schema import Serial, UTCDateTime, metadata

__all__ = [
    "ACTIVE",
    "FINISHED",
    "workflow_runs",
    "workflow_schedules",
    "workflow_states",
    "workflow_steps",
    "workflow_waits",
]

# A run that has not ended: it holds its concurrency slot.
ACTIVE = ("running", "sleeping", "waiting")
FINISHED = ("completed", "failed", "cancelled", "timed_out")

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),  # creation order
    Column("id", String(40), nullable=False, unique=True),
    Column("workflow", String(200), nullable=False),
    Column("version", String(64), nullable=False),  # the rule set it runs under
    # pending queued debouncing running sleeping waiting completed failed cancelled timed_out
    Column("status", String(20), nullable=False),
    Column("trigger", String(20), nullable=False),  # event schedule manual hook rerun
    Column("event", JSON, nullable=False),  # what expressions see as `event`
    Column("event_id", String(200)),
    Column("user_id", String(200)),  # the trigger's `data.user_id`, when it has one
    Column("event_seq", Integer, nullable=False),  # the last event stored before it started
    Column("round", Integer, nullable=False, default=1),  # 1, then one more per retry_from
    Column("tick", Integer, nullable=False, default=0),  # fences its wake-up jobs
    Column("current_step", String(300)),
    Column("variables", JSON, nullable=False),  # named results and `set` values
    Column("concurrency_key", String(500)),
    Column("debounce_key", String(500)),
    Column("dedup_key", String(500)),
    Column("timeout_at", UTCDateTime()),
    Column("error", Text),
    Column("output", JSON),
    Column("rerun_of", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("started_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Index(None, "workflow", "seq"),
    Index(None, "workflow", "status"),
    Index(None, "concurrency_key", "status", "seq"),
    Index(None, "debounce_key", "status"),
    Index(None, "dedup_key", "created_at"),
)

workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("step", String(300), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("name", String(200)),
    # running sleeping waiting completed failed timed_out superseded
    Column("status", String(20), nullable=False),
    Column("input", JSON),
    Column("output", JSON),
    Column("error", Text),
    Column("job_key", String(300)),  # the idempotency key of the job it caused
    Column("attempts", Integer, nullable=False, default=0),
    Column("due_at", UTCDateTime()),  # when a wait ends, or a wait for times out
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("duration", Float),
)

workflow_waits = Table(
    "workflow_waits",
    metadata,
    Column("pattern", String(200), primary_key=True),
    Column("run_id", String(40), primary_key=True),
    Column("step", String(300), nullable=False),
    Column("round", Integer, nullable=False),
    Index(None, "run_id"),
)

workflow_states = Table(
    "workflow_states",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("status", String(20), nullable=False),  # active paused
    Column("skipped", Integer, nullable=False, default=0),  # triggers while paused
    Column("updated_at", UTCDateTime(), nullable=False),
)

workflow_schedules = Table(
    "workflow_schedules",
    metadata,
    Column("workflow", String(200), primary_key=True),
    Column("cron", String(200), primary_key=True),
    Column("timezone", String(100), primary_key=True),
    Column("next_slot", String(40), nullable=False),  # the slot's wall time in the zone
    Column("next_at", UTCDateTime(), nullable=False),
)
