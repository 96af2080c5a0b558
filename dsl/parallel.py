"""Sharing two stages of work over many items with one forked process, where a core is spare.

`split_stages(stages, items)` cuts `items` into consecutive chunks. Both
processes run the first stage over chunks, a child forked for it taking them
from the front and this one from the back, until they meet; each keeps what
it made. They then trade slimmed copies of their chunks' results
(`Stages.slim`), so that each can compute the same `middle` from every chunk
in order, and each runs the second stage over its own chunks; the child
sends back those second results, pickled. A cold check of a large rule set
works this way: both processes parse files, learn every file's definitions
(all but the webhooks' bodies), build the catalog, then lower the webhooks
of the files they parsed, so the syntax trees of the webhooks never cross
the pipe, only the lowered webhooks do.

The stages must be pure functions of their inputs with picklable results:
whatever they change in the child is lost. `middle` must give the same
result from a chunk's slimmed result as from the whole one (it is computed
from slimmed copies of the other process's chunks). Anything raised in the
child, or any failure of the child itself, makes this process do the
child's chunks too, so the outcome is the same in every case (that of one
chunk holding all the items without a child), for a caller that combines
the results in order. There is no child where fork is not the way
processes start (Windows; macOS defaults to spawn, which would import
everything again), on one CPU, for few items, while other threads run (a
fork copies only the calling thread, and a lock another thread holds at
that moment would never be released in the child), and while every other
CPU is running something already: sharing a busy core made a cold check
slower (6.3 s alone, 8.9 s split, with a benchmark running on the other
core).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

__all__ = ["CHUNKS", "MIN_ITEMS", "Stages", "can_fork", "spare_cpu", "split_stages"]

_T = TypeVar("_T")
_R = TypeVar("_R")
_M = TypeVar("_M")
_Q = TypeVar("_Q")

# Below this, forking and pickling cost more than the child saves.
MIN_ITEMS = 64
# Items are shared out in about this many chunks: the two processes finish
# the first stage within one chunk of each other.
CHUNKS = 64


@dataclass(frozen=True, slots=True)
class Stages(Generic[_T, _R, _M, _Q]):
    """The work `split_stages` shares: per chunk, then over all chunks, then per chunk again."""

    first: Callable[[Sequence[_T]], _R]  # a chunk's first result, kept where it is made
    slim: Callable[[_R], _R]  # what of a first result the other process needs
    middle: Callable[[list[_R]], _M]  # from every chunk's first result, in order
    second: Callable[[_M, _R], _Q]  # a chunk's second result, made where its first one is


def can_fork() -> bool:
    """Whether `split_stages` may fork here: Linux, two CPUs or more, no other thread."""
    if not sys.platform.startswith("linux") or threading.active_count() > 1:
        return False
    return len(os.sched_getaffinity(0)) > 1


def spare_cpu(samples: int = 3) -> bool:
    """Whether a CPU is idle now, by the kernel's count of runnable tasks (this one included).

    The count in /proc/loadavg is of this instant, so it is read a few times
    a millisecond apart: a busy process is runnable at every reading.
    """
    cpus = len(os.sched_getaffinity(0))
    for _ in range(samples):
        try:
            with open("/proc/loadavg", encoding="ascii") as stats:
                running = int(stats.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return True
        if running < cpus:
            return True
        time.sleep(0.001)
    return False


def split_stages(
    stages: Stages[_T, _R, _M, _Q],
    items: Sequence[_T],
    *,
    minimum: int = MIN_ITEMS,
    work: int | None = None,
) -> tuple[_M, list[_Q]]:
    """The middle result and a second result per chunk of `items`, some made by a forked child.

    Without a child there is one chunk: `first(items)`, `middle([first])`
    and `[second(middle, first)]`. The child takes the front: this process
    has work left after the second stage (combining), so the child should end
    it first, and a rule set's catalog, which makes no webhooks to lower in
    the second stage, usually sorts first (`catalog.ownly`). `work`: how
    many items need the stages' real work, when not all do (the others are
    cached): with fewer than `minimum`, there is no child either.
    """
    if (len(items) if work is None else work) < minimum or not can_fork() or not spare_cpu():
        return _alone(stages, [items])
    size = -(-len(items) // CHUNKS)
    chunks = [items[at : at + size] for at in range(0, len(items), size)]
    try:
        context = multiprocessing.get_context("fork")
        bounds = context.Array("i", [0, len(chunks)])  # next from the front, end of the rest
        here, there = context.Pipe(duplex=True)
        args = (stages, chunks, bounds, there)
        child = context.Process(target=_child, args=args, daemon=True)
        child.start()
    except Exception:  # no fork, no pipe, out of processes, inside a daemonic process
        return _alone(stages, [items])
    there.close()
    try:
        return _parent(stages, chunks, bounds, here, child)
    except BaseException:
        child.kill()
        raise
    finally:
        here.close()
        child.join()


def _alone(stages: Stages[_T, _R, _M, _Q], chunks: Sequence[Sequence[_T]]) -> tuple[_M, list[_Q]]:
    return _finish(stages, [stages.first(chunk) for chunk in chunks])


def _finish(stages: Stages[_T, _R, _M, _Q], firsts: list[_R]) -> tuple[_M, list[_Q]]:
    """The middle and second stages here, over every chunk's first result."""
    middle = stages.middle(firsts)
    return middle, [stages.second(middle, first) for first in firsts]


