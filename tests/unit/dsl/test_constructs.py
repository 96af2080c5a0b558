"""Every construct of the language compiles into the IR, and every kind of name gets a hint."""

# The rule file below keeps its real layout: breaking its long lines would change it.
# ruff: noqa: E501

from __future__ import annotations

import pytest

from dsl import ir
from tests.unit.dsl.support import Rules, webhook, workflow

EVERYTHING = """\
const large = 10_000
const is_large = event.data.amount >= large
const watched = [investment.created, deal.funded]

webhook crm {
  url    = "https://crm.example.com/hook"
  secret = env("CRM_SECRET")
  events = watched
  when     is_large
}

workflow by_hand {
  on manual
  fail "nothing to do"
}

workflow settle {
  on investment.created when is_large
  debounce 10m per event.data.user_id
  dedup event.data.investment_id for 1d
  concurrency 2 per event.data.deal.id
  cancel on investment.cancelled when incoming.data.investment_id == event.data.investment_id
  timeout 30d

  wait until event.data.created_at + 2d
  payment = charge(customer: event.data.user_id, amount: event.data.amount)
  if payment.status != "succeeded" {
    back = refund(transaction: payment.id, amount: event.data.amount, reason: "declined")
    fail "declined"
  }
  saved = update_record(record: "investment", id: event.data.investment_id, fields: { state: "settled" }) retry 3 times timeout 30s
  parallel {
    send_webhook crm { investment: event.data.investment_id }
    send_email receipt to event.data.investor.email { name: event.data.investor.name, amount: event.data.amount }
  }
}
"""


def test_every_construct_compiles(rules: Rules) -> None:
    compiled = rules.compile(EVERYTHING).require()
    crm = compiled.webhooks["crm"]
    assert crm.events == ("investment.created", "deal.funded"), "a const list of patterns"
    assert crm.when == "event.data.amount >= 10000", "a named condition, its const inlined"
    assert [t.kind for t in compiled.workflows["by_hand"].triggers] == ["manual"]
    settle = compiled.workflows["settle"]
    assert settle.debounce is not None and settle.debounce.seconds == 600
    assert settle.dedup is not None and settle.concurrency is not None
    assert settle.cancel_on is not None
    kinds = [_kind(step) for step in settle.steps]
    assert kinds == ["wait", "charge", "if", "update_record", "parallel"]
    wait = settle.steps[0]
    assert isinstance(wait, ir.WaitStep)
    assert wait.until == "event.data.created_at + 2d" and wait.duration is None
    branch = settle.steps[2]
    assert isinstance(branch, ir.IfStep)
    assert [_kind(step) for step in branch.branches[0].steps] == ["refund", "fail"]


def _kind(step: object) -> str:
    if isinstance(step, ir.ActionStep):
        return step.action
    return str(getattr(step, "kind", type(step).__name__))


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (workflow('  send_email recept to "a@b.co"'), "unknown template 'recept'", "receipt"),
        (workflow("  send_webhook opps"), "unknown webhook 'opps'", "ops"),
        ('workflow f {\n  on hook docusgn\n  fail "x"\n}\n', "unknown hook 'docusgn'", "docusign"),
        (webhook('  when lowr(event.data.status) == "a"'), "unknown function 'lowr'", "lower"),
        (
            'workflow f {\n  on schedule "0 9 * * *" timezone "Europe/Pari"\n  fail "x"\n}\n',
            "unknown time zone 'Europe/Pari'",
            "Europe/Paris",
        ),
        (
            webhook("").replace("investment.created", "investment.creatd"),
            "unknown event type 'investment.creatd'",
            "investment.created",
        ),
        (workflow("  chrge(amount: 1)"), "unknown action 'chrge'", "charge"),
        (webhook('  descripton = "x"'), "unknown attribute 'descripton'", "description"),
        (
            webhook("  when event.data.amount > limt") + "const limit = 5\n",
            "unknown name 'limt'",
            "limit",
        ),
        (webhook("  when event.dta.amount > 5"), "unknown field 'dta'", "data"),
    ],
)
def test_every_kind_of_name_gets_a_hint(rules: Rules, text: str, message: str, hint: str) -> None:
    first = rules.compile(text).errors[0]
    assert message in first.message
    assert first.hint == f"did you mean '{hint}'?"
