"""Rule-language benchmarks: checking rule repositories, and matching an event.

    .venv/bin/python -m bench.dsl                        # print the figures
    .venv/bin/python -m bench.dsl --record               # and append them to bench/RESULTS.md
    .venv/bin/python -m bench.dsl --against /tmp/before  # each run alternated with another tree

1. Check a realistic repository as `ownly check` does: 100 files of 10
   webhooks each (patterns, a `when`, retry and timeout) against a 100-type
   catalog, in a fresh process from its start to its exit (interpreter,
   imports, reading, parsing, checking, compiling): the median of five runs.
   Then `compile_rules` alone over the same files, each run a fresh process
   that also times parsing one generated file 100 times after its check: a
   reference for the machine's speed at that moment (this VM's speed drifts
   by half within an hour), so that runs from different hours compare.
2. The same `compile_rules` over a large one, 1,000 files / 10,000 webhooks
   against a 500-type catalog; then checked again after each of three files
   changed, with the cache the engine keeps across reloads (parsed files and
   their lowered webhooks, filled by a compilation that is not timed): the
   median of nine edits, three in each of three processes.
3. Match: median time to find the subscriptions of one event type among 100,
   1,000 and 10,000 subscriptions (goal: under 20 us, flat). `match` is the
   engine's call (memoised per rule set); `index walk` is the uncached dict +
   segment-trie lookup behind it; `match + when` also evaluates the compiled
   predicates of the matched subscriptions against a payload.

With `--against TREE` (a checkout of Ownly using the same dependencies),
every measurement of 1 and 2 is made with both trees, run for run: this
tree, then that one (ABAB...), after one run of each that is not timed (it
compiles the trees' bytecode and Lark's grammar cache, as any earlier run
would have).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench import results

if TYPE_CHECKING:
    from dsl import RuleSet

ROOT = Path(__file__).resolve().parents[1]
NAMESPACES = 50
VERBS = ["created", "updated", "completed", "cancelled", "failed", "funded", "closed", "signed"]
VERBS += ["shared", "approved"]
RUNS = 5
RECHECKS = 3  # processes, each timing three edits
# `ownly check` as its console script starts it, with the Ownly of the tree given first.
_OWNLY_CHECK = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from engine.cli import main; main()"
)


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
class Repository:
    """A generated rule repository: `rules/` and `templates/` under `root`."""

    root: Path
    files: int
    per_file: int
    namespaces: int

    @property
    def rules(self) -> Path:
        return self.root / "rules"

    def write(self) -> None:
        self.rules.mkdir(parents=True)
        (self.root / "templates").mkdir()
        _write_rules(self.rules, self.files, self.per_file, self.namespaces)


@dataclass
class Figures:
    """One tree's seconds, each run a fresh process."""

    tree: Path
    ownly_check: list[float] = field(default_factory=list)  # the realistic repository, whole
    compile_small: list[float] = field(default_factory=list)  # the same, `compile_rules` alone
    compile_large: list[float] = field(default_factory=list)  # 10,000 webhooks
    reference: list[float] = field(default_factory=list)  # parsing one file 100 times
    recheck: list[float] = field(default_factory=list)  # 10,000 webhooks, one file changed


