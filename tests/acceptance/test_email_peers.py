"""The engine as a process against real peers on 127.0.0.1.

An SMTP relay (aiosmtpd) that requires STARTTLS and a login, with a certificate
made here; SendGrid and Mailgun stand-ins that read each request as the API
documents it; and both providers' signed event webhooks, posted to the engine.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.emails import email_log, receipt, send, wait_log
from tests.support.engine import SECRET, client, start_engine
from tests.support.process import EngineProcess, closed_port, ownly, write_project
from tests.support.providers import MAILGUN_DOMAIN, MAILGUN_KEY, SENDGRID_KEY, StandIn
from tests.support.receiver import Receiver
from tests.support.reports import (
    SendGridSigner,
    mailgun_body,
    mailgun_event,
    mailgun_signature,
    sendgrid_body,
    sendgrid_event,
)
from tests.support.rules import install_emails
from tests.support.smtp import Login, Session, SmtpServer, SmtpSink
from tests.support.tls import Certificate, make_certificate

pytestmark = pytest.mark.acceptance

USER, PASSWORD = "mailer", "relay-Passw0rd-7f3a"
WRONG_PASSWORD = "wrong-Passw0rd-91c2"
MAILGUN_SIGNING_KEY = "mg-signing-key-5b1e0c9d"
TOLERANCE = 60

BOUNCES = """
webhook receiver {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [email.bounced]
  retry     5 times, exponential 1s .. 2s
  timeout   5s
}
"""


def relay_toml(port: int, retry_delays: str = "['200ms']") -> str:
    return (
        f"[email]\nretry_delays = {retry_delays}\n"
        "[[email.providers]]\ntype = 'smtp'\nhost = '127.0.0.1'\n"
        f"port = {port}\nsecurity = 'starttls'\n"
        "username_env = 'SMTP_USER'\npassword_env = 'SMTP_PASSWORD'\n"
        "ca_file = 'relay-ca.pem'\n"  # beside ownly.toml
    )


def apis_toml(sendgrid_url: str, mailgun_url: str) -> str:
    return (
        "[email]\nretry_delays = ['200ms']\n"
        "sendgrid_public_key_env = 'SENDGRID_WEBHOOK_KEY'\n"
        "mailgun_signing_key_env = 'MAILGUN_SIGNING_KEY'\n"
        f"webhook_tolerance = '{TOLERANCE}s'\n"
        "[[email.providers]]\ntype = 'sendgrid'\napi_key_env = 'SENDGRID_API_KEY'\n"
        f"base_url = '{sendgrid_url}'\n"
        "[[email.providers]]\ntype = 'mailgun'\napi_key_env = 'MAILGUN_API_KEY'\n"
        f"domain = '{MAILGUN_DOMAIN}'\nbase_url = '{mailgun_url}'\n"
    )


@contextmanager
def running(
    root: Path, toml: str, env: dict[str, str], hooks: Receiver, **options: Any
) -> Iterator[EngineProcess]:
    """The engine in ``root`` with the shipped templates, ``toml`` and ``env``."""
    install_emails(root)
    engine = start_engine(root, hooks, toml, env, **options)
    try:
        yield engine
    finally:
        engine.kill()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def relay(certificate: Certificate) -> Iterator[SmtpServer]:
    with SmtpServer(
        SmtpSink(),
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=Login(USER, PASSWORD),
    ) as server:
        yield server


def relay_root(factory: pytest.TempPathFactory, certificate: Certificate) -> Path:
    root = factory.mktemp("relay")
    shutil.copy(certificate.cert, root / "relay-ca.pem")
    return root


@pytest.fixture(scope="module")
def relay_engine(
    tmp_path_factory: pytest.TempPathFactory,
    certificate: Certificate,
    relay: SmtpServer,
    hooks: Receiver,
) -> Iterator[EngineProcess]:
    root = relay_root(tmp_path_factory, certificate)
    env = {"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD}
    with running(root, relay_toml(relay.port), env, hooks) as engine:
        yield engine


@pytest.fixture(scope="module")
def sendgrid() -> Iterator[StandIn]:
    with StandIn("sendgrid") as running:
        yield running


@pytest.fixture(scope="module")
def mailgun() -> Iterator[StandIn]:
    with StandIn("mailgun") as running:
        yield running


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    """Where the engine's webhook subscribed to ``email.bounced`` delivers."""
    with Receiver() as running:
        yield running


@pytest.fixture(scope="module")
def signer() -> SendGridSigner:
    return SendGridSigner()


