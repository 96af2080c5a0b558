"""`ownly simulate` judges an event as the engine would: checked and typed by the catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from engine.rules.cli import simulate

ROOT = Path(__file__).parents[2]

BIG_USD = """
webhook big_usd {
  url     = "https://crm.example.com/hooks"
  secret  = env("CRM_SECRET")
  events  = [investment.created]
  when      event.data.amount >= 10000 and event.data.currency == "usd"
}
"""


def investment(**changes: object) -> dict[str, Any]:
    data = {
        "investment_id": "inv_1",
        "user_id": "usr_1",
        "deal_id": "deal_1",
        "amount": "25000.00",  # a decimal as JSON carries it; no currency: the catalog's default
        "status": "pending",
        "investor": {"email": "ada@example.com", "name": "Ada"},
        "deal": {"id": "deal_1", "name": "Harbour Lofts"},
        "created_at": "2026-11-26T10:00:00Z",
    }
    return {"type": "investment.created", "data": {**data, **changes}}


def run(tmp_path: Path, event: dict[str, Any], text: str = BIG_USD) -> dict[str, Any]:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "rules" / "catalog.ownly", rules / "catalog.ownly")
    (rules / "crm.ownly").write_text(text, encoding="utf-8")
    (tmp_path / "templates").mkdir()
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), encoding="utf-8")
    args = [str(path), str(rules), "--templates", str(tmp_path / "templates"), "--format", "json"]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.output)
    return report


def test_a_decimal_sent_as_text_and_a_catalog_default_fire_as_in_the_engine(
    tmp_path: Path,
) -> None:
    report = run(tmp_path, investment())
    assert [entry["name"] for entry in report["fired"]] == ["big_usd"]
    assert report["skipped"] == []
    assert report["problems"] == []


def test_a_small_amount_is_skipped_with_its_condition(tmp_path: Path) -> None:
    report = run(tmp_path, investment(amount="9999.99"))
    assert report["fired"] == []
    (skipped,) = report["skipped"]
    assert skipped["name"] == "big_usd"
    assert "is false" in skipped["because"]


def test_what_the_engine_would_refuse_is_reported(tmp_path: Path) -> None:
    report = run(tmp_path, investment(amout="1"))
    assert report["problems"] == [
        {"path": "data.amout", "reason": "unknown field; did you mean 'amount'?"}
    ]


def test_the_envelope_is_read_as_the_engine_reads_it(tmp_path: Path) -> None:
    event = {**investment(), "id": "has spaces", "sent_at": "today", "occurred_at": "noon"}
    paths = sorted(problem["path"] for problem in run(tmp_path, event)["problems"])
    assert paths == ["id", "occurred_at", "sent_at"]


def test_a_structured_cloudevent_is_simulated(tmp_path: Path) -> None:
    plain = investment()
    event = {
        "specversion": "1.0",
        "id": "evt_ce_1",
        "source": "/platform",
        "type": plain["type"],
        "time": "2026-11-26T10:00:00Z",
        "data": plain["data"],
    }
    report = run(tmp_path, event)
    assert report["problems"] == []
    assert [entry["name"] for entry in report["fired"]] == ["big_usd"]


TWO_TRIGGERS = """
workflow greet {
  on investment.created when event.data.amount > 1000
  on investment.* when event.data.amount > 10
  on investment.* when event.data.amount > 1000000
  wait 1d
}
"""


def test_a_workflow_whose_triggers_both_match_fires_once_as_the_bus_plans_it(
    tmp_path: Path,
) -> None:
    report = run(tmp_path, investment(), TWO_TRIGGERS)
    assert [(entry["kind"], entry["name"]) for entry in report["fired"]] == [("workflow", "greet")]
    assert report["skipped"] == []  # a refused trigger of a rule that fires is no skip


def test_a_rule_refused_by_every_trigger_is_skipped_once_per_trigger(tmp_path: Path) -> None:
    report = run(tmp_path, investment(amount="5.00"), TWO_TRIGGERS)
    assert report["fired"] == []
    assert [entry["because"] for entry in report["skipped"]] == [
        "when event.data.amount > 1000 is false",
        "when event.data.amount > 10 is false",
        "when event.data.amount > 1000000 is false",
    ]
