"""The webhook sender against a real aiohttp receiver on 127.0.0.1.

Every delivery the receiver gets is verified with the independent
``standardwebhooks`` library, never with our own signing code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook, WebhookVerificationError

from connectors import (
    METHODS,
    REDACTED,
    Attempt,
    Outcome,
    WebhookRequest,
    WebhookSecret,
    WebhookSender,
    generate_secret,
    guarded_session,
)

USER_AGENT = "Ownly/9.9.9"
BODY = json.dumps(
    {
        "id": "evt_01",
        "type": "investment.created",
        "created_at": "2026-11-26T12:00:00Z",
        "data": {"investment_id": "inv_1", "amount": "25000.00", "currency": "usd"},
    }
).encode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


@dataclass
class Receiver:
    url: str
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def paths(self) -> list[str]:
        return [r.path for r in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def record(request: web.Request) -> None:
        body = await request.read()
        state.received.append(Received(request.path, dict(request.headers), body, request.method))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"ok": True})

    async def status(request: web.Request) -> web.Response:
        await record(request)
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=int(request.match_info["code"]), headers=headers, text="no")

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(location=request.query.get("to", "/target"))

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await state.release.wait()
        return web.Response(text="late")

    async def big(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(body=b"x" * 100_000 + b"END")

    async def sensitive(request: web.Request) -> web.Response:
        await record(request)
        response = web.Response(text="ok")
        response.headers["Authorization"] = "Bearer receiver-bearer-1"
        response.headers["X-Api-Key"] = "receiver-key-2"
        response.headers["X-Auth-Token"] = "receiver-token-3"
        response.headers["X-Client-Secret"] = "receiver-secret-4"
        response.headers["X-Request-Id"] = "req-5"
        response.set_cookie("session", "receiver-cookie-6")
        return response

    async def record_any(request: web.Request) -> web.Response:
        await record(request)
        response = web.json_response({"method": request.method})
        response.headers["X-Trace"] = "trace-7"
        return response

    app = web.Application()
    app.router.add_route("*", "/any", record_any)
    app.router.add_post("/ok", ok)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/target", ok)
    app.router.add_post("/slow", slow)
    app.router.add_post("/big", big)
    app.router.add_post("/sensitive", sensitive)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    state.url = str(server.make_url(""))
    yield state
    state.release.set()
    await server.close()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    async with guarded_session(["127.0.0.0/8"]) as session:
        yield WebhookSender(session, user_agent=USER_AGENT, response_body_limit=1024)


def make_request(url: str, *secrets: WebhookSecret, timeout: float = 5.0) -> WebhookRequest:
    return WebhookRequest(
        url=url,
        message_id="msg_2b4a8c1d",
        event_type="investment.created",
        body=BODY,
        secrets=secrets or (generate_secret(),),
        timestamp=int(time.time()),
        headers={"X-Tenant": "acme", "webhook-signature": "v1,forged"},
        timeout=timeout,
    )


async def test_delivery_verifies_with_standardwebhooks(
    receiver: Receiver, sender: WebhookSender
) -> None:
    secret = generate_secret()
    attempt = await sender.send(make_request(receiver.url + "/ok", secret))

    assert attempt.outcome is Outcome.DELIVERED
    assert attempt.status == 200
    assert json.loads(attempt.response_body) == {"ok": True}
    assert attempt.error_class is None
    [got] = receiver.received
    assert got.body == BODY
    payload = Webhook(secret.reveal()).verify(got.body, got.headers)
    assert payload["id"] == "evt_01"
    assert got.headers["webhook-id"] == "msg_2b4a8c1d"
    assert got.headers["X-Event-Type"] == "investment.created"
    assert got.headers["User-Agent"] == USER_AGENT
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Tenant"] == "acme"
    assert "forged" not in got.headers["webhook-signature"], "extra headers cannot sign"


async def test_seed_signature_is_the_hex_hmac_of_the_body(
    receiver: Receiver, sender: WebhookSender
) -> None:
    secret = generate_secret()
    await sender.send(make_request(receiver.url + "/ok", secret, generate_secret()))
    [got] = receiver.received
    expected = hmac.new(secret.key, got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-Webhook-Signature"], expected)


async def test_rotation_sends_two_signatures_each_verifying_alone(
    receiver: Receiver, sender: WebhookSender
) -> None:
    current, previous = generate_secret(), generate_secret()
    await sender.send(make_request(receiver.url + "/ok", current, previous))
    [got] = receiver.received
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(s.startswith("v1,") for s in signatures)
    for index, secret in enumerate((current, previous)):
        # A receiver that holds only this secret accepts the delivery...
        Webhook(secret.reveal()).verify(got.body, got.headers)
        # ...because of its own signature, and not of the other one.
        own = {**got.headers, "webhook-signature": signatures[index]}
        Webhook(secret.reveal()).verify(got.body, own)
        other = {**got.headers, "webhook-signature": signatures[1 - index]}
        with pytest.raises(WebhookVerificationError):
            Webhook(secret.reveal()).verify(got.body, other)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret().reveal()).verify(got.body, got.headers)


async def test_retries_keep_the_message_id(receiver: Receiver, sender: WebhookSender) -> None:
    secret = generate_secret()
    request = make_request(receiver.url + "/status/500", secret)
    first = await sender.send(request)
    second = await sender.send(request)
    assert [first.outcome, second.outcome] == [Outcome.FAILED, Outcome.FAILED]
    assert first.status == 500
    assert first.response_body == "no"
    ids = {r.headers["webhook-id"] for r in receiver.received}
    assert ids == {"msg_2b4a8c1d"}
    for got in receiver.received:
        Webhook(secret.reveal()).verify(got.body, got.headers)


async def test_gone_410(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(make_request(receiver.url + "/status/410"))
    assert (attempt.outcome, attempt.status) == (Outcome.GONE, 410)
    assert not attempt.outcome.retryable


@pytest.mark.parametrize("code", [429, 503])
async def test_throttled_with_retry_after_seconds(
    receiver: Receiver, sender: WebhookSender, code: int
) -> None:
    attempt = await sender.send(make_request(f"{receiver.url}/status/{code}?retry_after=120"))
    assert (attempt.outcome, attempt.status, attempt.retry_after) == (
        Outcome.THROTTLED,
        code,
        120.0,
    )


async def test_throttled_with_retry_after_http_date(receiver: Receiver) -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(minutes=5), usegmt=True)
    async with guarded_session(["127.0.0.0/8"]) as session:
        sender = WebhookSender(session, user_agent=USER_AGENT, clock=now.timestamp)
        url = f"{receiver.url}/status/429?retry_after={later.replace(' ', '%20')}"
        attempt = await sender.send(make_request(url))
    assert attempt.outcome is Outcome.THROTTLED
    assert attempt.retry_after == 300.0
    assert attempt.started_at == now


async def test_503_without_retry_after_is_a_plain_failure(
    receiver: Receiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(make_request(receiver.url + "/status/503"))
    assert (attempt.outcome, attempt.retry_after) == (Outcome.FAILED, None)
    assert attempt.outcome.retryable


async def test_redirect_is_a_failure_and_not_followed(
    receiver: Receiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(make_request(receiver.url + "/redirect"))
    assert (attempt.outcome, attempt.status) == (Outcome.REDIRECT, 302)
    assert dict(attempt.response_headers)["Location"] == "/target"
    assert receiver.paths() == ["/redirect"], "the redirect target saw nothing"


async def test_timeout_is_a_failure_with_its_class(
    receiver: Receiver, sender: WebhookSender
) -> None:
    started = time.monotonic()
    attempt = await sender.send(make_request(receiver.url + "/slow", timeout=0.2))
    assert time.monotonic() - started < 2
    assert attempt.outcome is Outcome.FAILED
    assert attempt.status is None
    assert attempt.error_class is not None
    assert "Timeout" in attempt.error_class
    assert attempt.error_message is not None
    assert "within 0.2s" in attempt.error_message, attempt
    assert 0.15 < attempt.duration < 2
    assert receiver.paths() == ["/slow"]


async def test_connection_refused_is_a_failure(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    attempt = await sender.send(make_request(f"http://127.0.0.1:{port}/hook"))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error_class == "ClientConnectorError"
    assert attempt.error_message is not None
    assert f"127.0.0.1:{port}" in attempt.error_message


async def test_response_body_is_capped(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(make_request(receiver.url + "/big"))
    assert attempt.outcome is Outcome.DELIVERED
    assert attempt.response_body == "x" * 1024
    assert attempt.response_body_truncated
    small = await sender.send(make_request(receiver.url + "/ok"))
    assert not small.response_body_truncated


async def test_sensitive_response_headers_are_redacted(
    receiver: Receiver, sender: WebhookSender
) -> None:
    attempt = await sender.send(make_request(receiver.url + "/sensitive"))
    headers = {name.lower(): value for name, value in attempt.response_headers}
    for name in ("authorization", "x-api-key", "x-auth-token", "x-client-secret", "set-cookie"):
        assert headers[name] == REDACTED
    assert headers["x-request-id"] == "req-5"
    assert "receiver-" not in json.dumps(attempt.to_dict())


async def test_the_attempt_holds_no_secret_or_signature(
    receiver: Receiver, sender: WebhookSender
) -> None:
    secret = generate_secret()
    attempts = [
        await sender.send(make_request(receiver.url + path, secret))
        for path in ("/ok", "/status/500", "/redirect")
    ]
    signatures = {r.headers["webhook-signature"].removeprefix("v1,") for r in receiver.received}
    hexes = {r.headers["X-Webhook-Signature"] for r in receiver.received}
    for attempt in attempts:
        stored = json.dumps(attempt.to_dict())
        for hidden in {secret.reveal().removeprefix("whsec_"), *signatures, *hexes}:
            assert hidden not in stored


async def test_error_messages_hide_the_url_path_and_credentials(sender: WebhookSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://user:pa55word@127.0.0.1:{port}/hooks/T0KEN-in-path?sig=abc123"
    attempt = await sender.send(make_request(url))
    assert attempt.outcome is Outcome.FAILED
    assert attempt.error_message is not None
    for hidden in ("pa55word", "T0KEN-in-path", "abc123"):
        assert hidden not in attempt.error_message


async def test_attempt_round_trips_through_json(receiver: Receiver, sender: WebhookSender) -> None:
    attempt = await sender.send(make_request(receiver.url + "/status/429?retry_after=7"))
    data = json.loads(json.dumps(attempt.to_dict()))
    assert Attempt.from_dict(data) == attempt
    assert data["outcome"] == "throttled"


async def test_the_sender_uses_the_injected_session_and_leaves_it_open(
    receiver: Receiver,
) -> None:
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(session, user_agent=USER_AGENT)
        first = await sender.send(make_request(receiver.url + "/ok"))
        second = await sender.send(make_request(receiver.url + "/ok"))
        assert not session.closed
    assert [first.outcome, second.outcome] == [Outcome.DELIVERED, Outcome.DELIVERED]


_SIGNATURE_NAMES = {"webhook-id", "webhook-timestamp", "webhook-signature", "x-webhook-signature"}


async def test_a_signed_patch_verifies_with_standardwebhooks(
    receiver: Receiver, sender: WebhookSender
) -> None:
    secret = generate_secret()
    request = make_request(receiver.url + "/any", secret)
    attempt = await sender.send(replace(request, method="PATCH"))

    assert (attempt.outcome, attempt.status) == (Outcome.DELIVERED, 200)
    assert json.loads(attempt.response_body) == {"method": "PATCH"}
    [got] = receiver.received
    assert (got.method, got.body) == ("PATCH", BODY)
    assert Webhook(secret.reveal()).verify(got.body, got.headers)["id"] == "evt_01"
    assert got.headers["Content-Type"] == "application/json"


async def test_an_unsigned_get_sends_only_its_headers_and_no_body(
    receiver: Receiver, sender: WebhookSender
) -> None:
    request = WebhookRequest(
        url=receiver.url + "/any?page=2",
        message_id="",
        event_type="",
        body=b"",
        secrets=(),
        timestamp=0,
        headers={"Authorization": "Bearer api-token-1", "User-Agent": "mine", "Content-Type": "x"},
        timeout=5.0,
        method="GET",
    )
    attempt = await sender.send(request)

    assert (attempt.outcome, attempt.status) == (Outcome.DELIVERED, 200)
    assert json.loads(attempt.response_body) == {"method": "GET"}
    assert dict(attempt.response_headers)["X-Trace"] == "trace-7"
    [got] = receiver.received
    assert (got.method, got.body) == ("GET", b"")
    names = {name.lower() for name in got.headers}
    assert not names & (_SIGNATURE_NAMES | {"x-event-type", "content-type"})
    assert got.headers["User-Agent"] == USER_AGENT
    assert got.headers["Authorization"] == "Bearer api-token-1"


async def test_an_unsigned_patch_carries_its_json_body(
    receiver: Receiver, sender: WebhookSender
) -> None:
    request = WebhookRequest(
        url=receiver.url + "/any",
        message_id="",
        event_type="",
        body=b'{"status":"funded"}',
        secrets=(),
        timestamp=0,
        headers={"Idempotency-Key": "run_1:step_2"},
        method="PATCH",
    )
    attempt = await sender.send(request)

    assert attempt.outcome is Outcome.DELIVERED
    [got] = receiver.received
    assert (got.method, got.body) == ("PATCH", b'{"status":"funded"}')
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Idempotency-Key"] == "run_1:step_2"
    assert not {name.lower() for name in got.headers} & _SIGNATURE_NAMES


@pytest.mark.parametrize("method", sorted(METHODS))
async def test_every_method_arrives_as_itself(
    receiver: Receiver, sender: WebhookSender, method: str
) -> None:
    request = WebhookRequest(
        url=receiver.url + "/any",
        message_id="",
        event_type="",
        body=b"",
        secrets=(),
        timestamp=0,
        method=method,
    )
    attempt = await sender.send(request)
    assert (attempt.outcome, attempt.status) == (Outcome.DELIVERED, 200)
    assert attempt.response_body == ("" if method == "HEAD" else json.dumps({"method": method}))
    assert [r.method for r in receiver.received] == [method]