def _ownly_check(tree: Path, repository: Repository) -> float:
    """Seconds from starting `ownly check` (of `tree`) in the repository to its exit."""
    command = [sys.executable, "-c", _OWNLY_CHECK, str(tree), "check"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=repository.root, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0 or not done.stderr.startswith("ok:"):
        raise RuntimeError(f"ownly check failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def _in_new_process(tree: Path, mode: str, root: Path) -> list[float]:
    command = [sys.executable, "-m", "bench.dsl", mode, str(root), "--tree", str(tree)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return [float(figure) for figure in done.stdout.strip().splitlines()[-1].split()]


def bench_checks(trees: list[Path]) -> list[Figures]:
    """The checks of 1 and 2 with each tree, alternated run for run."""
    figures = [Figures(tree) for tree in trees]
    with tempfile.TemporaryDirectory() as tmp:
        small = Repository(Path(tmp) / "small", files=100, per_file=10, namespaces=10)
        large = Repository(Path(tmp) / "large", files=1000, per_file=10, namespaces=NAMESPACES)
        small.write()
        large.write()
        for tree in trees:  # not timed: bytecode and Lark's cache, as after any earlier run
            _ownly_check(tree, small)
        for _ in range(RUNS):
            for into in figures:
                into.ownly_check.append(_ownly_check(into.tree, small))
        for repository, attribute in ((small, "compile_small"), (large, "compile_large")):
            for _ in range(RUNS):
                for into in figures:
                    seconds, reference = _in_new_process(into.tree, "--check-once", repository.root)
                    getattr(into, attribute).append(seconds)
                    into.reference.append(reference)
        for run in range(RECHECKS):
            for number, into in enumerate(figures):
                edits = Path(tmp) / f"edits_{run}_{number}"
                into.recheck += _in_new_process(into.tree, "--recheck-once", edits)
    return figures


def _check_once(root: Path) -> tuple[float, float]:
    """Seconds for one cold `compile_rules` of the repository at `root`, then the reference."""
    from dsl import compile_rules, parse

    paths = sorted((root / "rules").glob("*.ownly"))
    started = time.perf_counter()
    compilation = compile_rules(paths, templates_dir=root / "templates")
    seconds = time.perf_counter() - started
    assert compilation.rule_set is not None, compilation.render()[:2000]
    text = paths[1].read_text()
    started = time.perf_counter()
    for _ in range(100):
        parse(text, paths[1].name)
    return seconds, time.perf_counter() - started


def _recheck_once(root: Path) -> list[float]:
    """Seconds to check the large repository again after each of three files changed, cached."""
    from dsl import ParseCache, compile_rules

    repository = Repository(root, files=1000, per_file=10, namespaces=NAMESPACES)
    repository.write()
    paths = sorted(repository.rules.glob("*.ownly"))
    templates = root / "templates"
    cache = ParseCache()
    assert compile_rules(paths, templates_dir=templates, cache=cache).ok
    seconds = []
    for path in paths[1:4]:
        path.write_text(path.read_text().replace("15s", "20s"))
        started = time.perf_counter()
        again = compile_rules(paths, templates_dir=templates, cache=cache)
        seconds.append(time.perf_counter() - started)
        assert again.rule_set is not None
    return seconds


def _median_us(
    func: Callable[[str], object], arg: str, rounds: int = 15, calls: int = 2000
) -> float:
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
    from dsl import Context, compile_rules

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
    if len(samples) == 1:
        return f"{samples[0]:.2f} s"
    return f"{statistics.median(samples):.2f} s ({min(samples):.2f} to {max(samples):.2f})"


def _ms(samples: list[float]) -> str:
    return (
        f"{statistics.median(samples) * 1000:.0f} ms "
        f"({min(samples) * 1000:.0f} to {max(samples) * 1000:.0f})"
    )


def _tree_name(tree: Path) -> str:
    return "this tree" if tree == ROOT else str(tree)


def report(against: Path | None) -> str:
    trees = [ROOT] if against is None else [ROOT, against.resolve()]
    figures = bench_checks(trees)
    rows = bench_match()
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    load = (
        " ".join(Path("/proc/loadavg").read_text().split()[:3]) if sys.platform == "linux" else ""
    )
    lines = [
        f"## bench/dsl.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {platform.platform()}, {machine}, Python {platform.python_version()}"
        + (f"; load average at the end {load}." if load else "."),
        "",
        f"Seconds, median of {RUNS} (range), each run a fresh process"
        + ("; the trees alternated run for run." if against is not None else "."),
        "",
        "| measurement | " + " | ".join(_tree_name(f.tree) for f in figures) + " |",
        "| --- |" + " ---: |" * len(figures),
    ]
    table = [
        ("**`ownly check`, 100 files / 1,000 webhooks, start to exit**", "ownly_check"),
        ("`compile_rules`, 100 files / 1,000 webhooks", "compile_small"),
        ("`compile_rules`, 1,000 files / 10,000 webhooks (goal < 3 s)", "compile_large"),
        ("**re-check, 10,000 webhooks, one file changed, with the cache** (9 edits)", "recheck"),
    ]
    for title, attribute in table:
        cells = " | ".join(_spread(getattr(f, attribute)) for f in figures)
        lines.append(f"| {title} | {cells} |")
    cells = " | ".join(_ms(f.reference) for f in figures)
    lines += [f"| speed reference: one file parsed 100 times after each compile | {cells} |", ""]
    lines += [
        "| subscriptions | match (memoised) | index walk (dict + trie) | match + when | matched |",
        "|---:|---:|---:|---:|---:|",
    ]
    for size, memo, walk, full, matched in rows:
        lines.append(f"| {size:,} | {memo:.2f} µs | {walk:.2f} µs | {full:.1f} µs | {matched} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = results.parser(__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another tree, measured run for run")
    parser.add_argument("--check-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--recheck-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.check_once is not None or args.recheck_once is not None:
        # One run in a process of its own, with the Ownly of `--tree`.
        sys.path.insert(0, str(args.tree))
        if args.check_once is not None:
            print(" ".join(f"{figure:.4f}" for figure in _check_once(args.check_once)))
        else:
            print(" ".join(f"{figure:.4f}" for figure in _recheck_once(args.recheck_once)))
        return
    results.show(report(args.against), record=args.record)


if __name__ == "__main__":
    main()
