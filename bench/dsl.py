"""Rule-language benchmarks: checking a large rule set, and matching an event.

    .venv/bin/python -m bench.dsl            # print the figures
    .venv/bin/python -m bench.dsl --record   # and append them to bench/RESULTS.md

1. Check: a generated rule set of 1,000 files holding 10,000 webhooks (each
   with patterns, a `when`, retry and timeout) against a 500-type catalog,
   parsed, checked and compiled from cold files, as `ownly check` does (goal:
   under 3 s): the median of five runs, each in a new process; then checked
   again after one file changed, with the cache the engine keeps across
   reloads. Each fresh process also times parsing one generated file 100
   times after its check: a reference for the machine's speed at that
   moment (this VM's speed drifts by half within an hour), so that runs
   from different hours can be compared.
2. Match: median time to find the subscriptions of one event type among 100,
   1,000 and 10,000 subscriptions (goal: under 20 us, flat). `match` is the
   engine's call (memoised per rule set); `index walk` is the uncached dict +
   segment-trie lookup behind it; `match + when` also evaluates the compiled
   predicates of the matched subscriptions against a payload.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import results
from dsl import Context, ParseCache, RuleSet, compile_rules, parse

NAMESPACES = 50
VERBS = ["created", "updated", "completed", "cancelled", "failed", "funded", "closed", "signed"]
VERBS += ["shared", "approved"]


def _event_types(namespaces: int) -> list[str]:
    return [f"ns{n}.{verb}" for n in range(namespaces) for verb in VERBS]


def _catalog(namespaces: int) -> str:
    blocks = []
    for event_type in _event_types(namespaces):
        blocks.append(
            f"event {event_type} {{\n"
            "  id:       string\n"
            "  amount:   decimal\n"
            '  currency: string = "usd"\n'
            '  status:   "pending" | "active" | "done"\n'
            "  owner:    { email: email, name: string }\n"
            "}\n"
        )
    return "\n".join(blocks)


def _webhook(rng: random.Random, index: int, types: list[str], namespaces: int) -> str:
    if rng.random() < 0.1:
        events = f"ns{rng.randrange(namespaces)}.*"
    else:
        events = ", ".join(rng.sample(types, k=rng.randint(1, 3)))
    when = rng.choice(
        [
            f"event.data.amount >= {rng.randint(1, 50)}_000",
            'event.data.status in ["active", "done"] and event.data.currency == "usd"',
            'event.data.owner.email ends_with "@ownly.com" or event.data.amount > 10',
        ]
    )
    return (
        f"webhook hook_{index} {{\n"
        f'  url     = "https://hooks.example.com/{index}"\n'
        f'  secret  = env("HOOK_SECRET_{index % 10}")\n'
        f"  events  = [{events}]\n"
        f"  when      {when}\n"
        "  retry     8 times, exponential 5s .. 10h\n"
        "  timeout   15s\n"
        "}\n"
    )


def _write_rules(
    root: Path, files: int, per_file: int, namespaces: int = NAMESPACES, seed: int = 1
) -> list[Path]:
    rng = random.Random(seed)
    types = _event_types(namespaces)
    (root / "catalog.ownly").write_text(_catalog(namespaces))
    paths = [root / "catalog.ownly"]
    for f in range(files):
        path = root / f"rules_{f:04d}.ownly"
        hooks = (_webhook(rng, f * per_file + i, types, namespaces) for i in range(per_file))
        path.write_text("\n".join(hooks))
        paths.append(path)
    return paths


@dataclass(frozen=True)
class CheckTimes:
    """Seconds to check the generated rule set, each cold figure from fresh processes."""

    cold: list[float]  # as `ownly check` runs
    reference: list[float]  # parsing one file 100 times, after each of those checks
    recheck: list[float]  # after one file changed, with the cache the engine keeps
    rule_set: RuleSet


def bench_check(files: int = 1000, per_file: int = 10, runs: int = 5) -> CheckTimes:
    """Check from cold `runs` times in fresh processes, then
    re-check after each of three files changed, with the engine's cache.

    Each cold run is a new interpreter that imports Ownly, then times
    `compile_rules` alone: nothing is cached from an earlier run, as with
    `ownly check`. The engine keeps a cache across reloads (parsed files and
    their lowered webhooks): it is filled by a compilation that is not timed.
    """
    cold: list[float] = []
    reference: list[float] = []
    recheck: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = _write_rules(root, files, per_file)
        (root / "templates").mkdir()
        for _ in range(runs):
            seconds, speed = _check_in_new_process(root)
            cold.append(seconds)
            reference.append(speed)
        cache = ParseCache()
        compilation = compile_rules(paths, templates_dir=root / "templates", cache=cache)
        for path in paths[1:4]:
            path.write_text(path.read_text().replace("15s", "20s"))
            started = time.perf_counter()
            again = compile_rules(paths, templates_dir=root / "templates", cache=cache)
            recheck.append(time.perf_counter() - started)
            assert again.rule_set is not None
    assert compilation.rule_set is not None, compilation.render()[:2000]
    return CheckTimes(cold, reference, recheck, compilation.rule_set)


def _check_in_new_process(root: Path) -> tuple[float, float]:
    command = [sys.executable, "-m", "bench.dsl", "--check-once", str(root)]
    done = subprocess.run(
        command, cwd=Path(__file__).parents[1], capture_output=True, text=True, check=True
    )
    seconds, reference = done.stdout.split()[-2:]
    return float(seconds), float(reference)


def _check_once(root: Path) -> tuple[float, float]:
    """Seconds for one cold `compile_rules` of the rule files in `root`, then the reference."""
    paths = sorted(root.glob("*.ownly"))
    started = time.perf_counter()
    compilation = compile_rules(paths, templates_dir=root / "templates")
    seconds = time.perf_counter() - started
    assert compilation.rule_set is not None, compilation.render()[:2000]
    text = paths[1].read_text()
    started = time.perf_counter()
    for _ in range(100):
        parse(text, paths[1].name)
    return seconds, time.perf_counter() - started


def _median_us(func: object, arg: str, rounds: int = 15, calls: int = 2000) -> float:
    assert callable(func)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            func(arg)
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(samples)


def bench_match(
    sizes: tuple[int, ...] = (100, 1_000, 10_000),
) -> list[tuple[int, float, float, float, int]]:
    rows = []
    for size in sizes:
        # The catalog grows with the rules, so an event matches about as many
        # subscriptions at every size: the cost measured is the index's.
        per_file = 10
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            paths = _write_rules(root, size // per_file, per_file, max(size // 100, 5), seed=2)
            (root / "templates").mkdir()
            rule_set = compile_rules(paths, templates_dir=root / "templates").rule_set
        assert rule_set is not None
        event_type = "ns3.created"
        matched = rule_set.match(event_type)
        data = {"amount": 30_000, "status": "active", "currency": "usd"}
        data["owner"] = {"email": "a@ownly.com", "name": "A"}
        context = Context({"event": {"type": event_type, "data": data}})

        def match_and_test(event: str, rules: RuleSet = rule_set, ctx: Context = context) -> None:
            for sub in rules.match(event):
                rules.accepts(sub, ctx)

        walk = rule_set._matcher._lookup  # the index itself, without the memo
        rows.append(
            (
                size,
                _median_us(rule_set.match, event_type),
                _median_us(walk, event_type),
                _median_us(match_and_test, event_type, calls=200),
                len(matched),
            )
        )
    return rows


def _spread(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples):.2f} s (median of {len(samples)}; "
        f"{min(samples):.2f} to {max(samples):.2f})"
    )


def report() -> str:
    check = bench_check()
    rule_set = check.rule_set
    rows = bench_match()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    lines = [
        f"## bench/dsl.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.platform()}, {machine}, Python {platform.python_version()}.",
        "",
        f"Check 1,000 files / {len(rule_set.webhooks):,} webhooks against a "
        f"{len(rule_set.events)}-type catalog (parse + check + compile, cold, each run a "
        f"new process): **{_spread(check.cold)}** (goal < 3 s); re-check after editing one "
        f"file, with the cache the engine keeps across reloads: **{_spread(check.recheck)}**. "
        f"Speed reference (parsing one file 100 times after each cold check): "
        f"{statistics.median(check.reference) * 1000:.0f} ms "
        f"({min(check.reference) * 1000:.0f} to {max(check.reference) * 1000:.0f}).",
        "",
        "| subscriptions | match (memoised) | index walk (dict + trie) | match + when | matched |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, memo, walk, full, matched in rows:
        lines.append(f"| {size:,} | {memo:.2f} µs | {walk:.2f} µs | {full:.1f} µs | {matched} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = results.parser(__doc__.splitlines()[0])
    parser.add_argument("--check-once", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check_once is not None:  # one cold run, in a process of its own
        seconds, reference = _check_once(args.check_once)
        print(f"{seconds:.4f} {reference:.4f}")
        return
    results.show(report(), record=args.record)


if __name__ == "__main__":
    main()
