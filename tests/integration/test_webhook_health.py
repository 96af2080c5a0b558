"""Webhook health in process: auto-disable, held deliveries, order and rate limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from engine.http.server import build_app
from engine.webhooks.health import SetState
from tests.support.inprocess import (
    attempts_of,
    clock_of,
    delivery_jobs,
    drive,
    events_of_type,
    idle_for,
    running_engine,
    send,
    settle,
    stats_of,
    webhook,
)
from tests.support.receiver import Received, Receiver


class Switch:
    """Answers 500 until switched on, then 200."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, request: Received, nth: int) -> web.Response:
        return web.Response(status=200 if self.up or request.path == "/alerts" else 500)


def hooks(receiver: Receiver) -> list[Received]:
    return [r for r in receiver.snapshot() if r.path == "/hooks"]


ALERTS = """
webhook alerts {
  url = env("ALERTS_URL")
  secret = env("RECEIVER_SECRET")
  events = [webhook.disabled]
}
"""


async def test_a_run_of_failures_disables_holds_and_activate_releases(tmp_path: Path) -> None:
    switch = Switch()
    rules = webhook(body="  retry 50 times, every 10s\n") + ALERTS
    with Receiver(switch) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks", "ALERTS_URL": receiver.url + "/alerts"}
        async with running_engine(tmp_path, rules, env, 'disable_after = "60s"\n') as engine:
            await send(engine, "evt_a")

            async def disabled() -> bool:
                return (await stats_of(engine)).state == "disabled"

            await drive(engine, disabled)
            await drive(engine, lambda: any(r.path == "/alerts" for r in receiver.snapshot()))
            await settle(engine)
            (alert,) = [r for r in receiver.snapshot() if r.path == "/alerts"]
            tried = len(hooks(receiver))
            stats = await stats_of(engine)
            (event,) = await events_of_type(engine, "webhook.disabled")

            await send(engine, "evt_b")
            await idle_for(engine, 600)
            held = await delivery_jobs(engine)
            assert len(hooks(receiver)) == tried, "nothing leaves a disabled webhook"

            switch.up = True
            await engine.writer.submit(SetState("receiver", "active", None, engine.clock.now()))
            engine.waker.wake()
            await drive(engine, lambda: len(hooks(receiver)) == tried + 2)
            await settle(engine)
            after = await delivery_jobs(engine)
            active = await stats_of(engine)
    # 60s of only failures at 10s (±20%) apart: about 7 attempts, then disabled.
    assert 6 <= tried <= 9
    assert stats.consecutive_failures == tried
    assert stats.reason is not None and stats.reason.startswith("only failures since")
    assert event.data["webhook"] == "receiver"
    assert event.data["consecutive_failures"] == tried
    assert json.loads(alert.body)["data"] == event.data, "rules react to webhook.disabled"
    webhook_jobs = [j for j in held if j.kind == "webhook" and j.payload["webhook"] == "receiver"]
    assert [(j.event_id, j.state) for j in webhook_jobs] == [
        ("evt_a", "held"),
        ("evt_b", "held"),
    ]
    assert webhook_jobs[1].attempts == 0
    delivered = [json.loads(r.body)["id"] for r in hooks(receiver)[tried:]]
    assert sorted(delivered) == ["evt_a", "evt_b"]
    assert [j.state for j in after if j.payload.get("webhook") == "receiver"] == [
        "succeeded",
        "succeeded",
    ]
    assert (active.state, active.consecutive_failures, active.failing_since) == ("active", 0, None)


async def test_a_paused_webhook_holds_its_deliveries(tmp_path: Path) -> None:
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(), env) as engine:
            await engine.writer.submit(SetState("receiver", "paused", "api", engine.clock.now()))
            await send(engine, "evt_p1", "evt_p2")
            await idle_for(engine, 3600)
            assert receiver.snapshot() == []
            (paused, *_) = await delivery_jobs(engine)
            assert (paused.state, paused.attempts) == ("held", 0)
            await engine.writer.submit(SetState("receiver", "active", None, engine.clock.now()))
            engine.waker.wake()
            await drive(engine, lambda: len(receiver.snapshot()) == 2)
    assert sorted(json.loads(r.body)["id"] for r in receiver.snapshot()) == ["evt_p1", "evt_p2"]


async def test_an_ordered_webhook_delivers_in_event_order_despite_retries(tmp_path: Path) -> None:
    def fail_first_twice(request: Received, nth: int) -> web.Response:
        first = json.loads(request.body)["id"] == "evt_o0"
        return web.Response(status=500 if first and nth <= 2 else 200)

    rules = webhook(body="  ordered = true\n  retry 5 times, every 30s\n")
    with Receiver(fail_first_twice) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, *(f"evt_o{i}" for i in range(5)))
            await drive(engine, lambda: len(receiver.snapshot()) == 7)
            await settle(engine)
            jobs = await delivery_jobs(engine)
    arrivals = [json.loads(r.body)["id"] for r in receiver.snapshot()]
    assert arrivals == ["evt_o0", "evt_o0", "evt_o0", "evt_o1", "evt_o2", "evt_o3", "evt_o4"]
    assert [j.state for j in jobs] == ["succeeded"] * 5


