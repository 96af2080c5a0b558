"""The compiled rule set: version hash, IR as JSON, environment, predicates."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from dsl import Context, RuleCompileError, RuleSet, Subscription, ast, compile_rules, ir
from dsl.catalog import Catalog
from dsl.lowering import Definitions, Lowered, Lowering
from tests.unit.dsl.support import Rules

WEBHOOK = """\
# CRM gets the large ones
webhook crm {
  url    = env("CRM_URL")
  secret = env("CRM_SECRET", "dev-secret")
  events = [investment.*]
  when     event.data.amount >= 10_000   # large
  retry    8 times, exponential 5s .. 10h
  timeout  15s
}
"""


def compiled(rules: Rules, text: str) -> RuleSet:
    compilation = rules.compile(text)
    assert compilation.ok, compilation.render()
    assert compilation.rule_set is not None
    return compilation.rule_set


def test_layout_and_comments_do_not_change_the_version(rules: Rules) -> None:
    first = compiled(rules, WEBHOOK)
    relaid = (
        "webhook crm {\n"
        'url = env("CRM_URL")\n\n\n'
        'secret = env("CRM_SECRET", "dev-secret") # rotated yearly\n'
        "events = [\n  investment.*,\n]\n"
        "when (event.data.amount >= 10000)\n"
        "retry 8 times, exponential 5s .. 600m\n"
        "timeout 15s\n}\n"
    )
    assert compiled(rules, relaid).version == first.version


def test_meaning_changes_the_version(rules: Rules) -> None:
    first = compiled(rules, WEBHOOK)
    changed = compiled(rules, WEBHOOK.replace("10_000", "10_001"))
    assert changed.version != first.version


def test_template_files_are_part_of_the_version(rules: Rules) -> None:
    text = (
        WEBHOOK
        + "workflow w {\n  on deal.funded\n"
        + '  send_email receipt to "a@b.c" { name: "x", amount: 1 }\n}\n'
    )
    first = compiled(rules, text)
    (rules.templates / "receipt.html").write_text("<p>{{ name }} paid {{ amount }}!</p>")
    assert compiled(rules, text).version != first.version


def test_env_values_are_references_not_values(rules: Rules) -> None:
    rule_set = compiled(rules, WEBHOOK)
    webhook = rule_set.webhooks["crm"]
    assert webhook.url == ir.EnvRef(env="CRM_URL")
    assert webhook.secrets == (ir.EnvRef(env="CRM_SECRET", default="dev-secret"),)
    assert rule_set.missing_env({}) == ["CRM_URL", "DOCUSIGN_SECRET", "OPS_SECRET"]
    assert rule_set.missing_env({"CRM_URL": "x", "OPS_SECRET": "s", "DOCUSIGN_SECRET": "d"}) == []
    assert "dev-secret" in rule_set.to_json()  # a default is configuration, kept as written


def test_compile_with_env_reports_each_missing_variable(rules: Rules, tmp_path: Path) -> None:
    (tmp_path / "case.ownly").write_text(WEBHOOK)
    compilation = compile_rules(
        [tmp_path / "base.ownly", tmp_path / "case.ownly"],
        templates_dir=rules.templates,
        env={"OPS_SECRET": "s"},
    )
    missing = sorted(d.message for d in compilation.diagnostics if d.code == "E056")
    assert missing == [
        "environment variable CRM_URL is not set",
        "environment variable DOCUSIGN_SECRET is not set",
    ]
    assert compilation.rule_set is None


SHARED_SECRET = """\
webhook first {
  url    = "https://a.example.com/hook"
  secret = env("S", "x")
  events = [investment.*]
}
webhook second {
  url    = "https://b.example.com/hook"
  secret = env("S")
  events = [investment.*]
}
"""


@pytest.mark.parametrize("order", ["default first", "default last"])
def test_a_variable_is_required_if_one_use_has_no_default(
    rules: Rules, tmp_path: Path, order: str
) -> None:
    text = SHARED_SECRET if order == "default first" else _swap_webhooks(SHARED_SECRET)
    assert compiled(rules, text).missing_env({}) == ["DOCUSIGN_SECRET", "OPS_SECRET", "S"]
    (tmp_path / "case.ownly").write_text(text)
    compilation = compile_rules(
        [tmp_path / "base.ownly", tmp_path / "case.ownly"],
        templates_dir=rules.templates,
        env={"OPS_SECRET": "s", "DOCUSIGN_SECRET": "d"},
    )
    (missing,) = [d for d in compilation.diagnostics if d.code == "E056"]
    assert missing.message == "environment variable S is not set"
    assert text.splitlines()[missing.span.line - 1].strip() == 'secret = env("S")'


def _swap_webhooks(text: str) -> str:
    first, second = text.split("webhook second")
    return "webhook second" + second + first


def test_ir_round_trips_through_json(rules: Rules) -> None:
    rule_set = compiled(rules, WEBHOOK)
    restored = ir.RuleSetIR.model_validate_json(rule_set.ir.model_dump_json())
    assert restored == rule_set.ir
    rebuilt = RuleSet.from_ir(restored)
    assert rebuilt.version == rule_set.version
    (subscription,) = rebuilt.match("investment.created")
    assert rebuilt.accepts(subscription, Context({"event": {"data": {"amount": 10_000}}}))
    assert not rebuilt.accepts(subscription, Context({"event": {"data": {"amount": 9_999}}}))


def test_shipped_rules_rebuild_from_their_ir() -> None:
    root = Path(__file__).parents[3]
    compilation = compile_rules([root / "rules"], templates_dir=root / "templates")
    assert compilation.rule_set is not None
    rebuilt = RuleSet.from_ir(compilation.rule_set.ir)
    assert rebuilt.version == compilation.rule_set.version
    workflow = rebuilt.workflows["collect_investment"]
    step = workflow.steps[0]
    assert isinstance(step, ir.ActionStep)
    context = Context({"event": {"data": {"user_id": "u_1", "amount": 5}}})
    assert rebuilt.evaluate(step.args[0].expr, context) == "u_1"


def test_match_and_accepts(rules: Rules) -> None:
    rule_set = compiled(rules, WEBHOOK)
    (subscription,) = rule_set.match("investment.created")
    assert subscription.when == "event.data.amount >= 10000"
    large = Context({"event": {"data": {"amount": 20_000}}})
    small = Context({"event": {"data": {"amount": 5}}})
    broken = Context({"event": {"data": "not an object"}})
    assert rule_set.accepts(subscription, large)
    assert not rule_set.accepts(subscription, small)
    assert not rule_set.accepts(subscription, broken)
    assert [s.name for s in rule_set.match("deal.funded")] == ["ops"]
    assert rule_set.match("nothing.here") == ()
    # Validated all at once: the same as one by one.
    assert subscription == Subscription.model_validate(subscription.model_dump())
    assert subscription.model_fields_set == set(Subscription.model_fields)
    with pytest.raises(ValidationError, match="frozen"):
        subscription.order = 3  # type: ignore[misc]


def test_a_hook_trigger_subscribes_to_the_hook_s_event_type(rules: Rules) -> None:
    rule_set = compiled(
        rules,
        "workflow countersign {\n"
        '  on hook docusign when event.data.status == "completed"\n'
        '  fail "x"\n'
        "}\n",
    )
    (subscription,) = rule_set.match("hook.docusign")
    assert (subscription.kind, subscription.name) == ("workflow", "countersign")
    completed = Context({"event": {"type": "hook.docusign", "data": {"status": "completed"}}})
    sent = Context({"event": {"type": "hook.docusign", "data": {"status": "sent"}}})
    assert rule_set.accepts(subscription, completed)
    assert not rule_set.accepts(subscription, sent)
    assert rule_set.match("hook.other") == ()
    assert rule_set.match("docusign") == ()


def test_models_are_immutable(rules: Rules) -> None:
    rule_set = compiled(rules, WEBHOOK)
    webhook = rule_set.webhooks["crm"]
    with pytest.raises(ValidationError, match="frozen"):
        webhook.timeout_seconds = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        rule_set.webhooks["other"] = webhook  # type: ignore[index]


def test_require_returns_the_rule_set_or_raises_with_every_error(rules: Rules) -> None:
    assert rules.compile(WEBHOOK).require().webhooks["crm"].name == "crm"
    broken = rules.compile(WEBHOOK.replace("investment.*", "nope.x").replace("15s", "5m"))
    with pytest.raises(RuleCompileError) as caught:
        broken.require()
    assert [d.code for d in caught.value.diagnostics] == ["E011", "E043"]


@pytest.mark.parametrize(
    ("when", "reads"),
    [
        ("event.data.amount >= 10_000", True),
        ('event.type != "investment.cancelled"', False),
        ('event.source == "crm" or event.id starts_with "evt_"', False),
        ("len(event) > 0", True),
        ('event["data"] != null', True),
        ('exists event.data.investor.email or event.type == "investment.cancelled"', True),
    ],
)
def test_the_rule_set_knows_which_predicates_read_the_event_data(
    rules: Rules, when: str, reads: bool
) -> None:
    rule_set = compiled(rules, WEBHOOK.replace("event.data.amount >= 10_000", when))
    (subscription,) = {s.when: s for s in rule_set.match("investment.created")}.values()
    assert subscription.when is not None
    assert rule_set.reads_event_data(subscription.when) is reads


def test_joined_lowerings_need_a_variable_one_of_them_uses_without_default() -> None:
    """Webhooks lowered in another process are joined: the same rule holds there."""
    with_default = ast.Span("a.ownly", 1, 1, 1, 9)
    without = ast.Span("b.ownly", 2, 1, 2, 9)
    low = Lowering(Definitions(), Catalog({}))
    low.note_env("S", True, with_default)
    low.join(Lowered([], [], {}, {"S": False}, {"S": without}, set()))
    low.join(Lowered([], [], {}, {"S": True}, {"S": with_default}, set()))
    assert low.env == {"S": False}
    assert low.env_spans == {"S": without}
