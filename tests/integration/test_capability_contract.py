"""A capability the core has never heard of gets everything webhooks get, through the contract.

``tests.support.echo`` registers a job kind, a table with its own migration
branch, a route, a scope, a configuration section and a metric. The engine,
built with it, plans its jobs from matched rules, leases and retries them,
logs every attempt, shows the job at ``GET /api/jobs/{id}``, counts it in the
metrics and prunes it once retention says so.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from engine.app import CAPABILITIES, load_settings
from engine.core.schema import events, job_attempts, jobs
from engine.errors import ConfigError
from engine.events.bus import AppendEvents, StoredEvent
from engine.http.server import build_app
from engine.jobs.attempts import DETAIL_LIMIT
from engine.runtime import Engine
from tests.support.echo import ECHO, KIND, echo_runs
from tests.support.inprocess import (
    clock_of,
    delivery_jobs,
    drive,
    events_of_type,
    running_engine,
    send,
)
from tests.support.process import write_project
from tests.support.rules import investment

WORKFLOW = """
workflow greet {
  on investment.created when event.data.amount > 1000
  on investment.* when event.data.amount > 10
  wait 1d
}
"""
# The echo kind plans `workflow` subscriptions: it stands in for the workflows capability.
WITH_ECHO = (*(c for c in CAPABILITIES if c.name != "workflows"), ECHO)


def _auth(engine: Engine) -> dict[str, str]:
    key = engine.keyring.keys[0].secret.get_secret_value()
    return {"Authorization": f"Bearer {key}"}


async def _count(engine: Engine, table: Any) -> int:
    async with engine.database.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)


async def test_a_registered_kind_is_planned_run_retried_logged_shown_and_pruned(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    async with running_engine(
        tmp_path, WORKFLOW, {}, capabilities=WITH_ECHO, log_stream=io.StringIO()
    ) as engine:
        echo = engine.kinds[KIND]
        assert echo.handler.started  # type: ignore[attr-defined]
        # Its migration branch ran beside the core's.
        async with engine.database.connect() as conn:
            heads = set(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
        # Each branch's head. Records' depends on 0005, the core's head, which
        # so stands behind it; echo's and email's depend on 0004.
        assert heads == {"e001_echo_runs", "m001_email", "r001_records"}
        assert await _count(engine, echo_runs) == 0

        await send(engine, "evt_1")  # both triggers of `greet` match: one job
        (job,) = await delivery_jobs(engine)
        assert (job.kind, job.payload, job.event_id) == (KIND, {"workflow": "greet"}, "evt_1")

        clock = clock_of(engine)

        async def succeeded() -> bool:
            return (await delivery_jobs(engine))[0].state == "succeeded"

        await drive(engine, succeeded)
        (done,) = await delivery_jobs(engine)
        assert done.attempts == 2  # the first attempt was retried 30 s later, as it asked

        client = await aiohttp_client(build_app(engine))
        answer = await client.get(f"/api/jobs/{done.id}", headers=_auth(engine))
        body = await answer.json()
        assert answer.status == 200
        assert (body["kind"], body["target"], body["state"]) == (KIND, "greet", "succeeded")
        first, second = body["timeline"]
        assert (first["attempt"], first["outcome"], first["error_class"]) == (
            1,
            "echo_refused",
            "Refused",
        )
        assert (second["attempt"], second["outcome"]) == (2, "echoed")
        # The 1.2 MB detail was over the cap: its small values kept, its long
        # string cut to fit, its list dropped, and all of it noted.
        detail = second["detail"]
        assert detail["workflow"] == "greet"
        assert detail["truncated"]["bytes"] > DETAIL_LIMIT
        assert (detail["truncated"]["cut"], detail["truncated"]["dropped"]) == (["body"], ["rows"])
        assert DETAIL_LIMIT - 2048 < len(detail["body"]) < DETAIL_LIMIT
        assert set(detail["body"]) == {"x"}

        own = await client.get(f"/api/echo/{done.id}", headers=_auth(engine))
        assert (own.status, await own.json()) == (200, {"job_id": done.id, "workflow": KIND})
        event = await (await client.get("/api/events/evt_1", headers=_auth(engine))).json()
        assert [(j["kind"], j["target"]) for j in event["jobs"]] == [(KIND, "greet")]
        assert event["unplanned"] == []

        metrics = await (await client.get("/metrics")).text()
        assert 'ownly_job_attempts_total{kind="workflow",outcome="echo_refused"} 1.0' in metrics
        assert 'ownly_job_attempts_total{kind="workflow",outcome="echoed"} 1.0' in metrics
        assert 'ownly_jobs_finished_total{kind="workflow",outcome="succeeded"} 1.0' in metrics
        assert 'ownly_queue_depth{kind="workflow"} 0.0' in metrics
        assert "ownly_echo_runs_total 1.0" in metrics

        # Retention: kept for 30 days after it finished, then pruned with its attempts
        # and, no job referring to it any more, its event.
        clock.advance(29 * 86_400)
        assert await engine.retention.prune() == (0, 0)
        clock.advance(2 * 86_400)
        pruned = await engine.retention.prune()
        assert (pruned.jobs, pruned.events) == (1, 1)
        assert (await _count(engine, jobs), await _count(engine, job_attempts)) == (0, 0)
        assert await _count(engine, events) == 0
    assert echo.handler.stopped and echo.handler.closed  # type: ignore[attr-defined]


async def test_without_the_kind_a_match_is_stored_logged_and_counted_as_unplanned(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    logs = io.StringIO()
    without = WITH_ECHO[:-1]  # no capability plans workflows
    async with running_engine(
        tmp_path, WORKFLOW, {}, log_stream=logs, capabilities=without
    ) as engine:
        await send(engine, "evt_1")
        assert await delivery_jobs(engine) == []
        client = await aiohttp_client(build_app(engine))
        event = await (await client.get("/api/events/evt_1", headers=_auth(engine))).json()
        assert event["jobs"] == []
        assert event["unplanned"] == [
            {
                "kind": "workflow",
                "name": "greet",
                "message": "matched workflow greet: workflows are not running in this engine",
            }
        ]
        metrics = await (await client.get("/metrics")).text()
        assert 'ownly_matches_unplanned_total{kind="workflow"} 1.0' in metrics
    (line,) = [line for line in logs.getvalue().splitlines() if "bus.unplanned" in line]
    assert "evt_1" in line and "greet" in line


async def test_an_unknown_scope_is_refused_and_a_capability_brings_its_own(tmp_path: Path) -> None:
    keys = "[[api.keys]]\nname = 'ops'\nscopes = ['echo:read']\nkey_env = 'OPS_KEY'\n"
    path = write_project(tmp_path, extra_toml="[echo]\nretry_after = 5\n" + keys)
    settings = load_settings(path, {"OPS_KEY": "k" * 20}, WITH_ECHO)
    assert settings.section("echo").retry_after == 5
    assert settings.api_keys[0].scopes == frozenset({"echo:read"})
    with pytest.raises(ConfigError) as refused:
        load_settings(path, {"OPS_KEY": "k" * 20})
    assert refused.value.message.splitlines() == [
        f"{path}:6: [echo]: unknown key",
        f"{path}:10: [api.keys][0] scopes.0: Input should be 'admin', 'events:read', "
        "'events:write', 'rules:read', 'jobs:read', 'webhooks:read', 'webhooks:write', "
        "'emails:read', 'emails:write', 'records:read', 'records:write', "
        "'workflows:read', 'workflows:write' "
        "(got 'echo:read')",
    ]


async def test_an_event_is_planned_under_the_rule_set_it_was_checked_with(tmp_path: Path) -> None:
    """A reload between the check and the commit does not plan it under the new rules."""
    async with running_engine(tmp_path, WORKFLOW, {}, capabilities=WITH_ECHO) as engine:
        checked = engine.rules.rule_set()
        assert checked is not None
        (tmp_path / "rules" / "webhooks.ownly").write_text(
            WORKFLOW.replace("workflow greet", "workflow hello"), encoding="utf-8"
        )
        assert (await engine.reload("test")).status == "applied"
        current = engine.rules.rule_set()
        assert current is not None and current.version != checked.version
        now = engine.clock.now()
        event = StoredEvent("evt_1", "investment.created", investment("evt_1")["data"], now, now)
        (appended,) = await engine.writer.submit(AppendEvents(engine.bus, [event], checked))
        assert appended.jobs == 1
        (job,) = await delivery_jobs(engine)
        assert (job.payload, job.rule_set) == ({"workflow": "greet"}, checked.version)
        (row,) = await events_of_type(engine, "investment.created")
        assert row.rule_set == checked.version
