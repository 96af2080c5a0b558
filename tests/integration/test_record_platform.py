"""Records of an http store: the ``record`` job PATCHes the platform, signed, against a
real aiohttp receiver on 127.0.0.1.

Every PATCH is verified with the independent ``standardwebhooks`` library: by
``Webhook.verify`` when the handler runs on the system clock, by ``Webhook.sign``
(which checks the same signature without the time) when the engine runs on a
manual one.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from connectors import guarded_session
from connectors.webhook import WebhookSender
from engine.core.clock import SystemClock
from engine.core.logs import make_logger
from engine.jobs.kinds import Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.queue import Job
from engine.records.config import RecordConfig
from engine.records.handler import RecordHandler, target
from engine.records.store import message_id, platform_job
from tests.support.clock import utc
from tests.support.inprocess import attempts_of, delivery_jobs, drive, running_engine
from tests.support.receiver import Received, Receiver
from tests.support.records import DEAL_SECRET, records_toml, write_record

ENVIRON = {"DEAL_RECORDS_SECRET": DEAL_SECRET}
FIELDS = {"status": "funded", "amount_raised": "250000.00", "closing": None}


def deal_job(base_url: str, attempts: int = 1, record_id: str = "deal_1", **changes: Any) -> Job:
    store = RecordConfig(store="http", url=base_url, secret_env="DEAL_RECORDS_SECRET", timeout=2.0)
    caller = "workflow:run_1:close"
    new = platform_job(
        store, "deal", record_id, FIELDS, key="run_1:close", caller=caller, now=utc()
    )
    now = utc()
    return Job(
        id=11,
        kind=new.kind,
        payload={**new.payload, **changes},
        state="running",
        due_at=now,
        attempts=attempts,
        max_attempts=new.max_attempts,
        idempotency_key=new.idempotency_key,
        event_id=None,
        rule_set=None,
        last_error=None,
        lease_owner="worker",
        created_at=now,
        updated_at=now,
        finished_at=None,
        caller=new.caller,
    )


def _answer(request: Received, nth: int) -> web.StreamResponse:
    """By the id: deal_1 200 (the record as JSON), flaky a 503 then 200, gone 404,
    moved 301, busy 429 asking for 90s."""
    record_id = request.path.rsplit("/", 1)[-1]
    if record_id == "flaky" and nth == 1:
        return web.json_response({"error": "unavailable"}, status=503)
    if record_id == "gone":
        return web.json_response({"error": "no such deal"}, status=404)
    if record_id == "moved":
        return web.Response(status=301, headers={"Location": "/v2/deals/moved"})
    if record_id == "busy":
        return web.Response(status=429, headers={"Retry-After": "90"}, text="slow down")
    return web.json_response({"id": record_id, "updated": True})


@pytest.fixture
def platform() -> Iterator[Receiver]:
    with Receiver(_answer) as running:
        yield running


@pytest.fixture
async def handler() -> AsyncIterator[RecordHandler]:
    async with guarded_session(["127.0.0.0/8"]) as session:
        yield RecordHandler(
            WebhookSender(session, user_agent="Ownly/test"),
            clock=SystemClock(),
            environ=ENVIRON,
            logger=make_logger(io.StringIO()),
            rng=random.Random(3),
        )


def record_of(result: Result) -> Any:
    assert not isinstance(result, Deferred) and result.attempt is not None
    return result.attempt


async def test_the_patch_is_signed_and_verifies_with_standardwebhooks(
    handler: RecordHandler, platform: Receiver
) -> None:
    result = await handler.run(deal_job(platform.url + "/api/deals"))

    assert isinstance(result, Succeeded)
    [got] = platform.snapshot()
    assert (got.method, got.path) == ("PATCH", "/api/deals/deal_1")
    body = Webhook(DEAL_SECRET).verify(got.body, got.headers)
    assert body == {"record": "deal", "id": "deal_1", "fields": FIELDS}
    assert got.headers["webhook-id"] == message_id("run_1:close")
    assert got.headers["Idempotency-Key"] == "run_1:close"
    assert got.headers["X-Event-Type"] == "record.update"
    assert got.headers["Content-Type"] == "application/json"
    record = record_of(result)
    assert record.outcome == "succeeded"
    assert record.detail == {
        "status": 200,
        "headers": record.detail["headers"],
        "body": {"id": "deal_1", "updated": True},
        "body_truncated": False,
    }
    assert record.detail["headers"]["content-type"].startswith("application/json")
    assert DEAL_SECRET.removeprefix("whsec_") not in json.dumps(record.detail)


async def test_an_id_is_one_path_segment(handler: RecordHandler, platform: Receiver) -> None:
    await handler.run(deal_job(platform.url + "/api/deals", record_id="a/b c?d"))
    [got] = platform.snapshot()
    assert (got.raw_path, got.query) == ("/api/deals/a%2Fb%20c%3Fd", "")
    assert json.loads(got.body)["id"] == "a/b c?d"


async def test_a_failure_is_retried_on_the_standard_webhooks_schedule(
    handler: RecordHandler, platform: Receiver
) -> None:
    first = await handler.run(deal_job(platform.url + "/api/deals", record_id="flaky"))
    assert isinstance(first, Retry)
    assert 4 <= first.delay <= 6  # 5s, jittered
    assert record_of(first).detail["status"] == 503
    second = await handler.run(deal_job(platform.url + "/api/deals", 2, "flaky"))
    assert isinstance(second, Succeeded)
    ids = {r.headers["webhook-id"] for r in platform.snapshot()}
    assert ids == {message_id("run_1:close")}
    for got in platform.snapshot():
        Webhook(DEAL_SECRET).verify(got.body, got.headers)
    last = await handler.run(deal_job(platform.url + "/api/deals", 8, "busy"))
    assert isinstance(last, Failed)  # the eighth attempt was the last


async def test_retry_after_is_honoured(handler: RecordHandler, platform: Receiver) -> None:
    result = await handler.run(deal_job(platform.url + "/api/deals", record_id="busy"))
    assert isinstance(result, Retry)
    assert 90 <= result.delay <= 108


async def test_a_404_fails_at_once(handler: RecordHandler, platform: Receiver) -> None:
    result = await handler.run(deal_job(platform.url + "/api/deals", record_id="gone"))
    assert isinstance(result, Failed)
    record = record_of(result)
    assert (record.outcome, record.detail["status"]) == ("rejected", 404)
    assert record.detail["body"] == {"error": "no such deal"}


async def test_a_redirect_fails_at_once_and_is_not_followed(
    handler: RecordHandler, platform: Receiver
) -> None:
    result = await handler.run(deal_job(platform.url + "/api/deals", record_id="moved"))
    assert isinstance(result, Failed)
    assert result.error == "HTTP 301: redirects are not followed"
    assert record_of(result).detail["headers"]["location"] == "/v2/deals/moved"
    assert [r.path for r in platform.snapshot()] == ["/api/deals/moved"]


@pytest.mark.parametrize(
    ("environ", "error_class", "message"),
    [
        ({}, "MissingEnv", "environment variable DEAL_RECORDS_SECRET is not set"),
        ({"DEAL_RECORDS_SECRET": "whsec_c2hvcnQ="}, "SecretError", "24 to 64 bytes"),
        ({"DEAL_RECORDS_SECRET": "plain-password-1"}, "SecretError", "must start with 'whsec_'"),
    ],
)
async def test_a_secret_that_is_missing_or_bad_fails_without_sending(
    platform: Receiver, environ: dict[str, str], error_class: str, message: str
) -> None:
    async with guarded_session(["127.0.0.0/8"]) as session:
        handler = RecordHandler(
            WebhookSender(session, user_agent="Ownly/test"),
            clock=SystemClock(),
            environ=environ,
            logger=make_logger(io.StringIO()),
        )
        result = await handler.run(deal_job(platform.url + "/api/deals"))
    assert isinstance(result, Failed)
    record = record_of(result)
    assert (record.outcome, record.error_class) == ("blocked", error_class)
    assert message in record.error_message
    for value in environ.values():
        assert value not in record.error_message
    assert platform.snapshot() == []


@pytest.mark.parametrize(
    "url", ["https://10.0.0.1/api/deals", "http://192.168.4.4/api", "http://169.254.169.254"]
)
async def test_a_blocked_address_fails_at_once(handler: RecordHandler, url: str) -> None:
    result = await handler.run(deal_job(url))
    assert isinstance(result, Failed)
    assert (record_of(result).outcome, record_of(result).error_class) == (
        "blocked",
        "BlockedAddress",
    )


def test_the_target_is_the_record_and_its_id() -> None:
    assert target(deal_job("https://platform.example/api/deals")) == "deal/deal_1"


async def test_through_the_engine_the_write_reaches_the_platform_signed(
    tmp_path: Path, platform: Receiver
) -> None:
    toml = records_toml(platform.url + "/api/deals")
    async with running_engine(tmp_path, "", ENVIRON, toml) as engine:
        update = await write_record(
            engine, "deal", "flaky", FIELDS, "run_9:close", caller="workflow:run_9:close"
        )
        assert update.job is not None

        async def done() -> bool:
            return [job.state for job in await delivery_jobs(engine)] == ["succeeded"]

        await drive(engine, done)
        (job,) = await delivery_jobs(engine)
        attempts = await attempts_of(engine, job.id)
    assert (job.kind, job.caller, job.attempts) == ("record", "workflow:run_9:close", 2)
    assert [(a.outcome, a.status) for a in attempts] == [("failed", 503), ("succeeded", 200)]
    assert attempts[1].body == {"id": "flaky", "updated": True}
    assert set(attempts[1].detail) == {"status", "headers", "body", "body_truncated"}
    requests = platform.snapshot()
    assert len(requests) == 2
    for got in requests:
        assert got.method == "PATCH"
        assert got.headers["webhook-id"] == message_id("run_9:close")
        stamp = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC)
        expected = Webhook(DEAL_SECRET).sign(got.headers["webhook-id"], stamp, got.body.decode())
        assert got.headers["webhook-signature"] == expected
        assert json.loads(got.body) == {"record": "deal", "id": "flaky", "fields": FIELDS}
