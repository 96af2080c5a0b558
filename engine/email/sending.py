"""Making an email: rendered, checked and queued as a job, in one transaction.

``Composer`` turns a request (a template and its data, or an ad hoc message)
into a ``NewEmail``: the addresses validated, the template rendered under the
current rule set, the links made trackable, the bodies held to their limit,
the data stored with its secrets redacted. Anything wrong raises
``ComposeError`` before a thing is written.

``queue_emails`` stores new emails and their jobs on a connection, inside any
write (the API's ``QueueEmails``, a workflow step's checkpoint). The email's
``key`` is its job's idempotency key and its identity everywhere: the same key
queued twice answers the email first queued, and nothing more is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from typing import Any, NamedTuple, Self

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from connectors.email.message import InvalidEmail, check_header, make_message_id, parse_address
from connectors.webhook import redact
from dsl import RuleSet, ir
from dsl.render import RenderError, Renderers, UnknownTemplate
from engine.core.rows import insert_rows
from engine.core.writer import BatchWrite, after_commit
from engine.email import KIND
from engine.email.config import EmailConfig
from engine.email.tables import emails
from engine.email.tracking import Tracker
from engine.events.ids import new_id
from engine.jobs.queue import NewJob, insert_jobs

__all__ = [
    "ComposeError",
    "Composer",
    "NewEmail",
    "QueueEmails",
    "Queued",
    "queue_emails",
    "request_hash",
]


class ComposeError(Exception):
    """A request that cannot become an email, with the API's status and error code."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class NewEmail:
    """An email to store and send: rendered, its addresses checked."""

    key: str  # its job's idempotency key
    cause: str  # api workflow event
    sender: str
    recipient: str  # the address, lower case: what the log and the suppression list match
    subject: str
    html: str | None
    text: str | None
    message_id: str
    id: str = field(default_factory=lambda: new_id("eml"))
    template: str | None = None
    rule_set: str | None = None
    category: str | None = None
    reply_to: str | None = None
    recipient_name: str | None = None
    tracking: bool = False
    data: Mapping[str, Any] | None = None
    request_hash: str | None = None
    event_id: str | None = None
    caller: str | None = None  # its job's caller: the workflow step that sends it

    def row(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "request_hash": self.request_hash,
            "cause": self.cause,
            "template": self.template,
            "rule_set": self.rule_set,
            "category": self.category,
            "sender": self.sender,
            "recipient": self.recipient,
            "recipient_name": self.recipient_name,
            "reply_to": self.reply_to,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "tracking": self.tracking,
            "data": self.data,
            "message_id": self.message_id,
            "status": "queued",
            "open_count": 0,
            "click_count": 0,
            "created_at": now,
            "updated_at": now,
        }


@dataclass(frozen=True)
class Queued:
    """What queueing an email came to: its id, and whether its key was queued before
    (``same_request``: with the same request, when the key came with one)."""

    id: str
    status: str
    duplicate: bool = False
    same_request: bool = True


def request_hash(body: Mapping[str, Any]) -> str:
    """A fingerprint of a request's JSON body, to tell a repeated request from a new one."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


class _Before(NamedTuple):
    """An email's key queued before (or earlier in the same write)."""

    id: str
    status: str
    request_hash: str | None


_QUEUED_BEFORE = select(emails.c.key, emails.c.id, emails.c.status, emails.c.request_hash).where(
    emails.c.key.in_(bindparam("keys", expanding=True))
)


def _queued_before(conn: Connection, keys: Sequence[str]) -> dict[str, _Before]:
    return {
        row.key: _Before(row.id, row.status, row.request_hash)
        for row in conn.execute(_QUEUED_BEFORE, {"keys": list(keys)})
    }


def queue_emails(
    conn: Connection, new: Sequence[NewEmail], now: datetime, *, max_attempts: int
) -> list[Queued]:
    """Store ``new`` emails not queued before, each with its job, on ``conn``."""
    found = _queued_before(conn, [email.key for email in new])
    return _store(conn, new, now, max_attempts, found)


def _store(
    conn: Connection,
    new: Sequence[NewEmail],
    now: datetime,
    max_attempts: int,
    found: dict[str, _Before],
) -> list[Queued]:
    """Store the emails whose key ``found`` does not hold; each stored is added to it."""
    results: list[Queued] = []
    rows: list[dict[str, Any]] = []
    jobs: list[NewJob] = []
    for email in new:
        before = found.get(email.key)
        if before is not None:
            same = before.request_hash == email.request_hash
            results.append(Queued(before.id, before.status, duplicate=True, same_request=same))
            continue
        found[email.key] = _Before(email.id, "queued", email.request_hash)
        rows.append(email.row(now))
        jobs.append(
            NewJob(
                kind=KIND,
                payload={"email": email.id},
                idempotency_key=email.key,
                max_attempts=max_attempts,
                due_at=now,
                event_id=email.event_id,
                rule_set=email.rule_set,
                caller=email.caller,
            )
        )
        results.append(Queued(email.id, "queued"))
    insert_rows(conn, emails, rows)
    insert_jobs(conn, jobs, now)
    return results


