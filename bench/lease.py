"""Leasing jobs while an ordered webhook's deliveries pile up behind one that keeps failing.

An ``ordered`` webhook's deliveries run one at a time; when its endpoint is
down, the first delivery retries (for up to days) and the others wait behind
it. The workers keep leasing everybody else's jobs meanwhile: this measures
one lease of 50 due jobs (the writer's transaction: expired leases back,
lease, next due time) on a real SQLite file holding

- a backlog of N ordered deliveries behind the failing one (1,000; 100,000),
- or a backlog of 1,000 in a group with 100,000 delivered before it (a busy
  webhook's history),

plus 2,000 due deliveries of other webhooks. Each figure is the median of 20
leases. The rows are stored by the queue's own ``insert_jobs``, so the script
measures any tree: ``PYTHONPATH=<tree> python bench/lease.py`` compares one
before a change with one after, side by side.

    .venv/bin/python bench/lease.py            # print the figures
    .venv/bin/python bench/lease.py --record   # and append them to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from engine import queue
from engine.queue import LeaseJobs, NewJob, insert_jobs
from engine.schema import jobs, metadata

RESULTS = Path(__file__).parent / "RESULTS.md"
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
CASES = ((1_000, 0), (100_000, 0), (1_000, 100_000))
OTHERS = 2_000
SLOW = "webhook:slow"


def _new(key: str, group: str, ordered: bool, due: datetime) -> NewJob:
    return NewJob("webhook", {}, key, 5, due, group_key=group, ordered=ordered)


def _fill(engine: sa.Engine, backlog: int, history: int) -> None:
    with engine.begin() as conn:
        if history:
            done = {"state": "succeeded", "attempts": 1, "max_attempts": 5, "payload": {}}
            done |= {"kind": "webhook", "due_at": NOW, "created_at": NOW, "updated_at": NOW}
            done |= {"group_key": SLOW, "ordered": True}
            conn.execute(
                sa.insert(jobs), [done | {"idempotency_key": f"h{i}"} for i in range(history)]
            )
        # The failing delivery, due again in an hour, then the backlog behind it.
        insert_jobs(conn, [_new("head", SLOW, True, NOW + timedelta(hours=1))], NOW)
        behind = [_new(f"b{i}", SLOW, True, NOW - timedelta(seconds=i)) for i in range(backlog)]
        insert_jobs(conn, behind, NOW)
        others = [_new(f"o{i}", f"webhook:w{i % 20}", False, NOW) for i in range(OTHERS)]
        insert_jobs(conn, others, NOW)


def lease_ms(backlog: int, history: int) -> float:
    """The median time of one lease of 50 due jobs, in milliseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/lease.db")
        metadata.create_all(engine)
        _fill(engine, backlog, history)
        times = []
        with engine.connect() as conn:
            for _ in range(20):
                write = LeaseJobs(owner="w", limit=50, now=NOW, lease=timedelta(seconds=30))
                started = time.perf_counter()
                with conn.begin():
                    [lease] = LeaseJobs.apply_all(conn, [write])
                times.append(time.perf_counter() - started)
                assert len(lease.jobs) == 50 and all(j.group_key != SLOW for j in lease.jobs)
        engine.dispose()
    return statistics.median(times) * 1000


def report() -> str:
    tree = Path(queue.__file__).parents[1]
    lines = [
        f"## bench/lease.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, Ownly from {tree}.",
        "",
        "| ordered backlog | delivered before it | one lease of 50 (median of 20) |",
        "| ---: | ---: | ---: |",
    ]
    for backlog, history in CASES:
        lines.append(f"| {backlog:,} | {history:,} | {lease_ms(backlog, history):.1f} ms |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    text = report()
    print(text)
    if args.record:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    sys.exit(main())
