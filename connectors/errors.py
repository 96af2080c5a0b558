"""Errors the connectors raise.

The tree::

    ConnectorError          root: something the outside world, or our view of it, refused
    ├── SecretError         a webhook secret is not ``whsec_<base64>`` of 24 to 64 bytes
    ├── PolicyError         a retry policy or an allowed network is not valid
    ├── RequestError        a webhook request is not valid (no secret, no id, bad timeout)
    ├── BlockedRequest      the outbound guard refused a request; retrying cannot help
    │   ├── BlockedUrl      refused before any lookup: the scheme or a named metadata host
    │   └── BlockedAddress  refused an address: an IP literal, a resolved address or the peer
    ├── InvalidEmail        an email's address, header or body is not valid (connectors.email)
    └── SendError           an email provider did not take a message; ``permanent`` says
                            whether another attempt could help (connectors.email)

Messages never hold a secret: a ``SecretError`` says what is wrong with the
value, not what the value is. Foreign exceptions are translated where they are
met; the webhook sender turns every failure into an ``Attempt`` instead of
raising.
"""

from __future__ import annotations

__all__ = [
    "BlockedAddress",
    "BlockedRequest",
    "BlockedUrl",
    "ConnectorError",
    "PolicyError",
    "RequestError",
    "SecretError",
]


class ConnectorError(Exception):
    """A connector failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or "")

    @property
    def message(self) -> str:
        return str(self.args[0])


class SecretError(ConnectorError):
    """The webhook secret is not valid."""


class PolicyError(ConnectorError):
    """The policy is not valid."""


class RequestError(ConnectorError):
    """The webhook request is not valid."""


class BlockedRequest(ConnectorError):
    """The outbound request was refused by the address guard."""


class BlockedUrl(BlockedRequest):
    """The URL was refused before any lookup."""


class BlockedAddress(BlockedRequest):
    """The address was refused: it is not public and no allowed network holds it."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"refused {address} for host {host}: {reason}")
        self.host = host
        self.address = address
        self.reason = reason
