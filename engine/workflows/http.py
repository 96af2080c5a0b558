"""The ``http`` job kind: a workflow's ``http(url:, method:, headers:, body:)`` step.

A job's payload is the request as the step asked for it, each value that
comes from the environment still a reference, resolved when it is sent (a
variable that is not set fails the job, it never crashes it)::

    {"method": "POST", "url": VALUE, "headers": {NAME: VALUE, ...},
     "body": JSON or null, "timeout_seconds": 15.0,
     "idempotency_key": "<run>:<step>",
     "retry": {"attempts": N, "backoff": "exponential", "delays": [...]} or null}

    VALUE = "text" | {"env": NAME, "default": "text" or null}

One attempt is one request through the webhook sender, unsigned, behind the
address guard as ``[webhooks]`` sets it (``allow_networks``,
``response_body_limit``, ``connections_per_host``): ``Idempotency-Key`` is the
payload's, a body goes as JSON. Redirects are never followed::

    2xx, 3xx                                     succeeded   Succeeded
    408, 429, 5xx, a timeout, no connection      failed      Retry (Failed when the policy is done)
    any other 4xx                                rejected    Failed
    not sent: the address guard, a bad request   blocked     Failed

The delays are the payload's retry policy (3 attempts, exponential 1s to 1m,
when it has none), a ``Retry-After`` honoured as webhooks honour it. Every
attempt's record has the answer as its detail (``detail_of``)::

    {"status": 200 or null, "headers": {lower-case name: value},
     "body": JSON when the answer says it is and it parses, else the text (null: no answer),
     "body_truncated": false}

credential-like headers redacted. ``Requests`` is the part that sends and
judges: the records capability sends its PATCHes through it too.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from connectors.errors import ConnectorError, RequestError
from connectors.ssrf import guarded_session
from connectors.webhook import REDACTED, Attempt, Outcome, WebhookRequest, WebhookSender
from engine.config import Settings
from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.jobs.kinds import AttemptRecord, Deferred, Failed, Result, Retry, Succeeded
from engine.jobs.policy import ExponentialPolicy, RetryPolicy, next_delay, stored_policy
from engine.jobs.queue import Job

__all__ = [
    "DEFAULT_POLICY",
    "KIND",
    "Connect",
    "HttpHandler",
    "Requests",
    "connect_from",
    "detail_of",
    "origin",
    "target",
]

KIND = "http"

DEFAULT_POLICY = ExponentialPolicy(attempts=3, minimum=1.0, maximum=60.0)
"""The retry policy of a step that names none."""

Connect = Callable[[], tuple[aiohttp.ClientSession, WebhookSender]]
"""Opens a guarded session and the sender that uses it (on the engine's loop)."""

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
_BAD_VALUE = re.compile(r"[\x00\r\n]")


def connect_from(settings: Settings, *, concurrency: int, clock: Clock, user_agent: str) -> Connect:
    """What opens the session and sender as the webhooks runtime does, with
    ``[webhooks]`` ``allow_networks``, ``response_body_limit`` and
    ``connections_per_host`` (their defaults in an engine without webhooks)."""
    section = getattr(settings.config, "webhooks", None)
    allow_networks = tuple(getattr(section, "allow_networks", ()))
    body_limit: int = getattr(section, "response_body_limit", 16 * 1024)
    per_host = min(getattr(section, "connections_per_host", 16), concurrency)

    def connect() -> tuple[aiohttp.ClientSession, WebhookSender]:
        session = guarded_session(allow_networks, limit=concurrency, limit_per_host=per_host)
        sender = WebhookSender(
            session,
            user_agent=user_agent,
            response_body_limit=body_limit,
            clock=lambda: clock.now().timestamp(),
        )
        return session, sender

    return connect


def origin(url: str) -> str:
    """Where ``url`` goes, without its path and query (they may hold a token)."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        return "not a URL"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{parsed.host or ''}{port}"


def target(job: Job) -> str | None:
    """What an http job acts on: its method and the origin of its URL (or the variable)."""
    url = job.payload.get("url")
    if isinstance(url, dict):
        where = f"env {url.get('env')}"
    elif isinstance(url, str):
        where = origin(url)
    else:
        return None
    return f"{job.payload.get('method', 'POST')} {where}"


def detail_of(attempt: Attempt | None) -> dict[str, Any]:
    """The answer as an attempt's detail: its status, headers, body and whether it was cut."""
    if attempt is None or attempt.status is None:
        return {"status": None, "headers": {}, "body": None, "body_truncated": False}
    headers: dict[str, str] = {}
    for name, value in attempt.response_headers:
        key = name.lower()
        seen = headers.get(key)
        headers[key] = value if seen is None or seen == REDACTED else f"{seen}, {value}"
    body: Any = attempt.response_body
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_json = media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
    if is_json and not attempt.response_body_truncated:
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(attempt.response_body)
    return {
        "status": attempt.status,
        "headers": headers,
        "body": body,
        "body_truncated": attempt.response_body_truncated,
    }


def _judged(attempt: Attempt, redirects: bool) -> str:
    """The attempt log's word for an answer (see the module docstring)."""
    if attempt.outcome is Outcome.BLOCKED:
        return "blocked"
    status = attempt.status
    if status is None or status in (408, 429) or status >= 500:
        return "failed"
    if status < 300 or (status < 400 and redirects):
        return "succeeded"
    return "rejected"


class Requests:
    """Sends one request per attempt through a session opened by ``start``, and says
    what the worker does next.

    Args:
        sender: the sender to use, or ``connect``: what opens a session and its
            sender when ``start`` is called (closed by ``close``).
        clock: the engine's clock.
        logger: where each attempt is logged (``<log_name>.attempt``), its URL by origin only.
        rng: the jitter of the delays.
        redirects: whether a 3xx answer succeeds (it is never followed); when
            false, it fails at once.
    """

    def __init__(
        self,
        sender: WebhookSender | None = None,
        *,
        connect: Connect | None = None,
        clock: Clock,
        logger: Logger,
        rng: random.Random | None = None,
        log_name: str = KIND,
        redirects: bool = True,
    ) -> None:
        self._sender = sender
        self._connect = connect
        self._session: aiohttp.ClientSession | None = None
        self._clock = clock
        self._logger = logger
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._event = f"{log_name}.attempt"
        self._redirects = redirects

    async def start(self) -> None:
        if self._sender is None and self._connect is not None:
            self._session, self._sender = self._connect()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            self._sender = None

    async def send(self, job: Job, request: WebhookRequest, policy: RetryPolicy) -> Result:
        """One attempt of ``job``: ``request`` sent, its answer judged, retried by ``policy``."""
        if self._sender is None:
            raise RuntimeError("the requests are not started")
        attempt = await self._sender.send(request)
        judged = _judged(attempt, self._redirects)
        self._logger.info(
            self._event,
            job_id=job.id,
            caller=job.caller,
            method=request.method,
            origin=origin(request.url),
            attempt=job.attempts,
            outcome=judged,
            status=attempt.status,
            duration_ms=round(attempt.duration * 1000, 2),
        )
        record = AttemptRecord(
            outcome=judged,
            started_at=attempt.started_at,
            duration=attempt.duration,
            error_class=attempt.error_class,
            error_message=attempt.error_message,
            detail=detail_of(attempt),
        )
        if judged == "succeeded":
            return Succeeded(attempt=record)
        error = attempt.error_message or f"HTTP {attempt.status}"
        if attempt.outcome is Outcome.REDIRECT:
            error += ": redirects are not followed"
        if judged == "failed":
            delay = next_delay(policy, job.attempts, self._rng, retry_after=attempt.retry_after)
            if delay is not None:
                return Retry(delay, error, attempt=record)
        return Failed(error, attempt=record)

    def refused(self, error: Exception) -> Failed:
        """The failure of a request that cannot be made (a variable not set, a bad value)."""
        record = AttemptRecord(
            outcome="blocked",
            started_at=self._clock.now(),
            duration=0.0,
            error_class=type(error).__name__.lstrip("_"),
            error_message=str(error),
            detail=detail_of(None),
        )
        return Failed(str(error), attempt=record)


class _MissingEnv(Exception):
    pass


def _value(value: object, environ: Mapping[str, str]) -> str:
    """A payload's VALUE: the text itself, or the variable it names (else its default)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("env"), str):
        found = environ.get(value["env"])
        if found is not None:
            return found
        if value.get("default") is None:
            raise _MissingEnv(f"environment variable {value['env']} is not set")
        return str(value["default"])
    raise _MissingEnv(f"not a value: {value!r}")


class HttpHandler:
    """Carries out ``http`` jobs: one request per attempt (see the module docstring)."""

    def __init__(
        self,
        sender: WebhookSender | None = None,
        *,
        connect: Connect | None = None,
        clock: Clock,
        environ: Mapping[str, str],
        logger: Logger,
        rng: random.Random | None = None,
    ) -> None:
        """``sender``: the sender to use, or ``connect``: what opens a session and its
        sender when the handler starts (``connect_from`` makes it from the settings)."""
        self._requests = Requests(sender, connect=connect, clock=clock, logger=logger, rng=rng)
        self._environ = environ
        self._stopping = False

    async def start(self) -> None:
        """Open the session (its connection pool lives on the engine's loop)."""
        await self._requests.start()

    async def close(self) -> None:
        """Close the session ``start`` opened."""
        await self._requests.close()

    def stop(self) -> None:
        """Start no more attempts: the engine is stopping."""
        self._stopping = True

    async def run(self, job: Job) -> Result:
        if self._stopping:
            return Deferred(0.0)
        payload = job.payload
        try:
            retry = payload.get("retry")
            policy = DEFAULT_POLICY if retry is None else stored_policy(retry)
            request = self._request(payload)
        except (_MissingEnv, ConnectorError) as exc:
            return self._requests.refused(exc)
        return await self._requests.send(job, request, policy)

    def _request(self, payload: Mapping[str, Any]) -> WebhookRequest:
        headers: dict[str, str] = {}
        given = payload.get("headers") or {}
        if not isinstance(given, dict):
            raise RequestError("headers must be an object of names and values")
        for name, value in given.items():
            text = _value(value, self._environ)
            if not _HEADER_NAME.match(name):
                raise RequestError(f"not a header name: {name!r}")
            if _BAD_VALUE.search(text):
                raise RequestError(f"the value of header {name} holds a line break or NUL")
            if name.lower() != "idempotency-key":
                headers[name] = text
        key = payload.get("idempotency_key")
        if not isinstance(key, str) or not key or _BAD_VALUE.search(key):
            raise RequestError(f"not an idempotency key: {key!r}")
        headers["Idempotency-Key"] = key
        body = payload.get("body")
        try:
            data = b"" if body is None else orjson.dumps(body)
            timeout = float(payload.get("timeout_seconds", 15.0))
        except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
            raise RequestError(f"not a request: {exc}") from None
        return WebhookRequest(
            url=_value(payload.get("url"), self._environ),
            message_id="",
            event_type="",
            body=data,
            secrets=(),
            timestamp=0,
            headers=headers,
            timeout=timeout,
            method=str(payload.get("method", "POST")),
        )
