"""`split_stages`: the same outcome with a child as without, whatever the child does.

The stages here keep each chunk's items with a marker that `slim` drops, so
a test sees which results crossed to the other process slimmed: `middle`
must do without the marker, `second` must have it (its chunk's own result).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from multiprocessing.process import BaseProcess

import pytest

from dsl import parallel
from dsl.parallel import Stages

needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="no fork or one CPU here")
ITEMS = list(range(parallel.CHUNKS * 4))

# A chunk's first result: its items' squares and the process that made it
# (None once slimmed for the other process).
_First = tuple[list[int], int | None]


@pytest.fixture(autouse=True)
def _spare_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "spare_cpu", lambda: True)


def _first(items: Sequence[int]) -> _First:
    return [item * item for item in items], os.getpid()


def _slim(first: _First) -> _First:
    return first[0], None


def _middle(firsts: list[_First]) -> int:
    return sum(sum(squares) for squares, _ in firsts)


def _second(middle: int, first: _First) -> list[tuple[int, int]]:
    squares, made_by = first
    assert made_by == os.getpid()  # a chunk's second stage runs where its first one did
    return [(square, middle) for square in squares]


_Stages = Stages[int, _First, int, list[tuple[int, int]]]
STAGES: _Stages = Stages(_first, _slim, _middle, _second)
TOTAL = sum(item * item for item in ITEMS)
EXPECTED = [(item * item, TOTAL) for item in ITEMS]


def _flat(parts: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    return [pair for part in parts for pair in part]


def _in_child(parent: int, stage: str, fail: bool = True) -> _Stages:
    """The test stages, with `stage` failing (or slow) in the child only."""

    def check(name: str) -> None:
        if name == stage and os.getpid() != parent:
            if not fail:
                time.sleep(0.002)
            elif name == "second":
                os._exit(3)  # the child dies without a word
            else:
                raise RuntimeError("only in the child")

    def first(items: Sequence[int]) -> _First:
        check("first")
        return _first(items)

    def second(middle: int, made: _First) -> list[tuple[int, int]]:
        check("second")
        return _second(middle, made)

    def middle(firsts: list[_First]) -> int:
        check("middle")
        return _middle(firsts)

    return Stages(first, _slim, middle, second)


@needs_fork
def test_both_processes_share_the_chunks_and_the_order_is_kept() -> None:
    middle, parts = parallel.split_stages(STAGES, ITEMS)
    assert middle == TOTAL
    assert len(parts) == parallel.CHUNKS
    assert _flat(parts) == EXPECTED


@needs_fork
@pytest.mark.parametrize("stage", ["first", "second"])
def test_a_slow_child_changes_nothing(stage: str) -> None:
    middle, parts = parallel.split_stages(_in_child(os.getpid(), stage, fail=False), ITEMS)
    assert middle == TOTAL and _flat(parts) == EXPECTED


@needs_fork
@pytest.mark.parametrize("stage", ["first", "middle", "second"])
def test_a_failing_child_leaves_the_work_to_this_process(stage: str) -> None:
    middle, parts = parallel.split_stages(_in_child(os.getpid(), stage), ITEMS)
    assert middle == TOTAL and _flat(parts) == EXPECTED


@needs_fork
def test_a_child_that_cannot_start_leaves_the_work_to_this_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: BaseProcess) -> None:
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(BaseProcess, "start", refuse)
    assert parallel.split_stages(STAGES, ITEMS) == (TOTAL, [EXPECTED])


def test_a_busy_machine_gets_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "spare_cpu", lambda: False)
    assert parallel.split_stages(STAGES, ITEMS) == (TOTAL, [EXPECTED])


def test_few_items_are_not_worth_a_child() -> None:
    items = [1, 2, 3]
    assert parallel.split_stages(STAGES, items) == (14, [[(1, 14), (4, 14), (9, 14)]])


@needs_fork
def test_spare_cpu_reads_the_kernel_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert isinstance(parallel.spare_cpu(), bool)


@needs_fork
def test_an_error_in_this_process_propagates() -> None:
    # In `middle`, which this process always runs: under load the child may
    # take every chunk, leaving this process no `first` or `second` to run.
    parent = os.getpid()

    def middle(firsts: list[_First]) -> int:
        if os.getpid() == parent:
            raise ValueError("here")
        return _middle(firsts)

    with pytest.raises(ValueError, match="here"):
        parallel.split_stages(Stages(_first, _slim, middle, _second), ITEMS)
