"""kill -9, again and again, while 1,000 workflow runs wait, deliver a webhook, call a peer
and write a record: after the restarts every run completes, each step once."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import ENGINE_TOML, KEY, READ_KEY, SECRET, client
from tests.support.process import EngineProcess, write_project
from tests.support.receiver import Receiver
from tests.support.rules import install_catalog

pytestmark = pytest.mark.acceptance

# On 2 cores the whole test takes about 25 s with 1,000 runs and 4 kills.
RUNS = 1000
RECORDS = 40  # each record is written by RUNS // RECORDS runs
KILLS = 4
BATCH = 100
STEPS = {"s1": "wait", "s2": "send_webhook", "s3": "http", "s4": "update_record"}

RULES = """
webhook peer {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [deal.closed]
  retry     20 times, exponential 1s .. 2s
  timeout   5s
}

workflow file_document {
  description = "File an uploaded document with the peer and on its investment"
  on document.uploaded

  wait 1s
  send_webhook peer { document_id: event.data.document_id }
  http(
    method: "POST",
    url: env("PEER_URL"),
    body: { document_id: event.data.document_id },
  ) retry 20 times, exponential 1s .. 2s timeout 5s
  update_record(
    record: "investment",
    id: event.data.owner_id,
    fields: { last_document: event.data.document_id },
  )
}
"""


def uploaded(i: int) -> dict[str, Any]:
    return {
        "id": f"evt_upload_{i:05d}",
        "type": "document.uploaded",
        "data": {
            "document_id": f"doc_{i:05d}",
            "name": "Subscription agreement",
            "kind": "subscription_agreement",
            "owner_id": f"inv_{i % RECORDS:03d}",
            "url": "https://docs.example.com/d",
            "uploaded_at": "2026-01-01T00:00:00Z",
        },
    }


def _post_all(engine: EngineProcess, ids: range) -> set[int]:
    """Post the uploads in batches until the engine stops answering; those acknowledged."""
    acknowledged: set[int] = set()
    todo = list(ids)
    with client(engine, timeout=10) as api:
        for start in range(0, len(todo), BATCH):
            batch = todo[start : start + BATCH]
            try:
                answer = api.post("/api/events", json={"events": [uploaded(i) for i in batch]})
            except httpx.TransportError:
                return acknowledged
            assert answer.status_code in (200, 202, 207), answer.text
            acknowledged.update(batch)
    return acknowledged


def _statuses(database: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM workflow_runs GROUP BY status"))


def _wait_for_runs(database: Path, timeout: float = 60) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    statuses = _statuses(database)
    while statuses.get("completed", 0) < RUNS and time.monotonic() < deadline:
        time.sleep(0.2)
        statuses = _statuses(database)
    return statuses


def _executions(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    query = {"limit": "500"}
    while True:
        page = api.get("/api/workflows/file_document/executions", params=query)
        assert page.status_code == 200, page.text
        found += page.json()["executions"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found
        query["cursor"] = cursor


def test_sigkill_during_1000_runs_completes_each_step_once(tmp_path: Path) -> None:
    write_project(tmp_path, extra_toml=ENGINE_TOML + "[records.investment]\n")
    install_catalog(tmp_path, webhooks=RULES)
    database = tmp_path / "var" / "ownly.db"
    killed_at: list[str] = []
    with Receiver() as hooks, Receiver() as peer:
        env = {
            "TEST_KEY": KEY,
            "READ_KEY": READ_KEY,
            "RECEIVER_URL": hooks.url + "/hooks",
            "RECEIVER_SECRET": SECRET,
            "PEER_URL": peer.url + "/peer",
            "OWNLY_QUEUE_LEASE": "2s",
        }
        engine = EngineProcess(tmp_path, env=env)
        try:
            engine.wait_ready()
            acknowledged = _post_all(engine, range(RUNS))
            assert acknowledged == set(range(RUNS))
            for _ in range(KILLS):
                time.sleep(random.uniform(0.2, 2.5))
                killed_at.append(str(_statuses(database)))
                engine.kill()
                engine = EngineProcess(tmp_path, env=env)
                engine.wait_ready()
            statuses = _wait_for_runs(database)
            with client(engine, timeout=30) as api:
                executions = _executions(api)
            assert engine.stop() == 0
        finally:
            engine.kill()
        delivered = hooks.snapshot()
        requested = peer.snapshot()

    context = f"killed at {killed_at}"
    assert statuses == {"completed": RUNS}, context
    assert len(executions) == RUNS
    assert {e["status"] for e in executions} == {"completed"}
    run_ids = {e["id"] for e in executions}

    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        steps = conn.execute(
            "SELECT run_id, step, round, kind, status FROM workflow_steps"
        ).fetchall()
        records = dict(
            conn.execute("SELECT id, version FROM records WHERE collection = 'investment'")
        )
        (updates,) = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'record.updated'"
        ).fetchone()
        jobs = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())

    keys = [(run, step, round_) for run, step, round_, _, _ in steps]
    assert len(keys) == len(set(keys)), f"{context}: a step checkpointed twice"
    by_run: dict[str, dict[str, tuple[int, str, str]]] = {}
    for run, step, round_, kind, status in steps:
        by_run.setdefault(run, {})[step] = (round_, kind, status)
    expected = {step: (1, kind, "completed") for step, kind in STEPS.items()}
    assert set(by_run) == run_ids
    wrong = {run: found for run, found in by_run.items() if found != expected}
    assert not wrong, f"{context}: {len(wrong)} runs with other checkpoints, e.g. {wrong.popitem()}"

    webhook_ids = {_json_id(r.body) for r in delivered}
    assert webhook_ids == {f"{run}:s2" for run in run_ids}, context
    peer_keys = {r.headers.get("Idempotency-Key") for r in requested}
    assert peer_keys == {f"{run}:s3" for run in run_ids}, context

    assert records == {f"inv_{n:03d}": RUNS // RECORDS for n in range(RECORDS)}, context
    assert updates == RUNS, f"{context}: one record.updated per run"
    assert set(jobs) <= {"succeeded"}, f"{context}: {jobs}"
    print(
        f"\nkilled at {killed_at}; {len(delivered) - RUNS} webhook deliveries and "
        f"{len(requested) - RUNS} peer requests were sent again after a kill"
    )


def _json_id(body: bytes) -> str:
    found = json.loads(body)["id"]
    assert isinstance(found, str)
    return found
