"""Deliveries to one host are bounded by [webhooks] connections_per_host."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

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
