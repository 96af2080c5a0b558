"""DBOS's side of bench/workflows.py: runs of a 5-step workflow, each step writing one row.

Run by bench/workflows.py with the interpreter of the benchmark's own
virtualenv (``bench/.venv-dbos``, where ``dbos`` 3.x is installed), never with
the project's: DBOS is not a dependency of Ownly. The system database is a
SQLite file; each step inserts one row into a table of its own SQLite file in
WAL mode (``synchronous = FULL``, as the engine keeps its database) and
commits. All runs are started at once with ``DBOS.start_workflow``; the clock
runs from the first start until every run's result is back. One JSON line is
printed: runs, seconds, the DBOS version.

    bench/.venv-dbos/bin/python bench/workflows_dbos.py --runs 1000 --dir /tmp/x
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import threading
import time
from importlib.metadata import version
from pathlib import Path

from dbos import DBOS, DBOSConfig

STEPS = 5
_local = threading.local()
DATA = Path()


def _connection() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DATA, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        _local.conn = conn
    return conn


@DBOS.step()
def write_row(run: str, step: int) -> int:
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO investment (run, step) VALUES (?, ?)", (run, step))
    conn.execute("COMMIT")
    return step


@DBOS.workflow()
def five_steps(run: str) -> int:
    total = 0
    for step in range(1, STEPS + 1):
        total += write_row(run, step)
    return total


def main() -> None:
    global DATA
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=1000)
    options.add_argument("--dir", type=Path, required=True)
    options.add_argument("--time-limit", type=float, default=300.0)
    args = options.parse_args()
    DATA = args.dir / "app.db"
    with sqlite3.connect(DATA) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE investment (run TEXT, step INTEGER)")
    config: DBOSConfig = {
        "name": "wfbench",
        "system_database_url": f"sqlite:///{args.dir / 'dbos.sqlite'}",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        start = time.perf_counter()
        handles = [DBOS.start_workflow(five_steps, f"run{i}") for i in range(args.runs)]
        started = time.perf_counter() - start
        done = 0
        for handle in handles:
            if time.perf_counter() - start > args.time_limit:
                break
            if handle.get_result() == sum(range(1, STEPS + 1)):
                done += 1
        seconds = time.perf_counter() - start
        with sqlite3.connect(DATA) as check:
            rows = check.execute("SELECT count(*) FROM investment").fetchone()[0]
    finally:
        DBOS.destroy()
    print(
        json.dumps(
            {
                "runs": done,
                "rows": rows,
                "seconds": seconds,
                "started_s": started,
                "version": version("dbos"),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
