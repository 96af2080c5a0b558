"""Workers are woken when a job is due, not at their next poll (set here to a minute)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.engine import client, start_engine
from tests.support.receiver import Received, Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance

IDLE = {"OWNLY_QUEUE_POLL_INTERVAL": "60s"}


def test_a_new_job_runs_at_once_not_at_the_next_poll(tmp_path: Path) -> None:
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env=IDLE)
        try:
            time.sleep(0.5)  # the worker found nothing to do and naps for a minute
            with client(engine) as api:
                assert api.post("/api/events", json=investment("evt_wake")).status_code == 202
            (delivery,) = receiver.wait_for(1, timeout=10)
        finally:
            assert engine.stop() == 0
    assert delivery.headers["webhook-id"].startswith("msg_")


def test_a_retry_runs_when_it_is_due_not_at_the_next_poll(tmp_path: Path) -> None:
    async def fail_once(request: Received, nth: int) -> web.StreamResponse:
        return web.Response(status=500 if nth == 1 else 200)

    with Receiver(fail_once) as receiver:
        engine = start_engine(tmp_path, receiver, env=IDLE)
        try:
            with client(engine) as api:
                assert api.post("/api/events", json=investment("evt_retry")).status_code == 202
            first, second = receiver.wait_for(2, timeout=15)  # the retry is due 1 to 2 s later
        finally:
            assert engine.stop() == 0
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
