"""Events in through the API, durably stored, matched, and delivered to a real receiver."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from tests.support.engine import READ_KEY, SECRET, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import investment

pytestmark = pytest.mark.acceptance


def test_an_event_is_stored_delivered_signed_and_traceable(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        answer = api.post("/api/events", json=investment("evt_accept_1"))
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"id": "evt_accept_1", "duplicate": False, "jobs": 1}

        (delivery,) = receiver.wait_for(1)
        assert delivery.path == "/hooks"
        body = json.loads(delivery.body)
        assert body["id"] == "evt_accept_1"
        assert body["type"] == "investment.created"
        assert body["data"]["amount"] == "2500.00"
        assert body["data"]["currency"] == "usd", "catalog defaults are filled in"
        Webhook(SECRET).verify(delivery.body, delivery.headers)
        assert delivery.headers["X-Event-Type"] == "investment.created"
        assert delivery.headers["User-Agent"].startswith("Ownly/")

        event = _until_succeeded(api, "evt_accept_1")
        assert event["type"] == "investment.created"
        assert len(event["rule_set"]) == 64
        (job,) = event["jobs"]
        assert job["kind"] == "webhook"
        assert job["target"] == "receiver"
        assert job["attempts"] == 1
        assert job["idempotency_key"] == "webhook:receiver:evt_accept_1"
        assert job["rule_set"] == event["rule_set"], "the job records the version that planned it"


def test_a_repeated_id_is_a_duplicate_and_creates_nothing(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        first = api.post("/api/events", json=investment("evt_dup"))
        again = api.post("/api/events", json=investment("evt_dup"))
        assert first.status_code == 202
        assert again.status_code == 200
        assert again.json() == {"id": "evt_dup", "duplicate": True, "jobs": 0}
        receiver.wait_for(1)
        time.sleep(0.5)
        assert len(receiver.snapshot()) == 1
        assert len(_until_succeeded(api, "evt_dup")["jobs"]) == 1


def test_a_missing_id_is_assigned_time_ordered(engine: EngineProcess) -> None:
    with client(engine) as api:
        ids = [api.post("/api/events", json=investment()).json()["id"] for _ in range(3)]
    assert all(event_id.startswith("evt_") for event_id in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_a_batch_is_answered_per_event(engine: EngineProcess, receiver: Receiver) -> None:
    with client(engine) as api:
        api.post("/api/events", json=investment("evt_b0"))
        answer = api.post(
            "/api/events",
            json={"events": [investment("evt_b0"), investment("evt_b1"), investment("evt_b2")]},
        )
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert [e["status"] for e in body["events"]] == ["duplicate", "accepted", "accepted"]
        assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 1, 0)
        receiver.wait_for(3)


def test_a_partial_batch_stores_only_the_valid_events(engine: EngineProcess) -> None:
    bad = investment("evt_p_bad")
    bad["data"] = {**bad["data"], "amout": "1"}  # type: ignore[dict-item]
    with client(engine) as api:
        answer = api.post(
            "/api/events?partial=true", json={"events": [investment("evt_p_ok"), bad]}
        )
        assert answer.status_code == 202, answer.text
        statuses = [(e["id"], e["status"]) for e in answer.json()["events"]]
        assert statuses == [("evt_p_ok", "accepted"), ("evt_p_bad", "rejected")]
        assert answer.json()["events"][1]["problems"] == [
            {"path": "data.amout", "reason": "unknown field; did you mean 'amount'?"}
        ]
        assert api.get("/api/events/evt_p_ok").status_code == 200
        assert api.get("/api/events/evt_p_bad").status_code == 404


@pytest.mark.parametrize(
    ("content_type", "headers", "body", "expected_id"),
    [
        (
            "application/cloudevents+json",
            {},
            {
                "specversion": "1.0",
                "id": "ce-structured-1",
                "source": "/platform",
                "type": "investment.created",
                "time": "2026-11-26T10:00:00Z",
                "data": investment()["data"],
            },
            "ce-structured-1",
        ),
        (
            "application/json",
            {
                "ce-specversion": "1.0",
                "ce-id": "ce-binary-1",
                "ce-source": "/platform",
                "ce-type": "investment.created",
            },
            investment()["data"],
            "ce-binary-1",
        ),
    ],
    ids=["structured", "binary"],
)
def test_cloudevents(
    engine: EngineProcess,
    receiver: Receiver,
    content_type: str,
    headers: dict[str, str],
    body: object,
    expected_id: str,
) -> None:
    with client(engine) as api:
        answer = api.post(
            "/api/events",
            content=json.dumps(body),
            headers={"Content-Type": content_type, **headers},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["id"] == expected_id
        event = api.get(f"/api/events/{expected_id}").json()
        assert event["source"] == "/platform"
    receiver.wait_for(1)


def test_a_cloudevents_batch(engine: EngineProcess, receiver: Receiver) -> None:
    batch = [
        {
            "specversion": "1.0",
            "id": f"ce-batch-{i}",
            "source": "/platform",
            "type": "investment.created",
            "data": investment()["data"],
        }
        for i in range(3)
    ]
    with client(engine) as api:
        answer = api.post(
            "/api/events",
            content=json.dumps(batch),
            headers={"Content-Type": "application/cloudevents-batch+json"},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 3
    receiver.wait_for(3)


def test_listing_events_pages_with_a_cursor(engine: EngineProcess) -> None:
    with client(engine) as api:
        for i in range(5):
            api.post("/api/events", json=investment(f"evt_page_{i}"))
        api.post(
            "/api/events",
            json={
                "id": "evt_deal",
                "type": "deal.created",
                "data": {
                    "deal_id": "d",
                    "name": "n",
                    "sponsor_id": "s",
                    "target_amount": 1,
                    "minimum_investment": 1,
                    "status": "open",
                },
            },
        )
        seen = []
        cursor = None
        for _ in range(10):
            params = {"type": "investment.created", "limit": "2"}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/api/events", params=params).json()
            seen += [event["id"] for event in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == [f"evt_page_{i}" for i in reversed(range(5))]
    with client(engine, READ_KEY) as reader:
        assert (
            reader.get("/api/events", params={"type": "deal.created"}).json()["events"][0]["id"]
            == "evt_deal"
        )


def test_since_and_until_bound_the_time_of_receipt(engine: EngineProcess) -> None:
    """``[since, until)`` on ``received_at``; ``occurred_at`` (the reverse order here) is unused."""
    occurred = ["2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"]
    with client(engine) as api:
        received = []
        for i, at in enumerate(occurred):
            event = {**investment(f"evt_range_{i}"), "occurred_at": at}
            assert api.post("/api/events", json=event).status_code == 202
            received.append(api.get(f"/api/events/evt_range_{i}").json()["received_at"])
            time.sleep(0.01)
        assert received == sorted(received) and len(set(received)) == 3

        def listed(**params: str) -> list[str]:
            page = api.get("/api/events", params=params)
            assert page.status_code == 200, page.text
            return [event["id"] for event in page.json()["events"]]

        assert listed(since=received[1]) == ["evt_range_2", "evt_range_1"]
        assert listed(until=received[1]) == ["evt_range_0"]
        assert listed(since=received[0], until=received[2]) == ["evt_range_1", "evt_range_0"]
        assert listed(since=received[1], until=received[1]) == []
        assert listed(since=occurred[2], until=occurred[0]) == [], "not the time of occurrence"


UNKNOWN = {"id": "evt_unknown", "type": "vendor.thing_happened", "data": {"free": ["form"]}}


def test_an_unknown_type_is_refused_by_default(engine: EngineProcess) -> None:
    with client(engine) as api:
        answer = api.post("/api/events", json=UNKNOWN)
        assert answer.status_code == 422, answer.text
        assert answer.json()["problems"] == [
            {"path": "type", "reason": "unknown event type 'vendor.thing_happened'"}
        ]
        assert api.get("/api/events/evt_unknown").status_code == 404


def test_accept_unknown_types_stores_them_matching_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    engine = start_engine(tmp_path, receiver, extra_toml="[ingest]\naccept_unknown_types = true\n")
    try:
        with client(engine) as api:
            answer = api.post("/api/events", json=UNKNOWN)
            assert answer.status_code == 202, answer.text
            assert answer.json() == {"id": "evt_unknown", "duplicate": False, "jobs": 0}
            stored = api.get("/api/events/evt_unknown").json()
            assert (stored["type"], stored["data"], stored["jobs"]) == (
                "vendor.thing_happened",
                {"free": ["form"]},
                [],
            )
            bad = api.post("/api/events", json={**UNKNOWN, "id": "evt 2"})
            assert bad.status_code == 422, "the envelope is still checked"
    finally:
        assert engine.stop() == 0


def _until_succeeded(api: httpx.Client, event_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        event: dict[str, object] = api.get(f"/api/events/{event_id}").json()
        jobs = event.get("jobs", [])
        if jobs and all(job["state"] == "succeeded" for job in jobs):  # type: ignore[index, union-attr]
            return event
        time.sleep(0.05)
    raise AssertionError(f"jobs of {event_id} did not succeed: {event}")
