"""SIGTERM with deliveries in flight: they finish within the grace period; the rest go back."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from collections.abc import Awaitable
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.engine import KEY, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Received, Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance


async def slow(seconds: float) -> web.StreamResponse:
    await asyncio.sleep(seconds)
    return web.Response(text="ok")


def job_states(root: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(root / "var" / "ownly.db") as conn:
        return [tuple(row) for row in conn.execute("SELECT state, attempts FROM jobs")]  # type: ignore[misc]


def test_a_delivery_in_flight_finishes_after_sigterm(tmp_path: Path) -> None:
    with Receiver(lambda request, nth: slow(1.0)) as receiver:
        engine = start_engine(tmp_path, receiver, env={"OWNLY_SERVER_SHUTDOWN_GRACE": "5s"})
        with client(engine) as api:
            assert api.post("/api/events", json=investment("evt_inflight")).status_code == 202
        receiver.wait_for(1)  # the delivery has reached the receiver and waits for its answer
        started = time.monotonic()
        assert engine.stop(timeout=10) == 0
        assert time.monotonic() - started < 5
    assert job_states(tmp_path) == [("succeeded", 1)]


def test_a_delivery_longer_than_the_grace_period_is_released_and_resent(tmp_path: Path) -> None:
    answers: list[float] = [30.0, 0.0]

    def answer(request: Received, nth: int) -> Awaitable[web.StreamResponse]:
        return slow(answers[min(nth, len(answers)) - 1])

    with Receiver(answer) as receiver:
        engine = start_engine(tmp_path, receiver, env={"OWNLY_SERVER_SHUTDOWN_GRACE": "500ms"})
        with client(engine) as api:
            assert api.post("/api/events", json=investment("evt_long")).status_code == 202
        receiver.wait_for(1)
        assert engine.stop(timeout=10) == 0
        assert job_states(tmp_path) == [("pending", 0)], "released, the attempt not counted"

        restarted = EngineProcess(tmp_path, env=engine.environment)
        try:
            restarted.wait_ready()
            second = receiver.wait_for(2)[1]
            assert second.headers["webhook-id"] == receiver.snapshot()[0].headers["webhook-id"]
            deadline = time.monotonic() + 20
            while job_states(tmp_path) != [("succeeded", 1)]:
                assert time.monotonic() < deadline, job_states(tmp_path)
                time.sleep(0.05)
        finally:
            assert restarted.stop() == 0


def test_no_job_starts_after_sigterm_while_requests_drain(tmp_path: Path) -> None:
    # One connection to the receiver, so the three deliveries go one after another
    # (each answered sooner than a delivery waits for its host); a request still
    # uploading its body keeps the server draining for the whole grace.
    with Receiver(lambda request, nth: slow(0.4)) as receiver:
        env = {"OWNLY_SERVER_SHUTDOWN_GRACE": "3s", "OWNLY_WEBHOOKS_CONNECTIONS_PER_HOST": "1"}
        engine = start_engine(tmp_path, receiver, env=env)
        events = [investment(f"evt_drain{i}") for i in range(3)]
        with client(engine) as api:
            assert api.post("/api/events", json={"events": events}).status_code == 202
        receiver.wait_for(1)
        with socket.create_connection(("127.0.0.1", engine.port)) as upload:
            upload.sendall(
                b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + f"Authorization: Bearer {KEY}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
            )
            assert engine.stop(timeout=15) == 0
    assert len(receiver.snapshot()) == 1, "only the delivery in flight at SIGTERM was sent"
    assert sorted(state for state, _ in job_states(tmp_path)) == ["pending", "pending", "succeeded"]
