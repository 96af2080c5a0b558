"""The shipped workflows, run by the engine as a user starts it: the shipped ownly.toml,
rules and templates, an SMTP server and an HTTP receiver on loopback, driven by events."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.engine import SECRET
from tests.support.process import EngineProcess
from tests.support.receiver import Received, Receiver
from tests.support.rules import ROOT
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.acceptance

DOCUSIGN_SECRET = "docusign-connect-secret"
SINKS = ("CRM", "LEDGER", "PARTNER", "OPS")  # the shipped webhooks' <NAME>_WEBHOOK_URL
NOW = "2026-11-26T10:00:00Z"


@pytest.fixture(scope="module")
def shipped(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, SmtpServer, Receiver]]:
    root = tmp_path_factory.mktemp("shipped")
    for name in ("ownly.toml", "rules", "templates"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            shutil.copy(source, root / name)
    with SmtpServer() as smtp, Receiver() as receiver:
        toml = root / "ownly.toml"
        toml.write_text(
            toml.read_text()
            + "\n[email]\n[[email.providers]]\ntype = 'smtp'\nhost = '127.0.0.1'\n"
            + f"port = {smtp.port}\nsecurity = 'none'\n"
        )
        env = {f"{sink}_WEBHOOK_URL": f"{receiver.url}/{sink.lower()}" for sink in SINKS}
        env |= {f"{sink}_WEBHOOK_SECRET": SECRET for sink in SINKS}
        env |= {
            "OPS_DIGEST_URL": receiver.url + "/digest",
            "PAGER_URL": receiver.url + "/pager",
            "DOCUSIGN_HOOK_SECRET": DOCUSIGN_SECRET,
        }
        engine = EngineProcess(root, env=env)
        try:
            engine.wait_ready()
            key = (root / "var" / "dev-key").read_text().strip()
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=engine.url, headers=headers, timeout=10) as api:
                yield api, smtp, receiver
        finally:
            engine.kill()


def _post(api: httpx.Client, event_id: str, event_type: str, data: dict[str, Any]) -> None:
    answer = api.post("/api/events", json={"id": event_id, "type": event_type, "data": data})
    assert answer.status_code == 202, answer.text


def _run_of(api: httpx.Client, workflow: str, status: str, timeout: float = 15) -> dict[str, Any]:
    """The one run of ``workflow`` once it is ``status``, as GET /api/workflows/executions/{id}
    shows it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get(f"/api/workflows/{workflow}/executions")
        assert answer.status_code == 200, answer.text
        runs = answer.json()["executions"]
        assert len(runs) <= 1, runs
        if runs and runs[0]["status"] == status:
            break
        assert time.monotonic() < deadline, f"{workflow}: {runs}"
        time.sleep(0.05)
    shown = api.get(f"/api/workflows/executions/{runs[0]['id']}")
    assert shown.status_code == 200, shown.text
    run: dict[str, Any] = shown.json()
    assert run["status"] == status
    return run