async def test_a_rate_limit_spaces_deliveries_without_counting_attempts(tmp_path: Path) -> None:
    rules = webhook(body="  rate_limit 2 per 1s\n")
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, rules, env) as engine:
            start = engine.clock.now()
            await send(engine, *(f"evt_r{i}" for i in range(8)))
            await drive(engine, lambda: len(receiver.snapshot()) == 8)
            await settle(engine)
            jobs = await delivery_jobs(engine)
            sent = [(await attempts_of(engine, j.id))[0].started_at for j in jobs]
    offsets = sorted((at - start).total_seconds() for at in sent)
    for i, offset in enumerate(offsets):
        # a burst of 2, then 2 a second: the n-th delivery not before (n - 2) / 2 seconds
        assert offset >= (i - 1) / 2 - 1e-6, offsets
    assert [j.attempts for j in jobs] == [1] * 8, "waiting for the limit is not an attempt"


async def test_a_manual_retry_keeps_an_ordered_webhooks_order(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """A delivery waiting behind an earlier one is not sent ahead of it; the head may be."""
    switch = Switch()
    rules = webhook(body="  ordered = true\n  retry 5 times, every 30s\n")
    with Receiver(switch) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_1", "evt_2")

            async def head_failed_once() -> bool:
                return (await delivery_jobs(engine))[0].attempts == 1

            await drive(engine, head_failed_once)
            await settle(engine)
            head, behind = await delivery_jobs(engine)
            assert (head.state, behind.state) == ("pending", "waiting")
            client = await aiohttp_client(build_app(engine))
            key = engine.keyring.keys[0].secret.get_secret_value()
            auth = {"Authorization": f"Bearer {key}"}
            base = "/api/webhooks/receiver/deliveries"

            refused = await client.post(f"{base}/{behind.id}/retry", headers=auth)
            assert refused.status == 409
            body = await refused.json()
            assert (body["error"], body["behind"]) == ("delivery_waiting", str(head.id))
            assert len(hooks(receiver)) == 1  # nothing was sent for it
            assert (await delivery_jobs(engine))[1].state == "waiting"

            switch.up = True
            sent = await client.post(f"{base}/{head.id}/retry", headers=auth)
            assert (sent.status, (await sent.json())["state"]) == (200, "succeeded")
            await drive(engine, lambda: len(hooks(receiver)) == 3)
            ids = [json.loads(r.body)["id"] for r in hooks(receiver)]
            assert ids == ["evt_1", "evt_1", "evt_2"]


async def test_retention_never_prunes_unfinished_work(tmp_path: Path) -> None:
    async with running_engine(
        tmp_path, webhook(), {"RECEIVER_URL": "http://127.0.0.1:9/x"}
    ) as engine:
        await engine.writer.submit(SetState("receiver", "paused", "held", engine.clock.now()))
        await send(engine, "evt_1")
        clock_of(engine).advance(90 * 86_400)
        assert await engine.retention.prune() == (0, 0)
        (job,) = await delivery_jobs(engine)
        assert job.state == "held"
        assert len(await events_of_type(engine, "investment.created")) == 1


async def test_a_body_over_the_attempt_logs_cap_is_cut_there_and_said_so(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """``response_body_limit`` above the attempt log's 1 MiB: the body is kept to 1 MiB and
    the webhooks API says it was truncated (not that it was empty)."""
    body = "é" * 800_000  # 1.6 MB of UTF-8

    def large(request: Received, nth: int) -> web.Response:
        return web.Response(status=500, text=body)

    with Receiver(large) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        rules = webhook(body="  retry 1 times, every 1s\n")
        settings = 'response_body_limit = "4MiB"\n'
        async with running_engine(tmp_path, rules, env, settings) as engine:
            await send(engine, "evt_1")

            async def failed() -> bool:
                return (await delivery_jobs(engine))[0].state == "failed"

            await drive(engine, failed)
            client = await aiohttp_client(build_app(engine))
            key = engine.keyring.keys[0].secret.get_secret_value()
            (job,) = await delivery_jobs(engine)
            answer = await client.get(
                f"/api/webhooks/receiver/deliveries/{job.id}",
                headers={"Authorization": f"Bearer {key}"},
            )
            (attempt,) = (await answer.json())["attempts"]
    assert attempt["status"] == 500
    assert attempt["response_body_truncated"] is True
    kept = attempt["response_body"]
    assert 0 < len(kept.encode()) <= 1024 * 1024 and body.startswith(kept)