def apis_env(signer: SendGridSigner) -> dict[str, str]:
    return {
        "SENDGRID_API_KEY": SENDGRID_KEY,
        "MAILGUN_API_KEY": MAILGUN_KEY,
        "SENDGRID_WEBHOOK_KEY": signer.public_key,
        "MAILGUN_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


@pytest.fixture(scope="module")
def apis_engine(
    tmp_path_factory: pytest.TempPathFactory,
    sendgrid: StandIn,
    mailgun: StandIn,
    hooks: Receiver,
    signer: SendGridSigner,
) -> Iterator[EngineProcess]:
    """SendGrid first, Mailgun second; both event webhooks verified."""
    root = tmp_path_factory.mktemp("apis")
    toml = apis_toml(sendgrid.url, mailgun.url)
    with running(root, toml, apis_env(signer), hooks, webhooks=BOUNCES) as engine:
        yield engine


@pytest.fixture
def api(apis_engine: EngineProcess) -> Iterator[httpx.Client]:
    with client(apis_engine) as http:
        yield http


@pytest.fixture
def relay_api(relay_engine: EngineProcess) -> Iterator[httpx.Client]:
    with client(relay_engine) as http:
        yield http


@pytest.fixture
def provider(apis_engine: EngineProcess) -> Iterator[httpx.Client]:
    """The providers' side: no API key, the signature is the credential."""
    with httpx.Client(base_url=apis_engine.url, timeout=5) as http:
        yield http


def sent(api: httpx.Client, to: str) -> tuple[str, dict[str, Any]]:
    """An email to ``to`` the engine has handed to a provider, and its log."""
    email_id = send(api, "investment_receipt", to, receipt("Investor", parseaddr(to)[1]))
    log = wait_log(api, email_id, lambda log: log["status"] != "queued")
    assert log["status"] == "sent", log
    return email_id, log


def until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def sent_through(
    api: httpx.Client, sendgrid: StandIn, source: str, to: str
) -> tuple[str, dict[str, Any]]:
    """An email that ``source`` took: Mailgun when SendGrid answers 503 for ``to``."""
    if source == "mailgun":
        sendgrid.answers[parseaddr(to)[1]] = (503, "Service Unavailable", {})
    email_id, log = sent(api, to)
    assert log["provider"] == source
    return email_id, log


def catalog_events(api: httpx.Client, kind: str, email_id: str) -> list[dict[str, Any]]:
    answer = api.get("/api/events", params={"type": kind, "limit": 500})
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["events"] if e["data"]["email_id"] == email_id]


def suppressions(api: httpx.Client, address: str) -> list[tuple[str | None, str]]:
    listed = api.get("/api/emails/suppressions", params={"address": address}).json()
    return [(s["category"], s["reason"]) for s in listed["suppressions"]]


def gauge(api: httpx.Client, status: str) -> float:
    """``ownly_emails{status=...}`` as ``/metrics`` shows it; 0 when it shows none."""
    line = re.compile(rf'^ownly_emails\{{status="{status}"\}} (\S+)$', re.MULTILINE)
    found = line.search(api.get("/metrics").text)
    return float(found[1]) if found else 0.0


