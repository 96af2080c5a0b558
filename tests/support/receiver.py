"""A real HTTP receiver on loopback, in its own thread, that records what arrives."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"
    query: str = ""
    raw_path: str = ""  # as sent, percent-encoded


# (request, nth arrival) -> the response, or a coroutine that answers it later
Answer = Callable[[Received, int], web.StreamResponse | Awaitable[web.StreamResponse]]


def ok(request: Received, nth: int) -> web.StreamResponse:
    return web.Response(status=200, text="ok")


class Receiver:
    """Records every request; ``answer`` decides each response (200 by default)."""

    def __init__(self, answer: Answer = ok) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the receiver did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.snapshot()
            if len(got) >= count:
                return got
            time.sleep(0.02)
        raise AssertionError(f"received {len(self.snapshot())} requests, expected {count}")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(
            request.path,
            dict(request.headers),
            body,
            time.time(),
            request.method,
            request.query_string,
            request.raw_path.split("?", 1)[0],
        )
        with self._lock:
            self.received.append(received)
            nth = len(self.received)
        answer = self.answer(received, nth)
        return await answer if inspect.isawaitable(answer) else answer
