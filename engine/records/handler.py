"""The ``record`` job kind: a record of an http store written to the platform, one PATCH an attempt.

A job's payload is what ``update_record`` planned::

    {"record": "deal", "id": "deal_1", "fields": {...},
     "url": "https://platform.example/api/deals/deal_1",
     "secret_env": "DEAL_RECORDS_SECRET", "timeout_seconds": 10.0,
     "message_id": "msg_..."}

Each attempt is ``PATCH {url}/{id}`` (the payload's ``url``) with the JSON body ``{"record", "id",
"fields"}``, signed as Standard Webhooks sign (``webhook-id`` the message id,
the same on every retry; the secret read from ``secret_env`` when it is sent,
never stored), with ``Idempotency-Key`` the write's key, through the webhook
sender behind the ``[webhooks]`` address guard. It is judged and retried as an
``http`` job is (``engine.workflows.http.Requests``), on the Standard Webhooks
schedule (8 attempts, 5s to 10h), with one difference: a redirect is not
followed and fails the job at once, since the record was not written. Its
attempts' detail is the http kind's: status, headers, body, body_truncated.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import orjson

from connectors import parse_secret
from connectors.errors import ConnectorError, RequestError
from connectors.webhook import WebhookRequest, WebhookSender
from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.jobs.kinds import Deferred, Result
from engine.jobs.policy import default_policy
from engine.jobs.queue import Job
from engine.records import KIND
from engine.workflows.http import Connect, Requests

__all__ = ["EVENT_TYPE", "RecordHandler", "target"]

EVENT_TYPE = "record.update"
"""The ``X-Event-Type`` of each PATCH."""


def target(job: Job) -> str | None:
    """The record a job writes: ``<record>/<id>``."""
    record, record_id = job.payload.get("record"), job.payload.get("id")
    return f"{record}/{record_id}" if record and record_id else None


class _MissingEnv(Exception):
    pass


class RecordHandler:
    """Carries out ``record`` jobs: one signed PATCH per attempt."""

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
        sender when the handler starts (``engine.workflows.http.connect_from``)."""
        self._requests = Requests(
            sender,
            connect=connect,
            clock=clock,
            logger=logger,
            rng=rng,
            log_name=KIND,
            redirects=False,
        )
        self._clock = clock
        self._environ = environ
        self._policy = default_policy()
        self._stopping = False

    async def start(self) -> None:
        await self._requests.start()

    async def close(self) -> None:
        await self._requests.close()

    def stop(self) -> None:
        self._stopping = True

    async def run(self, job: Job) -> Result:
        if self._stopping:
            return Deferred(0.0)
        try:
            request = self._request(job)
        except (_MissingEnv, ConnectorError) as exc:
            return self._requests.refused(exc)
        except (KeyError, TypeError, ValueError) as exc:  # a payload update_record did not plan
            return self._requests.refused(RequestError(f"not a record job: {exc!r}"))
        return await self._requests.send(job, request, self._policy)

    def _request(self, job: Job) -> WebhookRequest:
        payload: dict[str, Any] = job.payload
        variable = payload.get("secret_env")
        text = self._environ.get(variable) if isinstance(variable, str) else None
        if not text:
            raise _MissingEnv(f"environment variable {variable} is not set")
        body = {"record": payload["record"], "id": payload["id"], "fields": payload["fields"]}
        try:
            data = orjson.dumps(body)
        except TypeError as exc:
            raise RequestError(f"the fields are not JSON: {exc}") from None
        return WebhookRequest(
            url=payload["url"],
            message_id=payload["message_id"],
            event_type=EVENT_TYPE,
            body=data,
            secrets=(parse_secret(text),),
            timestamp=int(self._clock.now().timestamp()),
            headers={"Idempotency-Key": job.idempotency_key},
            timeout=float(payload["timeout_seconds"]),
            method="PATCH",
        )
