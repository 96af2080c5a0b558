"""Recompiling with a `ParseCache` redoes only what changed, and gives what a cold compile gives.

The engine keeps one cache across reloads. After a change to one file of
webhooks, only that file is parsed and its webhooks lowered again; after a
change that reaches other files' webhooks (an event's fields, a const, a
webhook name taken by an earlier file), those are lowered again too. Every
outcome is compared with a compilation without a cache: the same version, the
same compiled JSON, the same diagnostics.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dsl import Compilation, ParseCache, ast, compile_rules, stages
from tests.unit.dsl.support import write_generated

FILES = 12


class _Counting:
    """`stages.lower_webhook`, counting the webhooks it lowers by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        lower = stages.lower_webhook

        def counted(low: object, node: ast.WebhookDef) -> object:
            self.names.append(node.name)
            return lower(low, node)  # type: ignore[arg-type]

        monkeypatch.setattr(stages, "lower_webhook", counted)

    def take(self) -> list[str]:
        names, self.names = self.names, []
        return sorted(names)


def _compile(paths: list[Path], cache: ParseCache | None) -> Compilation:
    return compile_rules(paths, templates_dir=paths[0].parent / "templates", cache=cache)


def _same_as_cold(paths: list[Path], warm: Compilation, counting: _Counting) -> None:
    cold = _compile(paths, None)
    counting.take()  # what the cold compile lowered
    assert warm.diagnostics == cold.diagnostics
    if cold.rule_set is None:
        assert warm.rule_set is None
        return
    assert warm.rule_set is not None
    assert warm.rule_set.version == cold.rule_set.version
    assert warm.rule_set.to_json() == cold.rule_set.to_json()


def _edit(path: Path, change: Callable[[str], str]) -> None:
    text = path.read_text()
    path.write_text(change(text))
    assert path.read_text() != text


def _hooks(*files: int) -> list[str]:
    return sorted(f"hook_{f * 4 + i}" for f in files for i in range(4))


@pytest.fixture
def warm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Path], ParseCache, _Counting]:
    paths = write_generated(tmp_path, {}, FILES)
    cache = ParseCache()
    counting = _Counting(monkeypatch)
    assert _compile(paths, cache).ok
    assert counting.take() == _hooks(*range(FILES))
    return paths, cache, counting


def test_nothing_changed_lowers_nothing(warm: tuple[list[Path], ParseCache, _Counting]) -> None:
    paths, cache, counting = warm
    again = _compile(paths, cache)
    assert counting.take() == []
    _same_as_cold(paths, again, counting)


def test_a_changed_file_of_webhooks_is_lowered_alone(
    warm: tuple[list[Path], ParseCache, _Counting],
) -> None:
    paths, cache, counting = warm
    _edit(paths[5], lambda t: t.replace("hooks.example.com/17", "hooks.example.org/17"))
    changed = _compile(paths, cache)
    assert counting.take() == _hooks(4)  # rules_004.ownly, the fifth path after the catalog
    assert changed.rule_set is not None
    assert "https://hooks.example.org/17" in changed.rule_set.to_json()
    _same_as_cold(paths, changed, counting)


@pytest.mark.parametrize(
    ("old", "new", "codes"),
    [
        # `amount` leaves ns0.created: hook_0 and hook_24, on that type alone, now fail.
        ("id: string\n  amount: decimal", "id: string", ["E012", "E012"]),
        # hook_7 compares an amount to LIMIT, now a string.
        ("const LIMIT = 100", 'const LIMIT = "100"', ["E020"]),
        ("const UNUSED = 1", "const UNUSED = 2", []),
    ],
    ids=["event", "const", "unused const"],
)
def test_a_changed_event_or_const_lowers_every_webhook_again(
    warm: tuple[list[Path], ParseCache, _Counting], old: str, new: str, codes: list[str]
) -> None:
    paths, cache, counting = warm
    _edit(paths[0], lambda t: t.replace(old, new, 1))
    changed = _compile(paths, cache)
    assert counting.take() == _hooks(*range(FILES))
    assert [d.code for d in changed.errors] == codes
    _same_as_cold(paths, changed, counting)


def test_a_name_taken_by_an_earlier_file_reaches_the_later_unchanged_one(
    warm: tuple[list[Path], ParseCache, _Counting],
) -> None:
    paths, cache, counting = warm
    # rules_002 now defines hook_40 first; rules_010's own hook_40 is a duplicate.
    _edit(paths[3], lambda t: t.replace("webhook hook_8 ", "webhook hook_40 ", 1))
    changed = _compile(paths, cache)
    # rules_002's, and rules_010's but its first (now a duplicate)
    assert counting.take() == sorted(["hook_40", "hook_9", "hook_10", "hook_11", *_hooks(10)[1:]])
    assert [(d.code, d.span.file) for d in changed.errors] == [("E010", str(paths[11]))]
    _same_as_cold(paths, changed, counting)
    _edit(paths[3], lambda t: t.replace("webhook hook_40 ", "webhook hook_8 ", 1))
    restored = _compile(paths, cache)
    assert counting.take() == _hooks(2, 10)  # the cache kept rules_002's latest text only
    _same_as_cold(paths, restored, counting)
