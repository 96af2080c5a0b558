"""Email throughput: Ownly against a bare aiosmtplib loop and the seed's way; rendering; RSS.

An aiosmtpd sink (``bench/smtp_sink.py``) takes every message on 127.0.0.1, in
a process of its own, with no TLS. One run measures, side by side:

- (a) Ownly: the engine as a subprocess (``ownly run``, SQLite in WAL with
  ``synchronous = FULL``) with one SMTP provider to the sink, its
  ``pool_size`` and ``concurrency`` set to ``--pool``. ``--emails`` emails of
  the shipped ``investment_receipt`` template, one recipient each, are posted
  to ``POST /api/emails/send-template`` by ``--clients`` concurrent clients
  (httpx); each answer is a 202 once the email and its job are committed. The
  clock runs from the first request until ``GET /api/emails/stats`` counts
  every email sent: rendered, queued, leased, sent and its outcome recorded.
- (b) the ceiling: the same messages rendered and made into bytes before the
  clock starts, sent by a bare aiosmtplib loop over ``--pool`` connections;
  nothing stored.
- (c) the seed's way: an aiohttp server (a process of its own) whose handler
  renders the template, makes the message and sends it with
  ``aiosmtplib.send`` (a connection of its own) before answering; the same
  clients as (a).
- (d) rendering alone: ``Renderer.render`` of investment_receipt with its
  sample, and making its message (``OutgoingEmail.as_bytes``), in a loop.
- (e) memory: the engine of (a) with the sink answering every RCPT 451 after
  a delay, so that what is queued stays queued; ``--queued`` emails posted
  through the API, the engine's VmRSS and VmHWM (``/proc/<pid>/status``) read
  after start and at 10,000, 50,000 and 100,000 queued.

Each case is bounded in count and in time. ``OWNLY_TREE=<tree>`` runs another
tree's engine (and renderer), to compare a change with the code before it.
The name is ``emails``, run as a module: a ``bench/email.py`` would stand in
for the standard library's ``email`` in every script run from ``bench/``.

    .venv/bin/python -m bench.emails                  # print the figures
    .venv/bin/python -m bench.emails --only abcd      # without (e)
    .venv/bin/python -m bench.emails --record         # and append them to bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# The Ownly measured: this repository's, or another tree's.
ROOT = Path(__file__).resolve().parents[1]
TREE = os.environ.get("OWNLY_TREE", str(ROOT))
sys.path[0] = TREE
sys.path.append(str(ROOT))  # for bench and tests.support

import aiosmtplib  # noqa: E402
import httpx  # noqa: E402
import uvloop  # noqa: E402

from bench import results  # noqa: E402
from bench.procs import cpu_seconds, proc_status  # noqa: E402
from bench.smtp_sink import start as start_sink  # noqa: E402
from bench.smtp_sink import taken  # noqa: E402
from connectors.email.message import OutgoingEmail  # noqa: E402
from dsl import compile_rules  # noqa: E402
from dsl.render import Renderer  # noqa: E402
from tests.support.process import EngineProcess, free_port, write_project  # noqa: E402
from tests.support.rules import install_catalog, install_emails  # noqa: E402

KEY = "bench-key"
TEMPLATE = "investment_receipt"
SENDER = "OWNLY <hello@ownly.com>"
TIME_LIMIT = 120.0  # seconds, for each of (a), (b) and (c)
QUEUE_LIMIT = 360.0  # seconds, for queueing (e)'s emails
MARKS = (10_000, 50_000, 100_000)


def receipt(i: int) -> dict[str, Any]:
    """The request for email ``i``: its own recipient and amount."""
    address = f"investor{i}@example.com"
    return {
        "template": TEMPLATE,
        "to": address,
        "data": {
            "investor": {"email": address, "name": f"Investor {i}"},
            "deal": {"id": "deal_42", "name": "Harbor View Apartments"},
            "amount": f"{1000 + i}.00",
            "currency": "usd",
        },
    }


def project(root: Path, smtp_port: int, pool: int) -> None:
    """The shipped catalog and email templates, an API key, one SMTP provider (SQLite's
    ``synchronous`` is FULL by default)."""
    write_project(
        root,
        extra_toml=(
            "[[api.keys]]\nname = 'bench'\nscopes = ['admin']\nkey_env = 'BENCH_KEY'\n"
            "[email]\n[[email.providers]]\ntype = 'smtp'\nhost = '127.0.0.1'\n"
            f"port = {smtp_port}\nsecurity = 'none'\npool_size = {pool}\n"
            f"concurrency = {pool}\ntimeout = '60s'\n"
        ),
    )
    install_catalog(root, webhooks="")
    install_emails(root)


def engine(root: Path) -> EngineProcess:
    env = {"BENCH_KEY": KEY}
    if str(ROOT) != TREE:
        env["PYTHONPATH"] = TREE
    process = EngineProcess(root, env=env)
    try:
        process.wait_ready(60)
    except BaseException:
        process.kill()
        raise
    return process


async def post_all(
    url: str,
    path: str,
    count: int,
    clients: int,
    *,
    deadline: float,
    each: Callable[[int], None] | None = None,
) -> list[float]:
    """Post ``receipt(0..count-1)`` from ``clients`` concurrent clients until ``deadline``
    (perf_counter); every answer must be a 2xx. The requests' latencies, in seconds."""
    todo = iter(range(count))
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def lane(http: httpx.AsyncClient) -> None:
        for i in todo:
            if time.perf_counter() > deadline:
                return
            began = time.perf_counter()
            answer = await http.post(path, json=receipt(i))
            latencies.append(time.perf_counter() - began)
            if not answer.is_success:
                raise RuntimeError(f"{path}: {answer.status_code} {answer.text}")
            if each is not None:
                each(len(latencies))

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:
        await asyncio.gather(*(lane(http) for _ in range(clients)))
    return latencies


