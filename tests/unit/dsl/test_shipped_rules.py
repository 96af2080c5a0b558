"""The rules and templates shipped with the platform check clean and render."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl import RuleSet, compile_rules

ROOT = Path(__file__).parents[3]
SEED_EVENTS = [
    "investment.created", "investment.updated", "investment.completed", "investment.cancelled",
    "deal.created", "deal.updated", "deal.funded", "deal.closed",
    "payout.created", "payout.distributed", "payout.completed", "payout.failed",
    "document.uploaded", "document.signed", "document.shared",
    "user.created", "user.kyc_approved", "user.kyc_rejected",
    "transaction.created", "transaction.completed", "transaction.failed",
]  # fmt: skip
ENGINE_EVENTS = [
    "webhook.test", "webhook.disabled", "email.delivered", "email.bounced", "email.opened",
    "email.clicked",
]  # fmt: skip


@pytest.fixture(scope="module")
def rule_set() -> RuleSet:
    compilation = compile_rules([ROOT / "rules"], templates_dir=ROOT / "templates")
    assert compilation.diagnostics == (), compilation.render()
    assert compilation.rule_set is not None
    return compilation.rule_set


def test_catalog_has_every_seed_and_engine_event(rule_set: RuleSet) -> None:
    assert len(SEED_EVENTS) == 21
    assert set(SEED_EVENTS + ENGINE_EVENTS) <= set(rule_set.events)


def test_the_platform_workflows_exist(rule_set: RuleSet) -> None:
    expected = {
        "kyc_welcome",
        "investment_receipt",
        "payout_notice",
        "failed_payment_follow_up",
        "webhook_disabled_alert",
    }
    assert expected <= set(rule_set.workflows)


def test_failed_transactions_reach_ops_and_the_follow_up(rule_set: RuleSet) -> None:
    matched = [(s.kind, s.name) for s in rule_set.match("transaction.failed")]
    assert matched == [
        ("webhook", "accounting_ledger"),
        ("webhook", "ops_alerts"),
        ("workflow", "failed_payment_follow_up"),
    ]
