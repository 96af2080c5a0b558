"""Work shared with a forked process gives exactly what one process gives.

`compile_rules` parses many files and lowers their webhooks in two processes
(`dsl.parallel`, `dsl.stages`); here a generated rule set, clean or with
deliberate errors in several files at both ends of the list, is compiled both
ways and the outcomes compared: the same diagnostics in the same order, the
same rendering, the same version hash. Then `split_stages` itself.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from dsl import Compilation, ParseCache, compile_rules, parallel, parse, stages
from tests.unit.dsl.support import FILES, write_generated

needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork or one CPU here")


@pytest.fixture(autouse=True)
def _spare_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork whatever else runs on this machine: the results must not depend on it."""
    monkeypatch.setattr(parallel, "spare_cpu", lambda: True)


def _cache(wanted: bool) -> ParseCache | None:
    return ParseCache() if wanted else None


def _both(
    paths: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    cache: bool = False,
    env: dict[str, str] | None = None,
) -> tuple[Compilation, Compilation]:
    """The compilation with a forked child doing part of the work, then without.

    The child parses part of the files, sends what they define, and lowers
    their webhooks: two messages.
    """
    delivered: list[int | None] = []
    receive = parallel._receive

    def spy(pipe: Connection, count: int) -> list[Any] | None:
        result = receive(pipe, count)
        delivered.append(None if result is None else len(result))
        return result

    templates = paths[0].parent / "templates"
    with monkeypatch.context() as patch:
        patch.setattr(parallel, "_receive", spy)
        shared = compile_rules(paths, templates_dir=templates, cache=_cache(cache), env=env)
    assert len(delivered) == 2 and None not in delivered  # the child did not fail
    assert delivered[0] == delivered[1] and (delivered[0] or 0) > 0  # and did chunks of the work
    with monkeypatch.context() as patch:
        patch.setattr(parallel, "can_fork", lambda: False)
        alone = compile_rules(paths, templates_dir=templates, cache=_cache(cache), env=env)
    return shared, alone


@needs_fork
@pytest.mark.parametrize("cache", [False, True])
def test_a_clean_rule_set_compiles_to_the_same_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    paths = write_generated(tmp_path, {})
    shared, alone = _both(paths, monkeypatch, cache)
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
    shared, alone = _both(write_generated(tmp_path, broken), monkeypatch)
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
        # Across the two processes: a name defined at both ends, a const
        # defined at the back and used at the front.
        FILES - 3: lambda t: t.replace(f"webhook hook_{(FILES - 3) * 4} ", "webhook hook_12 ", 1),
        1: lambda t: t.replace(">= 4 and", ">= LATE and", 1),
        FILES - 4: lambda t: t + "\nconst LATE = 5\n",
    }
    env = {f"HOOK_SECRET_{n}": "x" for n in range(4)}
    shared, alone = _both(write_generated(tmp_path, broken), monkeypatch, env=env)
    assert shared.rule_set is None
    assert len({d.span.file for d in shared.errors}) == len(broken) - 2  # LATE is fine
    assert {"E011", "E054", "E020", "E010", "E043", "E056"} <= {d.code for d in shared.errors}
    assert [d.code for d in shared.warnings] == ["W102"]  # UNUSED; LIMIT is used
    assert shared.diagnostics == alone.diagnostics
    assert shared.render() == alone.render()


@needs_fork
def test_the_parse_cache_gets_the_trees_the_child_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_generated(tmp_path, {})
    cache = ParseCache()
    templates = tmp_path / "templates"
    compile_rules(paths, templates_dir=templates, cache=cache)
    for path in paths:
        text = path.read_text()
        assert cache.get(text, str(path)) == parse(text, str(path))
    monkeypatch.setattr(stages, "parse", None)  # nothing left to parse
    monkeypatch.setattr(stages, "lower_webhook", None)  # nor to lower: the child's came back
    assert compile_rules(paths, templates_dir=templates, cache=cache).ok


def test_lowered_webhooks_cross_the_pipe_unchanged(tmp_path: Path) -> None:
    paths = write_generated(tmp_path, {})
    sources = [(i, path.read_text(), str(path)) for i, path in enumerate(paths)]
    work = stages.file_stages(None, unreadable=False)
    parsed = work.first(sources)
    done = work.second(work.middle([parsed]), parsed)
    [lowered] = done.lowered
    assert len(lowered.webhooks) == FILES * 4
    assert pickle.loads(pickle.dumps(lowered)) == lowered  # noqa: S301
