"""Workflow runs end to end in process: a manual clock, a real receiver on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import select

from engine.core.schema import events
from engine.runtime import Engine
from engine.workflows.tables import workflow_runs, workflow_steps
from tests.support.inprocess import drive, running_engine, send, webhook
from tests.support.receiver import Receiver
from tests.support.workflows import all_ended

FLOW = """
workflow greet {
  on investment.created
  set double = event.data.amount * 2
  if double > 1000 {
    emit investment.completed {
      investment_id: event.data.investment_id,
      user_id: event.data.user_id,
      deal_id: event.data.deal_id,
      amount: event.data.amount,
      investor: event.data.investor,
      deal: event.data.deal,
      completed_at: now(),
    }
  }
  wait 1h
  send_webhook receiver { amount: double, who: event.data.investor.name }
}
"""


async def runs_of(engine: Engine) -> list[Any]:
    async with engine.database.connect() as conn:
        return list((await conn.execute(select(workflow_runs))).all())


async def steps_of(engine: Engine) -> list[Any]:
    async with engine.database.connect() as conn:
        query = select(workflow_steps).order_by(workflow_steps.c.started_at)
        return list((await conn.execute(query)).all())


async def test_a_run_sets_branches_emits_sleeps_and_delivers(tmp_path: Path) -> None:
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        rules = (
            webhook(body="  events = [webhook.test]\n").replace("  events = [investment.*]\n", "")
            + FLOW
        )
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_1")

            async def ended() -> bool:
                runs = await runs_of(engine)
                return bool(runs) and runs[0].status in ("completed", "failed")

            await drive(engine, ended)
            (run,) = await runs_of(engine)
            assert run.status == "completed", run.error
            steps = await steps_of(engine)
            assert [(s.step, s.status) for s in steps] == [
                ("double", "completed"),
                ("s2", "completed"),
                ("s2.b1.s1", "completed"),
                ("s3", "completed"),
                ("s4", "completed"),
            ]
            (request,) = receiver.snapshot()
            body = json.loads(request.body)
            assert body["id"] == f"{run.id}:s4"
            assert body["data"] == {"amount": "5000.00", "who": "Ada"}


async def test_ended_runs_and_step_latency_are_counted(tmp_path: Path) -> None:
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        rules = (
            webhook(body="  events = [webhook.test]\n").replace("  events = [investment.*]\n", "")
            + FLOW
        )
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_1")
            await drive(engine, all_ended(engine, 1))
            await engine.refresh_gauges()
            metrics = generate_latest(engine.metrics.registry).decode()
    assert 'ownly_workflow_runs_finished_total{outcome="completed",workflow="greet"} 1.0' in metrics
    assert 'ownly_workflow_step_seconds_count{kind="send_webhook"} 1.0' in metrics
    assert 'ownly_workflow_runs{status="completed"} 1.0' in metrics


FAILING = """
workflow collect {
  on investment.created
  fail "no payment for " + event.data.investment_id
}

workflow alert {
  on workflow.failed
  fail "the alert failed too"
}
"""


async def test_a_failed_run_emits_workflow_failed_and_a_failed_alert_does_not(
    tmp_path: Path,
) -> None:
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        rules = webhook(body="").replace("[investment.*]", "[workflow.failed]") + FAILING
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_1")

            async def ended() -> bool:
                runs = await runs_of(engine)
                return len(runs) == 2 and all(r.status == "failed" for r in runs)

            await drive(engine, ended)
            runs = {run.workflow: run for run in await runs_of(engine)}
            async with engine.database.connect() as conn:
                failed = (
                    await conn.execute(select(events).where(events.c.type == "workflow.failed"))
                ).all()
            (request,) = receiver.wait_for(1)
    (event,) = failed
    assert event.subject == runs["collect"].id
    assert event.data["workflow"] == "collect"
    assert event.data["execution_id"] == runs["collect"].id
    assert event.data["error"] == "no payment for inv_1"
    assert runs["alert"].event_id == event.id
    assert json.loads(request.body)["id"] == event.id
