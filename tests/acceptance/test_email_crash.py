"""kill -9 in the middle of 2,000 emails to a real SMTP server: after a restart each one
arrives, each is recorded sent once, and one sent again carries the Message-ID of the first."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import KEY, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import install_emails
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.acceptance

EMAILS = 2000
CLIENTS = 16
LEASED = 64  # [queue] concurrency: at most this many emails are being sent at the kill


def receipt(i: int) -> dict[str, Any]:
    address = f"investor{i}@example.com"
    return {
        "template": "investment_receipt",
        "to": address,
        "data": {
            "investor": {"email": address, "name": f"Investor {i}"},
            "deal": {"id": "deal_1", "name": "Harbour Lofts"},
            "amount": f"{1000 + i}.00",
            "currency": "usd",
        },
    }


async def _queue(url: str) -> list[str]:
    """Each email posted by one of ``CLIENTS`` clients, with its own Idempotency-Key; their ids."""
    ids = [""] * EMAILS
    todo = iter(range(EMAILS))

    async def one_client(http: httpx.AsyncClient) -> None:
        for i in todo:
            answer = await http.post(
                "/api/emails/send-template",
                json=receipt(i),
                headers={"Idempotency-Key": f"receipt-{i}"},
            )
            assert answer.status_code == 202, answer.text
            ids[i] = answer.json()["id"]

    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        await asyncio.gather(*(one_client(http) for _ in range(CLIENTS)))
    return ids


async def _outcomes(url: str, ids: list[str]) -> dict[str, list[str]]:
    """Each email's attempt outcomes, from its log."""
    outcomes: dict[str, list[str]] = {}
    todo = iter(ids)

    async def one_client(http: httpx.AsyncClient) -> None:
        for email_id in todo:
            answer = await http.get(f"/api/emails/logs/{email_id}")
            assert answer.status_code == 200, answer.text
            outcomes[email_id] = [attempt["outcome"] for attempt in answer.json()["attempts"]]

    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        await asyncio.gather(*(one_client(http) for _ in range(CLIENTS)))
    return outcomes


def _pages(api: httpx.Client, path: str, key: str, params: dict[str, str]) -> Iterator[Any]:
    query = {**params, "limit": "500"}
    while True:
        page = api.get(path, params=query)
        assert page.status_code == 200, page.text
        yield from page.json()[key]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return
        query["cursor"] = cursor


def _by_id(messages: list[EmailMessage]) -> dict[str, list[EmailMessage]]:
    copies: dict[str, list[EmailMessage]] = {}
    for message in messages:
        copies.setdefault(str(message["X-Ownly-Email-Id"]), []).append(message)
    return copies


def test_sigkill_during_2000_sends_loses_none_and_records_each_sent_once(tmp_path: Path) -> None:
    install_emails(tmp_path)
    with SmtpServer() as smtp, Receiver() as receiver:
        sink = smtp.sink
        toml = (
            "[email]\n[[email.providers]]\ntype = 'smtp'\nhost = '127.0.0.1'\n"
            f"port = {smtp.port}\nsecurity = 'none'\n"
        )
        sink.answering.clear()  # nothing is sent until every email is queued
        engine = start_engine(tmp_path, receiver, toml, env={"OWNLY_QUEUE_LEASE": "2s"})
        env = engine.environment
        try:
            ids = asyncio.run(_queue(engine.url))
            sink.answering.set()
            sink.wait_for(EMAILS // 4, timeout=30)
            # The messages the server takes now are never acknowledged: the engine dies
            # after sending them and before it could record them sent.
            sink.answering.clear()
            taken = len(sink.messages)
            sink.wait_for(taken + 1, timeout=10)
        finally:
            engine.kill()
        unacknowledged = {str(m["X-Ownly-Email-Id"]) for m in sink.messages[taken:]}
        sink.answering.set()
        at_kill = len(_by_id(sink.messages))
        assert at_kill < EMAILS, "the engine was killed in the middle of the sends"

        again = EngineProcess(tmp_path, env=env)
        try:
            again.wait_ready()
            deadline = time.monotonic() + 30
            while len(_by_id(sink.messages)) < EMAILS and time.monotonic() < deadline:
                time.sleep(0.1)
            with client(again, timeout=30) as api:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    counts = api.get("/api/emails/stats").json()["counts"]
                    if counts["sent"] == EMAILS:
                        break
                    time.sleep(0.1)
                logged = list(_pages(api, "/api/emails/logs", "emails", {"status": "sent"}))
                events = list(_pages(api, "/api/events", "events", {"type": "email.sent"}))
            outcomes = asyncio.run(_outcomes(again.url, ids))
        finally:
            again.kill()

    arrived = _by_id(sink.messages)
    assert len(set(ids)) == EMAILS
    assert set(arrived) == set(ids), "every email arrived at least once"
    for email_id, copies in arrived.items():
        assert {copy["Message-ID"] for copy in copies} == {f"<{email_id}@ownly.com>"}
    again_sent = {email_id for email_id, copies in arrived.items() if len(copies) > 1}
    assert unacknowledged and unacknowledged <= again_sent, "what was not acknowledged is re-sent"
    assert all(len(arrived[email_id]) == 2 for email_id in again_sent)
    assert len(again_sent) <= LEASED, "only emails being sent at the kill are sent again"

    assert sorted(email["id"] for email in logged) == sorted(ids), "each is logged sent, once"
    assert counts == {**counts, "emails": EMAILS, "sent": EMAILS, "queued": 0, "failed": 0}
    assert sorted(event["data"]["email_id"] for event in events) == sorted(ids)
    assert {email_id: found.count("sent") for email_id, found in outcomes.items()} == dict.fromkeys(
        ids, 1
    ), "each email's attempts hold one sent"
    assert all(found[-1] == "sent" for found in outcomes.values())
