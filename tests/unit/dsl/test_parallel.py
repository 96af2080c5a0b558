"""Work shared with a forked process gives exactly what one process gives.

`compile_rules` parses many files in two processes (`dsl.parallel`); here a
generated rule set, clean or with deliberate errors in several files at both
ends of the list, is compiled both ways and the outcomes compared: the same
diagnostics in the same order, the same rendering, the same version hash.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from dsl import Compilation, ParseCache, compile_rules, parallel

FILES = 120
TYPES = [f"ns{n}.{verb}" for n in range(8) for verb in ("created", "closed", "funded")]

SPARE_CPU = parallel.spare_cpu  # before the fixture below replaces it
needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork or one CPU here")


@pytest.fixture(autouse=True)
def _spare_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork whatever else runs on this machine: the results must not depend on it."""
    monkeypatch.setattr(parallel, "spare_cpu", lambda: True)


def _catalog() -> str:
    events = "".join(
        f'event {name} {{\n  id: string\n  amount: decimal\n  status: "a" | "b"\n}}\n'
        for name in TYPES
    )
    return events + "const LIMIT = 100\nconst UNUSED = 1\n"


def _webhook(index: int) -> str:
    events = ", ".join(TYPES[(index + k) % len(TYPES)] for k in range(1 + index % 3))
    least = "LIMIT" if index % 50 == 7 else str(index)
    return (
        f"# hook {index}\n"
        f"webhook hook_{index} {{\n"
        f'  url    = "https://hooks.example.com/{index}"\n'
        f'  secret = env("HOOK_SECRET_{index % 4}")\n'
        f"  events = [{events}]\n"
        f'  when     event.data.amount >= {least} and event.data.status == "a"\n'
        "  retry    3 times, exponential 5s .. 1h\n"
        "  timeout  15s\n"
        "}\n"
    )


def _write(root: Path, broken: dict[int, Callable[[str], str]]) -> list[Path]:
    (root / "templates").mkdir()
    (root / "catalog.ownly").write_text(_catalog())
    paths = [root / "catalog.ownly"]
    for f in range(FILES):
        text = "\n".join(_webhook(f * 4 + i) for i in range(4))
        path = root / f"rules_{f:03d}.ownly"
        path.write_text(broken[f](text) if f in broken else text)
        paths.append(path)
    return paths


def _cache(wanted: bool) -> ParseCache | None:
    return ParseCache() if wanted else None


def _both(
    paths: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    cache: bool = False,
    forks: int = 2,
    env: dict[str, str] | None = None,
) -> tuple[Compilation, Compilation]:
    """The compilation with forked children doing part of the work, then without.

    A child parses part of the files, and if they parse, another lowers part
    of the webhooks.
    """
    delivered: list[int | None] = []
    receive = parallel._receive

    def spy(receiver: Connection, child: BaseProcess) -> list[bytes] | None:
        result = receive(receiver, child)
        delivered.append(None if result is None else len(result))
        return result

    templates = paths[0].parent / "templates"
    with monkeypatch.context() as patch:
        patch.setattr(parallel, "_receive", spy)
        shared = compile_rules(paths, templates_dir=templates, cache=_cache(cache), env=env)
    assert len(delivered) == forks and None not in delivered  # no child failed
    assert sum(n or 0 for n in delivered) > 0  # and they did chunks of the work
    with monkeypatch.context() as patch:
        patch.setattr(parallel, "can_fork", lambda: False)
        alone = compile_rules(paths, templates_dir=templates, cache=_cache(cache), env=env)
    return shared, alone


@needs_fork
@pytest.mark.parametrize("cache", [False, True])
def test_a_clean_rule_set_compiles_to_the_same_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    shared, alone = _both(_write(tmp_path, {}), monkeypatch, cache)
    assert shared.rule_set is not None and alone.rule_set is not None
    assert shared.rule_set.version == alone.rule_set.version
    assert shared.rule_set.to_json() == alone.rule_set.to_json()
    assert shared.diagnostics == alone.diagnostics
    assert shared.sources == alone.sources


