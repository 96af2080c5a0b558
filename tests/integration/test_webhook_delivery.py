"""Webhook delivery end to end in process: a manual clock, a real receiver on loopback."""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook

from engine.runtime import Engine
from tests.support.inprocess import (
    SECOND_SECRET,
    SECRET,
    attempts_of,
    delivery_jobs,
    drive,
    events_of_type,
    running_engine,
    send,
    settle,
    stats_of,
    webhook,
)
from tests.support.process import free_port
from tests.support.receiver import Received, Receiver


def status(code: int, **headers: str) -> web.Response:
    return web.Response(status=code, text=f"answer {code}", headers=headers)


def verified(received: list[Received]) -> list[dict[str, Any]]:
    """Every delivery's signature computed again by the independent library; their bodies.

    The engine's clock is a manual one, far from now, so ``Webhook.verify`` would
    refuse the timestamp; ``Webhook.sign`` checks the same signature without it.
    """
    bodies = []
    for request in received:
        stamp = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
        expected = Webhook(SECRET).sign(request.headers["webhook-id"], stamp, request.body.decode())
        assert expected in request.headers["webhook-signature"].split(" ")
        bodies.append(json.loads(request.body))
    return bodies


def gaps(attempts: list[object]) -> list[float]:
    starts = [a.started_at for a in attempts]  # type: ignore[attr-defined]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]


async def attempts_once_received(
    engine: Engine, receiver: Receiver, event_id: str, requests: int
) -> list[Any]:
    """Send one event, run until the receiver has had ``requests``; its delivery's attempts."""
    await send(engine, event_id)
    await drive(engine, lambda: len(receiver.snapshot()) == requests)
    (job,) = await delivery_jobs(engine)
    await settle(engine)
    return await attempts_of(engine, job.id)


async def test_three_failures_then_success_follow_the_standard_schedule(tmp_path: Path) -> None:
    with Receiver(lambda r, nth: status(500) if nth <= 3 else status(200)) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(), env) as engine:
            attempts = await attempts_once_received(engine, receiver, "evt_1", 4)
            (job,) = await delivery_jobs(engine)
    assert (job.state, job.attempts, job.max_attempts) == ("succeeded", 4, 8)
    assert [a.status for a in attempts] == [500, 500, 500, 200]
    assert [a.outcome for a in attempts] == ["failed", "failed", "failed", "delivered"]
    for gap, scheduled in zip(gaps(attempts), (5, 300, 1800), strict=True):
        assert scheduled * 0.8 <= gap <= scheduled * 1.2
    received = receiver.snapshot()
    assert {r.headers["webhook-id"] for r in received} == {job.payload["message_id"]}
    assert all(body["id"] == "evt_1" for body in verified(received))
    assert attempts[0].response_body == "answer 500"


async def test_a_timeout_is_a_failed_attempt_and_is_retried(tmp_path: Path) -> None:
    def slow_first(request: Received, nth: int) -> web.Response:
        if nth == 1:
            time.sleep(1.5)
        return status(200)

    with Receiver(slow_first) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(body="  timeout 1s\n"), env) as engine:
            attempts = await attempts_once_received(engine, receiver, "evt_slow", 2)
    assert [a.outcome for a in attempts] == ["failed", "delivered"]
    assert attempts[0].status is None
    assert attempts[0].error_message.startswith("no complete answer within 1s")
    verified(receiver.snapshot())


async def test_connection_refused_is_recorded_and_retried_later(tmp_path: Path) -> None:
    env = {"RECEIVER_URL": f"http://127.0.0.1:{free_port()}/hooks"}
    async with running_engine(tmp_path, webhook(), env) as engine:
        await send(engine, "evt_refused")

        async def attempted() -> bool:
            return len(await attempts_of(engine, 1)) == 1

        await drive(engine, attempted)
        (job,) = await delivery_jobs(engine)
        (attempt,) = await attempts_of(engine, job.id)
    assert attempt.outcome == "failed"
    assert attempt.error_class in ("ClientConnectorError", "ClientOSError")
    assert "127.0.0.1" in attempt.error_message
    assert "/hooks" not in attempt.error_message, "no URL path in the log"
    assert job.state == "pending"
    assert 4 <= (job.due_at - attempt.started_at).total_seconds() <= 6


