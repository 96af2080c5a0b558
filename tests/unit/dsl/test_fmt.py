"""The formatter: idempotent, keeps comments, never changes meaning (same version hash)."""

# Steps in the generator are whole statements of rule text, kept on one line each.
# ruff: noqa: E501

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl import parse
from dsl.fmt import format_source
from tests.unit.dsl.support import Rules

RULES_DIR = Path(__file__).parents[3] / "rules"

WHENS = [
    "event.data.amount >= 10_000",
    '(event.data.amount > 1) and not (event.data.status == "active")',
    'event.data.investor.email ends_with "@ownly.com" or event.data.amount * 2 > 5',
    'exists event.data.note and event.data.note ?? "" != "x"',
    'event.data.status in ["pending", "active",]',
    "now() - event.data.created_at < 7d",
]
STEPS = [
    "p = charge(customer: event.data.user_id, amount: event.data.amount) retry 3 times timeout 30s",
    "send_email receipt to event.data.investor.email { name: event.data.investor.name, amount: event.data.amount }",
    'if event.data.amount > 5 {\n{i}  send_webhook ops { reason: "big" }\n{i}} else {\n{i}  wait 1d\n{i}}',
    "s = wait for deal.funded where s.data.deal_id == event.data.deal.id timeout 3d",
    'set label = "x" + event.data.currency',
    'parallel {\n{i}  send_webhook ops\n{i}  emit transaction.completed { transaction_id: "t", user_id: "u", amount: 1 }\n{i}}',
]


class Writer:
    """Writes statements with random spacing, blank lines and comments."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.lines: list[str] = []

    def space(self) -> str:
        return " " * self.rng.choice([0, 1, 1, 3]) if self.rng.random() < 0.5 else " "

    def comment(self) -> str:
        return f"# note {self.rng.randint(0, 99)}"

    def add(self, text: str, indent: str) -> None:
        if self.rng.random() < 0.2:
            self.lines.append("")
        if self.rng.random() < 0.15:
            self.lines.append(indent + self.comment())
        pad = self.rng.choice(["", "  ", "    ", indent])
        tail = f"  {self.comment()}" if self.rng.random() < 0.15 else ""
        self.lines.append(pad + text.replace("{i}", pad) + tail)


def random_rules(rng: random.Random) -> str:
    w = Writer(rng)
    w.add(f"const limit{w.space()}={w.space()}{rng.choice(['10_000', '10000', '1_0_000'])}", "")
    attrs = [
        f'url{w.space()}={w.space()}"https://hooks.example.com/a"',
        f'secret{w.space()}={w.space()}env("HOOK_SECRET")',
        rng.choice(
            [
                "events = [investment.*, deal.funded]",
                "events = [\n    investment.created,  # one\n    investment.cancelled,\n  ]",
                "events = investment.*",
            ]
        ),
        f"when {rng.choice(WHENS)}",
        rng.choice(
            ["retry 3 times", "retry 8 times, exponential 5s .. 10h", "retry 2 times, every 1m"]
        ),
        rng.choice(["timeout 15s", "timeout 1m", 'headers = { "X-A": "b", }']),
    ]
    rng.shuffle(attrs)
    w.add("webhook hooked {", "")
    for attr in attrs:
        w.add(attr, "  ")
    w.add("}", "")
    w.add("workflow flow {", "")
    w.add("on investment.created when event.data.amount > limit", "  ")
    if rng.random() < 0.5:
        w.add("concurrency 1 per event.data.user_id", "  ")
    for step in rng.sample(STEPS, k=rng.randint(1, 4)):
        w.add(step, "  ")
    w.add("}", "")
    return "\n".join(w.lines) + rng.choice(["\n", "", "\n\n"])


@settings(max_examples=60, deadline=None)
@given(st.randoms(use_true_random=False))
def test_format_is_idempotent_keeps_comments_and_meaning(
    tmp_path_factory: pytest.TempPathFactory, rng: random.Random
) -> None:
    rules = Rules(tmp_path_factory.mktemp("fmt"))
    text = random_rules(rng)
    original = rules.compile(text)
    assert original.ok, original.render() + "\n" + text
    formatted = format_source(text)
    assert format_source(formatted) == formatted
    assert len(parse(formatted).comments) == len(parse(text).comments)
    again = rules.compile(formatted)
    assert again.rule_set is not None and original.rule_set is not None
    assert again.rule_set.version == original.rule_set.version


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.ownly")), ids=lambda p: p.name)
def test_shipped_rules_are_formatted(path: Path) -> None:
    text = path.read_text()
    assert format_source(text) == text


def test_layout_example() -> None:
    messy = (
        "webhook  crm_sync{\n"
        'url=env("CRM_WEBHOOK_URL")\n'
        "  events =[investment.*,deal.funded]   # which\n"
        "when event.data.amount>=10_000\n"
        "retry 8 times,exponential 5s..10h\n"
        "timeout 15s\n"
        "}"
    )
    # The layout of the example in DESIGN.md, to the space.
    assert format_source(messy) == (
        "webhook crm_sync {\n"
        '  url     = env("CRM_WEBHOOK_URL")\n'
        "  events  = [investment.*, deal.funded]  # which\n"
        "  when      event.data.amount >= 10_000\n"
        "  retry     8 times, exponential 5s .. 10h\n"
        "  timeout   15s\n"
        "}\n"
    )