def _parent(
    stages: Stages[_T, _R, _M, _Q],
    chunks: list[Sequence[_T]],
    bounds: Any,
    pipe: Connection,
    child: BaseProcess,
) -> tuple[_M, list[_Q]]:
    mine: list[_R] = []
    while (index := _claim(bounds, front=False)) is not None:
        mine.append(stages.first(chunks[index]))
    mine.reverse()  # in the order of the chunks
    # The child took chunks from the front: the ones before where this process stopped.
    rest = chunks[: len(chunks) - len(mine)]
    theirs: list[_R] | None = _receive(pipe, len(rest))
    if theirs is None:
        return _finish(stages, [*(stages.first(chunk) for chunk in rest), *mine])
    with contextlib.suppress(OSError):
        pipe.send_bytes(_dumps([stages.slim(first) for first in mine]))
    middle = stages.middle([*theirs, *mine])
    done = [stages.second(middle, first) for first in mine]
    seconds: list[_Q] | None = _receive(pipe, len(rest))
    if seconds is None:
        seconds = [stages.second(middle, stages.first(chunk)) for chunk in rest]
    return middle, [*seconds, *done]


def _claim(bounds: Any, *, front: bool) -> int | None:
    """The index of the next chunk to do, from the front or the back; None when all are taken."""
    with bounds.get_lock():
        first, end = bounds[0], bounds[1]
        if first >= end:
            return None
        if front:
            bounds[0] = first + 1
            return int(first)
        bounds[1] = end - 1
        return int(end - 1)


def _child(
    stages: Stages[_T, _R, _M, _Q], chunks: list[Sequence[_T]], bounds: Any, pipe: Connection
) -> None:
    """Take chunks from the front; trade slimmed results; send the second results in order.

    An empty message tells the parent the child failed: it does the work again.
    """
    try:
        mine: list[_R] = []
        while (index := _claim(bounds, front=True)) is not None:
            mine.append(stages.first(chunks[index]))
        pipe.send_bytes(_dumps([stages.slim(first) for first in mine]))
        theirs = pickle.loads(pipe.recv_bytes())  # noqa: S301 - from the parent
        middle = stages.middle([*mine, *theirs])
        payload = _dumps([stages.second(middle, first) for first in mine])
    except BaseException:  # the parent does the work again and sees why
        payload = b""
    with contextlib.suppress(OSError):
        pipe.send_bytes(payload)
    pipe.close()


def _dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _receive(pipe: Connection, count: int) -> list[Any] | None:
    """A list of `count` results from the child, or None when it failed."""
    try:
        payload = pipe.recv_bytes()
        results = pickle.loads(payload) if payload else None  # noqa: S301 - from the child
    except Exception:  # a dead child or a bad payload: redo the work here
        return None
    if not isinstance(results, list) or len(results) != count:
        return None
    return results