def tried(attempt: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(t["provider"], t["outcome"], t.get("reason")) for t in attempt["detail"]["tried"]]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def moment(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


def assert_hidden(secret: str, *texts: str) -> None:
    """Neither the secret nor its AUTH PLAIN and AUTH LOGIN forms appear in ``texts``."""
    forms = {
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{secret}".encode()).decode(),
    }
    for text in texts:
        for form in forms:
            assert form not in text


def post_sendgrid(
    http: httpx.Client, signer: SendGridSigner, *events: dict[str, Any]
) -> httpx.Response:
    body = sendgrid_body(*events)
    headers = signer.headers(body)
    assert signer.sendgrid_verifies(body, headers)  # SendGrid's own library takes it too
    return http.post("/api/emails/sendgrid/webhook", content=body, headers=headers)


def post_mailgun(
    http: httpx.Client, event: dict[str, Any], signature: dict[str, str] | None = None
) -> httpx.Response:
    body = mailgun_body(signature or mailgun_signature(MAILGUN_SIGNING_KEY), event)
    headers = {"Content-Type": "application/json"}
    return http.post("/api/emails/mailgun/webhook", content=body, headers=headers)


def test_a_template_goes_out_over_starttls_with_a_login(
    relay_api: httpx.Client, relay: SmtpServer, relay_engine: EngineProcess
) -> None:
    email_id = send(relay_api, "investment_receipt", "ivan@example.com", receipt("Ivan"))
    message, session = relay.sink.arrival(email_id)
    assert session == Session(login=USER.encode(), tls=True)
    assert message["Message-ID"] == f"<{email_id}@ownly.com>"
    assert message["Subject"] == "Your investment in Harbour Lofts is confirmed"

    log = wait_log(relay_api, email_id, lambda log: log["status"] == "sent")
    assert (log["status"], log["provider"]) == ("sent", "smtp")
    [attempt] = log["attempts"]
    assert attempt["outcome"] == "sent"
    assert attempt["detail"]["tried"][0]["reply"].startswith("250 ")
    shown = relay_api.get(f"/api/emails/logs/{email_id}").text
    assert_hidden(PASSWORD, relay_engine.output(), shown)


def test_a_wrong_password_is_an_auth_failure_and_retried(
    tmp_path_factory: pytest.TempPathFactory,
    certificate: Certificate,
    relay: SmtpServer,
    hooks: Receiver,
) -> None:
    root = relay_root(tmp_path_factory, certificate)
    env = {"SMTP_USER": USER, "SMTP_PASSWORD": WRONG_PASSWORD}
    toml = relay_toml(relay.port, "['100ms', '1h']")
    with running(root, toml, env, hooks) as engine, client(engine) as api:
        email_id = send(api, "investment_receipt", "judy@example.com", receipt("Judy"))
        log = wait_log(api, email_id, lambda log: len(log["attempts"]) >= 2)
        shown = api.get(f"/api/emails/logs/{email_id}").text
        output = engine.output()
    assert [a["outcome"] for a in log["attempts"]] == ["retry", "retry"]
    for attempt in log["attempts"]:
        assert tried(attempt) == [("smtp", "failed", "auth")]
        assert attempt["detail"]["tried"][0]["code"] == 535
        message = attempt["error_message"]
        assert message.startswith(f"smtp: 127.0.0.1:{relay.port} refused the login 535 ")
        assert message.count("smtp:") == 1, "the provider is named once"
    assert log["status"] == "queued" and log["failed_at"] is None, "not failed at once"
    assert log["job"]["state"] == "pending", "to be tried again, in an hour now"
    assert log["error"] == log["attempts"][-1]["error_message"]
    with pytest.raises(AssertionError):
        relay.sink.arrival(email_id, timeout=0)
    assert_hidden(WRONG_PASSWORD, output, shown)


def test_a_ca_file_that_cannot_be_read_stops_the_engine(tmp_path: Path, relay: SmtpServer) -> None:
    write_project(tmp_path, extra_toml=relay_toml(relay.port))
    (tmp_path / "relay-ca.pem").write_text("not a certificate\n")
    done = ownly("run", cwd=tmp_path, env={"SMTP_USER": USER, "SMTP_PASSWORD": PASSWORD})
    assert done.returncode == 1
    assert f"ca_file {tmp_path / 'relay-ca.pem'}: not a readable PEM bundle" in done.stderr


def test_provider_webhooks_that_are_not_configured_answer_404(
    relay_engine: EngineProcess, signer: SendGridSigner
) -> None:
    body = sendgrid_body(sendgrid_event("eml_x", "delivered", "x@example.com"))
    with httpx.Client(base_url=relay_engine.url, timeout=5) as http:
        answers = [
            http.post("/api/emails/sendgrid/webhook", content=body, headers=signer.headers(body)),
            post_mailgun(http, mailgun_event("eml_x", "delivered", "x@example.com")),
        ]
    for answer in answers:
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_configured"


def test_a_send_goes_to_sendgrid(api: httpx.Client, sendgrid: StandIn, mailgun: StandIn) -> None:
    email_id, log = sent(api, "kate@example.com")
    [call] = sendgrid.calls_for(email_id)
    assert (log["provider"], log["provider_message_id"]) == ("sendgrid", call.message_id)
    assert call.status == 202 and call.message_id
    request = call.request
    assert request["personalizations"][0]["custom_args"] == {"ownly_email_id": email_id}
    assert request["personalizations"][0]["to"] == [{"email": "kate@example.com"}]
    assert request["headers"]["Message-ID"] == log["message_id"]
    assert request["subject"] == log["subject"]
    assert mailgun.calls_for(email_id) == []
    assert tried(log["attempts"][0]) == [("sendgrid", "sent", None)]
    [event] = catalog_events(api, "email.sent", email_id)
    assert event["data"]["provider"] == "sendgrid"
    assert sendgrid.refusals == []


@pytest.mark.parametrize(
    ("status", "reason"), [(503, "http_503"), (429, "http_429"), (401, "auth")]
)
def test_failover_to_mailgun_in_the_same_attempt(
    api: httpx.Client, sendgrid: StandIn, mailgun: StandIn, status: int, reason: str
) -> None:
    to = f"failover-{status}@example.com"
    sendgrid.answers[to] = (status, "not now", {"Retry-After": "30"})
    email_id, log = sent(api, to)
    [attempt] = log["attempts"]
    assert attempt["outcome"] == "sent"
    assert tried(attempt) == [("sendgrid", "failed", reason), ("mailgun", "sent", None)]
    assert attempt["detail"]["tried"][0]["status"] == status
    [call] = mailgun.calls_for(email_id)
    assert (log["provider"], log["provider_message_id"]) == ("mailgun", call.message_id)
    assert call.request["v:ownly_email_id"] == [email_id]
    assert call.request["to"] == [to]
    assert call.request["h:Message-Id"] == [log["message_id"]]
    assert [c.status for c in sendgrid.calls_for(email_id)] == [status]
    assert mailgun.refusals == []


def test_failover_when_sendgrids_port_refuses_connections(
    tmp_path: Path, mailgun: StandIn, hooks: Receiver, signer: SendGridSigner
) -> None:
    probe, port = closed_port()
    toml = apis_toml(f"http://127.0.0.1:{port}", mailgun.url)
    with probe, running(tmp_path, toml, apis_env(signer), hooks) as engine, client(engine) as api:
        email_id, log = sent(api, "leo@example.com")
    [attempt] = log["attempts"]
    assert tried(attempt) == [("sendgrid", "failed", "refused"), ("mailgun", "sent", None)]
    [call] = mailgun.calls_for(email_id)
    assert (log["provider"], log["provider_message_id"]) == ("mailgun", call.message_id)


SENDGRID_400 = json.dumps(
    {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to"}]}
)


def test_a_permanent_refusal_fails_the_email_at_once(
    api: httpx.Client, sendgrid: StandIn, mailgun: StandIn
) -> None:
    to = "mallory@example.com"
    sendgrid.answers[to] = (400, SENDGRID_400, {"Content-Type": "application/json"})
    email_id = send(api, "investment_receipt", to, receipt("Mallory", to))
    log = wait_log(api, email_id, lambda log: log["status"] != "queued")
    error = "sendgrid answered 400: personalizations.0.to: Does not contain a valid address."
    assert (log["status"], log["provider"], log["error"]) == ("failed", "sendgrid", error)
    assert log["failed_at"] is not None
    [attempt] = log["attempts"]
    assert (attempt["outcome"], attempt["error_message"]) == ("refused", error)
    assert tried(attempt) == [("sendgrid", "refused", "http_400")]
    assert log["job"]["state"] == "failed", "not retried"
    assert len(sendgrid.calls_for(email_id)) == 1
    assert mailgun.calls_for(email_id) == []
    [event] = catalog_events(api, "email.failed", email_id)
    assert (event["data"]["provider"], event["data"]["error"]) == ("sendgrid", error)


def test_sendgrid_delivered_then_opened(
    api: httpx.Client, provider: httpx.Client, signer: SendGridSigner
) -> None:
    to = "nina@example.com"
    email_id, _ = sent(api, to)
    delivered = sendgrid_event(email_id, "delivered", to, response="250 OK")
    answer = post_sendgrid(provider, signer, delivered)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"recorded": 1, "ignored": 0, "skipped": 0}
    log = email_log(api, email_id)
    assert log["status"] == "delivered"
    assert moment(log["delivered_at"]) == at(delivered["timestamp"])

    opened = sendgrid_event(email_id, "open", to, useragent="Mail/1.0")
    assert post_sendgrid(provider, signer, opened).json()["recorded"] == 1
    log = email_log(api, email_id)
    assert (log["status"], log["open_count"]) == ("opened", 1)
    assert [(e["type"], e["source"]) for e in log["events"]] == [
        ("delivered", "sendgrid"),
        ("opened", "sendgrid"),
    ]
    assert len(catalog_events(api, "email.delivered", email_id)) == 1
    assert len(catalog_events(api, "email.opened", email_id)) == 1
    assert gauge(api, "opened") >= 1, "every status is counted"


def test_a_late_delivered_after_opened_keeps_opened(
    api: httpx.Client, provider: httpx.Client, sendgrid: StandIn
) -> None:
    to = "oscar@example.com"
    email_id, _ = sent_through(api, sendgrid, "mailgun", to)
    now = time.time() // 1
    opened = mailgun_event(email_id, "opened", to, timestamp=now)
    assert post_mailgun(provider, opened).json() == {"recorded": 1, "ignored": 0}
    late = mailgun_event(email_id, "delivered", to, timestamp=now - 5)
    assert post_mailgun(provider, late).json() == {"recorded": 1, "ignored": 0}
    log = email_log(api, email_id)
    assert log["status"] == "opened"
    assert moment(log["delivered_at"]) == at(now - 5)
    assert moment(log["first_opened_at"]) == at(now)
    assert [e["type"] for e in log["events"]] == ["opened", "delivered"]


def _sendgrid_bounce(email_id: str, to: str) -> dict[str, Any]:
    reason = "550 5.1.1 The email account that you tried to reach does not exist"
    return sendgrid_event(email_id, "bounce", to, type="bounce", reason=reason, status="5.1.1")


def _mailgun_bounce(email_id: str, to: str) -> dict[str, Any]:
    status = {"code": 550, "message": "5.1.1 The email account does not exist"}
    return mailgun_event(
        email_id, "failed", to, severity="permanent", reason="bounce", **{"delivery-status": status}
    )


@pytest.mark.parametrize("source", ["sendgrid", "mailgun"])
def test_a_hard_bounce_suppresses_the_address_and_is_delivered_as_an_event(
    api: httpx.Client,
    provider: httpx.Client,
    signer: SendGridSigner,
    sendgrid: StandIn,
    hooks: Receiver,
    source: str,
) -> None:
    to = f"peggy-{source}@example.com"
    email_id, _ = sent_through(api, sendgrid, source, f"Peggy <{to}>")
    if source == "sendgrid":
        answer = post_sendgrid(provider, signer, _sendgrid_bounce(email_id, to))
    else:
        answer = post_mailgun(provider, _mailgun_bounce(email_id, to))
    assert answer.status_code == 200 and answer.json()["recorded"] == 1, answer.text
    log = email_log(api, email_id)
    assert log["status"] == "bounced" and log["bounced_at"] is not None
    assert log["bounce"]["type"] == "hard" and "5.1.1" in log["bounce"]["reason"]
    assert suppressions(api, to) == [(None, "bounced")], "the address, not its display form"

    def delivered() -> dict[str, Any] | None:
        for request in hooks.snapshot():
            payload: dict[str, Any] = Webhook(SECRET).verify(request.body, request.headers)
            if payload["data"]["email_id"] == email_id:
                return payload
        return None

    payload = until(delivered)
    assert payload["type"] == "email.bounced"
    assert (payload["data"]["provider"], payload["data"]["bounce_type"]) == (source, "hard")
    assert payload["data"]["recipient"] == to, "an email, as the catalog types it"

    for again in (to, f"P. <{to.upper()}>"):
        skipped = send(api, "investment_receipt", again, receipt("Peggy", to))
        log = wait_log(api, skipped, lambda log: log["status"] != "queued")
        assert log["status"] == "suppressed", again


@pytest.mark.parametrize("source", ["sendgrid", "mailgun"])
def test_a_spam_report_is_a_complaint_and_suppresses(
    api: httpx.Client,
    provider: httpx.Client,
    signer: SendGridSigner,
    sendgrid: StandIn,
    source: str,
) -> None:
    to = f"quinn-{source}@example.com"
    email_id, _ = sent_through(api, sendgrid, source, to)
    if source == "sendgrid":
        answer = post_sendgrid(provider, signer, sendgrid_event(email_id, "spamreport", to))
    else:
        answer = post_mailgun(provider, mailgun_event(email_id, "complained", to))
    assert answer.status_code == 200 and answer.json()["recorded"] == 1, answer.text
    log = email_log(api, email_id)
    assert log["status"] == "complained" and log["complained_at"] is not None
    assert suppressions(api, to) == [(None, "complained")]
    assert len(catalog_events(api, "email.complained", email_id)) == 1


def test_a_report_sendgrid_sends_again_changes_nothing(
    api: httpx.Client, provider: httpx.Client, signer: SendGridSigner
) -> None:
    to = "rupert@example.com"
    email_id, _ = sent(api, to)
    delivered = sendgrid_event(email_id, "delivered", to)
    assert post_sendgrid(provider, signer, delivered).json()["recorded"] == 1
    before = email_log(api, email_id)
    later = {**delivered, "timestamp": delivered["timestamp"] + 30}  # the same sg_event_id
    answer = post_sendgrid(provider, signer, later)
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 0, "ignored": 1, "skipped": 0}
    assert email_log(api, email_id) == before
    assert len(catalog_events(api, "email.delivered", email_id)) == 1


