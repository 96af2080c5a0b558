"""kill -9 in the middle of 5,000 webhook deliveries: after a restart every one arrives."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support.engine import SECRET, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance

DELIVERIES = 5000
BATCH = 500


def test_sigkill_during_5000_deliveries_loses_none(tmp_path: Path) -> None:
    ids = [f"evt_dlv_{i:05d}" for i in range(DELIVERIES)]
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env={"OWNLY_QUEUE_LEASE": "2s"})
        env = engine.environment
        try:
            with client(engine) as api:
                for start in range(0, DELIVERIES, BATCH):
                    batch = {"events": [investment(i) for i in ids[start : start + BATCH]]}
                    answer = api.post("/api/events", json=batch, timeout=30)
                    assert answer.status_code == 202, answer.text
                    assert answer.json()["accepted"] == len(batch["events"])
            receiver.wait_for(DELIVERIES // 4, timeout=30)
        finally:
            engine.kill()
        at_kill = len(receiver.snapshot())
        assert at_kill < DELIVERIES, "the engine was killed in the middle of the deliveries"

        again = EngineProcess(tmp_path, env=env)
        try:
            again.wait_ready()
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                if len({r.headers["webhook-id"] for r in receiver.snapshot()}) >= DELIVERIES:
                    break
                time.sleep(0.1)
            with client(again) as api:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    stats = api.get("/api/webhooks/receiver").json()["stats"]
                    if stats["successes"] == DELIVERIES:
                        break
                    time.sleep(0.1)
        finally:
            again.kill()

    received = receiver.snapshot()
    verifier = Webhook(SECRET)
    delivered = {}
    for request in received:
        body = verifier.verify(request.body, request.headers)
        delivered.setdefault(request.headers["webhook-id"], set()).add(body["id"])
    assert len(delivered) == DELIVERIES, "every delivery arrived"
    assert all(len(events) == 1 for events in delivered.values()), "one event per webhook-id"
    assert sorted(next(iter(e)) for e in delivered.values()) == ids
    assert stats == {**stats, "deliveries": DELIVERIES, "successes": DELIVERIES, "pending": 0}
    duplicates = len(received) - DELIVERIES
    assert 0 <= duplicates <= 512, "only attempts in flight at the kill are repeated"