async def test_410_gone_disables_the_webhook_at_once(tmp_path: Path) -> None:
    with Receiver(lambda r, nth: status(410)) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(), env) as engine:
            await send(engine, "evt_gone")
            await drive(engine, lambda: len(receiver.snapshot()) == 1)
            await settle(engine)
            (disabled,) = await events_of_type(engine, "webhook.disabled")
            (job, *_) = await delivery_jobs(engine)
            stats = await stats_of(engine)
    assert job.state == "failed" and job.attempts == 1
    assert stats.state == "disabled"
    assert stats.reason == "the receiver answered 410 Gone"
    assert disabled.data["webhook"] == "receiver"
    assert disabled.data["consecutive_failures"] == 1
    assert len(receiver.snapshot()) == 1, "no retry after 410"


async def test_429_retry_after_sets_the_next_attempt(tmp_path: Path) -> None:
    answers = lambda r, nth: status(429, **{"Retry-After": "120"}) if nth == 1 else status(200)  # noqa: E731
    with Receiver(answers) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(), env) as engine:
            attempts = await attempts_once_received(engine, receiver, "evt_429", 2)
    assert [a.outcome for a in attempts] == ["throttled", "delivered"]
    assert attempts[0].retry_after == 120
    (gap,) = gaps(attempts)
    assert 120 <= gap <= 144, "Retry-After honoured, jittered upwards only"


async def test_a_redirect_is_a_failure_and_is_not_followed(tmp_path: Path) -> None:
    def redirect_first(request: Received, nth: int) -> web.Response:
        if nth == 1:
            return status(302, Location="/elsewhere")
        return status(200)

    with Receiver(redirect_first) as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, webhook(), env) as engine:
            attempts = await attempts_once_received(engine, receiver, "evt_redirect", 2)
    assert [a.outcome for a in attempts] == ["redirect", "delivered"]
    assert attempts[0].status == 302
    assert [r.path for r in receiver.snapshot()] == ["/hooks", "/hooks"]


async def test_during_a_rotation_both_secrets_sign_and_each_verifies_alone(
    tmp_path: Path,
) -> None:
    rules = webhook().replace(
        'secret = env("RECEIVER_SECRET")',
        'secret = [env("RECEIVER_SECRET"), env("SECOND_SECRET", "")]',
    )
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks", "SECOND_SECRET": SECOND_SECRET}
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_rotate")
            await drive(engine, lambda: len(receiver.snapshot()) == 1)
    (request,) = receiver.snapshot()
    signatures = request.headers["webhook-signature"].split(" ")
    stamp = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    for secret in (SECRET, SECOND_SECRET):
        expected = Webhook(secret).sign(request.headers["webhook-id"], stamp, request.body.decode())
        assert expected in signatures
    assert len(signatures) == 2


async def test_a_webhook_whose_secrets_are_all_empty_is_never_sent_unsigned(
    tmp_path: Path,
) -> None:
    rules = webhook().replace('secret = env("RECEIVER_SECRET")', 'secret = env("EMPTY_SECRET", "")')
    with Receiver() as receiver:
        env = {"RECEIVER_URL": receiver.url + "/hooks"}
        async with running_engine(tmp_path, rules, env) as engine:
            await send(engine, "evt_unsigned")

            async def failed() -> bool:
                return [job.state for job in await delivery_jobs(engine)] == ["failed"]

            await drive(engine, failed)
            (job,) = await delivery_jobs(engine)
            (attempt,) = await attempts_of(engine, job.id)
    assert receiver.snapshot() == []
    assert (attempt.outcome, attempt.error_class) == ("blocked", "RequestError")
    assert attempt.error_message == (
        "a webhook is signed with one secret, or two during a rotation, not 0"
    )