# A request to the engine: path, body, headers.
Request = tuple[str, bytes, dict[str, str]]
# Each makes a bounce report about the email that must be refused.
Forgery = Callable[[str, str, SendGridSigner, httpx.Client], Request]


def _sendgrid_forged(email_id: str, to: str, signer: SendGridSigner, http: httpx.Client) -> Request:
    body = sendgrid_body(_sendgrid_bounce(email_id, to))
    headers = SendGridSigner().headers(body)  # another key
    assert not signer.sendgrid_verifies(body, headers)
    return "/api/emails/sendgrid/webhook", body, headers


def _sendgrid_tampered(
    email_id: str, to: str, signer: SendGridSigner, http: httpx.Client
) -> Request:
    signed = sendgrid_body(sendgrid_event(email_id, "delivered", to))
    headers = signer.headers(signed)
    body = signed.replace(b'"delivered"', b'"bounce"')
    assert body != signed and not signer.sendgrid_verifies(body, headers)
    return "/api/emails/sendgrid/webhook", body, headers


def _sendgrid_stale(email_id: str, to: str, signer: SendGridSigner, http: httpx.Client) -> Request:
    body = sendgrid_body(_sendgrid_bounce(email_id, to))
    headers = signer.headers(body, timestamp=int(time.time()) - TOLERANCE - 120)
    assert signer.sendgrid_verifies(body, headers)  # the signature is good; it is old
    return "/api/emails/sendgrid/webhook", body, headers


