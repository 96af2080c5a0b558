"""Workflow templates shipped with Ownly: rule-file texts with placeholders to fill.

Each template is a file of ``library/`` (``$name`` marks a placeholder, ``$$``
a dollar sign) and an entry here saying what it is for and what each
placeholder takes. ``render`` checks every value against its placeholder's
kind and gives the rule-file text of one workflow; whether that text compiles
with a project's rules is for the caller to check (``ownly new workflow``,
``POST /api/workflows/from-template``).

The errors::

    LibraryError            root: a template cannot be made
    ├── UnknownTemplate     no template has that name
    ├── UnknownPlaceholder  a value for a placeholder the template does not have
    ├── MissingPlaceholder  no value for a placeholder without a default
    └── InvalidValue        a value not of its placeholder's kind
        └── InvalidName     the workflow's name is not a name
"""

from __future__ import annotations

import difflib
import json
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import OwnlyError

__all__ = [
    "InvalidName",
    "InvalidValue",
    "LibraryError",
    "MissingPlaceholder",
    "Placeholder",
    "Template",
    "UnknownPlaceholder",
    "UnknownTemplate",
    "render",
    "templates",
]

FOLDER = Path(__file__).with_name("library")
MAX_TEXT = 500  # characters of a text value

Kind = Literal["name", "event", "duration", "integer", "text", "env"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_KINDS: Mapping[str, tuple[re.Pattern[str], str]] = {
    "name": (_NAME, "a name of letters, digits and _ (at most 100, not starting with a digit)"),
    "event": (
        re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+"),
        "an event type such as user.kyc_approved",
    ),
    "duration": (re.compile(r"[1-9][0-9]{0,5}(s|m|h|d|w)"), "a duration such as 30m, 3d or 2w"),
    "integer": (re.compile(r"[1-9][0-9]{0,5}"), "a whole number from 1 to 999999"),
    "env": (
        re.compile(r"[A-Z_][A-Z0-9_]{0,99}"),
        "an environment variable name such as DIGEST_URL",
    ),
}


class LibraryError(OwnlyError):
    """The workflow template cannot be made."""

    code = "invalid_input"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field  # the placeholder it is about, if one


class UnknownTemplate(LibraryError):
    """No workflow template has that name."""

    code = "not_found"


class UnknownPlaceholder(LibraryError):
    """A value was given for a placeholder the template does not have."""

    code = "unknown_placeholder"


class MissingPlaceholder(LibraryError):
    """A placeholder without a default was given no value."""

    code = "missing_placeholder"


class InvalidValue(LibraryError):
    """A value is not of its placeholder's kind."""

    code = "invalid_value"


class InvalidName(InvalidValue):
    """The workflow's name is not a name of the rule language."""

    code = "invalid_name"


@dataclass(frozen=True)
class Placeholder:
    """One ``$name`` of a template: what it takes, and its value when none is given."""

    name: str
    description: str
    kind: Kind
    default: str | None = None  # None: a value must be given

    def value(self, given: str) -> str:
        """``given`` as it is written into the rule text; else InvalidValue."""
        if not isinstance(given, str) or not given.strip() or len(given) > MAX_TEXT:
            raise InvalidValue(
                f"{self.name} must be a text of 1 to {MAX_TEXT} characters", field=self.name
            )
        if self.kind != "text":
            pattern, shape = _KINDS[self.kind]
            if not pattern.fullmatch(given):
                raise InvalidValue(f"{self.name} must be {shape}, not {given!r}", field=self.name)
        # A text is written as a string literal (the language's escapes are JSON's).
        return json.dumps(given, ensure_ascii=False) if self.kind in ("text", "env") else given


@dataclass(frozen=True)
class Template:
    """A workflow template: its name, what it is for, and its placeholders."""

    name: str
    description: str
    placeholders: tuple[Placeholder, ...]

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.ownly"

    def text(self) -> str:
        """The template's rule text with its placeholders unfilled."""
        return self.path.read_text(encoding="utf-8")


def _description(default: str) -> Placeholder:
    return Placeholder("description", "What the workflow does, shown with it", "text", default)


def _template_email(default: str, needs: str) -> Placeholder:
    return Placeholder("template", f"The email template sent; {needs}", "name", default)


_TEMPLATES = (
    Template(
        "welcome_series",
        "A welcome email when a user is verified; a follow-up if they have not invested",
        (
            _description("Welcome verified users; follow up with those who have not invested"),
            Placeholder(
                "event",
                "The event that starts the series; its data has user_id, email and the "
                "templates' variables",
                "event",
                "user.kyc_approved",
            ),
            Placeholder(
                "welcome_template",
                "The email sent at once; its variables are fields of the event",
                "name",
                "kyc_welcome",
            ),
            Placeholder(
                "follow_up_after",
                "How long to wait for a first investment before the follow-up",
                "duration",
                "3d",
            ),
            Placeholder(
                "follow_up_template",
                "The email sent when no investment came; its variables are fields of the event",
                "name",
                "kyc_welcome",
            ),
        ),
    ),
    Template(
        "payment_follow_up",
        "Ask an investor to fix a failed payment, remind them, then tell ops",
        (
            _description("Follow up a failed investment payment until it is paid"),
            _template_email("payment_failed", "it takes customer, amount, currency and reminder"),
            Placeholder(
                "remind_after",
                "How long to wait for the payment before a reminder",
                "duration",
                "3d",
            ),
            Placeholder(
                "alert_webhook",
                "The webhook told when the payment is still failing",
                "name",
                "ops_alerts",
            ),
            Placeholder(
                "give_up_after",
                "How long the whole follow-up may take (longer than remind_after)",
                "duration",
                "7d",
            ),
        ),
    ),
    Template(
        "document_signature_chase",
        "Remind a user to sign a shared document, then escalate",
        (
            _description("Chase the signature of a shared document"),
            Placeholder(
                "document_kind",
                "The kind of document chased (subscription_agreement, tax_form, kyc, ...)",
                "text",
                "subscription_agreement",
            ),
            Placeholder(
                "remind_after",
                "How long to wait for the signature before a reminder",
                "duration",
                "3d",
            ),
            Placeholder(
                "reminder_webhook",
                "The webhook that asks the platform to remind the user",
                "name",
                "crm_sync",
            ),
            Placeholder(
                "escalate_after",
                "How long after the reminder to wait before escalating",
                "duration",
                "4d",
            ),
            Placeholder(
                "escalation_webhook",
                "The webhook told when the document is still not signed",
                "name",
                "ops_alerts",
            ),
        ),
    ),
    Template(
        "payout_notice",
        "Tell each investor about their share of a payout",
        (
            _description("Tell each investor about their payout"),
            _template_email("payout_notice", "it takes investor, deal, amount and currency"),
            Placeholder("concurrency", "How many notices are sent at once", "integer", "10"),
            Placeholder("attempts", "How many times a notice is tried in all", "integer", "5"),
        ),
    ),
    Template(
        "scheduled_digest",
        "POST a digest request to a URL on a cron schedule",
        (
            _description("Ask for the digest on schedule"),
            Placeholder(
                "schedule",
                "A cron schedule of five fields: minute hour day month weekday",
                "text",
                "0 8 * * 1-5",
            ),
            Placeholder("timezone", "The IANA time zone of the schedule", "text", "UTC"),
            Placeholder(
                "url_env",
                "The environment variable holding the URL posted to (the engine needs it set)",
                "env",
            ),
            Placeholder(
                "kind", "The digest's kind, sent as the body's kind", "text", "daily_digest"
            ),
        ),
    ),
)


def _hint(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def templates() -> list[Template]:
    """Every shipped workflow template, by name."""
    return sorted(_TEMPLATES, key=lambda t: t.name)


def _find(name: str) -> Template:
    for template in _TEMPLATES:
        if template.name == name:
            return template
    hint = _hint(name, (t.name for t in _TEMPLATES))
    names = ", ".join(t.name for t in templates())
    raise UnknownTemplate(f"no workflow template {name!r}{hint}; there are: {names}")


def render(name: str, workflow_name: str, values: Mapping[str, str]) -> str:
    """The rule-file text of workflow ``workflow_name`` made from template ``name``.

    Raises:
        UnknownTemplate: no template is called ``name``.
        UnknownPlaceholder: ``values`` names a placeholder the template does not have.
        MissingPlaceholder: a placeholder without a default has no value.
        InvalidName: ``workflow_name`` is not a name.
        InvalidValue: a value is not of its placeholder's kind.
    """
    template = _find(name)
    if not _NAME.fullmatch(workflow_name):
        raise InvalidName(f"the workflow's name must be {_KINDS['name'][1]}, not {workflow_name!r}")
    known = {p.name: p for p in template.placeholders}
    for given in values:
        if given not in known:
            raise UnknownPlaceholder(
                f"template {name} has no placeholder {given!r}{_hint(given, known)}; "
                f"it has: {', '.join(known)}",
                field=given,
            )
    filled = {"workflow": workflow_name}
    for placeholder in template.placeholders:
        value = values.get(placeholder.name)
        if value is None:
            value = placeholder.default
        if value is None:
            raise MissingPlaceholder(
                f"template {name} needs a value for {placeholder.name}: {placeholder.description}",
                field=placeholder.name,
            )
        filled[placeholder.name] = placeholder.value(value)
    return string.Template(template.text()).substitute(filled)