def _emails_to(smtp: SmtpServer, to: str, count: int, timeout: float = 15) -> list[str]:
    """The subjects of the ``count`` messages sent to ``to``, once they arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = [str(m["Subject"]) for m in list(smtp.sink.messages) if m["To"] == to]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _deliveries(
    receiver: Receiver, path: str, where: Callable[[dict[str, Any]], bool], timeout: float = 15
) -> list[Received]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in receiver.snapshot() if r.path == path and where(json.loads(r.body))]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _steps(run: dict[str, Any]) -> dict[str, str]:
    return {step["step"]: step["status"] for step in run["steps"]}


def test_kyc_welcome_emails_the_verified_investor(shipped: Any) -> None:
    api, smtp, _ = shipped
    data = {
        "user_id": "usr_kyc_1",
        "email": "welcome@example.com",
        "name": "Ada",
        "accredited": True,
        "approved_at": NOW,
    }
    _post(api, "evt_kyc_approved", "user.kyc_approved", data)
    run = _run_of(api, "kyc_welcome", "completed")
    assert _steps(run) == {"s1": "completed"}
    assert run["event_id"] == "evt_kyc_approved"
    subjects = _emails_to(smtp, "welcome@example.com", 1)
    assert subjects == ["Welcome to OWNLY, Ada: you are verified"]


def test_kyc_rejected_explains_the_failed_verification(shipped: Any) -> None:
    api, smtp, _ = shipped
    data = {
        "user_id": "usr_kyc_2",
        "email": "rejected@example.com",
        "name": "Bob",
        "reason": "the document was blurred",
        "rejected_at": NOW,
    }
    _post(api, "evt_kyc_rejected", "user.kyc_rejected", data)
    run = _run_of(api, "kyc_rejected", "completed")
    assert _steps(run) == {"s1": "completed"}
    assert _emails_to(smtp, "rejected@example.com", 1) == ["We could not verify your identity"]


def test_investment_receipt_confirms_a_completed_investment(shipped: Any) -> None:
    api, smtp, _ = shipped
    data = {
        "investment_id": "inv_receipt",
        "user_id": "usr_receipt",
        "deal_id": "deal_1",
        "amount": "2500.00",
        "investor": {"email": "receipt@example.com", "name": "Cleo"},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "completed_at": NOW,
    }
    _post(api, "evt_inv_completed", "investment.completed", data)
    run = _run_of(api, "investment_receipt", "completed")
    assert _steps(run) == {"receipt": "completed"}
    assert run["variables"]["receipt"]["status"] == "sent"
    subjects = _emails_to(smtp, "receipt@example.com", 1)
    assert subjects == ["Your investment in Harbour Lofts is confirmed"]


def test_payout_notice_tells_the_investor(shipped: Any) -> None:
    api, smtp, _ = shipped
    data = {
        "payout_id": "pay_1",
        "deal_id": "deal_1",
        "user_id": "usr_payout",
        "amount": "120.50",
        "investor": {"email": "payout@example.com", "name": "Dee"},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "distributed_at": NOW,
    }
    _post(api, "evt_payout", "payout.distributed", data)
    run = _run_of(api, "payout_notice", "completed")
    assert _steps(run) == {"s1": "completed"}
    subjects = _emails_to(smtp, "payout@example.com", 1)
    assert subjects == ["A payout from Harbour Lofts is on its way"]


def test_failed_payment_follow_up_waits_for_the_payment_and_resumes(shipped: Any) -> None:
    api, smtp, receiver = shipped
    failed = {
        "transaction_id": "txn_failed",
        "user_id": "usr_payment",
        "type": "investment",
        "direction": "inbound",
        "amount": "500.00",
        "customer": {"email": "payer@example.com", "name": "Eve"},
        "investment_id": "inv_payment",
        "error": "card declined",
        "failed_at": NOW,
    }
    _post(api, "evt_txn_failed", "transaction.failed", failed)
    waiting = _run_of(api, "failed_payment_follow_up", "waiting")
    assert _steps(waiting) == {"s1": "completed", "paid": "waiting"}
    subjects = _emails_to(smtp, "payer@example.com", 1)
    assert subjects == ["Action needed: your payment of 500.00 USD did not go through"]
    completed = {
        "transaction_id": "txn_paid",
        "user_id": "usr_payment",
        "type": "investment",
        "direction": "inbound",
        "amount": "500.00",
        "net_amount": "500.00",
        "investment_id": "inv_payment",
        "completed_at": NOW,
    }
    _post(api, "evt_txn_paid", "transaction.completed", completed)
    run = _run_of(api, "failed_payment_follow_up", "completed")
    assert _steps(run) == {"s1": "completed", "paid": "completed"}
    assert run["variables"]["paid"]["id"] == "evt_txn_paid"
    assert _emails_to(smtp, "payer@example.com", 2, timeout=0.5) == subjects, "no reminder"
    # The shipped webhooks hear of both transactions, and ops of the failure.
    ledger = _deliveries(receiver, "/ledger", lambda b: b["type"].startswith("transaction."))
    assert {json.loads(r.body)["id"] for r in ledger} >= {"evt_txn_failed", "evt_txn_paid"}
    ops = _deliveries(receiver, "/ops", lambda b: b["id"] == "evt_txn_failed")
    assert len(ops) == 1


def test_a_docusign_completion_becomes_a_document_signed_event(shipped: Any) -> None:
    api, _, _ = shipped
    body = json.dumps(
        {
            "status": "completed",
            "document_id": "doc_signed",
            "name": "Subscription agreement",
            "signer_id": "usr_signer",
            "signer_email": "signer@example.com",
        }
    ).encode()
    signature = hmac.new(DOCUSIGN_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = httpx.post(
        str(api.base_url).rstrip("/") + "/api/hooks/docusign",
        content=body,
        headers={"Content-Type": "application/json", "X-DocuSign-Signature-1": signature},
    )
    assert answer.status_code in (200, 202), answer.text
    run = _run_of(api, "document_signed_via_docusign", "completed")
    assert run["trigger"] == "hook"
    assert _steps(run) == {"s1": "completed"}
    found = api.get("/api/events", params={"type": "document.signed"}).json()["events"]
    assert [(e["data"]["document_id"], e["data"]["signer_email"]) for e in found] == [
        ("doc_signed", "signer@example.com")
    ]
    assert found[0]["data"]["kind"] == "subscription_agreement"


def test_webhook_disabled_alert_tells_ops_and_pages(shipped: Any) -> None:
    api, _, receiver = shipped
    data = {
        "webhook": "partner_deal_feed",
        "reason": "20 consecutive failures",
        "consecutive_failures": 20,
        "disabled_at": NOW,
    }
    _post(api, "evt_disabled", "webhook.disabled", data)
    run = _run_of(api, "webhook_disabled_alert", "completed")
    assert _steps(run) == {"s1.s1": "completed", "s1.s2": "completed"}  # a parallel's branches
    alert = _deliveries(receiver, "/ops", lambda b: b["type"] == "workflow.webhook_disabled_alert")
    assert [json.loads(r.body)["data"] for r in alert] == [
        {"reason": "20 consecutive failures", "webhook": "partner_deal_feed"}
    ]
    assert json.loads(alert[0].body)["id"] == f"{run['id']}:s1.s1"
    paged = [r for r in receiver.snapshot() if r.path == "/pager"]
    summary = {"summary": "webhook partner_deal_feed disabled"}
    assert [json.loads(r.body) for r in paged] == [summary]
    assert paged[0].headers["Idempotency-Key"] == f"{run['id']}:s1.s2"
    # ops_alerts subscribes to webhook.disabled itself too.
    assert len(_deliveries(receiver, "/ops", lambda b: b["id"] == "evt_disabled")) == 1


def test_collect_investment_fails_without_the_payments_capability(shipped: Any) -> None:
    api, _, receiver = shipped
    data = {
        "investment_id": "inv_collect",
        "user_id": "usr_collect",
        "deal_id": "deal_1",
        "amount": "2500.00",
        "status": "pending",
        "investor": {"email": "collect@example.com", "name": "Fay"},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "payment_method_id": "pm_1",
        "created_at": NOW,
    }
    _post(api, "evt_collect", "investment.created", data)
    run = _run_of(api, "collect_investment", "failed")
    assert "payments capability" in run["error"], run["error"]
    (payment,) = run["steps"]
    assert (payment["step"], payment["status"]) == ("payment", "failed")
    assert "charge() needs the payments capability" in payment["error"]
    # ops_alerts subscribes to workflow.failed.
    alerts = _deliveries(receiver, "/ops", lambda b: b["type"] == "workflow.failed")
    assert [json.loads(r.body)["data"]["execution_id"] for r in alerts] == [run["id"]]
    assert json.loads(alerts[0].body)["data"]["workflow"] == "collect_investment"


def test_ops_daily_digest_is_scheduled_and_waits_for_its_slot(shipped: Any) -> None:
    api, _, _ = shipped
    definition = api.get("/api/workflows/ops_daily_digest").json()
    assert [t["type"] for t in definition["triggers"]] == ["schedule"]
    assert api.get("/api/workflows/ops_daily_digest/executions").json()["executions"] == []