def _mailgun(signature: dict[str, str], email_id: str, to: str) -> Request:
    body = mailgun_body(signature, _mailgun_bounce(email_id, to))
    return "/api/emails/mailgun/webhook", body, {"Content-Type": "application/json"}


def _mailgun_forged(email_id: str, to: str, signer: SendGridSigner, http: httpx.Client) -> Request:
    return _mailgun(mailgun_signature("another-signing-key"), email_id, to)


def _mailgun_stale(email_id: str, to: str, signer: SendGridSigner, http: httpx.Client) -> Request:
    old = int(time.time()) - TOLERANCE - 120
    return _mailgun(mailgun_signature(MAILGUN_SIGNING_KEY, timestamp=old), email_id, to)


def _mailgun_replayed(
    email_id: str, to: str, signer: SendGridSigner, http: httpx.Client
) -> Request:
    signature = mailgun_signature(MAILGUN_SIGNING_KEY)
    first = post_mailgun(http, mailgun_event(email_id, "delivered", to), signature)
    assert first.json() == {"recorded": 1, "ignored": 0}
    # The signature covers no byte of the event: a replay may carry any event.
    return _mailgun(signature, email_id, to)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_sendgrid_forged, "mismatch"),
        (_sendgrid_tampered, "mismatch"),
        (_sendgrid_stale, "stale"),
        (_mailgun_forged, "mismatch"),
        (_mailgun_stale, "stale"),
        (_mailgun_replayed, "replayed"),
    ],
    ids=lambda value: getattr(value, "__name__", value).lstrip("_"),
)
def test_a_report_that_does_not_verify_is_refused_and_writes_nothing(
    api: httpx.Client,
    provider: httpx.Client,
    signer: SendGridSigner,
    forge: Forgery,
    reason: str,
) -> None:
    to = f"sybil-{forge.__name__.strip('_').replace('_', '-')}@example.com"
    email_id, _ = sent(api, to)
    path, body, headers = forge(email_id, to, signer, provider)
    before = email_log(api, email_id)
    answer = provider.post(path, content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert (answer.json()["error"], answer.json()["reason"]) == ("invalid_signature", reason)
    after = email_log(api, email_id)
    assert after == before
    assert after["status"] in ("sent", "delivered") and after["bounced_at"] is None
    assert len(after["events"]) == len(before["events"])
    assert suppressions(api, to) == []
    assert catalog_events(api, "email.bounced", email_id) == []
