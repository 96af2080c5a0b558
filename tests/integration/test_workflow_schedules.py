"""`on schedule`: each wall-clock slot once, across a DST change and a restart."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from engine.core.clock import ManualClock
from tests.support.inprocess import running_engine
from tests.support.receiver import Receiver
from tests.support.rules import ROOT
from tests.support.workflows import caught_up, jump, runs_of

DAILY = """
workflow daily {
  on schedule "30 2 * * *" timezone "America/New_York"
  set slot = event.time
}
"""


async def test_each_slot_runs_once_across_a_dst_change_and_a_restart(tmp_path: Path) -> None:
    # 2026-03-08 02:30 does not exist in New York: the clock goes from 02:00 to 03:00.
    clock = ManualClock(datetime(2026, 3, 6, 12, tzinfo=UTC))
    async with running_engine(tmp_path, DAILY, {}, clock=clock) as engine:
        for _ in range(4 * 24):  # to 2026-03-10 12:00 UTC, an hour at a time
            await jump(engine, 3600)
            await caught_up(engine)
        slots = [r.output["slot"] for r in await runs_of(engine)]
    # 02:30 EST is 07:30Z, 02:30 EDT 06:30Z; the 8th's, in the gap, fires at the old offset.
    assert slots == [
        "2026-03-07T07:30:00Z",
        "2026-03-08T07:30:00Z",
        "2026-03-09T06:30:00Z",
        "2026-03-10T06:30:00Z",
    ]
    # Down for three days: the slots missed meanwhile make one run at start, not three.
    clock.advance(3 * 86400)
    async with running_engine(tmp_path, DAILY, {}, clock=clock) as engine:
        await caught_up(engine)
        for _ in range(24):
            await jump(engine, 3600)
            await caught_up(engine)
        runs = await runs_of(engine)
    slots = [r.output["slot"] for r in runs]
    assert slots[4:] == ["2026-03-11T06:30:00Z", "2026-03-14T06:30:00Z"]
    assert [r.status for r in runs] == ["completed"] * 6


async def test_the_shipped_digest_posts_on_weekday_mornings_in_new_york(tmp_path: Path) -> None:
    shipped = (ROOT / "rules" / "workflows.ownly").read_text(encoding="utf-8")
    found = re.search(r"workflow ops_daily_digest \{.*?\n\}\n", shipped, re.S)
    assert found is not None
    # Friday 2 January 2026, noon UTC: 08:00 in New York is 13:00Z.
    clock = ManualClock(datetime(2026, 1, 2, 12, tzinfo=UTC))
    with Receiver() as receiver:
        env = {"OPS_DIGEST_URL": receiver.url + "/digest"}
        async with running_engine(tmp_path, found.group(0), env, clock=clock) as engine:
            for _ in range(4 * 24):  # to Tuesday noon
                await jump(engine, 3600)
                await caught_up(engine)
            runs = await runs_of(engine)
        requests = receiver.snapshot()
    # Friday's and Monday's mornings; not Saturday's or Sunday's.
    assert [r.output for r in runs] == [{}, {}]
    assert [r.created_at for r in runs] == [
        datetime(2026, 1, 2, 13, tzinfo=UTC),
        datetime(2026, 1, 5, 13, tzinfo=UTC),
    ]
    assert [json.loads(r.body) for r in requests] == [{"kind": "daily_digest"}] * 2
    assert [r.headers["Idempotency-Key"] for r in requests] == [f"{r.id}:s1" for r in runs]
