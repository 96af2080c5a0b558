"""Webhook delivery throughput: Ownly (durable) against a bare httpx loop and the seed's way.

A local aiohttp receiver answering 200 runs in its own process on 127.0.0.1.
Three senders carry the same load, one after the other:

- Ownly: the engine in this process (uvloop), events stored through the bus,
  each delivery a durable job, signed, sent by the workers (concurrency 64)
  and its attempt recorded in the same transaction as the job's outcome. The
  clock stops when every job is recorded as succeeded.
- bare httpx: an ``httpx.AsyncClient`` loop at concurrency 64, same signing,
  nothing stored: the ceiling the issue names; and the same loop on aiohttp's
  client (what Ownly's sender uses), the higher ceiling.
- the seed's way: the request that brings the event awaits each delivery in
  turn (``for (const hook of hooks) await fetch(...)``), ten requests at a time.

Loads: fan-out (each event to 100 webhooks) and stream (events to 1 webhook).
Then the engine's peak RSS with 100,000 pending deliveries (in a child process).

    .venv/bin/python bench/delivery.py            # print the figures
    .venv/bin/python bench/delivery.py --record   # and append them to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import uvloop
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.receiver import start as start_receiver
from connectors import parse_secret, signed_headers
from engine.app import build_engine, load_settings
from engine.core.schema import jobs
from engine.events.bus import AppendEvents, StoredEvent
from engine.runtime import Engine
from engine.webhooks.health import SetState
from tests.support.process import write_project
from tests.support.rules import install_catalog, investment

RESULTS = Path(__file__).with_name("RESULTS.md")
SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()
CONCURRENCY = 64
TIME_LIMIT = 120.0


def rules(webhooks: int) -> str:
    return "".join(
        f'webhook hook_{i} {{\n  url = env("RECEIVER_URL_{i}")\n  secret = env("SECRET")\n'
        f"  events = [investment.*]\n}}\n"
        for i in range(webhooks)
    )


def events(count: int, tag: str) -> list[StoredEvent]:
    now = datetime.now(UTC)
    made = []
    for i in range(count):
        body = investment(f"evt_{tag}_{i:06d}")
        made.append(StoredEvent(str(body["id"]), str(body["type"]), body["data"], now, now))  # type: ignore[arg-type]
    return made


async def started_engine(root: Path, port: int, webhooks: int) -> Engine:
    write_project(
        root,
        extra_toml=(
            '[webhooks]\nallow_networks = ["127.0.0.0/8"]\n'
            f"[queue]\nconcurrency = {CONCURRENCY}\nbatch = {CONCURRENCY}\n"
        ),
    )
    install_catalog(root, webhooks=rules(webhooks))
    environ = {"SECRET": SECRET}
    environ |= {f"RECEIVER_URL_{i}": f"http://127.0.0.1:{port}/h{i}" for i in range(webhooks)}
    settings = load_settings(root / "ownly.toml", environ)
    engine = build_engine(settings, log_stream=io.StringIO(), environ=environ)
    await engine.start(watch=False)
    return engine


async def succeeded(engine: Engine) -> int:
    async with engine.database.connect() as conn:
        count = await conn.scalar(select(func.count()).where(jobs.c.state == "succeeded"))
    return int(count or 0)


async def ownly(port: int, webhooks: int, count: int) -> tuple[int, float]:
    """Deliveries and seconds: from the first event stored to the last attempt recorded."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = await started_engine(Path(tmp), port, webhooks)
        try:
            stored = events(count, "own")
            start = time.perf_counter()
            for first in range(0, count, 500):
                await engine.writer.submit(AppendEvents(engine.bus, stored[first : first + 500]))
            total = count * webhooks
            while (done := await succeeded(engine)) < total:
                if time.perf_counter() - start > TIME_LIMIT:
                    break
                await asyncio.sleep(0.05)
            return done, time.perf_counter() - start
        finally:
            await engine.stop()


def _request(port: int, hook: int, event: StoredEvent) -> tuple[str, bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "created_at": event.occurred_at.isoformat(),
            "data": event.data,
        }
    )
    headers = signed_headers(
        secrets=(parse_secret(SECRET),),
        message_id=f"msg_{hook}_{event.id}",
        timestamp=int(time.time()),
        body=body,
        event_type=event.type,
        user_agent="Ownly/bench",
    )
    return f"http://127.0.0.1:{port}/h{hook}", body, headers


async def bare_httpx(port: int, webhooks: int, count: int) -> tuple[int, float]:
    """The same deliveries from an httpx loop at the same concurrency, nothing stored."""
    work = [(hook, event) for event in events(count, "bare") for hook in range(webhooks)]
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    done = 0
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        start = time.perf_counter()

        async def lane() -> None:
            nonlocal done
            while work and time.perf_counter() - start < TIME_LIMIT:
                url, body, headers = _request(port, *work.pop())
                answer = await client.post(url, content=body, headers=headers)
                done += answer.status_code == 200

        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


async def bare_aiohttp(port: int, webhooks: int, count: int) -> tuple[int, float]:
    """The same deliveries from an aiohttp loop at the same concurrency, nothing stored."""
    work = [(hook, event) for event in events(count, "aio") for hook in range(webhooks)]
    done = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()

        async def lane() -> None:
            nonlocal done
            while work and time.perf_counter() - start < TIME_LIMIT:
                url, body, headers = _request(port, *work.pop())
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    done += answer.status == 200

        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


