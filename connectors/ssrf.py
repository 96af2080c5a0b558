"""The outbound guard: webhooks reach public addresses, and private ones only when allowed.

A webhook URL comes from a rule file and a receiver answers with whatever it
likes, so neither may steer the sender into the operator's own network (the
cloud metadata service, a database port, an admin panel on loopback). Refused,
unless an operator-allowed network holds the address:

- loopback, private (RFC 1918), link-local (the 169.254.169.254 metadata
  service among them), shared CGNAT space (100.64.0.0/10), "this network",
  multicast, reserved, documentation and benchmarking ranges;
- IPv6 loopback, unspecified, link-local, site-local, unique-local (fc00::/7),
  multicast, and the IPv4 addresses carried inside IPv6 (IPv4-mapped, NAT64,
  6to4) judged as the IPv4 address they carry;
- metadata host names (``metadata.google.internal`` ...), refused by name
  before any lookup, whatever the allowed networks;
- ``http://`` unless the address is in an allowed network: plain text
  leaves the machine only for a network the operator named.

The check runs where the decision is made, after DNS, at connect time:

1. ``check_url`` on the URL: scheme, metadata names, IP literals (including
   legacy numeric forms such as ``2130706433``);
2. ``GuardedResolver`` drops refused addresses from every lookup and fails
   with ``BlockedAddress`` when none is left;
3. ``GuardedConnector`` checks every address it is about to dial, knowing the
   scheme, so a cached or custom lookup cannot slip past;
4. and the peer of the new connection, before a byte of the request is sent.

Redirects are never followed by the webhook sender, so a redirect to a private
address reaches nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import AddrInfoType, SocketFactoryType
from aiohttp.tracing import Trace
from yarl import URL

from connectors.errors import BlockedAddress, BlockedUrl, PolicyError

__all__ = [
    "METADATA_HOSTS",
    "AddressPolicy",
    "GuardedConnector",
    "GuardedResolver",
    "guarded_session",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.oraclecloud.com",
    }
)
"""Host names of cloud metadata services, refused before any lookup."""

# Most specific first: the first match names the reason.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(network), reason)
    for network, reason in (
        ("169.254.169.254/32", "the cloud metadata service (link-local)"),
        ("100.100.100.200/32", "a cloud metadata service (CGNAT)"),
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("fd00:ec2::254/128", "the cloud metadata service (IPv6)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo tunnel"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Numeric host forms that resolvers read as IPv4 but ``ipaddress`` does not:
# 2130706433, 0x7f000001, 127.1, 0177.0.0.1.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _parse(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


class AddressPolicy:
    """Which addresses the sender may reach: public ones, and those in ``allow_networks``.

    Args:
        allow_networks: CIDR networks the operator allows although they are not
            public, such as ``["127.0.0.0/8"]`` for a receiver on the same host.

    Raises:
        PolicyError: an entry is not a network.
    """

    def __init__(self, allow_networks: Sequence[str] = ()) -> None:
        if isinstance(allow_networks, str):
            raise PolicyError("allow_networks is a list of networks, not one string")
        networks: list[IPNetwork] = []
        for entry in allow_networks:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise PolicyError(
                    f"allow_networks: {entry!r} is not a network such as 127.0.0.0/8"
                ) from None
        self.allow_networks: tuple[IPNetwork, ...] = tuple(networks)

    def __repr__(self) -> str:
        return f"AddressPolicy({[str(n) for n in self.allow_networks]!r})"

    def allows(self, address: IPAddress) -> bool:
        """True when an allowed network holds the address (or the IPv4 address it carries)."""
        candidates: list[IPAddress] = [address.__class__(int(address))]  # without the scope
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_ipv4(address)
            if embedded is not None:
                candidates.append(embedded)
        return any(
            candidate in network
            for candidate in candidates
            for network in self.allow_networks
            if candidate.version == network.version
        )

    def refusal(self, address: str, *, plain_http: bool = False) -> str | None:
        """Why ``address`` is refused, or None when the sender may connect to it."""
        parsed = _parse(address)
        if parsed is None:
            return "not an IP address"
        if self.allows(parsed):
            return None
        reason = _classify(parsed)
        if reason is None and plain_http:
            return "plain http:// is allowed only to networks in allow_networks"
        return reason

    def check_address(self, host: str, address: str, *, plain_http: bool = False) -> None:
        """Raise ``BlockedAddress`` unless the sender may connect to ``address``."""
        reason = self.refusal(address, plain_http=plain_http)
        if reason is not None:
            raise BlockedAddress(host, address, reason)

    def check_url(self, url: URL | str) -> None:
        """Refuse what can be refused before a lookup: scheme, metadata names, IP literals.

        Raises:
            BlockedUrl: not http(s), no host, a metadata host name or a numeric
                host in a legacy form.
            BlockedAddress: an IP-literal host that the policy refuses.
        """
        url = URL(url) if isinstance(url, str) else url
        if url.scheme not in ("http", "https"):
            raise BlockedUrl(f"only http:// and https:// URLs are sent, not {url.scheme}://")
        host = (url.host or "").rstrip(".").lower()
        if not host:
            raise BlockedUrl("the URL has no host")
        if host in METADATA_HOSTS:
            raise BlockedUrl(f"refused host {host}: a cloud metadata service")
        literal = _parse(host)
        if literal is None:
            if _NUMERIC_HOST.match(host):
                raise BlockedUrl(f"refused host {host}: write an IP address in dotted form")
            return
        self.check_address(host, host, plain_http=url.scheme == "http")


def _classify(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = _classify(embedded)
            return None if inner is None else f"carries {embedded}, {inner}"
        address = ipaddress.IPv6Address(int(address))  # without the scope
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:
        return "not globally routable"
    return None


class GuardedResolver(AbstractResolver):
    """A resolver that keeps only the addresses the policy allows."""

    def __init__(
        self, policy: AddressPolicy, resolver: AbstractResolver, *, owns_resolver: bool = False
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._owns_resolver = owns_resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() in METADATA_HOSTS:
            raise BlockedUrl(f"refused host {host}: a cloud metadata service")
        results = await self._resolver.resolve(host, port, family)
        kept = [r for r in results if self._policy.refusal(r["host"]) is None]
        if not kept:
            refused = ", ".join(f"{r['host']} ({self._policy.refusal(r['host'])})" for r in results)
            raise BlockedAddress(host, refused or "no address", "no permitted address")
        return kept

    async def close(self) -> None:
        if self._owns_resolver:
            await self._resolver.close()


class GuardedConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that refuses addresses its ``AddressPolicy`` does not allow.

    Args:
        policy: the addresses the connector may reach.
        resolver: the resolver to filter; the system's by default.
        **kwargs: passed to ``aiohttp.TCPConnector``.
    """

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: AbstractResolver | None = None,
        **kwargs: Any,
    ) -> None:
        owns = resolver is None
        inner = resolver if resolver is not None else aiohttp.ThreadedResolver()
        self._guarded_resolver = GuardedResolver(policy, inner, owns_resolver=owns)
        super().__init__(resolver=self._guarded_resolver, **kwargs)
        self.policy = policy

    async def close(self, *, abort_ssl: bool = False) -> None:
        await super().close(abort_ssl=abort_ssl)
        await self._guarded_resolver.close()

    async def _create_connection(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 -- aiohttp's signature
    ) -> ResponseHandler:
        if req.proxy is not None:
            raise BlockedUrl("the guarded connector does not go through proxies")
        self.policy.check_url(req.url)
        protocol = await super()._create_connection(req, traces, timeout)
        try:
            self.check_peer(req.url, protocol.transport)
        except BaseException:
            if protocol.transport is not None:
                protocol.transport.abort()
            raise
        return protocol

    def check_peer(self, url: URL, transport: asyncio.BaseTransport | None) -> None:
        """Refuse a connection whose peer address the policy does not allow."""
        host = url.host or ""
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            raise BlockedAddress(host, "unknown peer", "the connected address cannot be checked")
        self.policy.check_address(host, str(peer[0]), plain_http=url.scheme == "http")

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[AddrInfoType],
        req: ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 -- aiohttp's signature
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, ResponseHandler]:
        plain_http = req.url.scheme == "http"
        host = req.url.host or ""
        permitted = [
            info
            for info in addr_infos
            if self.policy.refusal(str(info[4][0]), plain_http=plain_http) is None
        ]
        if not permitted:
            first = str(addr_infos[0][4][0]) if addr_infos else "no address"
            raise BlockedAddress(
                host, first, self.policy.refusal(first, plain_http=plain_http) or "refused"
            )
        return await super()._wrap_create_connection(
            *args,
            addr_infos=permitted,
            req=req,
            timeout=timeout,
            client_error=client_error,
            **kwargs,
        )


def guarded_session(
    allow_networks: Sequence[str],
    *,
    resolver: AbstractResolver | None = None,
    limit: int = 100,
    limit_per_host: int = 10,
    socket_factory: SocketFactoryType | None = None,
) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` for webhooks, behind the address guard.

    Call it inside the running event loop; the caller closes the session. The
    session keeps no cookies and ignores proxy environment variables.

    Args:
        allow_networks: networks allowed although not public (``ownly.toml``
            ``[webhooks] allow_networks``); none by default in production.
        resolver: the resolver whose answers are filtered; the system's by default.
        limit: connections open at once, in all.
        limit_per_host: connections open at once to one host.
        socket_factory: makes the socket for each address the guard let through;
            tests pass one that records the attempt instead of connecting.
    """
    connector = GuardedConnector(
        AddressPolicy(allow_networks),
        resolver=resolver,
        limit=limit,
        limit_per_host=limit_per_host,
        socket_factory=socket_factory,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
