"""Workflow options: concurrency per key, debounce, dedup, cancel on, timeout; retry_from,
parallel and fail; runs pinned to their rule-set version."""

from __future__ import annotations

import itertools
from pathlib import Path

from engine.runtime import Engine
from tests.support.inprocess import drive, events_of_type, idle_for, running_engine
from tests.support.workflows import all_ended, jumping, post, runs_of, steps_of, uploaded

SERIAL = """
workflow serial {
  on document.uploaded
  concurrency 1 per event.data.owner_id
  wait 1h
  set owner = event.data.owner_id
}
"""


async def test_concurrency_per_key_runs_one_at_a_time_in_order(tmp_path: Path) -> None:
    async with running_engine(tmp_path, SERIAL, {}) as engine:
        for n in range(50):
            await post(
                engine, f"evt_{n}", "document.uploaded", uploaded(f"doc_{n}", f"usr_{n % 5}")
            )
        runs = await runs_of(engine)
        assert len(runs) == 50
        assert sum(r.status != "queued" for r in runs) == 5  # one per key
        await jumping(engine, all_ended(engine, 50), 3600)
        runs = await runs_of(engine)
        assert {r.status for r in runs} == {"completed"}
        for key in range(5):
            mine = [r for r in runs if r.concurrency_key == f"serial:usr_{key}"]
            assert len(mine) == 10
            # In creation order, and never two at once: each starts after the last ended.
            for before, after in itertools.pairwise(mine):
                assert after.started_at >= before.finished_at


async def test_debounce_runs_once_with_the_last_event(tmp_path: Path) -> None:
    rules = """
workflow settle {
  on document.uploaded
  debounce 10m per event.data.owner_id
  set last = event.data.document_id
}
"""
    async with running_engine(tmp_path, rules, {}) as engine:
        for n in range(3):
            await post(engine, f"evt_{n}", "document.uploaded", uploaded(f"doc_{n}"))
            await idle_for(engine, 60)
        await post(engine, "evt_other", "document.uploaded", uploaded("doc_x", "usr_2"))
        await drive(engine, all_ended(engine, 2))
        runs = await runs_of(engine)
        assert sorted(r.output["last"] for r in runs) == ["doc_2", "doc_x"]


async def test_dedup_starts_one_run_per_key_within_its_window(tmp_path: Path) -> None:
    rules = """
workflow once {
  on document.uploaded
  dedup event.data.document_id for 1h
  set seen = event.data.document_id
}
"""
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_1", "document.uploaded", uploaded("doc_1"))
        await post(engine, "evt_2", "document.uploaded", uploaded("doc_1"))
        await post(engine, "evt_3", "document.uploaded", uploaded("doc_2"))
        await drive(engine, all_ended(engine, 2))
        await idle_for(engine, 2 * 3600)
        await post(engine, "evt_4", "document.uploaded", uploaded("doc_1"))
        await drive(engine, all_ended(engine, 3))
        assert [r.event_id for r in await runs_of(engine)] == ["evt_1", "evt_3", "evt_4"]


async def test_cancel_on_stops_matching_runs_and_keeps_their_steps(tmp_path: Path) -> None:
    rules = """
workflow remind {
  on document.uploaded
  cancel on document.signed when incoming.data.document_id == event.data.document_id
  set first = true
  wait 1d
  set second = true
}
"""
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_a", "document.uploaded", uploaded("doc_a"))
        await post(engine, "evt_b", "document.uploaded", uploaded("doc_b"))
        await drive(engine, lambda: _all(engine, "sleeping", 2))
        signed = {
            "document_id": "doc_a",
            "name": "n",
            "kind": "other",
            "signer_id": "u",
            "signer_email": "a@example.com",
            "signed_at": "2026-01-01T00:00:00Z",
        }
        await post(engine, "evt_s", "document.signed", signed)
        await jumping(engine, all_ended(engine, 2), 86400)
        a, b = await runs_of(engine)
        assert (a.status, b.status) == ("cancelled", "completed")
        assert a.error == "cancelled by document.signed"
        assert {s.step: s.status for s in await steps_of(engine, a.id)} == {
            "first": "completed",
            "s2": "sleeping",
        }


async def test_retry_from_runs_again_and_parallel_branches_all_settle(tmp_path: Path) -> None:
    rules = """
workflow again {
  on document.uploaded
  timeout 1d
  count = emit document.shared {
    document_id: event.data.document_id,
    name: "n",
    kind: "other",
    shared_with: { user_id: "u", email: "a@example.com", name: "A" },
    shared_by: "ops",
    url: "https://docs.example.com/d",
    shared_at: now(),
  }
  parallel {
    set left = 1
    wait 1m
  }
  wait 1h
  retry_from count
}
"""
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_1", "document.uploaded", uploaded("doc_1"))
        await jumping(engine, all_ended(engine, 1), 1800)
        (run,) = await runs_of(engine)
        assert run.status == "timed_out"
        steps = await steps_of(engine, run.id)
        rounds = {s.round for s in steps}
        assert len(rounds) > 10  # an hour and more a round, for a day
        # Each round emitted once, set once, waited once in each branch.
        assert len(await events_of_type(engine, "document.shared")) == len(rounds)
        assert sorted(s.step for s in steps if s.round == 2) == ["count", "left", "s2.s2", "s3"]
        assert {s.status for s in steps if s.round < max(rounds)} == {"superseded"}


async def test_a_run_keeps_its_version_while_the_rules_change(tmp_path: Path) -> None:
    rules = """
workflow pinned {
  on document.uploaded
  wait 1h
  set said = "before"
}
"""
    async with running_engine(tmp_path, rules, {}) as engine:
        await post(engine, "evt_1", "document.uploaded", uploaded("doc_1"))
        await drive(engine, lambda: _all(engine, "sleeping", 1))
        (tmp_path / "rules" / "webhooks.ownly").write_text(
            rules.replace('"before"', '"after"'), encoding="utf-8"
        )
        assert (await engine.reload("test")).status == "applied"
        await post(engine, "evt_2", "document.uploaded", uploaded("doc_2"))
        await jumping(engine, all_ended(engine, 2), 3600)
        first, second = await runs_of(engine)
        assert first.version != second.version
        assert (first.output["said"], second.output["said"]) == ("before", "after")


async def _all(engine: Engine, status: str, count: int) -> bool:
    runs = await runs_of(engine)
    return len(runs) == count and all(r.status == status for r in runs)
