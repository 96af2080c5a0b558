"""kill -9 in the middle of 2,000 concurrent events: nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.engine import KEY, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Received, Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance

EVENTS = 2000
POSTERS = 32


def post_all(
    url: str, ids: list[str], stop: threading.Event, statuses: dict[str, int] | None = None
) -> dict[str, int]:
    """Post each event once, ``POSTERS`` at a time; the status each got (0: no answer),
    filled into ``statuses`` as the answers come."""
    statuses = {} if statuses is None else statuses

    async def run() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            queue = list(reversed(ids))

            async def poster() -> None:
                while queue:
                    event_id = queue.pop()
                    if stop.is_set():
                        statuses[event_id] = 0
                        continue
                    try:
                        async with session.post(
                            url + "/api/events", json=investment(event_id)
                        ) as answer:
                            statuses[event_id] = answer.status
                    except (aiohttp.ClientError, TimeoutError):
                        statuses[event_id] = 0
                        stop.set()  # the engine is gone: the rest go after the restart

            await asyncio.gather(*(poster() for _ in range(POSTERS)))

    asyncio.run(run())
    return statuses


def test_sigkill_during_ingest_loses_nothing_acknowledged(tmp_path: Path) -> None:
    ids = [f"evt_crash_{i:05d}" for i in range(EVENTS)]
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env={"OWNLY_QUEUE_LEASE": "2s"})
        stop = threading.Event()
        first: dict[str, int] = {}
        # In the middle of the load, wherever that falls: after a random number of answers.
        answers = random.randint(EVENTS // 10, EVENTS * 3 // 4)
        killer = threading.Thread(target=_kill_after, args=(engine, stop, first, answers))
        killer.start()
        post_all(engine.url, ids, stop, first)
        killer.join()
        acknowledged = {i for i, status in first.items() if status in (200, 202)}
        killed_at = f"killed after {answers} answers"
        assert 0 < len(acknowledged) < EVENTS, f"{killed_at}: not while events came in"

        restarted = EngineProcess(tmp_path, env=engine.environment)
        try:
            restarted.wait_ready()
            resend = [i for i in ids if i not in acknowledged]
            second = post_all(restarted.url, resend, threading.Event())
            assert all(status in (200, 202) for status in second.values()), second
            duplicates_on_resend = sum(1 for status in second.values() if status == 200)

            delivered = _wait_for_deliveries(receiver, expected=EVENTS)
            # A delivery the receiver saw before the kill may still be leased to the
            # killed engine: it is re-sent once its lease runs out, then recorded.
            _wait_for_jobs_to_end(tmp_path / "var" / "ownly.db")
            assert restarted.stop() == 0
        finally:
            restarted.kill()

    database = tmp_path / "var" / "ownly.db"
    with sqlite3.connect(database) as conn:
        stored = {row[0] for row in conn.execute("SELECT id FROM events")}
        states = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        per_event = conn.execute(
            "SELECT count(*) FROM (SELECT event_id FROM jobs GROUP BY event_id HAVING count(*) > 1)"
        ).fetchone()[0]
    assert acknowledged <= stored, f"{killed_at}: an acknowledged event was lost"
    assert stored == set(ids), killed_at
    assert states == {"succeeded": EVENTS}, f"{killed_at}: each job succeeded once, {states}"
    assert per_event == 0, f"{killed_at}: one job per event, never two"

    counts: dict[str, int] = {}
    for request in delivered:
        counts[request.headers["webhook-id"]] = counts.get(request.headers["webhook-id"], 0) + 1
    assert len(counts) == EVENTS, "the receiver saw every delivery at least once"
    resent = sum(n - 1 for n in counts.values())
    print(
        f"\nkilled after {len(acknowledged)} acknowledged events; "
        f"{duplicates_on_resend} re-sent events were already stored; "
        f"{resent} deliveries were re-sent after the crash (same webhook-id)"
    )


def _kill_after(
    engine: EngineProcess, stop: threading.Event, statuses: dict[str, int], answers: int
) -> None:
    deadline = time.monotonic() + 60
    while len(statuses) < answers and time.monotonic() < deadline:
        time.sleep(0.001)
    engine.kill()
    stop.set()


def _wait_for_jobs_to_end(database: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            (left,) = conn.execute(
                "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')"
            ).fetchone()
        if left == 0:
            return
        time.sleep(0.1)


def _wait_for_deliveries(receiver: Receiver, expected: int, timeout: float = 60) -> list[Received]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        received = receiver.snapshot()
        if len({r.headers["webhook-id"] for r in received}) >= expected:
            return received
        time.sleep(0.1)
    seen = len({r.headers["webhook-id"] for r in receiver.snapshot()})
    raise AssertionError(f"the receiver saw {seen} of {expected} deliveries")
