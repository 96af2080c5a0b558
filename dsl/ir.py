"""The compiled rule set as immutable data: frozen pydantic models that serialize to JSON.

Expressions appear as their canonical source text (`when`, step arguments);
the compiled closures for them live beside the models in `dsl.ruleset.RuleSet`.
Environment variables appear as `EnvRef`: their values are never stored.
`source` fields say where a definition is written; they are left out of the
version hash so that moving a definition is not a new version.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)

__all__ = [
    "VERSION_CONTEXT",
    "ActionStep",
    "Arg",
    "Branch",
    "Concurrency",
    "Debounce",
    "Dedup",
    "EmitStep",
    "EnvRef",
    "EnvRequirement",
    "EventSpec",
    "FailStep",
    "FieldSpec",
    "Header",
    "Hook",
    "IfStep",
    "ParallelStep",
    "RateLimit",
    "RetryFromStep",
    "RetryPolicy",
    "RuleSetIR",
    "SendEmailStep",
    "SendWebhookStep",
    "SetStep",
    "Source",
    "Step",
    "Template",
    "TemplateFile",
    "Trigger",
    "TypeSpec",
    "Value",
    "WaitForStep",
    "WaitStep",
    "Webhook",
    "Workflow",
]


# Serialisation context key: dump the IR as the text its version is the hash of.
VERSION_CONTEXT = "version"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Source(_Model):
    """The file and line where a definition is written.

    Serialised as null when the context asks for the version text, so that
    moving a definition does not change the version.
    """

    file: str
    line: int

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        if isinstance(info.context, dict) and info.context.get(VERSION_CONTEXT):
            return None
        return handler(self)


class EnvRef(_Model):
    """A value taken from the environment at apply time: `env("NAME", default)`."""

    env: str
    default: str | None = None


Value = str | EnvRef


class EnvRequirement(_Model):
    """An environment variable the rule set reads, and whether it has a default."""

    name: str
    has_default: bool


class TypeSpec(_Model):
    kind: str
    format: str | None = None
    values: tuple[str, ...] = ()
    item: TypeSpec | None = None
    fields: tuple[FieldSpec, ...] = ()


class FieldSpec(_Model):
    name: str
    type: TypeSpec
    optional: bool = False
    default: JsonValue = None


class EventSpec(_Model):
    """One event type of the catalog."""

    type: str
    description: str | None = None
    fields: tuple[FieldSpec, ...]
    source: Source


class RetryPolicy(_Model):
    """How failures are retried: `attempts` in all, delays in seconds.

    `exponential` uses delays (first, cap); `every` uses (delay,); `schedule`
    lists each delay in turn (the last repeats).
    """

    attempts: int
    backoff: Literal["exponential", "every", "schedule"]
    delays: tuple[float, ...]


class RateLimit(_Model):
    count: int
    per_seconds: float


class Header(_Model):
    name: str
    value: Value


class Webhook(_Model):
    """A webhook subscription."""

    name: str
    description: str | None = None
    url: Value
    secrets: tuple[Value, ...]
    events: tuple[str, ...]
    when: str | None = None
    retry: RetryPolicy
    timeout_seconds: float
    headers: tuple[Header, ...] = ()
    rate_limit: RateLimit | None = None
    ordered: bool = False
    source: Source


class Template(_Model):
    """An email template; file names are relative to the templates directory."""

    name: str
    description: str | None = None
    subject: str
    html: str
    text: str | None = None
    layout: str | None = None
    sender: Value | None = None
    reply_to: Value | None = None
    variables: tuple[str, ...] = ()
    sample: str | None = None
    category: str | None = None
    preview: str | None = None
    tracking: bool = True  # opens and clicks tracked by the engine's own links
    source: Source


class Hook(_Model):
    """An inbound HTTP endpoint that starts workflows, with its own signature check."""

    name: str
    description: str | None = None
    path: str
    secrets: tuple[Value, ...]
    header: str
    algorithm: Literal["hmac-sha256", "hmac-sha512"]
    source: Source


class Trigger(_Model):
    kind: Literal["event", "schedule", "manual", "hook"]
    events: tuple[str, ...] = ()
    when: str | None = None
    cron: str | None = None
    timezone: str | None = None
    hook: str | None = None


class Concurrency(_Model):
    limit: int
    key: str | None = None


class Debounce(_Model):
    seconds: float
    key: str | None = None


class Dedup(_Model):
    key: str
    window_seconds: float | None = None


class Arg(_Model):
    """A named argument; `expr` is canonical expression text."""

    name: str
    expr: str


class _Step(_Model):
    name: str | None = None


class _Action(_Step):
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = None


class SendEmailStep(_Action):
    kind: Literal["send_email"] = "send_email"
    template: str
    to: str
    variables: tuple[Arg, ...] | None = None


class SendWebhookStep(_Action):
    kind: Literal["send_webhook"] = "send_webhook"
    webhook: str
    payload: tuple[Arg, ...] | None = None


class EmitStep(_Action):
    kind: Literal["emit"] = "emit"
    event: str
    data: tuple[Arg, ...] = ()


class ActionStep(_Action):
    kind: Literal["action"] = "action"
    action: Literal["charge", "refund", "http", "update_record"]
    args: tuple[Arg, ...]


class WaitForStep(_Step):
    kind: Literal["wait_for"] = "wait_for"
    events: tuple[str, ...]
    where: str | None = None
    timeout_seconds: float
    on_timeout: tuple[Step, ...] | None = None


class WaitStep(_Step):
    kind: Literal["wait"] = "wait"
    duration: str | None = None
    until: str | None = None


class Branch(_Model):
    condition: str | None
    steps: tuple[Step, ...]


class IfStep(_Step):
    kind: Literal["if"] = "if"
    branches: tuple[Branch, ...]


class ParallelStep(_Step):
    kind: Literal["parallel"] = "parallel"
    steps: tuple[Step, ...]


class SetStep(_Step):
    kind: Literal["set"] = "set"
    value: str


class FailStep(_Step):
    kind: Literal["fail"] = "fail"
    message: str | None = None


class RetryFromStep(_Step):
    kind: Literal["retry_from"] = "retry_from"
    step: str


Step = Annotated[
    SendEmailStep
    | SendWebhookStep
    | EmitStep
    | ActionStep
    | WaitForStep
    | WaitStep
    | IfStep
    | ParallelStep
    | SetStep
    | FailStep
    | RetryFromStep,
    Field(discriminator="kind"),
]


class Workflow(_Model):
    """A durable workflow: triggers, options and steps."""

    name: str
    description: str | None = None
    triggers: tuple[Trigger, ...]
    timeout_seconds: float | None = None
    concurrency: Concurrency | None = None
    debounce: Debounce | None = None
    dedup: Dedup | None = None
    cancel_on: tuple[Trigger, ...] = ()
    steps: tuple[Step, ...]
    source: Source


class TemplateFile(_Model):
    """A file under templates/ that the rule set uses, by content digest."""

    path: str
    sha256: str


class RuleSetIR(_Model):
    """Everything a rule set defines, as plain data."""

    events: tuple[EventSpec, ...]
    webhooks: tuple[Webhook, ...]
    templates: tuple[Template, ...]
    hooks: tuple[Hook, ...]
    workflows: tuple[Workflow, ...]
    env: tuple[EnvRequirement, ...]
    files: tuple[TemplateFile, ...]


for _model in (TypeSpec, WaitForStep, Branch, IfStep, ParallelStep, Workflow):
    _model.model_rebuild()
