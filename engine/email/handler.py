"""One attempt of an email job: through the providers in failover order, and its outcome.

The handler reads the email from the log (the emails of the jobs that start
together in one query), skips it when its address is suppressed (recorded
``suppressed``, not sent), and hands the message to the first provider, then
the next while each fails in a way another provider could get past (refused,
timed out, 5xx, 429, its own credentials refused). A
permanent refusal (SMTP 5xx for the recipient, an API's 4xx) fails the email
without retries; when every provider failed for now, the job is retried on the
email's schedule. The attempt log names each provider tried and why it failed.

The ``Message-ID`` is derived from the email's id, so every attempt at every
provider carries the same one. What the attempt came to is written with the
job's outcome by ``RecordSend``, a finish hook: the email's status, provider
and provider message id, and ``email.sent`` or ``email.failed`` through the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from typing import Any

from prometheus_client import Counter, Histogram
from sqlalchemy import String, bindparam, case, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Update

from connectors.email.base import EmailProvider, SendError, Sent
from connectors.email.message import InvalidEmail, OutgoingEmail
from engine.core.clock import Clock
from engine.core.storage import Database
from engine.email.feedback import email_event, find_suppressions
from engine.email.tables import emails
from engine.email.tracking import Tracker
from engine.events.bus import Bus
from engine.jobs.kinds import AttemptRecord, Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.policy import RetryPolicy, TokenBucket, next_delay
from engine.jobs.queue import FinishJob, Job

__all__ = ["EmailHandler", "RecordSend", "Route"]


@dataclass
class Route:
    """A provider with its limits: messages in flight at once, and a second."""

    provider: EmailProvider
    slots: asyncio.Semaphore
    bucket: TokenBucket | None = None


@dataclass(frozen=True)
class _Loaded:
    row: Any
    suppressed: Any


class EmailHandler:
    """Carries out ``email`` jobs (see the module docstring)."""

    def __init__(
        self,
        *,
        connect: Callable[[], Sequence[Route]],
        disconnect: Callable[[], Awaitable[None]],
        database: Database,
        clock: Clock,
        bus: Bus,
        tracker: Tracker,
        policy: RetryPolicy,
        unsubscribe_mailto: str | None,
        attempts: Counter,
        latency: Histogram,
    ) -> None:
        self._connect = connect
        self._disconnect = disconnect
        self._reads = _Reads(database)
        self._clock = clock
        self._bus = bus
        self._tracker = tracker
        self._policy = policy
        self._mailto = unsubscribe_mailto
        self._attempts = attempts
        self._latency = latency
        self._routes: Sequence[Route] = ()
        self._stopping = False
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret

    async def start(self) -> None:
        self._routes = self._connect()

    def stop(self) -> None:
        self._stopping = True

    async def close(self) -> None:
        await self._reads.close()
        for route in self._routes:
            await route.provider.close()
        self._routes = ()
        await self._disconnect()

    async def run(self, job: Job) -> Result:
        if self._stopping:
            return Deferred(1.0)
        email_id = job.payload["email"]
        loaded = await self._reads.load(email_id)
        started = self._clock.now()
        if loaded is None:
            error = f"the email log has no email {email_id}"
            return Failed(error, attempt=AttemptRecord("missing", started, 0.0, "Missing", error))
        row = loaded.row
        if loaded.suppressed is not None:
            note = f"{row.recipient} is suppressed ({loaded.suppressed.reason})"
            attempt = AttemptRecord("suppressed", started, 0.0, detail={"reason": note})
            return Succeeded(attempt=attempt, hook=RecordSend(self._bus, row, "suppressed", note))
        try:
            message = self._message(row)
        except InvalidEmail as exc:
            attempt = AttemptRecord("invalid", started, 0.0, "InvalidEmail", str(exc))
            return Failed(
                str(exc), attempt=attempt, hook=RecordSend(self._bus, row, "failed", str(exc))
            )
        return await self._send(job, row, message, started)

    async def _send(self, job: Job, row: Any, message: OutgoingEmail, started: datetime) -> Result:
        tried: list[dict[str, Any]] = []
        waits: list[float] = []
        begun = time.perf_counter()
        for route in self._routes:
            name = route.provider.name
            if route.bucket is not None and not route.bucket.try_acquire():
                waits.append(route.bucket.wait_time())
                tried.append({"provider": name, "outcome": "rate_limited"})
                continue
            async with route.slots:
                one = time.perf_counter()
                try:
                    sent = await route.provider.send(message)
                except SendError as exc:
                    self._count(name, "permanent" if exc.permanent else "transient", one)
                    tried.append(_failure(name, exc))
                    if exc.permanent:
                        return self._failed(row, tried, exc, started, begun)
                    continue
            self._count(name, "sent", one)
            tried.append({"provider": name, "outcome": "sent", **sent.detail})
            detail = {"provider": name, "provider_message_id": sent.provider_message_id}
            attempt = AttemptRecord(
                "sent", started, time.perf_counter() - begun, detail={**detail, "tried": tried}
            )
            return Succeeded(
                attempt=attempt, hook=RecordSend(self._bus, row, "sent", None, name, sent)
            )
        if waits and len(waits) == len(tried):  # every provider was at its rate limit
            return Deferred(min(waits))
        error = "; ".join(t.get("error") or f"{t['provider']}: {t['outcome']}" for t in tried)
        error = error or "no email provider is configured"
        delay = next_delay(self._policy, job.attempts, self._rng) or 0.0
        attempt = AttemptRecord(
            "retry",
            started,
            time.perf_counter() - begun,
            "SendError",
            error,
            detail={"tried": tried},
        )
        return Retry(
            delay, error, attempt=attempt, hook=RecordSend(self._bus, row, "failed", error)
        )

    def _failed(
        self, row: Any, tried: list[dict[str, Any]], exc: SendError, started: datetime, begun: float
    ) -> Result:
        error = str(exc)  # it names the provider
        attempt = AttemptRecord(
            "refused",
            started,
            time.perf_counter() - begun,
            "SendError",
            error,
            detail={"provider": exc.provider, "tried": tried},
        )
        hook = RecordSend(self._bus, row, "failed", error, exc.provider, permanent=True)
        return Failed(error, attempt=attempt, hook=hook)

    def _count(self, provider: str, outcome: str, since: float) -> None:
        self._attempts.labels(provider, outcome).inc()
        self._latency.labels(provider).observe(time.perf_counter() - since)

    def _message(self, row: Any) -> OutgoingEmail:
        unsubscribe = f"<{self._tracker.url('u', row.id)}>"
        if self._mailto:
            unsubscribe += f", <mailto:{self._mailto}?subject=unsubscribe%20{row.id}>"
        return OutgoingEmail(
            email_id=row.id,
            message_id=row.message_id,
            sender=row.sender,
            to=str(Address(row.recipient_name or "", addr_spec=row.recipient)),
            subject=row.subject,
            html=row.html,
            text=row.text,
            date=row.created_at,
            reply_to=row.reply_to,
            headers=(
                ("List-Unsubscribe", unsubscribe),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ),
            category=row.category,
        )


class _Reads:
    """The emails of the jobs that start together, read in one query.

    A read on its own costs more than the send's own work: a connection, then
    each statement and its rows, every one a round trip to the database's
    thread. A lease starts its jobs at once, so each job's read waits for the
    next query, which reads every email asked for since the last one began.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._wanted: dict[str, list[asyncio.Future[_Loaded | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def load(self, email_id: str) -> _Loaded | None:
        future: asyncio.Future[_Loaded | None] = asyncio.get_running_loop().create_future()
        self._wanted.setdefault(email_id, []).append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._read(), name="email-reads")
        return await future

    async def close(self) -> None:
        """Stop a read still running; whoever waits for it is cancelled."""
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _read(self) -> None:
        wanted: dict[str, list[asyncio.Future[_Loaded | None]]] = {}
        try:
            while self._wanted:
                wanted, self._wanted = self._wanted, {}
                try:
                    async with self._database.connect() as conn:
                        loaded = await conn.run_sync(_load, list(wanted))
                except Exception as exc:  # each of these attempts fails with it, to be retried
                    for future in _waiting(wanted):
                        future.set_exception(exc)
                    continue
                for email_id, futures in wanted.items():
                    for future in _waiting({email_id: futures}):
                        future.set_result(loaded.get(email_id))
        finally:
            self._task = None
            for future in _waiting({**wanted, **self._wanted}):  # cancelled: so are they
                future.cancel()
            self._wanted = {}


def _waiting(
    wanted: dict[str, list[asyncio.Future[_Loaded | None]]],
) -> list[asyncio.Future[_Loaded | None]]:
    """The futures still to settle (a job cancelled meanwhile has settled its own)."""
    return [future for futures in wanted.values() for future in futures if not future.done()]


# What a send needs of an email: not its data, read back as JSON for nothing.
_SENT_COLUMNS = [c for c in emails.c if c.name not in ("data", "bounce")]


def _load(conn: Connection, email_ids: list[str]) -> dict[str, _Loaded]:
    rows = conn.execute(select(*_SENT_COLUMNS).where(emails.c.id.in_(email_ids))).all()
    suppressed = find_suppressions(conn, [(row.recipient, row.category) for row in rows])
    return {row.id: _Loaded(row, found) for row, found in zip(rows, suppressed, strict=True)}


def _failure(provider: str, exc: SendError) -> dict[str, Any]:
    return {
        "provider": provider,
        "outcome": "refused" if exc.permanent else "failed",
        "reason": exc.reason,
        "error": str(exc),
        **dict(exc.detail),
    }


class RecordSend:
    """The email's status after an attempt, written with the job's outcome."""

    def __init__(
        self,
        bus: Bus,
        row: Any,
        status: str,
        error: str | None,
        provider: str | None = None,
        sent: Sent | None = None,
        *,
        permanent: bool = False,
    ) -> None:
        self.bus = bus
        self.row = row
        self.status = status
        self.error = error
        self.provider = provider
        self.sent = sent
        self.permanent = permanent

    @classmethod
    def apply_all(cls, conn: Connection, finished: Sequence[tuple[FinishJob, bool]]) -> None:
        events = []
        bus: Bus | None = None
        # One statement for each set of columns written, executed for all its emails.
        updates: dict[frozenset[str], list[dict[str, Any]]] = {}
        for finish, kept in finished:
            hook = finish.hook
            if not isinstance(hook, RecordSend) or not kept:
                continue
            bus = hook.bus
            values, event = hook._change(finish)
            updates.setdefault(frozenset(values), []).append(
                {"r_id": hook.row.id, **{f"v_{name}": value for name, value in values.items()}}
            )
            if event is not None:
                events.append(event)
        for columns, rows in updates.items():
            conn.execute(_update(columns), rows)
        if events and bus is not None:
            bus.emit(conn, events)

    def _change(self, finish: FinishJob) -> tuple[dict[str, Any], Any]:
        """The columns to write, and the event to emit (None for none)."""
        now = finish.now
        values: dict[str, Any] = {"updated_at": now, "error": self.error}
        if self.provider is not None:
            values["provider"] = self.provider
        status = self.status
        if status == "failed" and finish.outcome != "failed":
            status = "queued"  # it will be tried again
        if status == "sent" and self.sent is not None:
            values.update(sent_at=now, provider_message_id=self.sent.provider_message_id)
        elif status == "failed":
            values["failed_at"] = now
        values["status"] = status
        if status not in ("sent", "failed"):
            return values, None
        row = {**self.row._mapping, "provider": self.provider}
        if status == "failed":
            return values, email_event(row, status, now, error=self.error)
        return values, email_event(row, status, now)

    def committed(self) -> None:
        return None


@functools.cache
def _update(columns: frozenset[str]) -> Update:
    """The statement writing ``columns`` of one email, each value bound as ``v_<column>``."""
    values: dict[str, Any] = {
        name: bindparam(f"v_{name}", type_=emails.c[name].type)
        for name in columns
        if name != "status"
    }
    if "status" in columns:
        # A provider's report may have moved the email further along already.
        # (Not ``in_``: its list is an expanding parameter, which executemany refuses.)
        earlier = or_(emails.c.status == "queued", emails.c.status == "failed")
        values["status"] = case(
            (earlier, bindparam("v_status", type_=String())), else_=emails.c.status
        )
    return (
        update(emails)
        .where(emails.c.id == bindparam("r_id", type_=emails.c.id.type))
        .values(values)
    )