def sent_count(api: httpx.Client) -> int:
    return int(api.get("/api/emails/stats").json()["counts"]["sent"])


def ownly(count: int, clients: int, pool: int) -> dict[str, Any]:
    """(a): the emails through the API, until the log counts every one sent."""
    sink, smtp_port = start_sink()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, smtp_port, pool)
        process = engine(root)
        pid = process.process.pid
        try:
            with httpx.Client(
                base_url=process.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
            ) as api:
                cpu_before = cpu_seconds(pid)
                start = time.perf_counter()
                latencies = asyncio.run(
                    post_all(
                        process.url,
                        "/api/emails/send-template",
                        count,
                        clients,
                        deadline=start + TIME_LIMIT,
                    )
                )
                queued_s = time.perf_counter() - start
                sent = sent_count(api)
                while sent < len(latencies) and time.perf_counter() - start < TIME_LIMIT:
                    time.sleep(0.02)
                    sent = sent_count(api)
                seconds = time.perf_counter() - start
                cpu = cpu_seconds(pid) - cpu_before
            arrived = taken(sink)
        finally:
            process.kill()
            sink.kill()
    return {
        "done": sent,
        "seconds": seconds,
        "queued_s": queued_s,
        "latencies": latencies,
        "cpu_ms": 1000 * cpu / max(sent, 1),
        "arrived": arrived,
    }


def rendered(count: int) -> list[tuple[str, str, bytes]]:
    """(sender, recipient, message bytes) of each email, made as the engine makes them."""
    rules = compile_rules([ROOT / "rules"], templates_dir=ROOT / "templates").require()
    renderer = Renderer.compile(rules, ROOT / "templates")
    made = []
    now = datetime.now(UTC)
    for i in range(count):
        request = receipt(i)
        page = renderer.render(TEMPLATE, request["data"])
        email_id = f"eml_bench{i:07d}"
        message = OutgoingEmail(
            email_id=email_id,
            message_id=f"<{email_id}@ownly.com>",
            sender=SENDER,
            to=request["to"],
            subject=page.subject,
            html=page.html,
            text=page.text,
            date=now,
            headers=(
                ("List-Unsubscribe", f"<http://127.0.0.1:8080/email/u/{email_id}.0123456789>"),
                ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ),
            category="transactional",
        )
        made.append(("hello@ownly.com", request["to"], message.as_bytes()))
    return made


def bare(count: int, pool: int) -> dict[str, Any]:
    """(b): pre-rendered messages through ``pool`` aiosmtplib connections, nothing stored."""
    messages = rendered(count)
    sink, smtp_port = start_sink()

    async def run() -> tuple[int, float]:
        work = list(reversed(messages))
        done = 0
        start = time.perf_counter()

        async def lane() -> None:
            nonlocal done
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
            await client.connect()
            try:
                while work and time.perf_counter() - start < TIME_LIMIT:
                    sender, recipient, message = work.pop()
                    await client.sendmail(sender, [recipient], message)
                    done += 1
            finally:
                await client.quit()

        await asyncio.gather(*(lane() for _ in range(pool)))
        return done, time.perf_counter() - start

    try:
        cpu_before = time.process_time()
        done, seconds = uvloop.run(run())
        cpu = time.process_time() - cpu_before
        arrived = taken(sink)
    finally:
        sink.kill()
    return {"done": done, "seconds": seconds, "arrived": arrived, "cpu_ms": 1000 * cpu / done}


