"""Sharing the work over many items with one forked process, where a core is spare.

`split_work(work, items)` cuts `items` into consecutive chunks and runs
`work` over them in this process, taking chunks from the front, and in a
child process forked for it, taking them from the back, until the two meet;
the child sends its results back pickled. It returns the result of each
chunk, in order. A cold check of a large rule set parses its files this
way, and lowers its webhooks: the child inherits the parser's tables, the
file texts and the checked definitions, so only what it made crosses the
pipe, and loading that is several times cheaper than making it.

`work` must be a pure function of its items with a picklable result:
whatever it changes in the child is lost. Anything it raises in the child,
or any failure of the child itself, makes this process do the child's chunks
too, so the outcome is the same in every case (`[work(items)]` without a
child), for a caller that combines the results in order. There is no
child where fork is not the way processes start (Windows; macOS defaults to
spawn, which would import everything again), on one CPU, for few items,
while other threads run (a fork copies only the calling thread, and a lock
another thread holds at that moment would never be released in the child),
and while every other CPU is running something already: sharing a busy core
made a cold check slower (6.3 s alone, 8.9 s split, with a benchmark running
on the other core).
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
from multiprocessing.connection import Connection
from typing import Any, TypeVar

__all__ = ["CHUNKS", "MIN_ITEMS", "can_fork", "spare_cpu", "split_work"]

_T = TypeVar("_T")
_R = TypeVar("_R")

# Below this, forking and pickling cost more than the child saves.
MIN_ITEMS = 64
# Items are shared out in about this many chunks: the two processes finish
# within one chunk of each other.
CHUNKS = 64


def can_fork() -> bool:
    """Whether `split_work` may fork here: Linux, two CPUs or more, no other thread."""
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


def split_work(
    work: Callable[[Sequence[_T]], _R], items: Sequence[_T], *, minimum: int = MIN_ITEMS
) -> list[_R]:
    """`work` over consecutive chunks of `items`, some done by a forked child: a result per chunk.

    This process takes chunks from the front, the child from the back, until
    they meet, so a core that runs slower (or is shared) does less. Without a
    child the result is `[work(items)]`.
    """
    if len(items) < minimum or not can_fork() or not spare_cpu():
        return [work(items)]
    size = -(-len(items) // CHUNKS)
    chunks = [items[at : at + size] for at in range(0, len(items), size)]
    try:
        context = multiprocessing.get_context("fork")
        bounds = context.Array("i", [0, len(chunks)])  # next from the front, end of the rest
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(work, chunks, bounds, sender), daemon=True)
        child.start()
    except Exception:  # no fork, no pipe, out of processes, inside a daemonic process
        return [work(items)]
    sender.close()
    mine: list[_R] = []
    theirs: list[bytes] | None = None
    try:
        while (index := _claim(bounds, front=True)) is not None:
            mine.append(work(chunks[index]))
    except BaseException:
        child.kill()
        raise
    finally:
        theirs = _receive(receiver, child)
    # The child took chunks from the back: the ones from where this process stopped.
    rest = chunks[len(mine) :]
    if theirs is None or len(theirs) != len(rest):
        return [*mine, *(work(chunk) for chunk in rest)]
    return [*mine, *(pickle.loads(part) for part in reversed(theirs))]  # noqa: S301


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
    work: Callable[[Sequence[_T]], _R], chunks: list[Sequence[_T]], bounds: Any, out: Connection
) -> None:
    done: list[bytes] = []
    try:
        while (index := _claim(bounds, front=False)) is not None:
            done.append(pickle.dumps(work(chunks[index]), protocol=pickle.HIGHEST_PROTOCOL))
        payload = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent does the work again and sees why
        payload = b""
    with contextlib.suppress(OSError):
        out.send_bytes(payload)
    out.close()


def _receive(
    receiver: Connection, child: multiprocessing.process.BaseProcess
) -> list[bytes] | None:
    """The pickled result of each chunk the child did, or None when it failed."""
    try:
        payload = receiver.recv_bytes()
        results: list[bytes] | None = pickle.loads(payload) if payload else None  # noqa: S301
    except Exception:  # a dead child or a bad payload: redo the work here
        results = None
    finally:
        receiver.close()
        child.join()
    return results
