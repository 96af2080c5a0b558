"""Webhook sender throughput: aiohttp (through the guarded session) against httpx, side by side.

Posts ~500-byte signed JSON to a local aiohttp receiver answering 200, which
runs in its own process on 127.0.0.1, at concurrency 1, 10 and 100. Each case
is bounded in requests and in seconds; rounds interleave the two clients and
the table reports the median of requests per second.

    .venv/bin/python bench/sender.py            # print the figures
    .venv/bin/python bench/sender.py --record   # and append a section to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import aiohttp
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.receiver import start as start_receiver
from connectors import (
    Outcome,
    WebhookRequest,
    WebhookSender,
    generate_secret,
    guarded_session,
    signed_headers,
)

CONCURRENCY = (1, 10, 100)
USER_AGENT = "Ownly/bench"
AIOHTTP = "aiohttp (guarded WebhookSender)"
HTTPX = "httpx.AsyncClient (same signing)"
RESULTS = Path(__file__).with_name("RESULTS.md")

Row = tuple[str, int, list[float], int]  # client, concurrency, rate of each round, failures


def payload() -> bytes:
    data = {
        "id": "evt_0123456789abcdef",
        "type": "investment.created",
        "created_at": "2026-11-26T12:00:00Z",
        "data": {
            "investment_id": "inv_0123456789abcdef",
            "deal_id": "deal_0123456789abcdef",
            "user_id": "usr_0123456789abcdef",
            "amount": "25000.00",
            "currency": "usd",
            "investor": {"email": "investor@example.com", "name": "Ada Lovelace"},
            "note": "x" * 200,
        },
    }
    return json.dumps(data).encode()


async def measure(
    send: Callable[[], Awaitable[bool]], concurrency: int, requests: int, seconds: float
) -> tuple[float, int, int]:
    """Run ``send`` from ``concurrency`` workers; return (requests/s, done, failures)."""
    for _ in range(min(50, requests)):  # warm the pool and the code paths
        await send()
    issued = 0
    done = 0
    failures = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal issued, done, failures
        while issued < requests and time.monotonic() < deadline:
            issued += 1
            if not await send():
                failures += 1
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return done / elapsed, done, failures


async def run(port: int, requests: int, seconds: float, rounds: int) -> list[Row]:
    url = f"http://127.0.0.1:{port}/hook"
    body = payload()
    secret = generate_secret()
    rates: dict[tuple[str, int], list[float]] = {}
    failures: dict[tuple[str, int], int] = {}
    counter = 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return f"msg_{counter}"

    async def case(name: str, concurrency: int, send: Callable[[], Awaitable[bool]]) -> None:
        rate, done, failed = await measure(send, concurrency, requests, seconds)
        rates.setdefault((name, concurrency), []).append(rate)
        failures[(name, concurrency)] = failures.get((name, concurrency), 0) + failed
        print(f"{name:<34} c={concurrency:<3} {rate:8.0f} req/s  ({done} sent, {failed} failed)")

    # Rounds interleave the clients, so that a busy moment on a shared machine
    # does not fall on one client only.
    for _ in range(rounds):
        for concurrency in CONCURRENCY:
            async with guarded_session(["127.0.0.0/8"], limit=100, limit_per_host=100) as session:
                sender = WebhookSender(session, user_agent=USER_AGENT)

                async def send_aiohttp(sender: WebhookSender = sender) -> bool:
                    attempt = await sender.send(
                        WebhookRequest(
                            url=url,
                            message_id=next_id(),
                            event_type="investment.created",
                            body=body,
                            secrets=(secret,),
                            timestamp=int(time.time()),
                            timeout=30,
                        )
                    )
                    return attempt.outcome is Outcome.DELIVERED

                await case(AIOHTTP, concurrency, send_aiohttp)

            limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
            async with httpx.AsyncClient(limits=limits, timeout=30) as client:

                async def send_httpx(client: httpx.AsyncClient = client) -> bool:
                    headers = signed_headers(
                        secrets=(secret,),
                        message_id=next_id(),
                        timestamp=int(time.time()),
                        body=body,
                        event_type="investment.created",
                        user_agent=USER_AGENT,
                    )
                    response = await client.post(url, content=body, headers=headers)
                    await response.aread()
                    return 200 <= response.status_code < 300

                await case(HTTPX, concurrency, send_httpx)
    return [(name, c, found, failures[(name, c)]) for (name, c), found in rates.items()]


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs (nproc), {model}; Python {platform.python_version()}; "
        f"load average before the run {load} (the machine is shared)"
    )


def record(rows: list[Row], requests: int, seconds: float, rounds: int, where: str) -> None:
    by = {(name, c): found for name, c, found, _ in rows}
    lines = [
        "",
        f"## bench/sender.py — webhook sender, aiohttp vs httpx ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"Machine: {where}; aiohttp {aiohttp.__version__}, httpx {httpx.__version__}.",
        "Client: default asyncio loop, pools of 100 connections; receiver: aiohttp (uvloop) in",
        "its own process on 127.0.0.1 answering 200. Each request is ~500 bytes of JSON, signed",
        f"(Standard Webhooks + hex HMAC). Each case: at most {requests} requests or {seconds:g}s,",
        f"after 50 warm-up requests; {rounds} interleaved rounds. Requests per second, median",
        "(lowest-highest):",
        "",
        "| client | " + " | ".join(f"c={c}" for c in CONCURRENCY) + " |",
        "| --- | " + " | ".join("---:" for _ in CONCURRENCY) + " |",
    ]
    for name in (AIOHTTP, HTTPX):
        cells = " | ".join(
            f"{median(by[(name, c)]):,.0f} ({min(by[(name, c)]):,.0f}-{max(by[(name, c)]):,.0f})"
            for c in CONCURRENCY
        )
        lines.append(f"| {name} | {cells} |")
    ratios = ", ".join(
        f"c={c}: {median(by[(AIOHTTP, c)]) / median(by[(HTTPX, c)]):.1f}x" for c in CONCURRENCY
    )
    failed = sum(row[3] for row in rows)
    lines += ["", f"Median aiohttp / httpx: {ratios}. Failed requests: {failed}.", ""]
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="at most this many per case")
    parser.add_argument("--seconds", type=float, default=5.0, help="at most this long per case")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of all cases")
    parser.add_argument("--record", action="store_true", help="append to bench/RESULTS.md")
    args = parser.parse_args()
    where = machine()
    receiver, port = start_receiver()
    try:
        rows = asyncio.run(run(port, args.requests, args.seconds, args.rounds))
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    if args.record:
        record(rows, args.requests, args.seconds, args.rounds, where)
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
