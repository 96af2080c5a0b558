"""The engine in this process on a manual clock, with rules aimed at a loopback receiver."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from engine.app import CAPABILITIES, build_engine, load_settings
from engine.capability import Capability
from engine.core.clock import ManualClock
from engine.core.schema import events, job_attempts, jobs
from engine.events.bus import AppendEvents, StoredEvent
from engine.jobs.queue import Job
from engine.runtime import Engine
from engine.webhooks.health import Stats, load_stats
from tests.support.process import write_project
from tests.support.rules import install_catalog, investment

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SECOND_SECRET = "whsec_" + base64.b64encode(b"z" * 32).decode()

TOML = '[queue]\npoll_interval = "1h"\n[webhooks]\nallow_networks = ["127.0.0.0/8"]\n'


def webhook(name: str = "receiver", url: str = "RECEIVER_URL", body: str = "") -> str:
    """A webhook rule on every ``investment.*`` event; ``body`` adds clauses."""
    return (
        f'webhook {name} {{\n  url = env("{url}")\n  secret = env("RECEIVER_SECRET")\n'
        f"  events = [investment.*]\n{body}}}\n"
    )


@asynccontextmanager
async def running_engine(
    root: Path,
    rules: str,
    env: dict[str, str],
    webhook_settings: str = "",
    capabilities: tuple[Capability, ...] = CAPABILITIES,
    log_stream: io.StringIO | None = None,
    clock: ManualClock | None = None,
) -> AsyncIterator[Engine]:
    """Started on a ``ManualClock`` without the file watcher; stopped on exit.

    ``webhook_settings`` are more lines of the ``[webhooks]`` table.
    """
    write_project(root, extra_toml=TOML + webhook_settings)
    install_catalog(root, webhooks=rules)
    environ = {"RECEIVER_SECRET": SECRET, **env}
    settings = load_settings(root / "ownly.toml", environ, capabilities)
    engine = build_engine(
        settings,
        log_stream=log_stream or io.StringIO(),
        clock=clock or ManualClock(),
        environ=environ,
        capabilities=capabilities,
    )
    await engine.start(watch=False)
    try:
        yield engine
    finally:
        await engine.stop()


def clock_of(engine: Engine) -> ManualClock:
    assert isinstance(engine.clock, ManualClock)
    return engine.clock


async def send(engine: Engine, *ids: str, amount: str = "2500.00") -> None:
    """Store ``investment.created`` events with these ids, as ingest would."""
    now = engine.clock.now()
    stored = []
    for event_id in ids:
        body: dict[str, Any] = investment(event_id, amount)
        stored.append(StoredEvent(event_id, str(body["type"]), body["data"], now, now))
    await engine.writer.submit(AppendEvents(engine.bus, stored))


async def drive(
    engine: Engine, condition: Callable[[], bool | Awaitable[bool]], limit: int = 6000
) -> None:
    """Run until ``condition`` holds; when the worker idles, jump the clock to its next wake-up."""
    clock = clock_of(engine)
    worker = engine.worker
    assert worker is not None
    idle = 0
    for _ in range(limit):
        holds = condition()
        if holds if isinstance(holds, bool) else await holds:
            return
        await asyncio.sleep(0.002)
        idle = idle + 1 if worker.busy == 0 and worker.napping else 0
        wakeup = clock.next_wakeup()
        if idle >= 3 and wakeup is not None:
            clock.advance((wakeup - clock.now()).total_seconds())
            idle = 0
    raise AssertionError("condition not reached")


async def idle_for(engine: Engine, seconds: float) -> None:
    """Let the clock run ``seconds`` (in its own steps) and the worker do what it will."""
    clock = clock_of(engine)
    end = clock.now().timestamp() + seconds
    while clock.now().timestamp() < end:
        await asyncio.sleep(0.01)
        wakeup = clock.next_wakeup()
        step = end - clock.now().timestamp()
        if wakeup is not None:
            step = min(step, max(0.001, (wakeup - clock.now()).total_seconds()))
        clock.advance(step)
    await asyncio.sleep(0.05)


async def delivery_jobs(engine: Engine) -> list[Job]:
    async with engine.database.connect() as conn:
        rows = (await conn.execute(select(jobs).order_by(jobs.c.id))).all()
    return [Job.from_row(row) for row in rows]


async def attempts_of(engine: Engine, job_id: int) -> list[Any]:
    """The job's logged attempts, each with its detail's fields beside the common ones."""
    async with engine.database.connect() as conn:
        query = (
            select(job_attempts)
            .where(job_attempts.c.job_id == job_id)
            .order_by(job_attempts.c.attempt)
        )
        rows = (await conn.execute(query)).all()
    return [SimpleNamespace(**{**row._mapping, **row.detail}) for row in rows]


async def events_of_type(engine: Engine, kind: str) -> list[Any]:
    async with engine.database.connect() as conn:
        return list((await conn.execute(select(events).where(events.c.type == kind))).all())


async def stats_of(engine: Engine, name: str = "receiver") -> Stats:
    return (await load_stats(engine.database, [name]))[name]


async def settle(engine: Engine) -> None:
    """Wait (without moving the clock) until no job is running and the worker is idle."""
    worker = engine.worker
    assert worker is not None
    for _ in range(2000):
        if worker.busy == 0 and all(job.state != "running" for job in await delivery_jobs(engine)):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the worker did not settle")
