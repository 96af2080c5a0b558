"""``GET /api/records/{record}/{id}`` through the engine: scopes, the record, and its 404s."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.http.server import build_app
from engine.runtime import Engine
from tests.support.inprocess import running_engine
from tests.support.records import DEAL_SECRET, records_toml, write_record

KEYS = {"READER_KEY": "r" * 32, "EVENTS_KEY": "e" * 32, "ADMIN_KEY": "a" * 32}
TOML = records_toml() + "".join(
    f"[[api.keys]]\nname = '{name}'\nscopes = ['{scope}']\nkey_env = '{variable}'\n"
    for name, scope, variable in [
        ("reader", "records:read", "READER_KEY"),
        ("events", "events:read", "EVENTS_KEY"),
        ("ops", "admin", "ADMIN_KEY"),
    ]
)


def auth(variable: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[variable]}"}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    env = {**KEYS, "DEAL_RECORDS_SECRET": DEAL_SECRET}
    async with running_engine(tmp_path, "", env, TOML) as running:
        yield running


@pytest.fixture
async def client(engine: Engine, aiohttp_client: Any) -> Any:
    return await aiohttp_client(build_app(engine))


async def test_a_record_is_shown_as_it_was_last_written(engine: Engine, client: Any) -> None:
    await write_record(engine, "investor", "inv 1/ü", {"name": "Ada", "tier": 1}, "k1")
    written = await write_record(engine, "investor", "inv 1/ü", {"tier": 2}, "k2")

    for variable in ("READER_KEY", "ADMIN_KEY"):
        answer = await client.get("/api/records/investor/inv%201%2F%C3%BC", headers=auth(variable))
        assert answer.status == 200
        assert await answer.json() == written.result
    assert written.result is not None
    assert (written.result["version"], written.result["fields"]) == (2, {"name": "Ada", "tier": 2})


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "unauthorized"), (auth("EVENTS_KEY"), 403, "forbidden")],
)
async def test_reading_a_record_needs_records_read(
    engine: Engine, client: Any, headers: dict[str, str], status: int, code: str
) -> None:
    await write_record(engine, "investor", "inv_1", {"name": "Ada"}, "k1")
    answer = await client.get("/api/records/investor/inv_1", headers=headers)
    assert answer.status == status
    body = await answer.json()
    assert body["error"] == code
    assert "Ada" not in str(body)


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        (
            "/api/records/investors/inv_1",
            "not_found",
            "no record named 'investors' in [records] (the records: 'investor', 'deal')",
        ),
        ("/api/records/investor/inv_2", "not_found", "no investor with the id 'inv_2'"),
        (
            "/api/records/deal/deal_1",
            "not_stored_here",
            "record 'deal' is kept by the platform (https://platform.example), not by this "
            "engine: read it there",
        ),
    ],
)
async def test_what_the_engine_does_not_keep_is_a_404_saying_why(
    engine: Engine, client: Any, path: str, code: str, message: str
) -> None:
    await write_record(engine, "investor", "inv_1", {"name": "Ada"}, "k1")
    await write_record(engine, "deal", "deal_1", {"status": "funded"}, "k2")
    answer = await client.get(path, headers=auth("READER_KEY"))
    assert answer.status == 404
    assert answer.content_type == "application/json"
    assert await answer.json() == {"error": code, "message": message}
