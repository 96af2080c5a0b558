"""Webhook deliveries, carried out by the sender connector: one attempt per run.

A webhook's rate limit defers a delivery without counting an attempt. A
destination host has at most `[webhooks] connections_per_host` requests in
flight: a delivery waits for one of them to finish before its own timeout
starts (waiting in the connection pool would count against it, and deliveries
behind a slow host would time out without being sent); if none finishes
within a second, it goes back to the queue, attempt not counted, and frees
its worker slot for other hosts. Once the engine is stopping, a delivery
that has not started goes back to the queue.

Each attempt is logged in the attempt log with its status, response headers
(credentials redacted) and capped body as its detail; the webhook's health
is kept by the finish hook (``engine.webhooks.health``).
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Histogram
from yarl import URL

from connectors import parse_secret
from connectors.errors import ConnectorError, RequestError
from connectors.webhook import Attempt, Outcome, WebhookRequest, WebhookSender
from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.jobs.kinds import AttemptRecord, Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.policy import RetryPolicy, TokenBucket, next_delay, stored_policy
from engine.jobs.queue import Job
from engine.webhooks.health import Health

__all__ = ["WebhookHandler", "policy_of", "record_of"]


def record_of(attempt: Attempt) -> AttemptRecord:
    """A sender's attempt as the attempt log keeps it."""
    return AttemptRecord(
        outcome=attempt.outcome.value,
        started_at=attempt.started_at,
        duration=attempt.duration,
        error_class=attempt.error_class,
        error_message=attempt.error_message,
        detail={
            "status": attempt.status,
            "response_headers": [list(pair) for pair in attempt.response_headers],
            "response_body": attempt.response_body,
            "response_body_truncated": attempt.response_body_truncated,
            "retry_after": attempt.retry_after,
        },
    )


def policy_of(definition: Mapping[str, Any]) -> RetryPolicy:
    """The connector's retry policy for a stored webhook definition."""
    return stored_policy(definition["retry"])


class _MissingEnv(Exception):
    pass


# Seconds until a delivery whose host had no free slot is leased again (spread,
# so that they do not all come back at once).
_HOST_BUSY_DELAY = (0.5, 1.5)


def _host_of(url: str) -> tuple[str, str, int]:
    """Where a request goes, as the connection pool tells hosts apart."""
    try:
        parsed = URL(url)
        return parsed.scheme, parsed.host or "", parsed.port or 0
    except (TypeError, ValueError):  # the sender refuses it and says why
        return "", url, 0