async def seed_way(port: int, webhooks: int, count: int) -> tuple[int, float]:
    """Each event's request awaits its deliveries one after the other; ten requests at once."""
    pending = events(count, "seed")
    done = 0
    async with httpx.AsyncClient(timeout=30) as client:
        start = time.perf_counter()

        async def request_handler() -> None:
            nonlocal done
            while pending and time.perf_counter() - start < TIME_LIMIT:
                event = pending.pop()
                for hook in range(webhooks):
                    url, body, headers = _request(port, hook, event)
                    answer = await client.post(url, content=body, headers=headers)
                    done += answer.status_code == 200

        await asyncio.gather(*(request_handler() for _ in range(10)))
        return done, time.perf_counter() - start


def rss_child(pending: int) -> None:
    """Hold ``pending`` deliveries of a paused webhook, then let them go for a while: RSS."""

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    async def main(port: int) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            engine = await started_engine(Path(tmp), port, 1)
            await engine.writer.submit(SetState("hook_0", "paused", "bench", engine.clock.now()))
            started = peak_mib()
            insert_at = time.perf_counter()
            for first in range(0, pending, 1000):  # made a batch at a time: only the engine grows
                batch = events(min(1000, pending - first), f"rss{first}")
                await engine.writer.submit(AppendEvents(engine.bus, batch))
            filled = peak_mib()
            insert_s = time.perf_counter() - insert_at
            await engine.writer.submit(SetState("hook_0", "active", None, engine.clock.now()))
            engine.waker.wake()
            await asyncio.sleep(15)
            sent = await succeeded(engine)
            draining = peak_mib()
            await engine.stop()
        figures = {
            "started": started,
            "filled": filled,
            "draining": draining,
            "insert_s": insert_s,
            "sent_15s": sent,
        }
        print(orjson.dumps(figures).decode(), flush=True)

    receiver, port = start_receiver()
    try:
        uvloop.run(main(port))
    finally:
        receiver.kill()


Runner = Callable[[int, int, int], Awaitable[tuple[int, float]]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--stream", type=int, default=10_000, help="events to 1 webhook")
    parser.add_argument("--fanout", type=int, default=50, help="events to 100 webhooks")
    parser.add_argument("--pending", type=int, default=100_000)
    args = parser.parse_args()
    if args.rss:
        rss_child(args.rss)
        return

    load = os.getloadavg()
    receiver, port = start_receiver()
    cases = [("fan-out", 100, args.fanout), ("stream", 1, args.stream)]
    senders: list[tuple[str, Runner]] = [
        ("Ownly (durable, signed, attempt recorded)", ownly),
        ("bare httpx.AsyncClient loop (nothing stored)", bare_httpx),
        ("bare aiohttp loop (nothing stored)", bare_aiohttp),
        ("seed's way (await each delivery in the request)", seed_way),
    ]
    rows = []
    try:
        for case, hooks, count in cases:
            for name, run in senders:
                done, seconds = uvloop.run(run(port, hooks, count))
                rate = done / seconds
                rows.append((case, hooks, count, name, done, seconds, rate))
                print(f"{case:8} {name:50} {done:6} in {seconds:6.2f}s = {rate:8,.0f}/s")
    finally:
        receiver.kill()
    rss = subprocess.run(
        [sys.executable, __file__, "--rss", str(args.pending)],
        capture_output=True,
        text=True,
        check=True,
    )
    memory = orjson.loads(rss.stdout.strip().splitlines()[-1])
    print(memory)
    if args.record:
        record(rows, memory, load, args.pending)


def record(
    rows: list[tuple[Any, ...]], memory: dict[str, float], load: tuple[float, ...], pending: int
) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    lines = [
        f"\n## bench/delivery.py — webhook delivery: Ownly, bare loops, the seed's way ({stamp})\n",
        f"\nMachine: {os.cpu_count()} CPUs (nproc), {cpu}; Python {platform.python_version()}; "
        f"load average before the run {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} "
        "(shared machine).\n",
        "Receiver: aiohttp (uvloop) in its own process on 127.0.0.1 answering 200. Ownly: the "
        f"engine in process on uvloop, SQLite (WAL, synchronous FULL), {CONCURRENCY} workers; "
        "every delivery signed and its attempt durably recorded with the job's outcome. Bare "
        "loops: same concurrency and signing, nothing stored. Seed's way: each event's "
        "request awaits its deliveries in turn, ten requests at once. Each case is bounded "
        f"to {TIME_LIMIT:.0f} s.\n\n",
        "| load | sender | deliveries | seconds | deliveries/s |\n",
        "| --- | --- | ---: | ---: | ---: |\n",
    ]
    for case, hooks, count, name, done, seconds, rate in rows:
        plural = "s" if hooks != 1 else ""
        lines.append(
            f"| {case} ({count:,} events x {hooks} webhook{plural}) | {name} | "
            f"{done:,} | {seconds:.2f} | {rate:,.0f} |\n"
        )
    lines.append(
        f"\nPeak RSS with {pending:,} pending deliveries (webhook paused, in a child process): "
        f"{memory['started']:.0f} MiB after start, {memory['filled']:.0f} MiB with them stored "
        f"({memory['insert_s']:.1f} s to store), {memory['draining']:.0f} MiB after 15 s of "
        f"delivering ({memory['sent_15s']:,.0f} sent).\n"
    )
    with RESULTS.open("a", encoding="utf-8") as results:
        results.writelines(lines)


if __name__ == "__main__":
    main()
