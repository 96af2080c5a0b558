"""Emails through the engine to a real SMTP server on loopback, and what recipients do with them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from tests.support.emails import receipt, send, wait_log
from tests.support.engine import client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import install_emails
from tests.support.smtp import SmtpServer, SmtpSink

pytestmark = pytest.mark.acceptance

HOSTILE = "<script>alert(1)</script>"


def email_toml(smtp_port: int) -> str:
    return (
        "[email]\nretry_delays = ['200ms']\nunsubscribe_mailto = 'unsubscribe@ownly.com'\n"
        "[[email.providers]]\ntype = 'smtp'\nhost = '127.0.0.1'\n"
        f"port = {smtp_port}\nsecurity = 'none'\n"
    )


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer(SmtpSink()) as server:
        yield server


@pytest.fixture(scope="module")
def mail_engine(
    tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("email")
    install_emails(root)
    with Receiver() as receiver:
        engine = start_engine(root, receiver, email_toml(smtp.port))
        try:
            yield engine
        finally:
            engine.kill()


@pytest.fixture
def api(mail_engine: EngineProcess) -> Iterator[httpx.Client]:
    with client(mail_engine) as http:
        yield http


def message_for(smtp: SmtpServer, email_id: str) -> EmailMessage:
    return smtp.sink.arrival(email_id)[0]


def parts(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = message.iter_parts()
    assert plain.get_content_type() == "text/plain" and rich.get_content_type() == "text/html"
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"
    return plain.get_content(), rich.get_content()


def test_a_template_arrives_rendered_escaped_and_inlined(
    api: httpx.Client, smtp: SmtpServer
) -> None:
    email_id = send(
        api, "kyc_welcome", "Ada <ada@example.com>", {"name": HOSTILE, "accredited": True}
    )
    message = message_for(smtp, email_id)
    text, body = parts(message)
    assert message["To"] == "Ada <ada@example.com>"
    assert message["From"] == "OWNLY <hello@ownly.com>"
    assert message["Reply-To"] == "support@ownly.com"
    assert message["Subject"] == f"Welcome to OWNLY, {HOSTILE}: you are verified"
    assert message["Message-ID"] == f"<{email_id}@ownly.com>"
    assert message["Date"]
    assert HOSTILE not in body and html.escape(HOSTILE, quote=False) in body
    assert f"Welcome, {HOSTILE}" in text  # the text part is not HTML: nothing escaped
    assert "<style" not in body and re.search(r'<p style="[^"]*margin', body), "CSS inlined"
    unsubscribe = message["List-Unsubscribe"]
    assert re.fullmatch(r"<http://127\.0\.0\.1:\d+/email/u/[\w.-]+>, <mailto:[^>]+>", unsubscribe)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    log = wait_log(api, email_id, lambda log: log["status"] == "sent")
    assert log["status"] == "sent" and log["provider"] == "smtp"
    assert log["template"] == "kyc_welcome" and log["rule_set"]
    assert log["message_id"] == message["Message-ID"]
    assert [a["outcome"] for a in log["attempts"]] == ["sent"]


def test_a_retry_sends_the_same_message_id(api: httpx.Client, smtp: SmtpServer) -> None:
    smtp.sink.fail_first = 1  # the first RCPT answers 451
    email_id = send(api, "investment_receipt", "bob@example.com", receipt())
    message = message_for(smtp, email_id)
    assert message["Message-ID"] == f"<{email_id}@ownly.com>"
    log = wait_log(api, email_id, lambda log: len(log["attempts"]) == 2)
    assert [a["outcome"] for a in log["attempts"]] == ["retry", "sent"]
    assert "451" in log["attempts"][0]["error_message"]


def test_the_same_idempotency_key_sends_once(api: httpx.Client, smtp: SmtpServer) -> None:
    body = {"template": "investment_receipt", "to": "carol@example.com", "data": receipt()}
    key = {"Idempotency-Key": "receipt-inv-77"}
    first = api.post("/api/emails/send-template", json=body, headers=key)
    again = api.post("/api/emails/send-template", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api.post(
        "/api/emails/send-template", json={**body, "to": "dave@example.com"}, headers=key
    )
    assert other.status_code == 409 and other.json()["error"] == "idempotency_key_reused"
    message_for(smtp, first.json()["id"])
    wait_log(api, first.json()["id"], lambda log: log["status"] == "sent")
    arrived = [m for m in smtp.sink.messages if m["X-Ownly-Email-Id"] == first.json()["id"]]
    assert len(arrived) == 1
    listed = api.get("/api/emails/logs", params={"to": "carol@example.com"}).json()["emails"]
    assert [e["id"] for e in listed] == [first.json()["id"]]
    assert api.get("/api/emails/logs", params={"to": "dave@example.com"}).json()["emails"] == []


def _links(message: EmailMessage) -> tuple[str, str]:
    _, body = parts(message)
    hrefs = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', body)]
    click = next(h for h in hrefs if "/email/c/" in h)
    pixel = html.unescape(re.search(r'<img src="([^"]+/email/o/[^"]+)"', body).group(1))  # type: ignore[union-attr]
    return click, pixel


def test_opens_and_clicks_are_tracked_by_the_engine(
    api: httpx.Client, smtp: SmtpServer, mail_engine: EngineProcess
) -> None:
    email_id = send(api, "kyc_welcome", "erin@example.com", {"name": "Erin", "accredited": False})
    click, pixel = _links(message_for(smtp, email_id))
    wait_log(api, email_id, lambda log: log["status"] == "sent")
    with httpx.Client(timeout=5) as browser:  # a recipient: no API key
        opened = browser.get(pixel)
        assert opened.status_code == 200 and opened.headers["Content-Type"] == "image/gif"
        followed = browser.get(click)
        assert followed.status_code == 302
        assert followed.headers["Location"] == "https://ownly.com/deals?sort=new&open=1"
        token = click.rsplit("/", 1)[1]
        tampered = click[: -len(token)] + token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        assert browser.get(tampered).status_code == 404
        assert browser.get(mail_engine.url + "/email/c/not-a-token").status_code == 404

    log = wait_log(api, email_id, lambda log: log["status"] == "clicked")
    assert (log["status"], log["open_count"], log["click_count"]) == ("clicked", 1, 1)
    assert log["first_opened_at"] and log["first_clicked_at"]
    assert [e["type"] for e in log["events"]] == ["opened", "clicked"]
    clicked = api.get("/api/events", params={"type": "email.clicked"}).json()["events"]
    mine = [e for e in clicked if e["data"]["email_id"] == email_id]
    assert len(mine) == 1 and mine[0]["data"]["url"] == "https://ownly.com/deals?sort=new&open=1"


def test_one_click_unsubscribe_suppresses_the_category(api: httpx.Client, smtp: SmtpServer) -> None:
    to = "Frank <Frank@Example.com>"  # the log and the suppression list go by the address
    email_id = send(api, "kyc_welcome", to, {"name": "Frank", "accredited": False})
    message = message_for(smtp, email_id)
    url = re.match(r"<([^>]+)>", message["List-Unsubscribe"]).group(1)  # type: ignore[union-attr]
    with httpx.Client(timeout=5) as mail_client:
        page = mail_client.get(url)
        assert page.status_code == 200 and "<form" in page.text
        answer = mail_client.post(
            url,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert answer.status_code == 200
    listed = api.get("/api/emails/suppressions", params={"address": "frank@example.com"}).json()
    assert [(s["category"], s["reason"]) for s in listed["suppressions"]] == [
        ("onboarding", "unsubscribed")
    ]
    assert wait_log(api, email_id, lambda log: log["status"] == "unsubscribed")["unsubscribed_at"]

    logged = api.get("/api/emails/logs", params={"to": "FRANK@example.com"}).json()["emails"]
    assert [(e["id"], e["to"], e["to_name"]) for e in logged] == [
        (email_id, "frank@example.com", "Frank")
    ]
    skipped = send(api, "kyc_rejected", "frank@example.com", _rejected())  # also onboarding
    log = wait_log(api, skipped, lambda log: log["status"] != "queued")
    assert log["status"] == "suppressed" and log["attempts"][0]["outcome"] == "suppressed"
    other = send(api, "investment_receipt", "frank@example.com", receipt("Frank"))
    message_for(smtp, other)  # another category is still sent
    assert all(m["X-Ownly-Email-Id"] != skipped for m in smtp.sink.messages)


def _rejected() -> dict[str, Any]:
    return {"name": "Frank", "reason": "blurred document", "can_resubmit": True}


def test_the_suppression_list_through_the_api(api: httpx.Client, smtp: SmtpServer) -> None:
    added = api.post("/api/emails/suppressions", json={"address": "Grace@Example.com"})
    assert added.status_code == 201 and added.json()["address"] == "grace@example.com"
    assert (
        api.post("/api/emails/suppressions", json={"address": "grace@example.com"}).status_code
        == 200
    )
    skipped = send(api, "investment_receipt", "grace@example.com", receipt("Grace"))
    assert wait_log(api, skipped, lambda log: log["status"] != "queued")["status"] == "suppressed"
    assert api.delete("/api/emails/suppressions/grace@example.com").status_code == 204
    assert api.delete("/api/emails/suppressions/grace@example.com").status_code == 404
    sent = send(api, "investment_receipt", "grace@example.com", receipt("Grace"))
    message_for(smtp, sent)


def test_stats_count_what_happened(api: httpx.Client, smtp: SmtpServer) -> None:
    email_id = send(api, "investment_receipt", "heidi@example.com", receipt("Heidi"))
    message_for(smtp, email_id)
    wait_log(api, email_id, lambda log: log["status"] == "sent")
    stats = api.get("/api/emails/stats").json()
    receipts = stats["templates"]["investment_receipt"]["counts"]
    assert receipts["sent"] >= 1 and receipts["emails"] >= receipts["sent"]
    assert stats["counts"]["sent"] >= receipts["sent"]
    assert "transactional" in stats["categories"]
    assert stats["rates"]["delivered"] is not None
