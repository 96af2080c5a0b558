"""``[webhooks]`` in ``ownly.toml``: where deliveries may go and how hard they may push."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from engine.config import Bytes, LongSeconds, Section

__all__ = ["WebhooksConfig"]


class WebhooksConfig(Section):
    allow_networks: list[str] = Field(default_factory=list)
    response_body_limit: Bytes = 16 * 1024
    connections_per_host: int = Field(default=16, ge=1, le=1_000)
    disable_after: LongSeconds = 5 * 86_400.0  # a run of only failures this long disables

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network such as 10.0.0.0/8") from None
        return value
