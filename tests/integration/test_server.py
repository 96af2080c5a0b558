"""The HTTP skeleton in process: health, readiness with reasons, metrics, request ids."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from engine.app import build_engine, load_settings
from engine.http.server import build_app
from engine.runtime import Engine
from tests.support.process import write_project

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, io.StringIO]]:
    settings = load_settings(write_project(tmp_path), {})
    logs = io.StringIO()
    engine = build_engine(settings, log_stream=logs)
    await engine.start()
    yield engine, logs
    await engine.stop()


async def test_ready_and_healthy(engine: tuple[Engine, io.StringIO], aiohttp_client: Any) -> None:
    app, logs = engine
    client: Client = await aiohttp_client(build_app(app))
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}
    health = await client.get("/healthz")
    assert health.status == 200
    assert len(health.headers["X-Request-Id"]) == 32

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    requests = [line for line in lines if line["event"] == "http.request"]
    assert [r["path"] for r in requests] == ["/readyz", "/healthz"]
    assert requests[1]["status"] == 200
    assert requests[1]["method"] == "GET"
    assert requests[1]["request_id"] == health.headers["X-Request-Id"]
    assert isinstance(requests[1]["duration_ms"], float)


async def test_unready_when_the_database_is_gone(
    engine: tuple[Engine, io.StringIO], aiohttp_client: Any
) -> None:
    app, _ = engine
    client: Client = await aiohttp_client(build_app(app))
    assert app.worker is not None
    await app.worker.stop(grace=0)  # nothing else may hold a connection when it closes
    await app.database.close()
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unready"
    assert body["reasons"] == ["the database is not open"]
    metrics = await (await client.get("/metrics")).text()
    assert "ownly_ready 0.0" in metrics


async def test_unready_until_rules_load(tmp_path: Path, aiohttp_client: Any) -> None:
    settings = load_settings(write_project(tmp_path), {})
    app = build_engine(settings, log_stream=io.StringIO())
    await app.database.open()
    try:
        client: Client = await aiohttp_client(build_app(app))
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["reasons"] == ["no rule set is loaded yet"]
    finally:
        await app.database.close()


async def test_unknown_paths_are_counted_under_one_label(
    engine: tuple[Engine, io.StringIO], aiohttp_client: Any
) -> None:
    app, _ = engine
    client: Client = await aiohttp_client(build_app(app))
    for path in ("/nope", "/also/nope"):
        assert (await client.get(path)).status == 404
    metrics = await (await client.get("/metrics")).text()
    assert 'ownly_http_requests_total{method="GET",route="unmatched",status="404"} 2.0' in metrics


@pytest.mark.parametrize("offered", ["", "has space", "x" * 101, "semi;colon"])
async def test_unsafe_request_ids_are_replaced(
    engine: tuple[Engine, io.StringIO], aiohttp_client: Any, offered: str
) -> None:
    app, _ = engine
    client: Client = await aiohttp_client(build_app(app))
    response = await client.get("/healthz", headers={"X-Request-Id": offered})
    assert response.headers["X-Request-Id"] != offered
    assert len(response.headers["X-Request-Id"]) == 32


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "not_found"),
        ("POST", "/dev/sink/a/b", 404, "not_found"),
        ("GET", "/dev/sink/a", 405, "method_not_allowed"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
    ],
)
async def test_errors_outside_the_api_are_json_too(
    engine: tuple[Engine, io.StringIO],
    aiohttp_client: Any,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    app, _ = engine
    client: Client = await aiohttp_client(build_app(app))
    response = await client.request(method, path)
    assert response.status == status
    assert response.content_type == "application/json"
    body = await response.json()
    assert body["error"] == code and body["message"]
