"""Workflow runs: 5-step record writes against DBOS, event → http step latency, sleeping runs' RSS.

Each case starts the engine as a subprocess (``ownly run``, SQLite in WAL with
``synchronous = FULL``, a fresh database) on 127.0.0.1, with the shipped
event catalog and the workflows below, and drives it over its API:

- (a) ``--runs`` runs of ``bench_steps``, five ``update_record`` steps on the
  table store (``[records.investment]``; each write in the run's own
  transaction), started by ``investment.created`` events posted to
  ``POST /api/events`` in batches of 500. The clock runs from the first post
  until the SQLite file, read-only, counts every run completed. Beside it, in
  the same run, DBOS 3.x doing the same shape (``bench/workflows_dbos.py``: a
  workflow of five steps, each inserting one row into SQLite in WAL mode, its
  system database on SQLite), in a virtualenv of its own, ``bench/.venv-dbos``
  (made with ``python -m venv`` and ``pip install 'dbos>=3,<4'`` when it is
  missing; ``--no-dbos`` skips it).
- (b) ``--events`` ``deal.created`` events, one a request, from ``--senders``
  concurrent senders; each starts ``bench_http``, whose one ``http`` step
  POSTs to an aiohttp receiver on 127.0.0.1 (a process of its own, uvloop).
  Executions/s from the first post to the last request received, and the
  latency from the event's 202 to the receiver's arrival (CLOCK_MONOTONIC,
  which the two processes share).
- (c) ``--sleepers`` runs of ``bench_sleep`` (``wait 30d``), started by
  ``document.uploaded`` events in batches of 500 from 4 senders, bounded by
  ``--sleep-limit`` seconds; the engine's VmRSS and VmHWM from
  ``/proc/<pid>/status`` before, every 10,000 posted, once every run is
  asleep, and 10 s after.

Every loop is bounded in count and in time.

    .venv/bin/python -m bench.workflows             # (a)-(c): 1,000 runs, 2,000 events, 100,000
    .venv/bin/python -m bench.workflows --quick     # 200 runs, 400 events, 5,000 sleepers
    .venv/bin/python -m bench.workflows --only a --runs 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvloop  # noqa: E402
from aiohttp import web  # noqa: E402

from bench import results  # noqa: E402
from bench.procs import cpu_seconds, proc_status  # noqa: E402
from tests.support.process import EngineProcess, write_project  # noqa: E402
from tests.support.rules import install_catalog  # noqa: E402

KEY = "bench-key"
BATCH = 500
TIME_LIMIT = 300.0  # seconds, for (a) and (b) each
DBOS_VENV = Path(__file__).with_name(".venv-dbos")
DBOS_REQUIREMENT = "dbos>=3,<4"

WORKFLOWS = """
workflow bench_steps {
  description = "Five record writes"
  on investment.created

  update_record(record: "investment", id: event.data.investment_id, fields: { step: 1 })
  update_record(record: "investment", id: event.data.investment_id, fields: { step: 2 })
  update_record(record: "investment", id: event.data.investment_id, fields: { step: 3 })
  update_record(record: "investment", id: event.data.investment_id, fields: { step: 4 })
  update_record(record: "investment", id: event.data.investment_id, fields: { step: 5 })
}

workflow bench_http {
  description = "One http step to the receiver"
  on deal.created

  http(method: "POST", url: env("RECEIVER_URL"), body: { deal: event.data.deal_id })
}