class WebhookHandler:
    """Sends one delivery attempt and says what the worker should do next."""

    def __init__(
        self,
        sender: WebhookSender | None = None,
        *,
        connect: Callable[[], tuple[aiohttp.ClientSession, WebhookSender]] | None = None,
        clock: Clock,
        environ: Mapping[str, str],
        logger: Logger,
        health: Health,
        rng: random.Random | None = None,
        attempts: Counter | None = None,
        latency: Histogram | None = None,
        per_host: int | None = None,
        host_wait: float = 1.0,
    ) -> None:
        """``sender``: the sender to use, or ``connect``: what opens a session and its
        sender when the handler starts (closed by ``close``);
        ``per_host``: the most attempts in flight to one host (scheme, host, port);
        ``host_wait``: how many seconds a queued delivery waits for one of them."""
        self._connect = connect
        self._sender = sender
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._environ = environ
        self._logger = logger
        self._health = health
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._buckets: dict[tuple[str, int, float], TokenBucket] = {}
        self._attempts = attempts
        self._latency = latency
        self._per_host = per_host
        self._host_wait = host_wait
        # A host's semaphore lives as long as a delivery holds or awaits it.
        self._hosts: weakref.WeakValueDictionary[tuple[str, str, int], asyncio.Semaphore]
        self._hosts = weakref.WeakValueDictionary()
        self._stopping = False

    async def start(self) -> None:
        """Open the session (its connection pool lives on the engine's loop)."""
        if self._sender is None and self._connect is not None:
            self._session, self._sender = self._connect()

    async def close(self) -> None:
        """Close the session ``start`` opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._sender = None

    def stop(self) -> None:
        """Make no more attempts for the worker (the engine is stopping); ``send`` still does."""
        self._stopping = True

    async def run(self, job: Job) -> Result:
        """One attempt for the worker, unless it must wait (the attempt not counted).

        It waits when its host has no free slot within ``host_wait``, when the
        webhook's rate limit says later, and when the engine is stopping.
        """
        if self._stopping:
            return Deferred(0.0)
        request = self._request(job)
        if not isinstance(request, WebhookRequest):
            return request
        slot = self._slot(request.url)
        if slot is not None and not await self._take(slot):
            return Deferred(0.0 if self._stopping else self._rng.uniform(*_HOST_BUSY_DELAY))
        try:
            if self._stopping:  # while it waited for its host
                return Deferred(0.0)
            limit = job.payload["definition"].get("rate_limit")
            if limit is not None:
                bucket = self._bucket(job.payload["webhook"], limit["count"], limit["per_seconds"])
                if not bucket.try_acquire():
                    spread = self._rng.uniform(0, 1 / bucket.rate)  # not all back at once
                    return Deferred(bucket.wait_time() + spread)
            return await self._attempt(job, request)
        finally:
            if slot is not None:
                slot.release()

    async def send(self, job: Job) -> Result:
        """Send one attempt now (asked for through the API), once its host has a free slot."""
        request = self._request(job)
        if not isinstance(request, WebhookRequest):
            return request
        slot = self._slot(request.url)
        if slot is None:
            return await self._attempt(job, request)
        async with slot:
            return await self._attempt(job, request)

    def _slot(self, url: str) -> asyncio.Semaphore | None:
        """The requests in flight to the host of ``url``, if they are bounded."""
        if self._per_host is None:
            return None
        host = _host_of(url)
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = asyncio.Semaphore(self._per_host)
        return slot

    async def _take(self, slot: asyncio.Semaphore) -> bool:
        """Whether a slot was free within ``host_wait`` (its wait is not the attempt's)."""
        try:
            async with asyncio.timeout(self._host_wait):
                await slot.acquire()
        except TimeoutError:
            return False
        return True

    def _bucket(self, webhook: str, count: int, per_seconds: float) -> TokenBucket:
        key = (webhook, count, float(per_seconds))
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = count / per_seconds
            bucket = TokenBucket(
                rate, burst=max(1.0, rate), clock=lambda: self._clock.now().timestamp()
            )
            self._buckets = {k: b for k, b in self._buckets.items() if k[0] != webhook}
            self._buckets[key] = bucket
        return bucket

    def _request(self, job: Job) -> WebhookRequest | Failed:
        """The request to send, or the failure when it cannot be made (a missing variable)."""
        payload = job.payload
        definition = payload["definition"]
        try:
            url = self._value(definition["url"])
            secrets = tuple(
                parse_secret(secret)
                for secret in (self._value(s) for s in definition["secrets"])
                if secret  # an unset second secret (`env("X", "")`) is no rotation
            )
            if not secrets:  # the sender would send it unsigned
                raise RequestError(
                    "a webhook is signed with one secret, or two during a rotation, not 0"
                )
            return WebhookRequest(
                url=url,
                message_id=payload["message_id"],
                event_type=payload["event"]["type"],
                body=orjson.dumps(payload["event"]),
                secrets=secrets,
                timestamp=int(self._clock.now().timestamp()),
                headers={h["name"]: self._value(h["value"]) for h in definition["headers"]},
                timeout=float(definition["timeout_seconds"]),
            )
        except (_MissingEnv, ConnectorError) as exc:
            refused = Attempt(
                outcome=Outcome.BLOCKED,
                started_at=self._clock.now(),
                duration=0.0,
                error_class=type(exc).__name__.lstrip("_"),
                error_message=str(exc),
            )
            return Failed(
                str(exc), attempt=record_of(refused), hook=self._health.record(job, refused)
            )

    async def _attempt(self, job: Job, request: WebhookRequest) -> Result:
        """Send ``request``; the result's hook records the attempt with the job's outcome."""
        if self._sender is None:
            raise RuntimeError("the webhook handler is not started")
        attempt = await self._sender.send(request)
        if self._attempts is not None and self._latency is not None:
            self._attempts.labels(attempt.outcome.value).inc()
            self._latency.observe(attempt.duration)
        hook = self._health.record(job, attempt)
        self._logger.info(
            "webhook.attempt",
            webhook=job.payload["webhook"],
            message_id=request.message_id,
            attempt=job.attempts,
            outcome=attempt.outcome.value,
            status=attempt.status,
            duration_ms=round(attempt.duration * 1000, 2),
        )
        record = record_of(attempt)
        if attempt.outcome is Outcome.DELIVERED:
            return Succeeded(attempt=record, hook=hook)
        error = attempt.error_message or f"HTTP {attempt.status}"
        if not attempt.outcome.retryable:
            return Failed(error, attempt=record, hook=hook)
        delay = next_delay(
            policy_of(job.payload["definition"]),
            job.attempts,
            self._rng,
            retry_after=attempt.retry_after,
        )
        if delay is None:
            return Failed(error, attempt=record, hook=hook)
        return Retry(delay, error, attempt=record, hook=hook)

    def _value(self, value: object) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "env" in value:
            found = self._environ.get(value["env"])
            if found is None:
                if value.get("default") is None:
                    raise _MissingEnv(f"environment variable {value['env']} is not set")
                return str(value["default"])
            return found
        raise _MissingEnv(f"not a value: {value!r}")