@dataclass(frozen=True)
class QueueEmails(BatchWrite[list[Queued]]):
    """``queue_emails`` as a write of its own; wakes the workers once committed.

    A group's writes look their keys up in one query: a key in two of them (two
    requests with one Idempotency-Key at once) is stored by the first only.
    """

    new: Sequence[NewEmail]
    now: datetime
    max_attempts: int
    wake: Any  # Callable[[], None]

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[list[Queued]]:
        found = _queued_before(conn, [email.key for w in writes for email in w.new])
        results = [_store(conn, w.new, w.now, w.max_attempts, found) for w in writes]
        if any(q for result in results for q in result if not q.duplicate):
            after_commit(conn, writes[0].wake)
        return results


class Composer:
    """Turns requests into ``NewEmail`` values (see the module docstring)."""

    def __init__(
        self,
        config: EmailConfig,
        renderers: Renderers,
        tracker: Tracker,
        environ: Mapping[str, str],
    ) -> None:
        self.config = config
        self.renderers = renderers
        self.tracker = tracker
        self.environ = environ
        self.domain = config.message_id_domain or _domain(config.sender)

    def template(
        self,
        rules: RuleSet,
        name: str,
        to: object,
        data: object,
        *,
        key: str,
        cause: str,
        event_id: str | None = None,
        request: str | None = None,
    ) -> NewEmail:
        """The email ``name`` renders for ``to`` with ``data`` under ``rules``."""
        template = rules.templates.get(name)
        if template is None:
            raise ComposeError(404, "unknown_template", f"no template named '{name}'")
        if not isinstance(data, dict):
            raise ComposeError(422, "invalid_data", "data must be an object of the variables")
        recipient, recipient_name = self.recipient(to)
        sender = self.address(self._value(template.sender) or self.config.sender, "from")
        reply = self._value(template.reply_to)
        reply_to = self.address(reply, "reply_to") if reply else None
        try:
            rendered = self.renderers.get(rules).render(name, data)
        except UnknownTemplate:
            raise ComposeError(404, "unknown_template", f"no template named '{name}'") from None
        except RenderError as exc:
            variable = getattr(exc, "variable", None)
            code = "missing_variable" if variable else "render_failed"
            details = {"variable": variable} if variable else {}
            raise ComposeError(422, code, str(exc), **details) from None
        email_id = new_id("eml")
        html = rendered.html
        if template.tracking:
            html = self.tracker.rewrite(html, email_id)
        return self._checked(
            NewEmail(
                id=email_id,
                key=key,
                cause=cause,
                sender=sender,
                recipient=recipient,
                recipient_name=recipient_name,
                reply_to=reply_to,
                subject=self._subject(rendered.subject),
                html=html,
                text=rendered.text,
                message_id=make_message_id(email_id, self.domain),
                template=name,
                rule_set=rules.version,
                category=template.category,
                tracking=template.tracking,
                data=redact(data),
                request_hash=request,
                event_id=event_id,
            )
        )

    def adhoc(
        self,
        *,
        to: object,
        sender: object,
        subject: object,
        html: object,
        text: object,
        reply_to: object,
        key: str,
        request: str | None,
    ) -> NewEmail:
        """An email given whole: no template, not tracked."""
        if not isinstance(subject, str):
            raise ComposeError(422, "invalid_email", "subject must be a string", field="subject")
        for name, value in (("html", html), ("text", text)):
            if value is not None and not isinstance(value, str):
                raise ComposeError(422, "invalid_email", f"{name} must be a string", field=name)
        if not html and not text:
            raise ComposeError(422, "invalid_email", "give html, text or both", field="html")
        recipient, recipient_name = self.recipient(to)
        email_id = new_id("eml")
        return self._checked(
            NewEmail(
                id=email_id,
                key=key,
                cause="api",
                sender=self.address(sender if sender is not None else self.config.sender, "from"),
                recipient=recipient,
                recipient_name=recipient_name,
                reply_to=self.address(reply_to, "reply_to") if reply_to is not None else None,
                subject=self._subject(subject),
                html=html or None,  # type: ignore[arg-type]
                text=text or None,  # type: ignore[arg-type]
                message_id=make_message_id(email_id, self.domain),
                request_hash=request,
            )
        )

    def _value(self, value: ir.Value | None) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return self.environ.get(value.env, value.default)

    def address(self, value: object, name: str) -> str:
        """``value`` as one checked address, with its display name."""
        return str(self._parsed(value, name))

    def recipient(self, value: object, name: str = "to") -> tuple[str, str | None]:
        """The address to send to, in lower case (its domain in IDNA), and the display
        name given with it."""
        parsed = self._parsed(value, name)
        return parsed.addr_spec.lower(), parsed.display_name or None

    def _parsed(self, value: object, name: str) -> Address:
        if not isinstance(value, str):
            raise ComposeError(422, "invalid_address", f"{name} must be an address", field=name)
        try:
            return parse_address(value, name)
        except InvalidEmail as exc:
            raise ComposeError(422, "invalid_address", str(exc), field=name) from None

    def _subject(self, subject: str) -> str:
        try:
            check_header(subject, "subject")
        except InvalidEmail as exc:
            raise ComposeError(422, "invalid_header", str(exc), field="subject") from None
        return subject

    def _checked(self, email: NewEmail) -> NewEmail:
        limit = self.config.max_body
        for name in ("html", "text"):
            body = getattr(email, name)
            if body is not None and len(body.encode("utf-8")) > limit:
                raise ComposeError(
                    413, "body_too_large", f"the {name} is over the limit of {limit} bytes"
                )
        return email


def _domain(sender: str) -> str:
    address = sender.rpartition("<")[2].rstrip(">").strip()
    return address.rpartition("@")[2] or "localhost"
