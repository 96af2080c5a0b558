"""Emails queued and their sends recorded in groups, on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.engine import Connection

from connectors.email.base import Sent
from engine.core.clock import ManualClock
from engine.core.schema import events, jobs, metadata
from engine.core.writer import BatchWrite
from engine.email.feedback import Suppress, find_suppressions, suppress
from engine.email.handler import RecordSend
from engine.email.sending import NewEmail, QueueEmails, queue_emails
from engine.email.tables import emails
from engine.events.bus import Bus
from engine.jobs.queue import FinishJob, NewJob, insert_jobs
from tests.support.inprocess import drive, running_engine

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'emails.db'}")
    metadata.create_all(engine)
    return engine


def new_email(key: str, to: str = "ada@example.com", **fields: Any) -> NewEmail:
    return NewEmail(
        key=key,
        cause="api",
        sender="OWNLY <hello@ownly.com>",
        recipient=to,
        subject="Your receipt",
        html="<p>Thank you.</p>",
        text="Thank you.",
        message_id=f"<{key}@ownly.com>",
        request_hash="hash",
        **fields,
    )


def test_a_key_given_twice_in_one_call_is_one_email(database: Engine) -> None:
    with database.begin() as conn:
        first, again = queue_emails(conn, [new_email("k1"), new_email("k1")], NOW, max_attempts=3)
        assert (first.duplicate, again.duplicate, again.id) == (False, True, first.id)
        assert conn.scalar(select(emails.c.id)) == first.id


def test_a_key_in_two_writes_of_one_group_is_one_email(database: Engine) -> None:
    writes = [QueueEmails([new_email(key)], NOW, 3, wake=lambda: None) for key in ("a", "b", "a")]
    with database.begin() as conn:
        (a,), (b,), (again,) = QueueEmails.apply_all(conn, writes)
        stored = conn.execute(select(emails.c.key, emails.c.id)).all()
        assert sorted(stored) == sorted([("a", a.id), ("b", b.id)])
        assert len(conn.execute(select(jobs.c.id)).all()) == 2
    assert again.duplicate and again.id == a.id and not (a.duplicate or b.duplicate)


def test_suppressions_are_found_for_every_category_or_the_emails(database: Engine) -> None:
    with database.begin() as conn:
        suppress(conn, "all@example.com", "", "manual", None, None, NOW)
        suppress(conn, "news@example.com", "newsletter", "unsubscribed", None, None, NOW)
        sends = [
            ("All@Example.com", "transactional"),
            ("news@example.com", "newsletter"),
            ("news@example.com", "transactional"),
            ("news@example.com", None),
            ("other@example.com", "newsletter"),
        ]
        found = find_suppressions(conn, sends)
    assert [row.reason if row is not None else None for row in found] == [
        "manual",
        "unsubscribed",
        None,
        None,
        None,
    ]


class _NoRules:
    def rule_set(self) -> None:
        return None


def finish(job_id: int, outcome: str, hook: RecordSend) -> tuple[FinishJob, bool]:
    return FinishJob(job_id, "worker", outcome, NOW, hook=hook), True  # type: ignore[arg-type]


def test_the_outcomes_of_one_group_are_each_recorded(database: Engine) -> None:
    """Sends that finish together are written by one statement per set of columns."""
    keys = ["sent1", "sent2", "retry", "refused", "suppressed", "lost"]
    with database.begin() as conn:
        queue_emails(
            conn, [new_email(key, f"{key}@example.com") for key in keys], NOW, max_attempts=3
        )
        rows = {row.key: row for row in conn.execute(select(emails))}
        bus = Bus(_NoRules(), clock=ManualClock(NOW), wake=lambda: None, env={})
        finished = [
            finish(
                1, "succeeded", RecordSend(bus, rows["sent1"], "sent", None, "smtp", Sent("p1"))
            ),
            finish(
                2, "succeeded", RecordSend(bus, rows["sent2"], "sent", None, "smtp", Sent("p2"))
            ),
            finish(3, "retry", RecordSend(bus, rows["retry"], "failed", "451 later", "smtp")),
            finish(4, "failed", RecordSend(bus, rows["refused"], "failed", "550 no", "smtp")),
            finish(5, "succeeded", RecordSend(bus, rows["suppressed"], "suppressed", "suppressed")),
            (
                FinishJob(
                    6, "worker", "succeeded", NOW, hook=RecordSend(bus, rows["lost"], "sent", None)
                ),
                False,
            ),
        ]
        RecordSend.apply_all(conn, finished)
        after = {row.key: row for row in conn.execute(select(emails))}
        emitted = conn.execute(select(events.c.type, events.c.data)).all()
    assert {key: after[key].status for key in keys} == {
        "sent1": "sent",
        "sent2": "sent",
        "retry": "queued",
        "refused": "failed",
        "suppressed": "suppressed",
        "lost": "queued",
    }
    assert (after["sent1"].provider_message_id, after["sent2"].provider_message_id) == ("p1", "p2")
    assert after["sent1"].sent_at == after["sent2"].sent_at == NOW
    assert after["retry"].error == "451 later" and after["retry"].failed_at is None
    assert after["refused"].failed_at == NOW and after["refused"].provider == "smtp"
    assert after["lost"] == rows["lost"], "a finish whose lease was lost writes nothing"
    assert sorted((kind, data["email_id"]) for kind, data in emitted) == sorted(
        [
            ("email.sent", rows["sent1"].id),
            ("email.sent", rows["sent2"].id),
            ("email.failed", rows["refused"].id),
        ]
    )


@dataclass(frozen=True)
class _Orphan(BatchWrite[None]):
    """The job of an email that is not in the log."""

    now: datetime

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[None]:
        for write in writes:
            job = NewJob("email", {"email": "eml_gone"}, "email:gone", 1, write.now)
            insert_jobs(conn, [job], write.now)
        return [None for _ in writes]


async def test_emails_leased_together_are_read_and_sent_each_as_its_own(tmp_path: Path) -> None:
    """The jobs of one lease read their emails together: each gets its own, a suppressed
    recipient is not sent to, and a job whose email is gone fails alone."""
    env = {"RECEIVER_URL": "http://127.0.0.1:9/hooks", "OWNLY_EMAIL_TRACKING_KEY": "k" * 32}
    async with running_engine(tmp_path, "", env) as engine:
        now = engine.clock.now()
        await engine.writer.submit(Suppress("investor3@example.com", "", now))
        new = [new_email(f"bulk-{i}", f"investor{i}@example.com") for i in range(20)]
        queued, _ = await asyncio.gather(
            engine.writer.submit(QueueEmails(new, now, 3, engine.waker.wake)),
            engine.writer.submit(_Orphan(now)),
        )
        engine.waker.wake()

        async def finished() -> bool:
            async with engine.database.connect() as conn:
                states = (await conn.execute(select(jobs.c.state))).scalars().all()
            return all(state in ("succeeded", "failed") for state in states)

        await drive(engine, finished)
        async with engine.database.connect() as conn:
            status = dict((await conn.execute(select(emails.c.id, emails.c.status))).all())
            outcomes = dict(
                (await conn.execute(select(jobs.c.idempotency_key, jobs.c.state))).all()
            )
    ids = [q.id for q in queued]
    assert [status[email_id] for email_id in ids] == ["sent"] * 3 + ["suppressed"] + ["sent"] * 16
    outbox = tmp_path / "var" / "outbox"
    sent = sorted(path.stem for path in outbox.glob("*.eml"))
    assert sent == sorted(email_id for i, email_id in enumerate(ids) if i != 3)
    for i, email_id in enumerate(ids):
        if i != 3:
            assert f"To: investor{i}@example.com" in (outbox / f"{email_id}.eml").read_text()
    assert outcomes["email:gone"] == "failed"
