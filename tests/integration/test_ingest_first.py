"""Ingest first: the engine counts ingest requests in flight, and its worker steps back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from engine.http.server import build_app
from tests.support.inprocess import running_engine, webhook
from tests.support.rules import investment

Client = TestClient[web.Request, web.Application]
RECEIVER = {"RECEIVER_URL": "http://127.0.0.1:9/"}


async def test_the_worker_steps_back_while_many_ingest_requests_are_in_flight(
    tmp_path: Path,
) -> None:
    async with running_engine(tmp_path, webhook(), RECEIVER) as engine:
        worker = engine.worker
        assert worker is not None
        assert worker.concurrency() == 64  # [queue] concurrency
        engine.ingesting = 15
        assert worker.concurrency() == 64
        engine.ingesting = 16  # [queue] ingest_load
        assert worker.concurrency() == 4  # [queue] concurrency_under_load
        engine.ingesting = 0
        assert worker.concurrency() == 64


async def test_every_ingest_request_is_counted_out_whatever_its_answer(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    async with running_engine(tmp_path, webhook(), RECEIVER) as engine:
        client: Client = await aiohttp_client(build_app(engine))
        key = engine.keyring.keys[0].secret.get_secret_value()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        requests = [
            *(
                client.post("/api/events", json=investment(f"e{i}"), headers=headers)
                for i in range(9)
            ),
            client.post("/api/events", json={"type": "no.such"}, headers=headers),  # 422
            client.post("/api/events", data=b"{", headers=headers),  # 400
            client.post("/api/events", data=b"x" * 300_000, headers=headers),  # 413
        ]
        answers = await asyncio.gather(*requests)
        assert sorted(answer.status for answer in answers) == [202] * 9 + [400, 413, 422]
        assert engine.ingesting == 0