def seed_way(count: int, clients: int) -> dict[str, Any]:
    """(c): each request renders and sends before it is answered."""
    sink, smtp_port = start_sink()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.emails", "--seed-server", str(port), str(smtp_port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # ready
        url = f"http://127.0.0.1:{port}"
        cpu_before = cpu_seconds(server.pid)
        start = time.perf_counter()
        latencies = asyncio.run(
            post_all(url, "/send-template", count, clients, deadline=start + TIME_LIMIT)
        )
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(server.pid) - cpu_before
        arrived = taken(sink)
    finally:
        server.kill()
        sink.kill()
    return {
        "done": len(latencies),
        "seconds": seconds,
        "latencies": latencies,
        "cpu_ms": 1000 * cpu / max(len(latencies), 1),
        "arrived": arrived,
    }


def serve_seed(port: int, smtp_port: int) -> None:
    """The seed's way as a server: render, make the message, send it, then answer."""
    from aiohttp import web

    rules = compile_rules([ROOT / "rules"], templates_dir=ROOT / "templates").require()
    renderer = Renderer.compile(rules, ROOT / "templates")
    counter = iter(range(10**9))

    async def send_template(request: web.Request) -> web.Response:
        body = await request.json()
        page = renderer.render(body["template"], body["data"])
        email_id = f"eml_seed{next(counter):07d}"
        message = OutgoingEmail(
            email_id=email_id,
            message_id=f"<{email_id}@ownly.com>",
            sender=SENDER,
            to=body["to"],
            subject=page.subject,
            html=page.html,
            text=page.text,
            date=datetime.now(UTC),
        )
        await aiosmtplib.send(
            message.as_bytes(),
            sender="hello@ownly.com",
            recipients=[body["to"]],
            hostname="127.0.0.1",
            port=smtp_port,
            start_tls=False,
        )
        return web.json_response({"id": email_id})

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/send-template", send_template)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def rendering(seconds: float = 3.0, limit: int = 50_000) -> dict[str, float]:
    """(d): renders a second, and messages made a second, each for ``seconds`` at most."""
    rules = compile_rules([ROOT / "rules"], templates_dir=ROOT / "templates").require()
    renderer = Renderer.compile(rules, ROOT / "templates")
    sample = renderer.sample(TEMPLATE)
    assert sample is not None
    page = renderer.render(TEMPLATE, sample)
    now = datetime.now(UTC)

    def make() -> bytes:
        return OutgoingEmail(
            email_id="eml_bench0000001",
            message_id="<eml_bench0000001@ownly.com>",
            sender=SENDER,
            to="ada@example.com",
            subject=page.subject,
            html=page.html,
            text=page.text,
            date=now,
        ).as_bytes()

    figures = {}
    for name, step in (("renders", lambda: renderer.render(TEMPLATE, sample)), ("messages", make)):
        for _ in range(100):  # warm up
            step()
        done = 0
        start = time.perf_counter()
        while done < limit and time.perf_counter() - start < seconds:
            step()
            done += 1
        figures[name] = done / (time.perf_counter() - start)
    return figures


