"""The outbound guard refuses private, link-local, metadata and plain-http targets.

No test here can send a packet past loopback, even with a broken guard: host
names go to a fake resolver, and every socket the guard lets through is made by
``RecordingSockets``, which opens real sockets to 127.0.0.1 only and records
any other address instead of connecting to it. Each refused case then asserts
that nothing was recorded, so a guard that let the address through fails the
test without reaching the network.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from yarl import URL

from connectors import (
    AddressPolicy,
    BlockedAddress,
    BlockedUrl,
    GuardedConnector,
    GuardedResolver,
    Outcome,
    PolicyError,
    WebhookRequest,
    WebhookSender,
    generate_secret,
    guarded_session,
)

LOOPBACK = ipaddress.ip_network("127.0.0.1/32")
PUBLIC = "93.184.216.34"


class RecordingSockets:
    """A socket factory: real sockets to 127.0.0.1, a record and a refusal for anything else."""

    def __init__(self) -> None:
        self.recorded: list[tuple[Any, ...]] = []
        self.opened: list[tuple[Any, ...]] = []

    def __call__(self, addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _, address = addr_info
        if family == socket.AF_INET and ipaddress.ip_address(address[0]) in LOOPBACK:
            self.opened.append(address)
            return socket.socket(family, type_, proto)
        self.recorded.append(address)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "recorded by the test, not connected")


class FakeResolver(AbstractResolver):
    """Answers from a table; never asks DNS."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(errno.ENOENT, f"{host} is not in the test's table")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[str]]]:
    hits: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        hits.append(request.path)
        if request.path == "/to-private":
            raise web.HTTPFound(location="http://10.0.0.1/admin")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield f"127.0.0.1:{server.port}", hits
    await server.close()


