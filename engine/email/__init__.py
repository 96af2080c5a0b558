"""Email: templates rendered from the rule files, sent through providers, tracked, fed back.

The capability as the engine lists it; its runtime (``engine.email.runtime``)
is imported when the engine starts.
"""

from __future__ import annotations

import typing as _typing
from pathlib import Path as _Path

from engine.capability import Capability as _Capability
from engine.email.config import EmailConfig as _EmailConfig

if _typing.TYPE_CHECKING:
    from collections.abc import Sequence

    import click

    from engine.capability import Runtime, Services

__all__ = ["CAPABILITY", "KIND"]

KIND = "email"


def _build(services: Services) -> Runtime:
    from engine.email.runtime import Email

    return Email(services)


def _commands() -> Sequence[click.Command]:
    from engine.email.cli import emails

    return (emails,)


CAPABILITY = _Capability(
    name="email",
    build=_build,
    section=_EmailConfig,
    scopes=("emails:read", "emails:write"),
    migrations=_Path(__file__).with_name("migrations"),
    tables="engine.email.tables",
    commands=_commands,
)
