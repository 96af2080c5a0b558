"""Webhooks: signed deliveries of matched events, their health, and their API.

The capability as the engine lists it; its runtime (``engine.webhooks.runtime``)
is imported when the engine starts.
"""

from __future__ import annotations

import typing as _typing

from engine.capability import Capability as _Capability
from engine.webhooks.config import WebhooksConfig as _WebhooksConfig

if _typing.TYPE_CHECKING:
    from collections.abc import Sequence

    import click

    from engine.capability import Runtime, Services

__all__ = ["CAPABILITY", "KIND"]

KIND = "webhook"


def _build(services: Services) -> Runtime:
    from engine.webhooks.runtime import Webhooks

    return Webhooks(services)


def _commands() -> Sequence[click.Command]:
    from engine.webhooks.cli import webhooks

    return (webhooks,)


CAPABILITY = _Capability(
    name="webhooks",
    build=_build,
    section=_WebhooksConfig,
    scopes=("webhooks:read", "webhooks:write"),
    commands=_commands,
    tables="engine.webhooks.tables",  # created by the core's migrations 0002 and 0003
)
