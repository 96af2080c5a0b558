"""``[email]`` in ``ownly.toml``: the providers in failover order, the sender, tracking.

Credentials are never written here: a provider names the environment variables
that hold them (``api_key_env``, ``password_env``), read when the engine starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator

from engine.config import Bytes, LongSeconds, Seconds, Section
from engine.jobs.policy import STANDARD_WEBHOOKS_SCHEDULE

__all__ = [
    "EmailConfig",
    "MailgunConfig",
    "OutboxConfig",
    "ProviderConfig",
    "SendGridConfig",
    "SmtpConfig",
]


_NAME = r"^[a-z0-9_-]{1,50}$"


class _Provider(Section):
    concurrency: int = Field(default=8, ge=1, le=1_000)  # messages in flight at once
    rate_limit: float | None = Field(default=None, gt=0, le=100_000)  # messages a second


class OutboxConfig(_Provider):
    """Writes each message as an ``.eml`` file under the state directory."""

    type: Literal["outbox"]
    name: str = Field(default="outbox", pattern=_NAME)
    directory: str = "outbox"  # under [server] state_dir


class SmtpConfig(_Provider):
    type: Literal["smtp"]
    name: str = Field(default="smtp", pattern=_NAME)
    host: str
    port: int = Field(default=587, ge=1, le=65_535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username_env: str | None = None
    password_env: str | None = None
    # A PEM bundle of the authorities to trust for this relay, beside the system's:
    # a private relay's own CA. Relative to the directory of ownly.toml.
    ca_file: Path | None = None
    pool_size: int = Field(default=4, ge=1, le=100)
    timeout: Seconds = 30.0

    @field_validator("ca_file")
    @classmethod
    def _with_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("security") == "none":
            raise ValueError("is read only with security = 'starttls' or 'tls'")
        return value


class SendGridConfig(_Provider):
    type: Literal["sendgrid"]
    name: str = Field(default="sendgrid", pattern=_NAME)
    api_key_env: str
    base_url: str = "https://api.sendgrid.com"
    timeout: Seconds = 30.0


class MailgunConfig(_Provider):
    type: Literal["mailgun"]
    name: str = Field(default="mailgun", pattern=_NAME)
    api_key_env: str
    domain: str
    base_url: str = "https://api.mailgun.net"
    timeout: Seconds = 30.0


def _provider_type(value: object) -> object:
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


ProviderConfig = Annotated[
    Annotated[OutboxConfig, Tag("outbox")]
    | Annotated[SmtpConfig, Tag("smtp")]
    | Annotated[SendGridConfig, Tag("sendgrid")]
    | Annotated[MailgunConfig, Tag("mailgun")],
    Discriminator(
        _provider_type,
        custom_error_type="provider_type",
        custom_error_message="type must be outbox, smtp, sendgrid or mailgun",
    ),
]


def _outbox() -> list[ProviderConfig]:
    return [OutboxConfig(type="outbox")]


class EmailConfig(Section):
    providers: list[ProviderConfig] = Field(default_factory=_outbox, min_length=1)
    # The From of a template or a request that gives none.
    sender: str = "OWNLY <hello@ownly.com>"
    # The right-hand side of each Message-ID; the sender's domain when unset.
    message_id_domain: str | None = None
    # Where tracking, click and unsubscribe links point: this engine as recipients reach it.
    public_url: str | None = None
    # The variable holding the key that signs tracking and unsubscribe links.
    tracking_key_env: str = "OWNLY_EMAIL_TRACKING_KEY"
    unsubscribe_mailto: str | None = None  # the mailto of List-Unsubscribe, when there is one
    max_attempts: int = Field(default=8, ge=1, le=50)
    # The waits before retries 1, 2, ... (the last repeats): the Standard Webhooks schedule.
    retry_delays: list[Seconds] = Field(
        default_factory=lambda: list(STANDARD_WEBHOOKS_SCHEDULE), min_length=1
    )
    max_body: Bytes = 512 * 1024  # the HTML and the text of one message, each
    # Provider event webhooks: the verification keys and how old a signature may be.
    sendgrid_public_key_env: str | None = None
    mailgun_signing_key_env: str | None = None
    webhook_tolerance: LongSeconds = 300.0

    @field_validator("providers")
    @classmethod
    def _distinct(cls, value: list[ProviderConfig]) -> list[ProviderConfig]:
        names = [provider.name for provider in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two providers are named {name!r}; give each a name")
        return value

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value
