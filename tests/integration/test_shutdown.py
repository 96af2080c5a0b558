"""SIGTERM: stop accepting, finish in-flight requests within the grace period."""

from __future__ import annotations

import asyncio
import io
import os
import signal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from engine.app import build_engine, load_settings
from engine.http.server import build_app, serve
from engine.runtime import Engine
from tests.support.process import free_port, write_project


async def _serve_with_slow_route(
    tmp_path: Path, grace: str, delay: float
) -> tuple[asyncio.Task[None], str, Engine]:
    port = free_port()
    settings = load_settings(
        write_project(tmp_path),
        {"OWNLY_SERVER_PORT": str(port), "OWNLY_SERVER_SHUTDOWN_GRACE": grace},
    )
    engine = build_engine(settings, log_stream=io.StringIO())
    await engine.start()
    app = build_app(engine)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"finished": True})

    app.router.add_get("/slow", slow)
    listening = asyncio.Event()
    task = asyncio.create_task(serve(engine, app=app, on_listening=lambda _: listening.set()))
    await asyncio.wait_for(listening.wait(), 10)
    return task, f"http://127.0.0.1:{port}", engine


async def test_in_flight_requests_finish_after_sigterm(tmp_path: Path) -> None:
    task, url, engine = await _serve_with_slow_route(tmp_path, grace="5s", delay=0.5)
    try:
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(session.get(url + "/slow"))
            await asyncio.sleep(0.1)  # the request is in flight
            os.kill(os.getpid(), signal.SIGTERM)
            response = await asyncio.wait_for(slow, 5)
            assert response.status == 200
            assert await response.json() == {"finished": True}
            await asyncio.wait_for(task, 5)
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(url + "/healthz")
    finally:
        await engine.stop()


async def test_requests_longer_than_the_grace_period_are_cut(tmp_path: Path) -> None:
    task, url, engine = await _serve_with_slow_route(tmp_path, grace="200ms", delay=30)
    try:
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(session.get(url + "/slow"))
            await asyncio.sleep(0.1)
            started = asyncio.get_running_loop().time()
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(task, 5)
            assert asyncio.get_running_loop().time() - started < 3
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(slow, 5)
    finally:
        await engine.stop()
