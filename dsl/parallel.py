"""Sharing the work over many items with one forked process, where a core is spare.

`split_work(work, items)` runs `work` over the tail of `items` in a child
process forked for it, which sends its result back pickled, while this
process runs `work` over the head; it returns both results, head first. A
cold check of a large rule set parses its files this way, and lowers its
webhooks: the child inherits the parser's tables, the file texts and the
checked definitions, so only what it made crosses the pipe, and loading
that is several times cheaper than making it.

`work` must be a pure function of its items with a picklable result:
whatever it changes in the child is lost. Anything it raises in the child,
or any failure of the child itself, makes this process do the tail too, so
the outcome is the same in every case, `[work(items)]` or
`[work(head), work(tail)]`, for a caller that combines the two. There is no
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
from typing import TypeVar

__all__ = ["MIN_ITEMS", "can_fork", "spare_cpu", "split_work"]

_T = TypeVar("_T")
_R = TypeVar("_R")

# Below this, forking and pickling cost more than the child saves.
MIN_ITEMS = 64


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
    work: Callable[[Sequence[_T]], _R],
    items: Sequence[_T],
    *,
    share: float = 0.5,
    minimum: int = MIN_ITEMS,
) -> list[_R]:
    """`[work(items)]`, or `[work(head), work(tail)]` with the tail done by a forked child.

    `share` is the head's part of the items: this process also loads what the
    child sends, so it should take a little more than half.
    """
    if len(items) < minimum or not can_fork() or not spare_cpu():
        return [work(items)]
    cut = round(len(items) * share)
    head, tail = items[:cut], items[cut:]
    try:
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(work, tail, sender), daemon=True)
        child.start()
    except (OSError, ValueError):  # no fork, no pipe, out of processes
        return [work(items)]
    sender.close()
    theirs: tuple[_R] | None = None
    try:
        mine = work(head)
    except BaseException:
        child.kill()
        raise
    finally:
        theirs = _receive(receiver, child)
    return [mine, theirs[0] if theirs is not None else work(tail)]


def _child(work: Callable[[Sequence[_T]], _R], items: Sequence[_T], out: Connection) -> None:
    try:
        payload = pickle.dumps((work(items),), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # the parent does the work again and sees why
        payload = b""
    with contextlib.suppress(OSError):
        out.send_bytes(payload)
    out.close()


def _receive(receiver: Connection, child: multiprocessing.process.BaseProcess) -> tuple[_R] | None:
    """The child's result in a 1-tuple, or None when it failed (then the caller does its items)."""
    try:
        payload = receiver.recv_bytes()
        results: tuple[_R] | None = pickle.loads(payload) if payload else None  # noqa: S301
    except Exception:  # a dead child or a bad payload: redo the work here
        results = None
    finally:
        receiver.close()
        child.join()
    return results
