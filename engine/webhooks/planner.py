"""Webhook deliveries, planned from matched events: one job per (event, webhook).

A delivery's job payload holds everything needed to send it again later: the
event body, the webhook's definition from the rule set that matched it (with
``env()`` references, never their values) and the message id that every retry
repeats as ``webhook-id``. A webhook's deliveries form one job group, so they
can be held (paused, disabled) and, for an ``ordered`` webhook, leave in order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.engine import Connection

from dsl import RuleSet, Subscription
from engine.core.clock import Clock
from engine.events.bus import StoredEvent
from engine.jobs.queue import Job, NewJob
from engine.webhooks import KIND

__all__ = ["WebhookPlanner", "group_key", "message_id", "target"]


def group_key(webhook: str) -> str:
    """The job group of a webhook's deliveries (held while it is paused or disabled)."""
    return f"{KIND}:{webhook}"


def target(job: Job) -> str | None:
    """The webhook a delivery goes to."""
    name = job.payload.get("webhook")
    return name if isinstance(name, str) else None


def message_id(webhook: str, event_id: str) -> str:
    """The ``webhook-id`` of the delivery of ``event_id`` to ``webhook``: stable across retries."""
    digest = hashlib.sha256(f"{webhook}\0{event_id}".encode()).hexdigest()[:26]
    return f"msg_{digest}"


class WebhookPlanner:
    """One delivery job per (event, webhook)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # The stored definition of each webhook, by rule-set version: rule sets are
        # immutable, so it is worked out once, not once per delivery. Every job of
        # the webhook shares the dict: it is only ever serialized, never changed.
        self._definitions: dict[tuple[str, str], dict[str, Any]] = {}

    def plan(
        self, conn: Connection, rules: RuleSet, subscription: Subscription, event: StoredEvent
    ) -> list[NewJob]:
        return [self.delivery(rules, subscription.name, event)]

    def delivery(self, rules: RuleSet, name: str, event: StoredEvent) -> NewJob:
        """The delivery of ``event`` to the webhook ``name`` of ``rules``."""
        return self.message(
            rules,
            name,
            body={
                "id": event.id,
                "type": event.type,
                "created_at": event.occurred_at.isoformat(),
                "data": event.data,
            },
            key=f"{KIND}:{name}:{event.id}",
            event_id=event.id,
        )

    def message(
        self,
        rules: RuleSet,
        name: str,
        *,
        body: dict[str, Any],
        key: str,
        event_id: str | None,
        caller: str | None = None,
        timeout: float | None = None,
    ) -> NewJob:
        """A delivery of ``body`` (its ``id`` names the message) to the webhook ``name``:
        an event's, or a workflow step's (``caller``, with the step's ``timeout``)."""
        webhook = rules.webhooks[name]
        definition = self._definitions.get((rules.version, name))
        if definition is None:
            if len(self._definitions) > 10_000:
                self._definitions.clear()
            definition = webhook.model_dump(mode="json", exclude={"source", "description", "when"})
            self._definitions[(rules.version, name)] = definition
        if timeout is not None:
            definition = {**definition, "timeout_seconds": timeout}
        return NewJob(
            kind=KIND,
            payload={
                "webhook": webhook.name,
                "message_id": message_id(webhook.name, body["id"]),
                "event": body,
                "definition": definition,
            },
            idempotency_key=key,
            max_attempts=webhook.retry.attempts,
            due_at=self._clock.now(),
            event_id=event_id,
            rule_set=rules.version,
            group_key=group_key(webhook.name),
            ordered=webhook.ordered,
            caller=caller,
        )
