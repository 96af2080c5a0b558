"""GET /api/workflows/templates and POST /api/workflows/from-template on an engine in process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.http.server import build_app
from engine.runtime import Engine
from tests.support.inprocess import running_engine
from tests.support.rules import ROOT, install_emails

RULES = (ROOT / "rules" / "webhooks.ownly").read_text(encoding="utf-8") + (
    "\nworkflow taken {\n  on manual\n  set x = 1\n}\n"
)
ENV = {
    name: "https://hooks.example.com/x" if name.endswith("URL") else "whsec_walk"
    for name in (
        "CRM_WEBHOOK_URL",
        "CRM_WEBHOOK_SECRET",
        "LEDGER_WEBHOOK_URL",
        "LEDGER_WEBHOOK_SECRET",
        "PARTNER_WEBHOOK_URL",
        "PARTNER_WEBHOOK_SECRET",
        "OPS_WEBHOOK_URL",
        "OPS_WEBHOOK_SECRET",
    )
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    install_emails(tmp_path)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "kept.ownly").write_text("# a file of its own\n", encoding="utf-8")
    async with running_engine(tmp_path, RULES, ENV) as running:
        yield running


@pytest.fixture
async def api(engine: Engine, aiohttp_client: Any) -> Any:
    client = await aiohttp_client(build_app(engine))
    key = engine.keyring.keys[0].secret.get_secret_value()
    client.session.headers["Authorization"] = f"Bearer {key}"
    return client


async def test_the_templates_are_listed_with_their_placeholders(api: Any) -> None:
    answer = await api.get("/api/workflows/templates")
    assert answer.status == 200
    listed = {t["name"]: t for t in (await answer.json())["templates"]}
    assert sorted(listed) == [
        "document_signature_chase",
        "payment_follow_up",
        "payout_notice",
        "scheduled_digest",
        "welcome_series",
    ]
    (url,) = (p for p in listed["scheduled_digest"]["placeholders"] if p["name"] == "url_env")
    assert (url["kind"], url["default"], url["required"]) == ("env", None, True)
    assert all(p["description"] for t in listed.values() for p in t["placeholders"])


async def test_a_template_is_made_into_a_checked_rule_file_and_nothing_is_written(
    api: Any, engine: Engine, tmp_path: Path
) -> None:
    version = engine.rules.rule_set().version  # type: ignore[union-attr]
    body = {"template": "payout_notice", "name": "notices", "values": {"concurrency": "4"}}
    answer = await api.post("/api/workflows/from-template", json=body)
    assert answer.status == 200, await answer.text()
    made = await answer.json()
    assert made["file"] == "rules/notices.ownly"
    assert "workflow notices {" in made["text"] and "concurrency 4\n" in made["text"]
    assert made["diagnostics"] == []
    assert not (tmp_path / "rules" / "notices.ownly").exists()
    assert engine.rules.rule_set().version == version  # type: ignore[union-attr]
    assert "notices" not in engine.rules.rule_set().workflows  # type: ignore[union-attr]


async def test_a_text_that_does_not_compile_is_refused_with_its_diagnostics(api: Any) -> None:
    body = {"template": "welcome_series", "name": "hello", "values": {"event": "user.created"}}
    answer = await api.post("/api/workflows/from-template", json=body)
    assert answer.status == 422
    refused = await answer.json()
    assert refused["error"] == "does_not_compile"
    assert {d["code"] for d in refused["diagnostics"]} == {"E031"}
    assert {d["file"] for d in refused["diagnostics"]} == {"rules/hello.ownly"}
    assert "workflow hello {" in refused["text"]


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"template": "nope", "name": "w"}, 404, "not_found", "template"),
        ({"template": "payout_notice", "name": "1w"}, 422, "invalid_name", "name"),
        ({"template": "payout_notice", "name": "kept"}, 409, "file_exists", None),
        ({"template": "payout_notice", "name": "taken"}, 422, "does_not_compile", None),
        (
            {"template": "payout_notice", "name": "w", "values": {"concurency": "2"}},
            422,
            "unknown_placeholder",
            "values.concurency",
        ),
        (
            {"template": "scheduled_digest", "name": "w"},
            422,
            "missing_placeholder",
            "values.url_env",
        ),
        (
            {"template": "payout_notice", "name": "w", "values": {"attempts": "many"}},
            422,
            "invalid_value",
            "values.attempts",
        ),
        (
            {"template": "payout_notice", "name": "w", "values": {"attempts": 3}},
            422,
            None,
            "values",
        ),
        ({"template": "payout_notice", "name": "w", "values": []}, 422, None, "values"),
        ({"template": "payout_notice", "name": "w", "file": "x"}, 422, "invalid_input", None),
        ({"template": "payout_notice"}, 422, "invalid_input", "name"),
        ({"name": "w"}, 422, "invalid_input", "template"),
        ([], 422, "invalid_input", None),
    ],
)
async def test_bad_requests_are_refused_clearly(
    api: Any, body: object, status: int, error: str | None, field: str | None
) -> None:
    answer = await api.post("/api/workflows/from-template", json=body)
    assert answer.status == status, await answer.text()
    refused = await answer.json()
    assert refused["error"] == (error or "invalid_input")
    assert refused["message"]
    assert refused.get("field") == field