workflow bench_sleep {
  description = "A run that sleeps"
  on document.uploaded

  wait 30d
}
"""


def investment(i: int) -> dict[str, Any]:
    return {
        "type": "investment.created",
        "data": {
            "investment_id": f"inv_{i:07d}",
            "user_id": f"usr_{i}",
            "deal_id": "deal_1",
            "amount": "2500.00",
            "status": "pending",
            "investor": {"email": "ada@example.com", "name": "Ada"},
            "deal": {"id": "deal_1", "name": "Harbour Lofts"},
            "created_at": "2026-11-26T10:00:00Z",
        },
    }


def deal(i: int) -> dict[str, Any]:
    return {
        "type": "deal.created",
        "data": {
            "deal_id": f"deal_{i:07d}",
            "name": "Harbour Lofts",
            "sponsor_id": "spn_1",
            "target_amount": "1000000.00",
            "minimum_investment": "1000.00",
            "status": "open",
        },
    }


def document(i: int) -> dict[str, Any]:
    return {
        "type": "document.uploaded",
        "data": {
            "document_id": f"doc_{i:07d}",
            "name": "Subscription agreement",
            "kind": "subscription_agreement",
            "owner_id": f"usr_{i}",
            "url": "https://docs.example.com/d",
            "uploaded_at": "2026-01-01T00:00:00Z",
        },
    }


# -- the engine -----------------------------------------------------------------------


def engine(root: Path, receiver_url: str = "http://127.0.0.1:9/") -> EngineProcess:
    write_project(
        root,
        extra_toml=(
            "[[api.keys]]\nname = 'bench'\nscopes = ['admin']\nkey_env = 'BENCH_KEY'\n"
            '[webhooks]\nallow_networks = ["127.0.0.0/8"]\n'
            "[records.investment]\n"
        ),
    )
    install_catalog(root, webhooks=WORKFLOWS)
    process = EngineProcess(root, env={"BENCH_KEY": KEY, "RECEIVER_URL": receiver_url})
    try:
        process.wait_ready(60)
    except BaseException:
        process.kill()
        raise
    return process


def count_runs(root: Path, workflow: str, status: str) -> int:
    """Runs of ``workflow`` in ``status``, read from the SQLite file read-only."""
    uri = f"file:{root / 'var' / 'ownly.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=10) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM workflow_runs WHERE workflow = ? AND status = ?",
            (workflow, status),
        ).fetchone()
    return int(count)


async def post_batches(
    url: str, bodies: list[dict[str, Any]], senders: int, deadline: float
) -> int:
    """Post ``bodies`` to /api/events in batches of 500 from ``senders`` clients; the
    number accepted."""
    batches = iter(range(0, len(bodies), BATCH))
    accepted = 0
    headers = {"Authorization": f"Bearer {KEY}"}

    async def lane(http: httpx.AsyncClient) -> None:
        nonlocal accepted
        for first in batches:
            if time.perf_counter() > deadline:
                return
            batch = {"events": bodies[first : first + BATCH]}
            answer = await http.post("/api/events", json=batch)
            if not answer.is_success:
                raise RuntimeError(f"/api/events: {answer.status_code} {answer.text[:500]}")
            accepted += int(answer.json()["accepted"])

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as http:
        await asyncio.gather(*(lane(http) for _ in range(senders)))
    return accepted


# -- (a) 5-step runs ------------------------------------------------------------------


def steps_case(runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        process = engine(root)
        pid = process.process.pid
        try:
            bodies = [investment(i) for i in range(runs)]
            cpu_before = cpu_seconds(pid)
            start = time.perf_counter()
            deadline = start + TIME_LIMIT
            accepted = asyncio.run(post_batches(process.url, bodies, 2, deadline))
            posted_s = time.perf_counter() - start
            done = count_runs(root, "bench_steps", "completed")
            while done < accepted and time.perf_counter() < deadline:
                time.sleep(0.02)
                done = count_runs(root, "bench_steps", "completed")
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(pid) - cpu_before
            failed = count_runs(root, "bench_steps", "failed")
        finally:
            process.kill()
    return {
        "runs": done,
        "accepted": accepted,
        "failed": failed,
        "seconds": seconds,
        "posted_s": posted_s,
        "cpu_ms": 1000 * cpu / max(done, 1),
    }


def dbos_python() -> tuple[Path | None, str]:
    """The DBOS virtualenv's interpreter, made when missing; or None and why not."""
    python = DBOS_VENV / "bin" / "python"
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(DBOS_VENV)], capture_output=True, text=True
        )
        if made.returncode != 0:
            return None, made.stderr.strip()
    check = subprocess.run([str(python), "-c", "import dbos"], capture_output=True, text=True)
    if check.returncode != 0:
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", DBOS_REQUIREMENT],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            return None, (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
    return python, ""


def dbos_case(runs: int) -> dict[str, Any]:
    python, why = dbos_python()
    if python is None:
        return {"error": why}
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                str(python),
                str(Path(__file__).with_name("workflows_dbos.py")),
                "--runs",
                str(runs),
                "--dir",
                tmp,
                "--time-limit",
                str(TIME_LIMIT),
            ],
            capture_output=True,
            text=True,
            timeout=TIME_LIMIT + 60,
        )
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


# -- (b) event → http step ------------------------------------------------------------


def serve_receiver(port_file: str) -> None:
    """The receiver: records each request's arrival (CLOCK_MONOTONIC) by its deal id;
    GET /arrivals answers them."""
    arrivals: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        now = time.monotonic()
        body = await request.json()
        arrivals.setdefault(str(body["deal"]), now)
        return web.json_response({"ok": True})

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/arrivals", listing)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        await asyncio.to_thread(Path(port_file).write_text, str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    uvloop.run(main())


