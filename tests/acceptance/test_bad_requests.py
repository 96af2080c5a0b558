"""Every bad request gets a clear status and body, and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import KEY, READ_KEY, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance

JSON = {"Content-Type": "application/json"}
HUGE_CURSOR = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"  # 30 nines: past any row id


def ce(**changes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": "ce-1",
        "source": "/platform",
        "type": "investment.created",
        "data": investment()["data"],
    }
    return {k: v for k, v in {**event, **changes}.items() if v is not None}


def with_data(**changes: Any) -> dict[str, Any]:
    event = investment("evt_bad")
    event["data"] = {**event["data"], **changes}  # type: ignore[dict-item]
    return event


CASES: list[Any] = [
    # (id, headers, body, status, error, fragment of the message or of a problem)
    ("no-key", {"Authorization": ""}, investment(), 401, "unauthorized", "Bearer"),
    ("wrong-key", {"Authorization": "Bearer nope"}, investment(), 401, "unauthorized", "key"),
    ("basic-auth", {"Authorization": f"Basic {KEY}"}, investment(), 401, "unauthorized", "key"),
    (
        "missing-scope",
        {"Authorization": f"Bearer {READ_KEY}"},
        investment(),
        403,
        "forbidden",
        "'events:write'",
    ),
    (
        "text-plain",
        {"Content-Type": "text/plain"},
        "hello",
        415,
        "unsupported_media_type",
        "text/plain",
    ),
    (
        "form",
        {"Content-Type": "application/x-www-form-urlencoded"},
        "a=1",
        415,
        "unsupported_media_type",
        "form",
    ),
    ("malformed-json", JSON, '{"type": "investment.created",', 400, "malformed_json", "line 1"),
    ("empty-body", JSON, "", 400, "malformed_json", "empty"),
    (
        "oversized-body",
        JSON,
        json.dumps(with_data(note="x" * 300_000)),
        413,
        "body_too_large",
        "262144",
    ),
    ("oversized-batch", JSON, {"events": [{"type": "x.y"}] * 501}, 413, "batch_too_large", "500"),
    ("events-not-a-list", JSON, {"events": {"type": "x"}}, 400, "invalid_batch", "list"),
    ("empty-batch", JSON, {"events": []}, 400, "invalid_batch", "empty"),
    ("json-array", JSON, [investment()], 422, "invalid_event", "must be an event object"),
    (
        "unknown-type",
        JSON,
        {"type": "investment.exploded", "data": {}},
        422,
        "invalid_event",
        "unknown event type",
    ),
    ("missing-type", JSON, {"data": {}}, 422, "invalid_event", "type: is required"),
    (
        "malformed-type",
        JSON,
        {"type": "Investment Created", "data": {}},
        422,
        "invalid_event",
        "investment.created",
    ),
    (
        "data-not-object",
        JSON,
        {"type": "investment.created", "data": [1]},
        422,
        "invalid_event",
        "data: must be an object",
    ),
    (
        "missing-field",
        JSON,
        with_data(user_id=None),
        422,
        "invalid_event",
        "data.user_id: is required",
    ),
    ("misspelt-field", JSON, with_data(amout="1"), 422, "invalid_event", "did you mean 'amount'?"),
    (
        "wrong-type",
        JSON,
        with_data(amount="lots"),
        422,
        "invalid_event",
        "data.amount: must be a decimal",
    ),
    ("bad-enum", JSON, with_data(status="gone"), 422, "invalid_event", "must be one of"),
    (
        "bad-email",
        JSON,
        with_data(investor={"email": "ada", "name": "Ada"}),
        422,
        "invalid_event",
        "data.investor.email",
    ),
    (
        "bad-time",
        JSON,
        {**investment(), "occurred_at": "yesterday"},
        422,
        "invalid_event",
        "occurred_at: must be an RFC 3339",
    ),
    (
        "naive-time",
        JSON,
        {**investment(), "occurred_at": "2026-11-26T10:00:00"},
        422,
        "invalid_event",
        "time zone",
    ),
    (
        "unknown-envelope-field",
        JSON,
        {**investment(), "payload": {}},
        422,
        "invalid_event",
        "payload: unknown envelope field",
    ),
    ("id-with-space", JSON, investment("evt 1"), 422, "invalid_event", "id: must be"),
    ("nul-in-source", JSON, {**investment(), "source": "a\x00b"}, 422, "invalid_event", "NUL"),
    ("nul-in-data", JSON, with_data(user_id="u\x00"), 422, "invalid_event", "data.user_id"),
    (
        "duplicate-ids-in-batch",
        JSON,
        {"events": [investment("evt_same"), investment("evt_same")]},
        422,
        "invalid_batch",
        "the same id appears twice",
    ),
    (
        "one-bad-event-rejects-the-batch",
        JSON,
        {"events": [investment("evt_good"), with_data(amount="lots")]},
        422,
        "invalid_batch",
        "1 of 2 events are invalid; nothing was stored",
    ),
    (
        "ce-wrong-version",
        {"Content-Type": "application/cloudevents+json"},
        ce(specversion="0.3"),
        422,
        "invalid_event",
        "specversion: must be '1.0'",
    ),
    (
        "ce-missing-source",
        {"Content-Type": "application/cloudevents+json"},
        ce(source=None),
        422,
        "invalid_event",
        "source: is required",
    ),
    (
        "ce-binary-data",
        {"Content-Type": "application/cloudevents+json"},
        ce(data=None, data_base64="AAAA"),
        422,
        "invalid_event",
        "binary data",
    ),
    (
        "ce-batch-not-array",
        {"Content-Type": "application/cloudevents-batch+json"},
        ce(),
        400,
        "invalid_batch",
        "array",
    ),
    (
        "ce-binary-mode-xml",
        {
            "Content-Type": "application/xml",
            "ce-specversion": "1.0",
            "ce-id": "x",
            "ce-source": "/p",
            "ce-type": "investment.created",
        },
        "<xml/>",
        415,
        "unsupported_media_type",
        "JSON",
    ),
    (
        "ce-binary-mode-10-kb-id",
        {
            **JSON,
            "ce-specversion": "1.0",
            "ce-id": "x" * 10_240,
            "ce-source": "/p",
            "ce-type": "investment.created",
        },
        investment()["data"],
        422,
        "invalid_event",
        "ce-id: must be",
    ),
    (
        "ce-binary-mode-missing-id",
        {**JSON, "ce-specversion": "1.0", "ce-source": "/p", "ce-type": "investment.created"},
        investment()["data"],
        422,
        "invalid_event",
        "ce-id: is required",
    ),
]


@pytest.fixture(scope="module")
def shared_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root: Path = tmp_path_factory.mktemp("bad-requests")
    with Receiver() as receiver:
        process = start_engine(root, receiver)
        try:
            yield process
        finally:
            process.kill()


def stored_events(engine: EngineProcess) -> list[Any]:
    with client(engine) as api:
        events: list[Any] = api.get("/api/events").json()["events"]
        return events


@pytest.mark.parametrize(
    ("headers", "body", "status", "code", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_ingest_requests(
    shared_engine: EngineProcess,
    headers: dict[str, str],
    body: object,
    status: int,
    code: str,
    fragment: str,
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    with client(shared_engine) as api:
        answer = api.post("/api/events", content=content, headers={**JSON, **headers})
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    document = answer.json()
    assert document["error"] == code
    assert document["message"]
    assert "Traceback" not in answer.text
    assert fragment in answer.text, document
    assert stored_events(shared_engine) == [], "a rejected request writes nothing"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/events/evt_never", 404, "not_found"),
        ("GET", "/api/events?cursor=%%%", 400, "invalid_cursor"),
        ("GET", "/api/events?limit=0", 400, "invalid_limit"),
        ("GET", "/api/events?limit=abc", 400, "invalid_limit"),
        ("GET", "/api/events?since=yesterday", 400, "invalid_time"),
        ("GET", "/api/events?until=9999-12-31T23:59:59-01:00", 400, "invalid_time"),
        ("GET", "/api/events?limit=%C2%B2", 400, "invalid_limit"),
        (
            "GET",
            "/api/events?cursor=OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5",
            400,
            "invalid_cursor",
        ),
        ("GET", "/api/events/" + "x" * 10_240, 404, "not_found"),
        ("GET", "/api/events?cursor=" + "x" * 10_240, 400, "invalid_cursor"),
        ("DELETE", "/api/events", 405, "method_not_allowed"),
        ("GET", "/api/nothing-here", 404, "not_found"),
        ("POST", "/api/rules/reload", 403, "forbidden"),
    ],
)
def test_bad_reads(
    shared_engine: EngineProcess, method: str, path: str, status: int, code: str
) -> None:
    key = READ_KEY if path == "/api/rules/reload" else KEY
    with httpx.Client(
        base_url=shared_engine.url, headers={"Authorization": f"Bearer {key}"}
    ) as api:
        answer = api.request(method, path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code


def test_an_unknown_type_is_listed_with_every_other_problem(shared_engine: EngineProcess) -> None:
    event = {"type": "investment.exploded", "data": {}, "occurred_at": "yesterday"}
    with client(shared_engine) as api:
        answer = api.post("/api/events", json=event)
    assert answer.status_code == 422, answer.text
    assert [p["path"] for p in answer.json()["problems"]] == ["occurred_at", "type"]
    assert answer.json()["message"].endswith("(and 1 more)")
    assert stored_events(shared_engine) == []
