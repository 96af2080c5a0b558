"""The email handler's choice of provider: failover, permanent refusals, limits (fakes)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from connectors.email.base import SendError, Sent
from connectors.email.message import OutgoingEmail
from engine.email.handler import EmailHandler, Route
from engine.email.tracking import Tracker
from engine.jobs.kinds import Deferred, Failed, Retry, Succeeded
from engine.jobs.policy import SchedulePolicy, TokenBucket

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class Provider:
    """Answers each send from ``script`` in turn (an exception is raised), counting sends."""

    def __init__(self, name: str, *script: Any, hold: asyncio.Event | None = None) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[str] = []
        self.in_flight = self.most_in_flight = 0
        self.hold = hold

    async def send(self, email: OutgoingEmail) -> Sent:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                await self.hold.wait()
            answer = self.script.pop(0) if self.script else Sent("id-" + self.name)
            if isinstance(answer, Exception):
                raise answer
            self.sent.append(email.email_id)
            return answer  # type: ignore[no-any-return]
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        return None


def transient(provider: str) -> SendError:
    return SendError(provider, "http_503", f"{provider} answered 503", permanent=False)


def handler(*routes: Route) -> EmailHandler:
    registry = CollectorRegistry()

    async def disconnect() -> None:
        return None

    made = EmailHandler(
        connect=lambda: routes,
        disconnect=disconnect,
        database=None,  # type: ignore[arg-type]  # _send reads nothing
        clock=SimpleNamespace(now=lambda: NOW),  # type: ignore[arg-type]
        bus=None,  # type: ignore[arg-type]
        tracker=Tracker(b"k" * 32, "https://ownly.example"),
        policy=SchedulePolicy(3, (60.0,)),
        unsubscribe_mailto=None,
        attempts=Counter("a", "a", ["provider", "outcome"], registry=registry),
        latency=Histogram("l", "l", ["provider"], registry=registry),
    )
    made._routes = routes
    return made


def route(provider: Provider, *, slots: int = 8, bucket: TokenBucket | None = None) -> Route:
    return Route(provider, asyncio.Semaphore(slots), bucket)  # type: ignore[arg-type]


ROW = SimpleNamespace(
    id="eml_1",
    message_id="<eml_1@ownly.com>",
    sender="hello@ownly.com",
    recipient="ada@example.com",
    recipient_name="Ada",
    reply_to=None,
    subject="Hi",
    html=None,
    text="Hello",
    created_at=NOW,
    category=None,
)
JOB = SimpleNamespace(attempts=1)


async def send(made: EmailHandler) -> Any:
    return await made._send(JOB, ROW, made._message(ROW), NOW)  # type: ignore[arg-type]


def drained(rate: float = 0.001) -> TokenBucket:
    bucket = TokenBucket(rate, clock=lambda: 0.0)
    assert bucket.try_acquire()
    return bucket


async def test_a_transient_failure_moves_on_to_the_next_provider() -> None:
    first, second = Provider("sendgrid", transient("sendgrid")), Provider("mailgun")
    result = await send(handler(route(first), route(second)))
    assert isinstance(result, Succeeded)
    assert (first.sent, second.sent) == ([], ["eml_1"])
    tried = result.attempt.detail["tried"]  # type: ignore[union-attr]
    assert [(t["provider"], t["outcome"]) for t in tried] == [
        ("sendgrid", "failed"),
        ("mailgun", "sent"),
    ]


async def test_a_permanent_refusal_fails_without_the_next_provider() -> None:
    refused = SendError("sendgrid", "http_400", "sendgrid answered 400", permanent=True)
    first, second = Provider("sendgrid", refused), Provider("mailgun")
    result = await send(handler(route(first), route(second)))
    assert isinstance(result, Failed) and second.sent == []
    assert result.error == "sendgrid answered 400"


async def test_every_provider_failing_is_retried_on_the_schedule() -> None:
    first, second = Provider("a", transient("a")), Provider("b", transient("b"))
    result = await send(handler(route(first), route(second)))
    assert isinstance(result, Retry)
    assert 48 <= result.delay <= 72  # 60 s, jittered by 20%
    assert result.error == "a answered 503; b answered 503"  # each message names its provider


async def test_a_provider_at_its_rate_limit_is_skipped() -> None:
    first, second = Provider("a"), Provider("b")
    result = await send(handler(route(first, bucket=drained()), route(second)))
    assert isinstance(result, Succeeded) and (first.sent, second.sent) == ([], ["eml_1"])
    tried = result.attempt.detail["tried"]  # type: ignore[union-attr]
    assert tried[0] == {"provider": "a", "outcome": "rate_limited"}


async def test_every_provider_at_its_limit_defers_without_an_attempt() -> None:
    first, second = Provider("a"), Provider("b")
    made = handler(route(first, bucket=drained(0.5)), route(second, bucket=drained(0.25)))
    result = await send(made)
    assert isinstance(result, Deferred) and result.attempt is None
    assert 0 < result.delay <= 2.0  # the sooner of the two buckets
    assert first.sent == second.sent == []


async def test_a_provider_has_at_most_its_concurrency_in_flight() -> None:
    release = asyncio.Event()
    provider = Provider("smtp", hold=release)
    made = handler(route(provider, slots=2))
    sends = [asyncio.create_task(send(made)) for _ in range(5)]
    for _ in range(20):  # every send has had its turns: two are in, three wait for a slot
        await asyncio.sleep(0)
    assert provider.in_flight == 2
    release.set()
    results = await asyncio.gather(*sends)
    assert all(isinstance(r, Succeeded) for r in results)
    assert provider.most_in_flight == 2 and len(provider.sent) == 5
