"""The reference servers bench/ingest.py compares Ownly with.

python bench/ingest_servers.py bare  PORT        parse the JSON, answer 202 (the ceiling)
python bench/ingest_servers.py naive PORT DB     one SQLAlchemy transaction per event
python bench/ingest_servers.py group PORT DB     the least a durable group commit can do
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import orjson
from aiohttp import web
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, event
from sqlalchemy.ext.asyncio import create_async_engine


async def bare(request: web.Request) -> web.Response:
    document = orjson.loads(await request.read())
    return web.json_response({"id": document.get("id") or uuid.uuid4().hex}, status=202)


def naive_app(path: str) -> web.Application:
    metadata = MetaData()
    events = Table(
        "events",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("type", String(200)),
        Column("received_at", DateTime()),
        Column("data", JSON),
    )
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA busy_timeout = 5000")
        cursor.close()

    async def startup(app: web.Application) -> None:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def handle(request: web.Request) -> web.Response:
        document = orjson.loads(await request.read())
        event_id = document.get("id") or uuid.uuid4().hex
        async with engine.begin() as conn:  # one commit, one fsync, per event
            await conn.execute(
                events.insert().values(
                    id=event_id,
                    type=document["type"],
                    received_at=datetime.now(UTC).replace(tzinfo=None),
                    data=document["data"],
                )
            )
        return web.json_response({"id": event_id}, status=202)

    app = web.Application()
    app.on_startup.append(startup)
    app.router.add_post("/api/events", handle)
    return app


def group_commit_app(path: str) -> web.Application:
    """The least a durable group commit can do: one writer thread, raw sqlite3, no checks."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, data TEXT)")
    queue: asyncio.Queue[tuple[tuple[str, str, str], asyncio.Future[None]]] = asyncio.Queue()
    pool = ThreadPoolExecutor(max_workers=1)

    def commit(rows: list[tuple[str, str, str]]) -> None:
        db.execute("BEGIN")
        db.executemany("INSERT INTO events VALUES (?, ?, ?)", rows)
        db.execute("COMMIT")

    async def writer() -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await queue.get()]
            while not queue.empty():
                group.append(queue.get_nowait())
            await loop.run_in_executor(pool, commit, [row for row, _ in group])
            for _, done in group:
                done.set_result(None)

    async def startup(app: web.Application) -> None:
        app["writer"] = asyncio.create_task(writer())

    async def handle(request: web.Request) -> web.Response:
        document = orjson.loads(await request.read())
        event_id = document.get("id") or uuid.uuid4().hex
        done = asyncio.get_running_loop().create_future()
        row = (event_id, document["type"], orjson.dumps(document["data"]).decode())
        queue.put_nowait((row, done))
        await done
        return web.json_response({"id": event_id}, status=202)

    app = web.Application()
    app.on_startup.append(startup)
    app.router.add_post("/api/events", handle)
    return app


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "naive":
        app = naive_app(sys.argv[3])
    elif kind == "group":
        app = group_commit_app(sys.argv[3])
    else:
        app = web.Application()
        app.router.add_post("/api/events", bare)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