def start_receiver(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = tmp / "receiver.port"
    process = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, f"http://127.0.0.1:{port_file.read_text()}"
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the receiver did not start")


def http_case(count: int, senders: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        receiver, receiver_url = start_receiver(root)
        try:
            process = engine(root, receiver_url + "/hook")
            pid = process.process.pid
            try:
                cpu_before = cpu_seconds(pid)
                start = time.perf_counter()
                accepted = asyncio.run(post_single(process.url, count, senders, start + TIME_LIMIT))
                arrivals: dict[str, float] = {}
                deadline = start + TIME_LIMIT
                with httpx.Client(base_url=receiver_url, timeout=30) as client:
                    while time.perf_counter() < deadline:
                        arrivals = client.get("/arrivals").json()
                        if len(arrivals) >= len(accepted):
                            break
                        time.sleep(0.05)
                cpu = cpu_seconds(pid) - cpu_before
                completed = count_runs(root, "bench_http", "completed")
                while completed < len(arrivals) and time.perf_counter() < deadline:
                    time.sleep(0.05)  # the run records its step's end after the request
                    completed = count_runs(root, "bench_http", "completed")
            finally:
                process.kill()
        finally:
            receiver.kill()
            receiver.wait(10)
    latencies = [arrivals[k] - accepted[k] for k in accepted if k in arrivals]
    # from the first post (perf_counter and monotonic are one clock on Linux)
    first_post = min(accepted.values()) if accepted else 0.0
    last = max(arrivals.values()) if arrivals else first_post
    return {
        "events": len(accepted),
        "received": len(latencies),
        "completed": completed,
        "seconds": last - first_post,
        "latencies": latencies,
        "cpu_ms": 1000 * cpu / max(len(latencies), 1),
    }


async def post_single(url: str, count: int, senders: int, deadline: float) -> dict[str, float]:
    """Post ``deal(0..count-1)`` one a request from ``senders`` clients; each deal id's
    acceptance time (CLOCK_MONOTONIC, at the 202)."""
    todo = iter(range(count))
    accepted: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)

    async def lane(http: httpx.AsyncClient) -> None:
        for i in todo:
            if time.perf_counter() > deadline:
                return
            body = deal(i)
            answer = await http.post("/api/events", json=body)
            if answer.status_code != 202:
                raise RuntimeError(f"/api/events: {answer.status_code} {answer.text[:500]}")
            accepted[body["data"]["deal_id"]] = time.monotonic()

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        await asyncio.gather(*(lane(http) for _ in range(senders)))
    return accepted


# -- (c) sleeping runs ----------------------------------------------------------------


def sleep_case(count: int, limit: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        process = engine(root)
        pid = process.process.pid
        samples: list[tuple[str, dict[str, int]]] = [("after start", proc_status(pid))]
        try:
            time.sleep(2)
            samples.append(("idle 2 s later", proc_status(pid)))
            start = time.perf_counter()
            deadline = start + limit
            posted = 0
            step = 10_000
            peak_rss = 0
            while posted < count and time.perf_counter() < deadline:
                chunk = [document(i) for i in range(posted, min(posted + step, count))]
                posted += asyncio.run(post_batches(process.url, chunk, 4, deadline))
                status = proc_status(pid)
                peak_rss = max(peak_rss, status["VmRSS"])
                samples.append((f"{posted:,} posted", status))
            posted_s = time.perf_counter() - start
            asleep = count_runs(root, "bench_sleep", "sleeping")
            while asleep < posted and time.perf_counter() < deadline + 60:
                time.sleep(0.5)
                peak_rss = max(peak_rss, proc_status(pid)["VmRSS"])
                asleep = count_runs(root, "bench_sleep", "sleeping")
            asleep_s = time.perf_counter() - start
            samples.append((f"{asleep:,} asleep", proc_status(pid)))
            time.sleep(10)
            samples.append(("10 s later", proc_status(pid)))
            size = (root / "var" / "ownly.db").stat().st_size
        finally:
            process.kill()
    return {
        "posted": posted,
        "asleep": asleep,
        "posted_s": posted_s,
        "asleep_s": asleep_s,
        "samples": samples,
        "peak_rss": peak_rss,
        "db_mib": size / 2**20,
        "limit": limit,
    }


# -- the report -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def report(cases: dict[str, dict[str, Any]], load: str, began: str) -> str:
    lines = [
        f"## bench/workflows.py — workflow runs, http steps, sleeping runs — {began} UTC",
        "",
        f"Machine: {os.cpu_count()} CPUs, {_cpu()}, Python {platform.python_version()};"
        f" load before the run {load}.",
        "",
    ]
    a, dbos = cases.get("a"), cases.get("dbos")
    if a is not None:
        runs_s = a["runs"] / a["seconds"]
        lines += [
            "| (a) 5-step runs of update_record | runs | seconds | runs/s | steps/s |"
            " CPU per run |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
            f"| Ownly (engine subprocess, events in batches of 500) | {a['runs']:,} |"
            f" {a['seconds']:.2f} | {runs_s:,.0f} | {5 * runs_s:,.0f} | {a['cpu_ms']:.2f} ms |",
        ]
        if dbos is not None and "error" not in dbos:
            d_s = dbos["runs"] / dbos["seconds"]
            lines.append(
                f"| DBOS {dbos['version']} (SQLite system database, rows in SQLite WAL) |"
                f" {dbos['runs']:,} | {dbos['seconds']:.2f} | {d_s:,.0f} | {5 * d_s:,.0f} | |"
            )
            lines += ["", f"Ownly / DBOS: **{runs_s / d_s:.1f}x** (goal ≥ 10x)."]
        elif dbos is not None:
            lines += ["", f"DBOS could not be run: `{dbos['error']}`"]
        lines += [
            "",
            f"Events accepted {a['accepted']:,} in {a['posted_s']:.2f} s; runs failed"
            f" {a['failed']}.",
            "",
        ]
    b = cases.get("b")
    if b is not None:
        lat = b["latencies"]
        rate = b["received"] / b["seconds"] if b["seconds"] > 0 else 0.0
        lines += [
            "| (b) event → workflow → http step | events | received | seconds |"
            " executions/s | p50 / p99 ms (202 → received) | CPU per execution |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| Ownly, {b['senders']} senders, one event a request | {b['events']:,} |"
            f" {b['received']:,} | {b['seconds']:.2f} | {rate:,.0f} |"
            f" {1000 * percentile(lat, 0.5):.1f} / {1000 * percentile(lat, 0.99):.1f} |"
            f" {b['cpu_ms']:.2f} ms |",
            "",
            f"Mean latency {1000 * statistics.fmean(lat) if lat else float('nan'):.1f} ms;"
            f" runs completed {b['completed']:,}.",
            "",
        ]
    c = cases.get("c")
    if c is not None:
        lines += [
            f"(c) Sleeping runs (`wait 30d`): {c['posted']:,} started by events in batches of"
            f" 500 in {c['posted_s']:.1f} s (limit {c['limit']:.0f} s), {c['asleep']:,}"
            f" asleep at {c['asleep_s']:.1f} s; database {c['db_mib']:.0f} MiB.",
            "",
            "| when | VmRSS MiB | VmHWM MiB |",
            "| --- | ---: | ---: |",
        ]
        for when, status in c["samples"]:
            lines.append(
                f"| {when} | {status['VmRSS'] / 1024:.0f} | {status['VmHWM'] / 1024:.0f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    options = results.parser(__doc__.splitlines()[0])
    options.add_argument("--runs", type=int, default=1000, help="for (a)")
    options.add_argument("--events", type=int, default=2000, help="for (b)")
    options.add_argument("--senders", type=int, default=16, help="for (b)")
    options.add_argument("--sleepers", type=int, default=100_000, help="for (c)")
    options.add_argument("--sleep-limit", type=float, default=300.0, help="(c)'s seconds")
    options.add_argument("--quick", action="store_true", help="200 runs, 400 events, 5,000")
    options.add_argument("--no-dbos", action="store_true", help="(a) without DBOS")
    options.add_argument("--only", default="abc", help="the cases to run, e.g. ab")
    options.add_argument("--receiver", help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    if args.quick:
        args.runs, args.events, args.sleepers = 200, 400, 5_000
    began = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    load = ", ".join(Path("/proc/loadavg").read_text().split()[:3])
    cases: dict[str, dict[str, Any]] = {}
    if "a" in args.only:
        cases["a"] = steps_case(args.runs)
        print("(a)", {k: v for k, v in cases["a"].items()}, flush=True)
        if not args.no_dbos:
            cases["dbos"] = dbos_case(args.runs)
            print("(a) DBOS", cases["dbos"], flush=True)
    if "b" in args.only:
        cases["b"] = http_case(args.events, args.senders) | {"senders": args.senders}
        print("(b)", {k: v for k, v in cases["b"].items() if k != "latencies"}, flush=True)
    if "c" in args.only:
        cases["c"] = sleep_case(args.sleepers, args.sleep_limit)
    results.show(report(cases, load, began), record=args.record)


if __name__ == "__main__":
    main()