TABLE: dict[str, list[str]] = {
    "internal.example": ["10.1.2.3"],
    "mixed-private.example": ["192.168.0.7", "fd12::7", "169.254.169.254"],
    "public.example": [PUBLIC],
    "hook.localhost": ["127.0.0.1"],
    "half-private.example": ["10.9.9.9", "127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
}


async def send(
    url: str, *, allow: Sequence[str] = ("127.0.0.0/8",)
) -> tuple[Any, RecordingSockets, FakeResolver]:
    sockets = RecordingSockets()
    resolver = FakeResolver(TABLE)
    async with guarded_session(allow, resolver=resolver, socket_factory=sockets) as session:
        sender = WebhookSender(session, user_agent="Ownly/test")
        attempt = await sender.send(
            WebhookRequest(
                url=url,
                message_id="msg_ssrf",
                event_type="deal.funded",
                body=b"{}",
                secrets=(generate_secret(),),
                timestamp=int(time.time()),
                timeout=2.0,
            )
        )
    return attempt, sockets, resolver


REFUSED = [
    ("https://10.0.0.1/hook", "10.0.0.1", "private (RFC 1918)"),
    ("https://172.16.5.4/hook", "172.16.5.4", "private (RFC 1918)"),
    ("https://192.168.1.1/hook", "192.168.1.1", "private (RFC 1918)"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
    ("https://169.254.1.1/hook", "169.254.1.1", "link-local"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "cloud metadata"),
    ("http://10.0.0.1:8080/hook", "10.0.0.1", "private (RFC 1918)"),
    ("https://100.64.0.1/hook", "100.64.0.1", "CGNAT"),
    ("https://[::1]/hook", "::1", "loopback"),
    ("https://[fc00::1]/hook", "fc00::1", "unique-local"),
    ("https://[fe80::1]/hook", "fe80::1", "link-local"),
    ("https://[::ffff:10.0.0.1]/hook", "::ffff:a00:1", "carries 10.0.0.1, private"),
    ("https://[::ffff:169.254.169.254]/", "::ffff:a9fe:a9fe", "cloud metadata"),
    ("https://[64:ff9b::a00:1]/hook", "64:ff9b::a00:1", "carries 10.0.0.1"),
    ("https://0.0.0.0/hook", "0.0.0.0", "unspecified"),
    ("https://224.0.0.1/hook", "224.0.0.1", "multicast"),
    ("https://240.0.0.1/hook", "240.0.0.1", "reserved"),
    ("https://internal.example/hook", "10.1.2.3", "private (RFC 1918)"),
    ("https://mixed-private.example/hook", "192.168.0.7", "no permitted address"),
    (
        "https://metadata.google.internal/computeMetadata/v1/",
        "metadata.google.internal",
        "metadata",
    ),
    (f"http://{PUBLIC}/hook", PUBLIC, "plain http:// is allowed only"),
    ("http://public.example/hook", PUBLIC, "plain http:// is allowed only"),
    ("https://2130706433/hook", "2130706433", "dotted form"),
    ("https://127.1/hook", "127.1", "dotted form"),
    ("ftp://public.example/hook", "ftp://", "only http:// and https://"),
    ("https:///no-host", "", "URL"),
    ("http://[::1/broken", "", "URL"),
]


@pytest.mark.parametrize(("url", "named", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_refused_with_a_clear_error_and_no_connection(
    url: str, named: str, reason: str
) -> None:
    attempt, sockets, _ = await send(url)
    assert attempt.outcome is Outcome.BLOCKED, attempt
    assert not attempt.outcome.retryable
    assert attempt.error_class in ("BlockedAddress", "BlockedUrl")
    assert attempt.error_message is not None
    assert named in attempt.error_message
    assert reason in attempt.error_message
    assert sockets.recorded == []
    assert sockets.opened == []


async def test_metadata_names_are_refused_before_any_lookup() -> None:
    _, _, resolver = await send("https://metadata.google.internal/")
    assert resolver.asked == []


async def test_loopback_is_refused_without_an_allowed_network(
    receiver: tuple[str, list[str]],
) -> None:
    where, hits = receiver
    attempt, sockets, _ = await send(f"https://{where}/hook", allow=[])
    assert attempt.outcome is Outcome.BLOCKED
    assert "loopback" in (attempt.error_message or "")
    assert (sockets.recorded, sockets.opened, hits) == ([], [], [])


async def test_allowed_loopback_reaches_the_receiver(receiver: tuple[str, list[str]]) -> None:
    where, hits = receiver
    attempt, sockets, _ = await send(f"http://{where}/hook")
    assert attempt.outcome is Outcome.DELIVERED
    assert hits == ["/hook"]
    assert sockets.recorded == []
    assert len(sockets.opened) == 1


async def test_a_name_resolving_to_loopback_is_allowed_like_its_address(
    receiver: tuple[str, list[str]],
) -> None:
    where, hits = receiver
    port = where.rsplit(":", 1)[1]
    attempt, _, _ = await send(f"http://hook.localhost:{port}/named")
    assert attempt.outcome is Outcome.DELIVERED
    assert hits == ["/named"]


async def test_refused_addresses_are_dropped_and_the_allowed_one_used(
    receiver: tuple[str, list[str]],
) -> None:
    where, hits = receiver
    port = where.rsplit(":", 1)[1]
    attempt, sockets, _ = await send(f"http://half-private.example:{port}/mixed")
    assert attempt.outcome is Outcome.DELIVERED
    assert hits == ["/mixed"]
    assert sockets.recorded == []


async def test_a_redirect_to_a_private_address_is_not_followed(
    receiver: tuple[str, list[str]],
) -> None:
    where, hits = receiver
    attempt, sockets, _ = await send(f"http://{where}/to-private")
    assert attempt.outcome is Outcome.REDIRECT
    assert attempt.status == 302
    assert hits == ["/to-private"]
    assert sockets.recorded == []
    assert len(sockets.opened) == 1


async def test_the_recorder_does_record_what_the_guard_lets_through() -> None:
    # The control case: a public https address passes the guard and reaches
    # the recorder, which refuses it without a packet leaving the machine.
    attempt, sockets, _ = await send("https://public.example/hook")
    assert attempt.outcome is Outcome.FAILED
    assert [address[0] for address in sockets.recorded] == [PUBLIC]


async def test_the_peer_is_checked_after_connecting() -> None:
    class Transport(asyncio.BaseTransport):
        def __init__(self, peer: object) -> None:
            super().__init__()
            self.peer = peer

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return self.peer if name == "peername" else default

    connector = GuardedConnector(AddressPolicy(["127.0.0.0/8"]))
    try:
        connector.check_peer(URL("https://hook.example/"), Transport(("127.0.0.1", 443)))
        with pytest.raises(BlockedAddress, match=r"10\.0\.0\.1 for host hook\.example: private"):
            connector.check_peer(URL("https://hook.example/"), Transport(("10.0.0.1", 443)))
        with pytest.raises(BlockedAddress, match="link-local"):
            connector.check_peer(URL("https://hook.example/"), Transport(("fe80::1%lo", 443, 0, 1)))
        with pytest.raises(BlockedAddress, match="cannot be checked"):
            connector.check_peer(URL("https://hook.example/"), Transport(None))
        with pytest.raises(BlockedAddress, match="plain http"):
            connector.check_peer(URL("http://hook.example/"), Transport((PUBLIC, 80)))
    finally:
        await connector.close()


@pytest.mark.parametrize(
    "address",
    [PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"],
)
def test_public_addresses_pass(address: str) -> None:
    assert AddressPolicy().refusal(address) is None
    assert "plain http" in (AddressPolicy().refusal(address, plain_http=True) or "")


def test_an_allowed_network_permits_plain_http_and_mapped_forms() -> None:
    policy = AddressPolicy(["127.0.0.0/8", "10.20.0.0/16"])
    assert policy.refusal("127.0.0.1", plain_http=True) is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.20.3.4") is None
    assert policy.refusal("10.21.3.4") == "private (RFC 1918)"


@pytest.mark.parametrize("entry", ["not-a-network", "10.0.0.0/33", "300.1.1.1/8"])
def test_a_bad_allowed_network_is_refused(entry: str) -> None:
    with pytest.raises(PolicyError, match="is not a network"):
        AddressPolicy([entry])


def test_allowed_networks_must_be_a_list() -> None:
    with pytest.raises(PolicyError, match="not one string"):
        AddressPolicy("127.0.0.0/8")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://metadata.google.internal./x", BlockedUrl),
        ("https://METADATA.GOOGLE.INTERNAL/x", BlockedUrl),
        ("https://0x7f.0.0.1/x", BlockedUrl),
        ("file:///etc/passwd", BlockedUrl),
        ("https://[fd00:ec2::254]/", BlockedAddress),
    ],
)
def test_check_url_refuses_before_any_lookup(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        AddressPolicy(["127.0.0.0/8"]).check_url(url)


async def test_the_resolver_keeps_only_permitted_addresses() -> None:
    fake = FakeResolver(TABLE)
    resolver = GuardedResolver(AddressPolicy(["127.0.0.0/8"]), fake)
    kept = await resolver.resolve("half-private.example", 443)
    assert [r["host"] for r in kept] == ["127.0.0.1"]
    with pytest.raises(BlockedAddress) as caught:
        await resolver.resolve("mixed-private.example", 443)
    message = caught.value.message
    assert "host mixed-private.example" in message
    for shown in ("192.168.0.7 (private", "fd12::7 (unique-local)", "169.254.169.254 (the cloud"):
        assert shown in message
    with pytest.raises(BlockedUrl):
        await resolver.resolve("metadata.google.internal", 80)
    assert fake.asked == ["half-private.example", "mixed-private.example"]