@needs_fork
def test_syntax_errors_in_several_files_are_reported_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken: dict[int, Callable[[str], str]] = {
        0: lambda t: t.replace("timeout  15s", "timeout  15s 3", 1),
        7: lambda t: t.replace("webhook hook_29 {", "webhook hook_29 {{", 1),
        61: lambda t: t + "\nwebhook {\n}\n",
        90: lambda t: t.replace('"https', "'https", 1),
        FILES - 1: lambda t: t.replace("5s .. 1h", "5s ... 1h", 1),
    }
    shared, alone = _both(_write(tmp_path, broken), monkeypatch, forks=1)
    assert shared.rule_set is None
    assert len(shared.diagnostics) == len(broken)
    assert shared.diagnostics == alone.diagnostics
    assert shared.render() == alone.render()


@needs_fork
def test_check_errors_in_several_files_are_reported_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken: dict[int, Callable[[str], str]] = {
        2: lambda t: t.replace("ns2.funded", "ns2.fundd"),
        40: lambda t: t.replace("https://", "ftp://", 1),
        77: lambda t: t.replace(">= 308 and", '>= "308" and', 1),
        100: lambda t: t.replace("webhook hook_401", "webhook hook_400", 1),
        FILES - 2: lambda t: t.replace("15s", "3h", 2),
        FILES - 1: lambda t: t.replace('env("HOOK_SECRET_3")', 'env("HOOK_SECRET_9")', 1),
    }
    env = {f"HOOK_SECRET_{n}": "x" for n in range(4)}
    shared, alone = _both(_write(tmp_path, broken), monkeypatch, env=env)
    assert shared.rule_set is None
    assert len({d.span.file for d in shared.errors}) == len(broken)
    assert {"E011", "E054", "E020", "E010", "E043", "E056"} <= {d.code for d in shared.errors}
    assert [d.code for d in shared.warnings] == ["W102"]  # UNUSED; LIMIT is used
    assert shared.diagnostics == alone.diagnostics
    assert shared.render() == alone.render()


def _squares(items: Sequence[int]) -> list[int]:
    return [item * item for item in items]


def _fails_in_the_child(parent: int) -> Callable[[Sequence[int]], list[int]]:
    def work(items: Sequence[int]) -> list[int]:
        if os.getpid() != parent:
            raise RuntimeError("only in the child")
        return _squares(items)

    return work


def _flat(parts: list[list[int]]) -> list[int]:
    return [item for part in parts for item in part]


@needs_fork
@pytest.mark.parametrize("slow", ["parent", "child", None])
def test_split_work_keeps_the_order_of_the_items(slow: str | None) -> None:
    parent = os.getpid()

    def work(items: Sequence[int]) -> list[int]:
        if slow == ("parent" if os.getpid() == parent else "child"):
            time.sleep(0.002)
        return _squares(items)

    items = list(range(parallel.CHUNKS * 16))
    parts = parallel.split_work(work, items)
    assert len(parts) == parallel.CHUNKS
    assert _flat(parts) == _squares(items)


@needs_fork
def test_a_failing_child_leaves_the_work_to_this_process() -> None:
    items = list(range(200))
    parts = parallel.split_work(_fails_in_the_child(os.getpid()), items)
    assert _flat(parts) == _squares(items)


@needs_fork
def test_a_child_that_cannot_start_leaves_the_work_to_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: BaseProcess) -> None:
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(BaseProcess, "start", refuse)
    items = list(range(100))
    assert parallel.split_work(_squares, items) == [_squares(items)]


def test_a_busy_machine_gets_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "spare_cpu", lambda: False)
    assert parallel.split_work(_squares, list(range(100))) == [_squares(list(range(100)))]


@needs_fork
def test_spare_cpu_reads_the_kernel_count() -> None:
    assert isinstance(SPARE_CPU(), bool)


def test_few_items_are_not_worth_a_child() -> None:
    def work(items: Sequence[int]) -> list[int]:
        assert len(items) == 3
        return _squares(items)

    assert parallel.split_work(work, [1, 2, 3]) == [[1, 4, 9]]


@needs_fork
def test_an_error_in_this_process_propagates() -> None:
    parent = os.getpid()

    def work(items: Sequence[int]) -> list[int]:
        if os.getpid() == parent:
            raise ValueError("here")
        return _squares(items)

    with pytest.raises(ValueError, match="here"):
        parallel.split_work(work, list(range(100)))
