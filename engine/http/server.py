"""The HTTP server: health, readiness, metrics, and one log line per request."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from engine.core.metrics import CONTENT_TYPE
from engine.errors import ServeError, StorageError
from engine.http import events, hooks, jobs, rules
from engine.http.devenv import add_sink_route
from engine.runtime import ENGINE, Engine

__all__ = ["build_app", "serve"]

REQUEST_ID = web.RequestKey("request_id", str)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,100}$")

# The longest request line and header aiohttp's parser reads (its default is 8190
# bytes): a 10 KB id in a path, a query or a ce-id header still reaches the
# routes, which answer it in JSON. A longer one the parser refuses itself, in
# plain text, before any route or middleware sees it.
_MAX_LINE = 16 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(engine: Engine) -> web.Application:
    """The aiohttp application for ``engine``: the core's routes and every capability's."""
    app = web.Application(
        middlewares=[_observe, _json_errors],
        client_max_size=engine.settings.config.ingest.max_body,
    )
    app[ENGINE] = engine
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    events.add_routes(app)
    hooks.add_routes(app)
    rules.add_routes(app)
    jobs.add_routes(app)
    engine.add_routes(app)
    if not engine.settings.production:
        add_sink_route(app, engine.logger)
    return app


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and a rule set is loaded; 503 with reasons if not."""
    engine = request.app[ENGINE]
    reasons = []
    try:
        await engine.database.ping()
    except StorageError as exc:
        reasons.append(exc.message)
    if not engine.rules.ready:
        reasons.append("no rule set is loaded yet")
    engine.metrics.ready.set(0 if reasons else 1)
    if reasons:
        return web.json_response({"status": "unready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition."""
    engine = request.app[ENGINE]
    await engine.refresh_gauges()
    body = engine.metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def _new_request_id() -> str:
    return f"{random.getrandbits(128):032x}"


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors answer JSON, as the API's own do, not aiohttp's plain text, on every path."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        if exc.status < 400:
            raise
        body: dict[str, object] = {
            "error": exc.reason.lower().replace(" ", "_"),
            "message": exc.reason,
        }
        if isinstance(exc, web.HTTPMethodNotAllowed):
            body["allowed"] = sorted(exc.allowed_methods)
        exc.text = orjson.dumps(body).decode()
        exc.content_type = "application/json"
        raise


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, log it once, and count it."""
    engine = request.app[ENGINE]
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if _SAFE_REQUEST_ID.match(offered) else _new_request_id()
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    finally:
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        engine.metrics.request_answered(request.method, route, status, elapsed)
        engine.logger.info(
            "http.request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            request_id=request_id,
        )
    response.headers["X-Request-Id"] = request_id
    return response


async def serve(
    engine: Engine,
    *,
    app: web.Application | None = None,
    on_listening: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight requests within the grace period."""
    server = engine.settings.config.server
    runner = web.AppRunner(
        app if app is not None else build_app(engine),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=server.shutdown_grace,
        max_line_size=_MAX_LINE,
        max_field_size=_MAX_LINE,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, server.host, server.port)
        try:
            await site.start()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ServeError(f"cannot listen on {server.host}:{server.port}: {reason}") from exc
        addresses = [f"http://{_host(addr)}:{addr[1]}" for addr in runner.addresses]
        engine.logger.info("server.listening", addresses=addresses)
        if on_listening is not None:
            on_listening(addresses)

        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[object]] = set()

        def reload() -> None:
            task = asyncio.create_task(engine.reload("SIGHUP"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        loop.add_signal_handler(signal.SIGHUP, reload)
        try:
            await stopping.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
        engine.logger.info("server.stopping", grace_seconds=server.shutdown_grace)
        engine.begin_stop()
    except BaseException:
        await runner.cleanup()
        raise
    # Requests drain while a reload started by SIGHUP finishes (before the
    # writer stops): both within the one grace period.
    outcomes = await asyncio.gather(
        runner.cleanup(), _finish(reloads, server.shutdown_grace), return_exceptions=True
    )
    for outcome in outcomes:  # both have ended, whatever either raised
        if isinstance(outcome, BaseException):
            raise outcome
    engine.logger.info("server.stopped")


async def _finish(tasks: set[asyncio.Task[object]], seconds: float) -> None:
    """Let ``tasks`` end within ``seconds``; cancel the rest, and see them end."""
    if not tasks:
        return
    try:
        await asyncio.wait(tasks, timeout=seconds)
    finally:
        left = [task for task in tasks if not task.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)


def _host(address: object) -> str:
    host = str(address[0]) if isinstance(address, tuple) else str(address)
    return f"[{host}]" if ":" in host else host
