"""Job groups at scale: leasing past an ordered webhook's backlog, counting a webhook's deliveries.

1. Lease. An ``ordered`` webhook's deliveries run one at a time; when its
   endpoint is down, the first delivery retries (for up to days) and the
   others wait behind it. The workers keep leasing everybody else's jobs
   meanwhile: this times one lease of 50 due jobs (the writer's transaction:
   expired leases back, lease, next due time) on a real SQLite file holding
   a backlog of N ordered deliveries behind the failing one (1,000; 100,000),
   or a backlog of 1,000 with 100,000 delivered before it (a busy webhook's
   history), plus 2,000 due deliveries of other webhooks. Median of 20 (or of
   as many as 10 s allow, at least 3). Then, for a healthy ordered webhook
   with 0 and 100,000 delivered, one delivery stored behind the one in
   flight, leased and ended, each in its own transaction.
2. Count. ``load_stats`` (behind ``GET /api/webhooks``): the deliveries of
   10 webhooks counted by outcome, with 50,000 and 500,000 delivered in all.
   Median of 5.

The rows are stored by the queue's own ``insert_jobs`` (history in bulk), so
the script measures any tree: ``OWNLY_TREE=<tree> python bench/groups.py``
compares one before a change with one after, side by side.

    .venv/bin/python bench/groups.py            # print the figures
    .venv/bin/python bench/groups.py --record   # and append them to bench/RESULTS.md
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

# The Ownly measured: this repository's, or another tree's; never this directory's dsl.py.
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = os.environ.get("OWNLY_TREE", str(ROOT))
sys.path.append(str(ROOT))  # for bench.results

from bench import results  # noqa: E402
from engine.config import DatabaseConfig  # noqa: E402
from engine.core.schema import jobs, metadata  # noqa: E402
from engine.core.storage import Database  # noqa: E402
from engine.jobs import queue  # noqa: E402
from engine.jobs.queue import FinishJob, LeaseJobs, NewJob, insert_jobs  # noqa: E402
from engine.webhooks.health import load_stats  # noqa: E402

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
CASES = ((1_000, 0), (100_000, 0), (1_000, 100_000))
COUNTS = (50_000, 500_000)
WEBHOOKS = 10
OTHERS = 2_000
SLOW = "webhook:slow"


def _new(key: str, group: str, ordered: bool, due: datetime) -> NewJob:
    return NewJob("webhook", {}, key, 5, due, group_key=group, ordered=ordered)


def _history(conn: sa.Connection, count: int, groups: list[str], ordered: bool) -> None:
    """``count`` delivered jobs, spread over ``groups``, stored in bulk."""
    done = {"state": "succeeded", "attempts": 1, "max_attempts": 5, "kind": "webhook"}
    done |= {"due_at": NOW, "created_at": NOW, "updated_at": NOW, "ordered": ordered}
    payload = {"message_id": "msg", "event": {"note": "x" * 200}}
    for start in range(0, count, 50_000):
        rows = [
            done | {"idempotency_key": f"h{i}", "group_key": groups[i % len(groups)]}
            for i in range(start, min(count, start + 50_000))
        ]
        conn.execute(sa.insert(jobs), [row | {"payload": payload} for row in rows])


def _fill(engine: sa.Engine, backlog: int, history: int) -> None:
    with engine.begin() as conn:
        _history(conn, history, [SLOW], ordered=True)
        # The failing delivery, due again in an hour, then the backlog behind it.
        insert_jobs(conn, [_new("head", SLOW, True, NOW + timedelta(hours=1))], NOW)
        behind = [_new(f"b{i}", SLOW, True, NOW - timedelta(seconds=i)) for i in range(backlog)]
        insert_jobs(conn, behind, NOW)
        others = [_new(f"o{i}", f"webhook:w{i % 20}", False, NOW) for i in range(OTHERS)]
        insert_jobs(conn, others, NOW)


def lease_ms(backlog: int, history: int) -> float:
    """The median time of one lease of 50 due jobs, in milliseconds (20 leases, or
    as many as 10 s allow, at least 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/groups.db")
        metadata.create_all(engine)
        _fill(engine, backlog, history)
        times = []
        with engine.connect() as conn:
            while len(times) < 20 and (len(times) < 3 or sum(times) < 10):
                write = LeaseJobs(owner="w", limit=50, now=NOW, lease=timedelta(seconds=30))
                started = time.perf_counter()
                with conn.begin():
                    [lease] = LeaseJobs.apply_all(conn, [write])
                times.append(time.perf_counter() - started)
                assert len(lease.jobs) == 50 and all(j.group_key != SLOW for j in lease.jobs)
        engine.dispose()
    return statistics.median(times) * 1000


def cycle_ms(history: int) -> float:
    """The median time, in milliseconds, for an ordered webhook with ``history``
    delivered to store a delivery behind the one in flight, lease it and end it
    (20 cycles, or as many as 10 s allow, at least 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/groups.db")
        metadata.create_all(engine)
        with engine.begin() as conn:
            _history(conn, history, [SLOW], ordered=True)
            insert_jobs(conn, [_new("first", SLOW, True, NOW)], NOW)
        times: list[float] = []
        with engine.connect() as conn:
            while len(times) < 20 and (len(times) < 3 or sum(times) < 10):
                write = LeaseJobs(owner="w", limit=1, now=NOW, lease=timedelta(seconds=30))
                started = time.perf_counter()
                with conn.begin():
                    insert_jobs(conn, [_new(f"c{len(times)}", SLOW, True, NOW)], NOW)
                with conn.begin():
                    [lease] = LeaseJobs.apply_all(conn, [write])
                with conn.begin():
                    [job] = lease.jobs
                    FinishJob.apply_all(conn, [FinishJob(job.id, "w", "succeeded", NOW)])
                times.append(time.perf_counter() - started)
        engine.dispose()
    return statistics.median(times) * 1000


def count_ms(history: int) -> float:
    """The median time of ``load_stats`` for every webhook, in milliseconds."""
    names = [f"w{i}" for i in range(WEBHOOKS)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/groups.db")
        metadata.create_all(engine)
        with engine.begin() as conn:
            _history(conn, history, [f"webhook:{name}" for name in names], ordered=False)
        engine.dispose()

        async def run() -> list[float]:
            url = sa.make_url(f"sqlite+aiosqlite:///{tmp}/groups.db")
            database = Database(url, DatabaseConfig())
            await database.open()
            times = []
            try:
                for _ in range(5):
                    started = time.perf_counter()
                    stats = await load_stats(database, names)
                    times.append(time.perf_counter() - started)
                    assert sum(s.deliveries for s in stats.values()) == history
            finally:
                await database.close()
            return times

        return statistics.median(asyncio.run(run())) * 1000


def report() -> str:
    tree = Path(queue.__file__).parents[2]
    lines = [
        f"## bench/groups.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, Ownly from {tree}.",
        "",
        "| ordered backlog | delivered before it | one lease of 50 (median) |",
        "| ---: | ---: | ---: |",
    ]
    for backlog, history in CASES:
        lines.append(f"| {backlog:,} | {history:,} | {lease_ms(backlog, history):.1f} ms |")
    lines += ["", "| delivered before (ordered webhook) | store, lease and end one delivery |"]
    lines.append("| ---: | ---: |")
    for history in (0, 100_000):
        lines.append(f"| {history:,} | {cycle_ms(history):.1f} ms |")
    lines += ["", "| delivered (10 webhooks) | counting them (median of 5) |", "| ---: | ---: |"]
    for history in COUNTS:
        lines.append(f"| {history:,} | {count_ms(history):.0f} ms |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = results.parser(__doc__.splitlines()[0]).parse_args()
    results.show(report(), record=args.record)


if __name__ == "__main__":
    sys.exit(main())
