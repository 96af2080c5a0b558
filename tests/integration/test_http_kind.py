"""The ``http`` job kind against a real aiohttp receiver on 127.0.0.1.

Each job is run by the handler as a worker would run it, one attempt per
``run``; the receiver records what arrived and answers as each test asks.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors import guarded_session
from connectors.webhook import WebhookSender
from engine.app import load_settings
from engine.core.clock import ManualClock
from engine.core.logs import make_logger
from engine.jobs.kinds import Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.queue import Job
from engine.workflows.http import HttpHandler, connect_from, detail_of, target
from tests.support.clock import utc
from tests.support.process import closed_port, write_project
from tests.support.receiver import Received, Receiver

USER_AGENT = "Ownly/test"
ENVIRON = {"API_TOKEN": "tok_live_1", "API_BASE": "unused"}


def http_job(url: object, attempts: int = 1, **changes: Any) -> Job:
    payload: dict[str, Any] = {
        "method": "POST",
        "url": url,
        "headers": {},
        "body": None,
        "timeout_seconds": 5.0,
        "idempotency_key": "run_1:notify",
        "retry": None,
        **changes,
    }
    now = utc()
    return Job(
        id=7,
        kind="http",
        payload=payload,
        state="running",
        due_at=now,
        attempts=attempts,
        max_attempts=3,
        idempotency_key="workflow:run_1:notify",
        event_id=None,
        rule_set=None,
        last_error=None,
        lease_owner="worker",
        created_at=now,
        updated_at=now,
        finished_at=None,
        caller="workflow:run_1:notify",
    )


@pytest.fixture
async def handler() -> AsyncIterator[HttpHandler]:
    async with guarded_session(["127.0.0.0/8"]) as session:
        sender = WebhookSender(session, user_agent=USER_AGENT, response_body_limit=1024)
        yield HttpHandler(
            sender,
            clock=ManualClock(),
            environ=ENVIRON,
            logger=make_logger(io.StringIO()),
            rng=random.Random(7),
        )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(_answer) as running:
        yield running


def _answer(
    request: Received, nth: int
) -> web.StreamResponse | Coroutine[Any, Any, web.StreamResponse]:
    """By path: /json, /text, /status/<code>[?retry_after=], /redirect, /big, /sensitive."""
    parts = request.path.strip("/").split("/")
    if parts[0] == "text":
        return web.Response(text="plain words")
    if parts[0] == "status":
        headers = {}
        if request.query.startswith("retry_after="):
            headers["Retry-After"] = request.query.removeprefix("retry_after=")
        return web.json_response({"error": "no"}, status=int(parts[1]), headers=headers)
    if parts[0] == "flaky":  # a 500 first, then a 200
        return web.json_response({"nth": nth}, status=500 if nth == 1 else 200)
    if parts[0] == "redirect":
        return web.Response(status=302, headers={"Location": "/json"})
    if parts[0] == "big":
        return web.Response(body=b'{"x": "' + b"x" * 5000 + b'"}', content_type="application/json")
    if parts[0] == "problem":
        return web.Response(text='{"title": "bad"}', content_type="application/problem+json")
    if parts[0] == "broken":
        return web.Response(text="{not json", content_type="application/json")
    if parts[0] == "sensitive":
        response = web.json_response({"ok": True})
        response.headers["Authorization"] = "Bearer receiver-bearer-1"
        response.set_cookie("session", "receiver-cookie-2")
        return response
    if parts[0] == "slow":
        return _slow()
    return web.json_response({"method": request.method, "path": request.path})


async def _slow() -> web.StreamResponse:
    await asyncio.sleep(1)
    return web.Response(text="late")


def record_of(result: Result) -> Any:
    assert not isinstance(result, Deferred)
    assert result.attempt is not None
    return result.attempt


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
async def test_each_method_is_sent_as_itself(
    handler: HttpHandler, receiver: Receiver, method: str
) -> None:
    body = None if method in ("GET", "HEAD", "DELETE") else {"amount": "25.00", "ok": True}
    result = await handler.run(http_job(receiver.url + "/echo?x=1", method=method, body=body))

    assert isinstance(result, Succeeded)
    record = record_of(result)
    assert (record.outcome, record.error_class) == ("succeeded", None)
    assert record.detail["status"] == 200
    expected = None if method == "HEAD" else {"method": method, "path": "/echo"}
    assert record.detail["body"] == ("" if expected is None else expected)
    [got] = receiver.snapshot()
    assert (got.method, got.path, got.query) == (method, "/echo", "x=1")
    assert got.headers["Idempotency-Key"] == "run_1:notify"
    assert got.headers["User-Agent"] == USER_AGENT
    assert not any(name.lower().startswith("webhook-") for name in got.headers)
    if body is None:
        assert got.body == b""
        assert "Content-Type" not in got.headers
    else:
        assert json.loads(got.body) == body
        assert got.headers["Content-Type"] == "application/json"


async def test_the_detail_has_status_lower_case_headers_and_the_json_body(
    handler: HttpHandler, receiver: Receiver
) -> None:
    record = record_of(await handler.run(http_job(receiver.url + "/echo")))
    assert set(record.detail) == {"status", "headers", "body", "body_truncated"}
    assert record.detail["body"] == {"method": "POST", "path": "/echo"}
    assert record.detail["body_truncated"] is False
    headers = record.detail["headers"]
    assert all(name == name.lower() for name in headers)
    assert headers["content-type"] == "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/text", "plain words"),
        ("/problem", {"title": "bad"}),  # application/problem+json is JSON
        ("/broken", "{not json"),  # says JSON, is not: kept as text
    ],
)
async def test_a_body_is_json_only_when_it_says_so_and_parses(
    handler: HttpHandler, receiver: Receiver, path: str, body: object
) -> None:
    record = record_of(await handler.run(http_job(receiver.url + path, method="GET")))
    assert (record.outcome, record.detail["body"]) == ("succeeded", body)


async def test_a_body_over_the_limit_is_cut_and_kept_as_text(
    handler: HttpHandler, receiver: Receiver
) -> None:
    record = record_of(await handler.run(http_job(receiver.url + "/big", method="GET")))
    assert record.detail["body_truncated"] is True
    assert record.detail["body"] == '{"x": "' + "x" * (1024 - 7)


async def test_credential_headers_of_the_answer_are_redacted(
    handler: HttpHandler, receiver: Receiver
) -> None:
    record = record_of(await handler.run(http_job(receiver.url + "/sensitive")))
    headers = record.detail["headers"]
    assert headers["authorization"] == headers["set-cookie"] == "<redacted>"
    assert "receiver-" not in json.dumps(record.detail)


async def test_a_500_is_retried_after_the_default_policys_delay_then_succeeds(
    handler: HttpHandler, receiver: Receiver
) -> None:
    first = await handler.run(http_job(receiver.url + "/flaky", attempts=1))
    assert isinstance(first, Retry)
    assert 0.8 <= first.delay <= 1.2  # the default policy's first wait, 1s, jittered
    assert first.error == "HTTP 500"
    record = record_of(first)
    assert (record.outcome, record.detail["status"], record.detail["body"]) == (
        "failed",
        500,
        {"nth": 1},
    )
    second = await handler.run(http_job(receiver.url + "/flaky", attempts=2))
    assert isinstance(second, Succeeded)
    assert record_of(second).detail["body"] == {"nth": 2}
    assert [r.headers["Idempotency-Key"] for r in receiver.snapshot()] == ["run_1:notify"] * 2


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503])
async def test_retryable_statuses_fail_once_the_policy_is_done(
    handler: HttpHandler, receiver: Receiver, code: int
) -> None:
    url = f"{receiver.url}/status/{code}"
    assert isinstance(await handler.run(http_job(url, attempts=2)), Retry)
    last = await handler.run(http_job(url, attempts=3))  # the default policy's third
    assert isinstance(last, Failed)
    assert (last.error, record_of(last).outcome) == (f"HTTP {code}", "failed")


async def test_the_payloads_retry_policy_is_followed(
    handler: HttpHandler, receiver: Receiver
) -> None:
    retry = {"attempts": 2, "backoff": "every", "delays": [30]}
    first = await handler.run(http_job(receiver.url + "/status/500", retry=retry))
    assert isinstance(first, Retry)
    assert 24 <= first.delay <= 36
    second = await handler.run(http_job(receiver.url + "/status/500", attempts=2, retry=retry))
    assert isinstance(second, Failed)


async def test_retry_after_is_honoured_within_the_policy(
    handler: HttpHandler, receiver: Receiver
) -> None:
    result = await handler.run(http_job(receiver.url + "/status/429?retry_after=40"))
    assert isinstance(result, Retry)
    assert 40 <= result.delay <= 48
    clamped = await handler.run(http_job(receiver.url + "/status/429?retry_after=3600"))
    assert isinstance(clamped, Retry)
    assert clamped.delay == 60  # the default policy's longest wait


@pytest.mark.parametrize("code", [400, 401, 404, 409, 410, 422])
async def test_another_4xx_fails_at_once(
    handler: HttpHandler, receiver: Receiver, code: int
) -> None:
    result = await handler.run(http_job(f"{receiver.url}/status/{code}"))
    assert isinstance(result, Failed)
    record = record_of(result)
    assert (record.outcome, record.detail["status"], record.detail["body"]) == (
        "rejected",
        code,
        {"error": "no"},
    )
    assert len(receiver.snapshot()) == 1


async def test_a_redirect_succeeds_and_is_not_followed(
    handler: HttpHandler, receiver: Receiver
) -> None:
    result = await handler.run(http_job(receiver.url + "/redirect"))
    assert isinstance(result, Succeeded)
    detail = record_of(result).detail
    assert (detail["status"], detail["headers"]["location"]) == (302, "/json")
    assert [r.path for r in receiver.snapshot()] == ["/redirect"]


async def test_a_timeout_is_retried_with_no_answer_in_the_detail(
    handler: HttpHandler, receiver: Receiver
) -> None:
    result = await handler.run(http_job(receiver.url + "/slow", timeout_seconds=0.2))
    assert isinstance(result, Retry)
    record = record_of(result)
    assert record.outcome == "failed"
    assert "Timeout" in record.error_class
    assert "within 0.2s" in record.error_message
    assert record.detail == detail_of(None)
    assert record.detail == {"status": None, "headers": {}, "body": None, "body_truncated": False}


async def test_a_refused_connection_is_retried(handler: HttpHandler) -> None:
    probe, port = closed_port()
    with probe:
        result = await handler.run(http_job(f"http://127.0.0.1:{port}/x"))
    assert isinstance(result, Retry)
    assert record_of(result).error_class == "ClientConnectorError"


@pytest.mark.parametrize(
    ("url", "error_class"),
    [
        ("http://10.0.0.1/hook", "BlockedAddress"),  # private, outside the allow-list
        ("https://192.168.1.20/hook", "BlockedAddress"),
        ("http://169.254.169.254/latest/meta-data", "BlockedAddress"),
        ("http://[::ffff:10.0.0.1]/hook", "BlockedAddress"),
        ("http://metadata.google.internal/x", "BlockedUrl"),
        ("ftp://files.example/x", "BlockedUrl"),
        ("not a url", "BlockedUrl"),
    ],
)
async def test_a_blocked_address_fails_at_once(
    handler: HttpHandler, url: str, error_class: str
) -> None:
    result = await handler.run(http_job(url))
    assert isinstance(result, Failed)
    record = record_of(result)
    assert (record.outcome, record.error_class) == ("blocked", error_class)
    assert record.detail["status"] is None


async def test_values_from_the_environment_are_read_when_sent(
    handler: HttpHandler, receiver: Receiver
) -> None:
    headers = {
        "Authorization": {"env": "API_TOKEN", "default": None},
        "X-Region": {"env": "API_REGION", "default": "eu"},
        "idempotency-key": "a step cannot choose its own",
    }
    url = {"env": "UNSET_URL", "default": receiver.url + "/echo"}
    result = await handler.run(http_job(url, headers=headers))
    assert isinstance(result, Succeeded)
    [got] = receiver.snapshot()
    assert got.headers["Authorization"] == "tok_live_1"
    assert got.headers["X-Region"] == "eu"
    assert got.headers["Idempotency-Key"] == "run_1:notify"


@pytest.mark.parametrize(
    "changes",
    [
        {"url": {"env": "MISSING_URL", "default": None}},
        {"headers": {"Authorization": {"env": "MISSING_TOKEN"}}},
    ],
)
async def test_a_variable_not_set_fails_the_job_with_its_name(
    handler: HttpHandler, receiver: Receiver, changes: dict[str, Any]
) -> None:
    given = {"url": receiver.url + "/echo", **changes}
    result = await handler.run(http_job(**given))
    assert isinstance(result, Failed)
    assert "MISSING_" in result.error and "is not set" in result.error
    record = record_of(result)
    assert (record.outcome, record.error_class) == ("blocked", "MissingEnv")
    assert receiver.snapshot() == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "TRACE"}, "not 'TRACE'"),
        ({"headers": {"X-Bad": "one\r\nInjected: yes"}}, "line break"),
        ({"headers": {"Bad Name": "x"}}, "not a header name"),
        ({"headers": ["X-A", "b"]}, "headers must be an object"),
        ({"idempotency_key": ""}, "not an idempotency key"),
        ({"timeout_seconds": 0}, "positive"),
        ({"timeout_seconds": "soon"}, "not a request"),
        ({"retry": {"attempts": 0, "backoff": "every", "delays": [1]}}, "at least 1 attempt"),
        ({"url": 42}, "not a value"),
    ],
)
async def test_a_request_that_cannot_be_made_fails_without_sending(
    handler: HttpHandler, receiver: Receiver, changes: dict[str, Any], message: str
) -> None:
    given = {"url": receiver.url + "/echo", **changes}
    result = await handler.run(http_job(**given))
    assert isinstance(result, Failed)
    assert message in result.error
    assert record_of(result).outcome == "blocked"
    assert receiver.snapshot() == []


async def test_once_stopping_nothing_more_starts(handler: HttpHandler, receiver: Receiver) -> None:
    handler.stop()
    assert await handler.run(http_job(receiver.url + "/echo")) == Deferred(0.0)
    assert receiver.snapshot() == []


async def test_the_session_follows_the_webhooks_allow_list(
    tmp_path: Path, receiver: Receiver
) -> None:
    """``connect_from`` builds the session from ``[webhooks]``: loopback only when allowed."""
    outcomes = []
    for allowed in ('["127.0.0.0/8"]', "[]"):
        path = write_project(tmp_path, extra_toml=f"[webhooks]\nallow_networks = {allowed}\n")
        settings = load_settings(path, {})
        clock = ManualClock()
        connect = connect_from(settings, concurrency=4, clock=clock, user_agent=USER_AGENT)
        handler = HttpHandler(
            connect=connect, clock=clock, environ={}, logger=make_logger(io.StringIO())
        )
        await handler.start()
        try:
            result = await handler.run(http_job(receiver.url + "/echo"))
        finally:
            await handler.close()
        record = record_of(result)
        outcomes.append((type(result), record.outcome, record.error_class))
    assert outcomes == [(Succeeded, "succeeded", None), (Failed, "blocked", "BlockedAddress")]
    assert len(receiver.snapshot()) == 1


def test_the_target_names_the_method_and_origin_only() -> None:
    job = http_job("https://api.example:8443/v1/hooks/T0KEN?sig=abc", method="PUT")
    assert target(job) == "PUT https://api.example:8443"
    assert target(http_job({"env": "CRM_URL"})) == "POST env CRM_URL"


async def test_the_log_names_the_origin_and_not_the_path(receiver: Receiver) -> None:
    logs = io.StringIO()
    async with guarded_session(["127.0.0.0/8"]) as session:
        sender = WebhookSender(session, user_agent=USER_AGENT)
        handler = HttpHandler(sender, clock=ManualClock(), environ={}, logger=make_logger(logs))
        await handler.run(http_job(receiver.url + "/echo/T0KEN?sig=abc"))
    (line,) = [json.loads(line) for line in logs.getvalue().splitlines()]
    assert (line["event"], line["origin"], line["status"]) == ("http.attempt", receiver.url, 200)
    assert (line["job_id"], line["caller"], line["outcome"]) == (
        7,
        "workflow:run_1:notify",
        "succeeded",
    )
    assert "T0KEN" not in logs.getvalue() and "abc" not in logs.getvalue()