def memory(count: int, clients: int, pool: int, refuse: float) -> dict[str, Any]:
    """(e): RSS of the engine as ``count`` emails are queued and stay queued."""
    sink, smtp_port = start_sink(refuse=refuse)
    samples: dict[int, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project(root, smtp_port, pool)
        process = engine(root)
        pid = process.process.pid
        try:
            time.sleep(2)
            samples[0] = proc_status(pid)

            def each(done: int) -> None:
                if done in MARKS:
                    samples[done] = proc_status(pid)

            start = time.perf_counter()
            queued = asyncio.run(
                post_all(
                    process.url,
                    "/api/emails/send-template",
                    count,
                    clients,
                    deadline=start + QUEUE_LIMIT,
                    each=each,
                )
            )
            queued_s = time.perf_counter() - start
            time.sleep(10)
            after = proc_status(pid)
            with httpx.Client(
                base_url=process.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            ) as api:
                counts = api.get("/api/emails/stats").json()["counts"]
            size = sum(f.stat().st_size for f in (root / "var").glob("ownly.db*"))
        finally:
            process.kill()
            sink.kill()
    return {
        "queued": len(queued),
        "queued_s": queued_s,
        "samples": samples,
        "after": after,
        "counts": counts,
        "db_mib": size / 2**20,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report(args: Any, cases: dict[str, dict[str, Any]]) -> str:
    """The machine, the conditions, and a table of whichever of (a), (b), (c) ran."""
    lines = [
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}: {os.cpu_count()} CPUs, "
        f"{_cpu()}, Python {platform.python_version()}, load before {args.load:.2f}; "
        f"{args.emails:,} emails of {TEMPLATE}, {args.clients} clients, "
        f"SMTP pool {args.pool}, tree {TREE}",
    ]
    ran = {key: cases[key] for key in "abc" if key in cases}
    if not ran:
        return lines[0]
    rate = {key: case["done"] / case["seconds"] for key, case in ran.items()}
    names = {
        "a": "(a) Ownly: API, queued durably, sent, recorded `sent`",
        "b": f"(b) bare aiosmtplib loop, {args.pool} connections, pre-rendered, nothing stored",
        "c": "(c) the seed's way: render and send in the request",
    }
    lines += [
        "",
        "| case | emails | seconds | emails/s | vs (b) | vs (c) | request p50 / p99 ms "
        "| CPU per email |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, case in ran.items():
        latencies = case.get("latencies")
        latency = (
            f"{1000 * percentile(latencies, 50):.1f} / {1000 * percentile(latencies, 99):.1f}"
            if latencies
            else ""
        )
        cpu = f"{case['cpu_ms']:.2f} ms" if "cpu_ms" in case else ""
        versus_b = f"{rate[key] / rate['b']:.0%}" if "b" in rate else ""
        versus_c = f"{rate[key] / rate['c']:.2f}x" if "c" in rate else ""
        lines.append(
            f"| {names[key]} | {case['done']:,} | {case['seconds']:.2f} | {rate[key]:,.0f} "
            f"| {versus_b} | {versus_c} | {latency} | {cpu} |"
        )
    lines.append("")
    lines.append(
        "CPU per email: of the engine's process (a), the loop's (b), the server's (c); "
        "the sink's and the clients' are not counted. "
    )
    if "a" in ran:
        lines[-1] += f"(a) answered every request in {ran['a']['queued_s']:.2f} s. "
    lines[-1] += "The sink took " + ", ".join(
        f"{case['arrived']:,} messages in ({key})" for key, case in ran.items()
    )
    lines[-1] += "."
    return "\n".join(lines)


def report_rendering(d: dict[str, float]) -> str:
    return (
        f"(d) {TEMPLATE} with its sample: {d['renders']:,.0f} renders/s "
        f"({1e6 / d['renders']:.0f} µs each); its message made (OutgoingEmail.as_bytes) "
        f"{d['messages']:,.0f}/s ({1e6 / d['messages']:.0f} µs each)."
    )


def report_memory(e: dict[str, Any], refuse: float) -> str:
    marks = ", ".join(
        f"{n:,} queued: {s['VmRSS'] / 1024:.0f} MiB (peak {s['VmHWM'] / 1024:.0f})"
        for n, s in sorted(e["samples"].items())
    )
    return (
        f"(e) the sink answering every RCPT 451 after {refuse:.0f} s: {e['queued']:,} emails "
        f"queued through the API in {e['queued_s']:.1f} s "
        f"({e['queued'] / e['queued_s']:,.0f}/s). Engine RSS at {marks}; 10 s later "
        f"{e['after']['VmRSS'] / 1024:.0f} MiB (peak {e['after']['VmHWM'] / 1024:.0f}). "
        f"Stats: {e['counts']['emails']:,} emails, {e['counts']['queued']:,} queued; "
        f"database {e['db_mib']:,.0f} MiB."
    )


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    options = results.parser(__doc__.splitlines()[0])
    options.add_argument("--emails", type=int, default=5000, help="for (a), (b) and (c)")
    options.add_argument("--clients", type=int, default=16)
    options.add_argument("--pool", type=int, default=4, help="SMTP connections")
    options.add_argument("--queued", type=int, default=100_000, help="for (e); 0 skips it")
    options.add_argument("--refuse", type=float, default=10.0, help="(e)'s sink delay, s")
    options.add_argument("--only", default="abcde", help="the cases to run, e.g. ab")
    options.add_argument("--seed-server", nargs=2, type=int, help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.seed_server:
        serve_seed(*args.seed_server)
        return
    args.load = os.getloadavg()[0]
    figures: dict[str, Any] = {}
    for case in args.only:
        if case == "a":
            figures["a"] = ownly(args.emails, args.clients, args.pool)
        elif case == "b":
            figures["b"] = bare(args.emails, args.pool)
        elif case == "c":
            figures["c"] = seed_way(args.emails, args.clients)
        elif case == "d":
            figures["d"] = rendering()
        elif case == "e" and args.queued:
            figures["e"] = memory(args.queued, args.clients, args.pool, args.refuse)
        if case in figures and case in "abc":
            done = figures[case]
            print(f"({case}) {done['done']:,} in {done['seconds']:.2f} s", file=sys.stderr)
        elif case in figures:
            print(f"({case}) done", file=sys.stderr)
    parts = [report(args, figures)]
    if "d" in figures:
        parts.append(report_rendering(figures["d"]))
    if "e" in figures:
        parts.append(report_memory(figures["e"], args.refuse))
    results.show("\n\n".join(parts) + "\n", record=args.record)


if __name__ == "__main__":
    main()
