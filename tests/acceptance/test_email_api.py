"""The emails API: templates from the rules, previews, and every bad input refused with nothing
written."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import KEY, READ_KEY, client, start_engine
from tests.support.process import EngineProcess, ownly
from tests.support.receiver import Receiver
from tests.support.rules import install_emails

pytestmark = pytest.mark.acceptance

RECEIPT = {
    "investor": {"email": "ada@example.com", "name": "Ada"},
    "deal": {"id": "deal_1", "name": "Harbour Lofts"},
    "amount": "2500.00",
    "currency": "usd",
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root = tmp_path_factory.mktemp("emails-api")
    install_emails(root)
    with Receiver() as receiver:
        process = start_engine(root, receiver, "[email]\nmax_body = '64KiB'\n")
        try:
            yield process
        finally:
            process.kill()


@pytest.fixture
def api(engine: EngineProcess) -> Iterator[httpx.Client]:
    with client(engine) as http:
        yield http


def test_templates_are_listed_from_the_rules(api: httpx.Client) -> None:
    listed = api.get("/api/emails/templates").json()["templates"]
    assert sorted(t["id"] for t in listed) == [
        "investment_receipt",
        "kyc_rejected",
        "kyc_welcome",
        "payment_failed",
        "payout_notice",
    ]
    receipt = api.get("/api/emails/templates/investment_receipt").json()
    assert receipt["file"].endswith("emails.ownly") and receipt["line"] > 0
    assert receipt["variables"] == ["investor", "deal", "amount", "currency"]
    assert receipt["sample"]["deal"]["name"] == "Harbor View Apartments"
    assert (receipt["category"], receipt["tracking"]) == ("transactional", False)
    assert receipt["stats"]["sent"] == 0
    assert api.get("/api/emails/templates/nope").status_code == 404


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_templates_are_changed_in_the_rule_files(api: httpx.Client, method: str) -> None:
    path = "/api/emails/templates" + ("" if method == "POST" else "/kyc_welcome")
    answer = api.request(method, path, json={"subject": "hi"})
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET"
    body = answer.json()
    assert body["error"] == "defined_in_rules"
    assert body["file"].endswith("emails.ownly") and body["line"] > 0


def test_a_preview_renders_the_sample_or_the_data_given(api: httpx.Client) -> None:
    sample = api.post("/api/emails/templates/investment_receipt/preview").json()
    assert sample["subject"] == "Your investment in Harbor View Apartments is confirmed"
    assert "Harbor View Apartments" in sample["html"] and "OWNLY" in sample["html"]
    assert "Amount 25000.00 USD" in sample["text"]
    assert (sample["missing"], sample["extra"]) == ([], [])

    given = api.post(
        "/api/emails/templates/investment_receipt/preview",
        json={"data": {**RECEIPT, "note": "x"}},
    ).json()
    assert given["subject"] == "Your investment in Harbour Lofts is confirmed"
    assert given["extra"] == ["note"]

    partial = {k: v for k, v in RECEIPT.items() if k != "deal"}
    refused = api.post("/api/emails/templates/investment_receipt/preview", json={"data": partial})
    assert refused.status_code == 422
    body = refused.json()
    assert body["error"] == "render_failed" and "'deal' is undefined" in body["message"]
    assert body["missing"] == ["deal"]


def _count(api: httpx.Client) -> int:
    return len(api.get("/api/emails/logs", params={"limit": 500}).json()["emails"])


def _template(**changes: Any) -> dict[str, Any]:
    return {"template": "investment_receipt", "to": "ada@example.com", "data": RECEIPT, **changes}


def _adhoc(**changes: Any) -> dict[str, Any]:
    return {"to": "ada@example.com", "subject": "Hello", "text": "Hi", **changes}


BAD = [
    ("unknown template", "send-template", _template(template="nope"), 404, "unknown_template"),
    (
        "missing variable",
        "send-template",
        _template(data={k: v for k, v in RECEIPT.items() if k != "amount"}),
        422,
        "missing_variable",
    ),
    ("data not an object", "send-template", _template(data=[1]), 422, "invalid_data"),
    ("template not a name", "send-template", _template(template=7), 422, "invalid_template"),
    ("invalid address", "send-template", _template(to="not-an-address"), 422, "invalid_address"),
    ("two addresses", "send-template", _template(to="a@example.com, b@example.com"), 422, None),
    (
        "CR/LF in the name",
        "send-template",
        _template(to="Ada\r\nBcc: x@example.com <a@example.com>"),
        422,
        "invalid_address",
    ),
    (
        "CR/LF in a subject",
        "send",
        _adhoc(subject="Hi\r\nBcc: eve@example.com"),
        422,
        "invalid_header",
    ),
    (
        "a Unicode line separator in a subject",
        "send",
        _adhoc(subject="Hi\u2028Bcc: eve@example.com"),
        422,
        "invalid_header",
    ),
    (
        "NEL in a rendered subject",
        "send-template",
        _template(template="kyc_welcome", data={"name": "A\x85B", "accredited": True}),
        422,
        "invalid_header",
    ),
    (
        "CR/LF in from",
        "send",
        _adhoc(**{"from": "a@example.com\nBcc: e@example.com"}),
        422,
        "invalid_address",
    ),
    ("no body", "send", {"to": "ada@example.com", "subject": "Hello"}, 422, "invalid_email"),
    ("html not a string", "send", _adhoc(html=5), 422, "invalid_email"),
    ("unknown field", "send", _adhoc(cc="x@example.com"), 422, "unknown_field"),
    ("missing to", "send", {"subject": "Hello", "text": "Hi"}, 422, "missing_field"),
    ("oversized body", "send", _adhoc(text="x" * (65 * 1024)), 413, "body_too_large"),
    ("not an object", "send", [1, 2], 400, "invalid_body"),
]


@pytest.mark.parametrize(
    ("what", "path", "body", "status", "code"), BAD, ids=[case[0] for case in BAD]
)
def test_a_bad_send_is_refused_and_writes_nothing(
    api: httpx.Client, what: str, path: str, body: Any, status: int, code: str | None
) -> None:
    before = _count(api)
    answer = api.post(f"/api/emails/{path}", json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    if code is not None:
        assert answer.json()["error"] == code
    assert answer.json()["message"]
    assert _count(api) == before


@pytest.mark.parametrize(
    ("what", "headers", "content", "status", "code"),
    [
        (
            "wrong content type",
            {"Content-Type": "text/plain"},
            b'{"to": "a@example.com"}',
            415,
            "unsupported_media_type",
        ),
        ("not JSON", {"Content-Type": "application/json"}, b"{nope", 400, "invalid_json"),
        (
            "over the engine's limit",
            {"Content-Type": "application/json"},
            b'"' + b"x" * 300_000 + b'"',
            413,
            "body_too_large",
        ),
        ("no key", {"Authorization": ""}, b"{}", 401, "unauthorized"),
        ("wrong scope", {"Authorization": f"Bearer {READ_KEY}"}, b"{}", 403, "forbidden"),
        (
            "bad idempotency key",
            {"Content-Type": "application/json", "Idempotency-Key": "x" * 300},
            b"{}",
            400,
            None,
        ),
    ],
)
def test_a_bad_request_is_refused_and_writes_nothing(
    api: httpx.Client,
    what: str,
    headers: dict[str, str],
    content: bytes,
    status: int,
    code: str | None,
) -> None:
    before = _count(api)
    body = _template() if what == "bad idempotency key" else None
    if body is not None:
        answer = api.post("/api/emails/send-template", json=body, headers=headers)
    else:
        answer = api.post("/api/emails/send-template", content=content, headers=headers)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"] == code
    assert _count(api) == before


def test_the_log_filters_and_pages(api: httpx.Client) -> None:
    ids = []
    for n in range(3):
        answer = api.post("/api/emails/send-template", json=_template(to=f"page{n}@example.com"))
        assert answer.status_code == 202
        ids.append(answer.json()["id"])
    first = api.get(
        "/api/emails/logs", params={"template": "investment_receipt", "limit": 2}
    ).json()
    assert len(first["emails"]) == 2 and first["next_cursor"]
    rest = api.get(
        "/api/emails/logs",
        params={"template": "investment_receipt", "limit": 2, "cursor": first["next_cursor"]},
    ).json()
    seen = [e["id"] for e in first["emails"] + rest["emails"]]
    assert set(ids) <= set(seen) and len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)  # newest first
    one = api.get("/api/emails/logs", params={"to": "page1@example.com"}).json()["emails"]
    assert [e["id"] for e in one] == [ids[1]]
    for bad in ({"status": "nope"}, {"cursor": "nope"}, {"since": "yesterday"}, {"limit": "0"}):
        refused = api.get("/api/emails/logs", params=bad)
        assert refused.status_code == 400, bad
    assert api.get("/api/emails/logs/eml_nope").status_code == 404
    assert api.get("/api/emails/logs/x").status_code == 404


def test_reading_needs_the_emails_read_scope(engine: EngineProcess) -> None:
    with client(engine, key=READ_KEY) as reader:
        assert reader.get("/api/emails/templates").status_code == 403
    with client(engine, key=KEY) as admin:
        assert admin.get("/api/emails/templates").status_code == 200


def test_the_outbox_keeps_what_would_have_been_sent(
    api: httpx.Client, engine: EngineProcess
) -> None:
    answer = api.post("/api/emails/send-template", json=_template(to="outbox@example.com"))
    email_id = answer.json()["id"]
    path = Path(engine.cwd) / "var" / "outbox" / f"{email_id}.eml"
    deadline = time.monotonic() + 15
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b"Subject: Your investment in Harbour Lofts is confirmed" in path.read_bytes()
    log = api.get(f"/api/emails/logs/{email_id}").json()
    assert log["provider"] == "outbox"


def test_the_command_line_previews_sends_and_lists(engine: EngineProcess, tmp_path: Path) -> None:
    data = tmp_path / "receipt.json"
    data.write_text(json.dumps({**RECEIPT, "deal": {"id": "d", "name": "Pier 9"}}))
    env = {**engine.environment, "OWNLY_API_KEY": KEY}
    shown = ownly(
        "emails", "preview", "investment_receipt", "--data", str(data), cwd=engine.cwd, env=env
    )
    assert shown.returncode == 0, shown.stderr
    assert "Subject: Your investment in Pier 9 is confirmed" in shown.stdout
    assert "Amount 2500.00 USD" in shown.stdout
    sample = ownly("emails", "preview", "kyc_welcome", "--part", "html", cwd=engine.cwd, env=env)
    assert sample.returncode == 0 and "Welcome, Ada Lovelace" in sample.stdout
    unknown = ownly("emails", "preview", "nope", cwd=engine.cwd, env=env)
    assert unknown.returncode != 0 and "no template named 'nope'" in unknown.stderr

    args = ["--to", "cli@example.com", "--data", str(data), "--idempotency-key", "cli-1"]
    sent = ownly(
        "emails",
        "send-template",
        "investment_receipt",
        *args,
        "--url",
        engine.url,
        cwd=engine.cwd,
        env=env,
    )
    assert sent.returncode == 0, sent.stderr
    email_id = sent.stdout.split()[1]
    again = ownly(
        "emails",
        "send-template",
        "investment_receipt",
        *args,
        "--url",
        engine.url,
        cwd=engine.cwd,
        env=env,
    )
    assert again.stdout.split()[1] == email_id
    listed = ownly(
        "emails",
        "logs",
        "--to",
        "cli@example.com",
        "--json",
        "--url",
        engine.url,
        cwd=engine.cwd,
        env=env,
    )
    assert [e["id"] for e in json.loads(listed.stdout)["emails"]] == [email_id]
    table = ownly(
        "emails", "logs", "--to", "cli@example.com", "--url", engine.url, cwd=engine.cwd, env=env
    )
    assert email_id in table.stdout and "investment_receipt" in table.stdout
    refused = ownly(
        "emails",
        "send-template",
        "nope",
        "--to",
        "a@example.com",
        "--url",
        engine.url,
        cwd=engine.cwd,
        env=env,
    )
    assert refused.returncode != 0 and "404 unknown_template" in refused.stderr


def test_the_log_keeps_the_data_without_its_secrets(api: httpx.Client) -> None:
    data = {**RECEIPT, "investor": {**RECEIPT["investor"], "api_token": "tok_live_1"}}  # type: ignore[dict-item]
    data["password"] = "hunter2"
    answer = api.post("/api/emails/send-template", json=_template(to="data@example.com", data=data))
    log = api.get(f"/api/emails/logs/{answer.json()['id']}").json()
    assert log["data"]["password"] == "<redacted>"
    assert log["data"]["investor"] == {
        "email": "ada@example.com",
        "name": "Ada",
        "api_token": "<redacted>",
    }
    assert log["data"]["deal"] == RECEIPT["deal"]
    assert "hunter2" not in str(log) and "tok_live_1" not in str(log)


def test_a_suppression_is_found_and_removed_by_the_address_it_was_added_as(
    api: httpx.Client,
) -> None:
    added = api.post("/api/emails/suppressions", json={"address": "Ada@Bücher.example"})
    assert added.status_code == 201, added.text
    assert added.json()["address"] == "ada@xn--bcher-kva.example"
    listed = api.get("/api/emails/suppressions", params={"address": "Ada@Bücher.example"})
    assert [s["address"] for s in listed.json()["suppressions"]] == ["ada@xn--bcher-kva.example"]
    assert api.delete("/api/emails/suppressions/Ada@Bücher.example").status_code == 204
    assert api.get("/api/emails/suppressions").json()["suppressions"] == []


def test_the_log_finds_an_international_address_as_it_was_given(api: httpx.Client) -> None:
    sent = api.post("/api/emails/send-template", json=_template(to="Ada <ada@Bücher.example>"))
    assert sent.status_code == 202, sent.text
    found = api.get("/api/emails/logs", params={"to": "ada@bücher.example"}).json()["emails"]
    assert [(e["id"], e["to"]) for e in found] == [(sent.json()["id"], "ada@xn--bcher-kva.example")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "not an address"}, "address"),
        ({"address": "a@example.com", "category": "a\r\nb"}, None),
        ({"address": "a@example.com", "category": ""}, None),
        ({"address": "a@example.com", "category": "x" * 101}, None),
    ],
)
def test_a_bad_suppression_is_refused(
    api: httpx.Client, body: dict[str, Any], field: str | None
) -> None:
    before = api.get("/api/emails/suppressions").json()["suppressions"]
    answer = api.post("/api/emails/suppressions", json=body)
    assert answer.status_code == 422, answer.text
    if field is not None:
        assert answer.json()["field"] == field
    assert api.get("/api/emails/suppressions").json()["suppressions"] == before
