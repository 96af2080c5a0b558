"""Deliveries to one host are bounded by [webhooks] connections_per_host."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.support.engine import client, start_engine
from tests.support.receiver import Received, Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance


def test_concurrent_deliveries_to_one_host_are_bounded(tmp_path: Path) -> None:
    lock = threading.Lock()
    in_flight = 0
    peak = 0

    async def answer(request: Received, nth: int) -> web.StreamResponse:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        await asyncio.sleep(0.3)
        with lock:
            in_flight -= 1
        return web.Response(text="ok")

    with Receiver(answer) as receiver:
        engine = start_engine(
            tmp_path,
            receiver,
            env={"OWNLY_WEBHOOKS_CONNECTIONS_PER_HOST": "2", "OWNLY_QUEUE_CONCURRENCY": "16"},
        )
        try:
            with client(engine) as api:
                answers = api.post(
                    "/api/events", json={"events": [investment(f"evt_h{i}") for i in range(8)]}
                )
                assert answers.status_code == 202, answers.text
            delivered = receiver.wait_for(8)
        finally:
            assert engine.stop() == 0
    assert len({r.headers["webhook-id"] for r in delivered}) == 8
    assert peak == 2


ONE_CONNECTION = {"OWNLY_WEBHOOKS_CONNECTIONS_PER_HOST": "1"}


def answering_after(seconds: float) -> Callable[[Received, int], Awaitable[web.StreamResponse]]:
    async def answer(request: Received, nth: int) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(text="ok")

    return answer


def test_waiting_for_a_busy_host_does_not_use_up_the_timeout(tmp_path: Path) -> None:
    # One connection to the host, 2 s answers, 5 s timeouts: the deliveries wait
    # for the host (up to a second, then back to the queue, the attempt not
    # counted), and that wait must not count against their own 5 s.
    with Receiver(answering_after(2.0)) as receiver:
        engine = start_engine(tmp_path, receiver, env=ONE_CONNECTION)
        try:
            with client(engine) as api:
                ids = [f"evt_busy{i}" for i in range(3)]
                answer = api.post("/api/events", json={"events": [investment(i) for i in ids]})
                assert answer.status_code == 202, answer.text
                delivered = receiver.wait_for(3)
                jobs = [_job_when_finished(api, event_id) for event_id in ids]
        finally:
            assert engine.stop() == 0
    assert len(delivered) == 3, "each delivery was sent once: none timed out waiting"
    assert [(job["state"], job["attempts"]) for job in jobs] == [("succeeded", 1)] * 3


def _job_when_finished(api: httpx.Client, event_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (job,) = api.get(f"/api/events/{event_id}").json()["jobs"]
        if job["state"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"the delivery of {event_id} did not finish")


def test_a_test_send_to_a_busy_host_waits_for_it(tmp_path: Path) -> None:
    # The worker's deliveries hold the host's only connection for 1.5 s each;
    # a test send asked for meanwhile waits its turn and is answered.
    with Receiver(answering_after(1.5)) as receiver:
        engine = start_engine(tmp_path, receiver, env=ONE_CONNECTION)
        try:
            with client(engine, timeout=30) as api:
                events = [investment(f"evt_first{i}") for i in range(2)]
                assert api.post("/api/events", json={"events": events}).status_code == 202
                receiver.wait_for(1)
                answer = api.post("/api/webhooks/receiver/test")
        finally:
            assert engine.stop() == 0
    assert answer.status_code == 200, answer.text
    assert answer.json()["attempt"]["outcome"] == "delivered"
