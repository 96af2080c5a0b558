"""Ingest throughput: a bare handler (the ceiling), Ownly, and a commit-per-event handler.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 64]

Each server runs in its own process on loopback and is loaded with wrk (Debian's
package) posting a ~400-byte ``investment.created`` without an id, so every
request stores a new event. Ownly runs with SQLite ``synchronous = FULL`` and one
webhook rule that matches every event (its job is written in the same
transaction; deliveries go to a local sink, and the script reports how many were
made during the load and how long the rest took to drain). (d) is the least a
durable group commit can do in Python here: raw sqlite3 on one writer thread, no
checks. (e) is Ownly again with 50 events in each request, to show what the
per-request cost is. Each row also gives the server process's CPU time per event
during the load (from /proc), which drifts less than events/s on a shared
machine. Before (b)'s load, the engine is left idle for a few seconds and the
CPU its polling costs is reported. Results are printed as a Markdown table to
paste into bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procs import cpu_seconds  # noqa: E402
from bench.receiver import start as start_receiver  # noqa: E402
from tests.support.process import free_port  # noqa: E402

BODY = {
    "type": "investment.created",
    "data": {
        "investment_id": "inv_1",
        "user_id": "usr_1",
        "deal_id": "deal_1",
        "amount": "25000.00",
        "status": "pending",
        "investor": {"email": "ada@example.com", "name": "Ada"},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "created_at": "2026-11-26T10:00:00Z",
    },
}
KEY = "bench-key"
IDLE_SECONDS = 5
WEBHOOK = """
webhook bench {
  url     = env("SINK_URL")
  secret  = env("SINK_SECRET")
  events  = [investment.created]
  when      event.type != env("BENCH_TYPE", "none")
  timeout   5s
}
"""


def wrk(
    url: str, seconds: int, connections: int, workdir: Path, batch: int = 1
) -> dict[str, float]:
    """wrk's figures; with ``batch`` > 1 each request carries that many events, and
    ``rps`` counts events."""
    script = workdir / "post.lua"
    body = BODY if batch == 1 else {"events": [BODY] * batch}
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {KEY}"\n'
    )
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("bench/ingest.py needs wrk (Debian package 'wrk')")
    out = subprocess.run(
        [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": batch * float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out)[1]),  # type: ignore[index]
        "errors": float(non_2xx[1]) if non_2xx else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _metric(base: str, name: str) -> float:
    """The sum of a metric's samples at ``base``/metrics (0 when absent)."""
    text = httpx.get(base + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def deliveries(base: str, limit: float = 300.0) -> dict[str, float]:
    """Deliveries made during the load, and how long the backlog takes to drain after it
    (waiting at most ``limit`` seconds)."""
    during = _metric(base, "ownly_webhook_deliveries_total")
    started = time.monotonic()
    queued = _metric(base, "ownly_queue_depth")
    while queued > 0 and time.monotonic() - started < limit:
        time.sleep(0.5)
        queued = _metric(base, "ownly_queue_depth")
    drained = time.monotonic() - started
    ingested = _metric(base, "ownly_events_ingested_total")  # requests in flight have landed
    return {"during": during, "drain": drained, "ingested": ingested, "left": queued}


def wait_up(url: str, path: str = "/", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ownly_project(root: Path) -> None:
    (root / "rules").mkdir()
    (root / "templates").mkdir()
    shutil.copy(ROOT / "rules" / "catalog.ownly", root / "rules" / "catalog.ownly")
    (root / "rules" / "bench.ownly").write_text(WEBHOOK)
    (root / "ownly.toml").write_text(
        '[server]\nlog_level = "warning"\n'
        '[database]\nurl = "sqlite:///var/ownly.db"\nsynchronous = "FULL"\n'
        '[webhooks]\nallow_networks = ["127.0.0.0/8"]\n'
        "[[api.keys]]\nname = 'bench'\nscopes = ['admin']\nkey_env = 'BENCH_KEY'\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    options = parser.parse_args()
    python = sys.executable
    servers = str(ROOT / "bench" / "ingest_servers.py")
    results: dict[str, dict[str, float]] = {}
    drains: dict[str, dict[str, float]] = {}
    idle = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sink, sink_port = start_receiver()
        ownly = [python, "-m", "engine", "run"]
        ownly_env = {
            "OWNLY_SERVER_PORT": "{port}",
            "BENCH_KEY": KEY,
            "SINK_URL": f"http://127.0.0.1:{sink_port}/hook",
            "SINK_SECRET": "whsec_" + "a" * 44,
        }
        try:
            cases = {
                "(a) bare aiohttp: parse JSON, answer 202": (
                    [python, servers, "bare", "{port}"],
                    {},
                ),
                "(b) Ownly /api/events, synchronous=FULL, one matching webhook": (
                    ownly,
                    ownly_env,
                ),
                "(b') Ownly, the same, but the webhook's `when` is false: no job": (
                    ownly,
                    {**ownly_env, "BENCH_TYPE": "investment.created"},
                ),
                "(c) naive: one SQLAlchemy transaction per event": (
                    [python, servers, "naive", "{port}", str(work / "naive.db")],
                    {},
                ),
                "(d) minimal group commit: raw sqlite3 on one writer thread, no checks": (
                    [python, servers, "group", "{port}", str(work / "group.db")],
                    {},
                ),
                "(e) Ownly as (b), 50 events a request (latency is per request)": (
                    ownly,
                    ownly_env,
                ),
            }
            ownly_project(work)
            for name, (command, env) in cases.items():
                port = free_port()
                args = [part.replace("{port}", str(port)) for part in command]
                environ = {k: v.replace("{port}", str(port)) for k, v in env.items()}
                # A fresh database per case: no case inherits another's backlog.
                environ["OWNLY_DATABASE_URL"] = f"sqlite:///{work}/case-{port}.db"
                server = start(args, work, environ)
                try:
                    base = f"http://127.0.0.1:{port}"
                    wait_up(base)
                    if name.startswith("(b)"):  # what the idle engine costs: its polls
                        time.sleep(1)
                        cpu_before = cpu_seconds(server.pid)
                        time.sleep(IDLE_SECONDS)
                        idle = (cpu_seconds(server.pid) - cpu_before) / IDLE_SECONDS
                    url = f"{base}/api/events"
                    batch = 50 if name.startswith("(e)") else 1
                    wrk(url, 2, options.connections, work, batch)  # warm up
                    cpu_before = cpu_seconds(server.pid)
                    results[name] = wrk(url, options.seconds, options.connections, work, batch)
                    used = cpu_seconds(server.pid) - cpu_before
                    results[name]["cpu_us"] = used * 1e6 / (results[name]["rps"] * options.seconds)
                    if "one matching webhook" in name or name.startswith("(e)"):
                        # The batch case stores too many to wait for: its backlog is reported.
                        limit = 0.0 if name.startswith("(e)") else 300.0
                        drains[name] = deliveries(base, limit)
                finally:
                    server.terminate()
                    server.wait(30)
        finally:
            sink.terminate()
            sink.wait(30)

    ceiling = next(iter(results.values()))["rps"]
    naive = next(v["rps"] for k, v in results.items() if k.startswith("(c)"))
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {platform.node()}: {os.cpu_count()} CPUs, "
        f"{_cpu()}, Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}, "
        f"wrk -t2 -c{options.connections} -d{options.seconds}s\n"
    )
    print("| server | events/s | p50 ms | p99 ms | non-2xx | vs (a) | vs (c) | server CPU/event |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['rps']:,.0f} | {figures['p50']:.1f} | {figures['p99']:.1f} "
            f"| {figures['errors']:.0f} | {figures['rps'] / ceiling:.0%} "
            f"| {figures['rps'] / naive:.1f}x | {figures['cpu_us']:,.0f} µs |"
        )
    _report_deliveries(drains, options.seconds)
    print(
        f"\nOwnly idle (nothing to do, polling every second) used {idle * 1000:.1f} ms of CPU "
        f"a second over {IDLE_SECONDS} s ({idle:.2%} of a core)."
    )


def _report_deliveries(drains: dict[str, dict[str, float]], seconds: int) -> None:
    for name, d in drains.items():
        after = (
            f"the rest drained in {d['drain']:.1f} s after it"
            if not d["left"]
            else f"{d['left']:,.0f} were still queued"
        )
        print(
            f"\n{name}: {d['ingested']:,.0f} events stored (warm-up included); "
            f"{d['during']:,.0f} delivered by the end of the load "
            f"({d['during'] / (seconds + 2):,.0f}/s), {after}."
        )


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


if __name__ == "__main__":
    main()
