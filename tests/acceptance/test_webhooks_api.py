"""The webhooks API against the engine as a process and a real receiver on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from tests.support.engine import ENGINE_TOML, KEY, READ_KEY, SECRET, client, start_engine
from tests.support.process import EngineProcess, write_project
from tests.support.receiver import Receiver
from tests.support.rules import install_catalog, investment

pytestmark = pytest.mark.acceptance

FAILING_FAST = """
webhook receiver {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [investment.*, deal.created]
  retry     2 times, every 1s
  timeout   5s
}
"""


def until(check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def deliveries(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    answer = api.get("/api/webhooks/receiver/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["deliveries"]
    return found


@pytest.fixture
def failing(tmp_path: Path, receiver: Receiver) -> Iterator[EngineProcess]:
    """The engine with a webhook that gives up after 2 attempts, 1s apart."""
    write_project(tmp_path, extra_toml=ENGINE_TOML)
    install_catalog(tmp_path, webhooks=FAILING_FAST)
    process = EngineProcess(tmp_path, env=_env(receiver))
    try:
        process.wait_ready()
        yield process
    finally:
        process.kill()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """One engine for the tests that change nothing (405s, 404s, bad input, the catalog)."""
    with Receiver() as receiver:
        process = start_engine(tmp_path_factory.mktemp("shared"), receiver)
        try:
            yield process
        finally:
            process.kill()


def _env(receiver: Receiver) -> dict[str, str]:
    return {
        "TEST_KEY": KEY,
        "READ_KEY": READ_KEY,
        "RECEIVER_URL": receiver.url + "/hooks",
        "RECEIVER_SECRET": SECRET,
    }


def test_list_and_get_show_source_state_stats_and_definition(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        api.post("/api/events", json=investment("evt_w1"))
        receiver.wait_for(1)
        until(lambda: deliveries(api, state="succeeded"))
        listed = api.get("/api/webhooks")
        one = api.get("/api/webhooks/receiver")
    assert listed.status_code == 200
    (hook,) = listed.json()["webhooks"]
    assert hook["id"] == "receiver"
    assert hook["file"].endswith("webhooks.ownly") and hook["line"] == 2
    assert hook["state"] == "active"
    assert hook["stats"]["deliveries"] == 1
    assert hook["stats"]["successes"] == 1
    assert hook["stats"]["failures"] == 0
    assert hook["stats"]["last_success_at"] is not None
    body = one.json()
    assert body["events"] == ["investment.*", "deal.created"]
    assert body["retry"] == {"attempts": 5, "backoff": "exponential", "delays": [1.0, 2.0]}
    assert body["url"] == {"env": "RECEIVER_URL"}
    assert body["timeout_seconds"] == 5.0
    assert body["ordered"] is False
    assert len(body["rule_set"]) == 64
    assert SECRET not in one.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/webhooks"),
        ("POST", "/api/webhooks/receiver"),
        ("PUT", "/api/webhooks/receiver"),
        ("PATCH", "/api/webhooks/receiver"),
        ("DELETE", "/api/webhooks/receiver"),
    ],
)
def test_changing_a_definition_answers_405_with_file_and_line(
    shared: EngineProcess, method: str, path: str
) -> None:
    with client(shared) as api:
        answer = api.request(method, path, json={"url": "https://example.com"})
    assert answer.status_code == 405
    body = answer.json()
    assert body["error"] == "defined_in_rules"
    assert body["file"].endswith("webhooks.ownly")
    assert body["line"] == 2


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/webhooks/nope"),
        ("PATCH", "/api/webhooks/nope"),
        ("POST", "/api/webhooks/nope/test"),
        ("POST", "/api/webhooks/nope/pause"),
        ("POST", "/api/webhooks/nope/activate"),
        ("GET", "/api/webhooks/nope/deliveries"),
        ("GET", "/api/webhooks/receiver/deliveries/999999"),
        ("GET", "/api/webhooks/receiver/deliveries/not-a-delivery"),
        ("GET", "/api/webhooks/receiver/deliveries/²"),  # a digit to str.isdigit, not to int()
        ("POST", "/api/webhooks/receiver/deliveries/²/retry"),
        ("POST", "/api/webhooks/receiver/deliveries/999999/retry"),
    ],
)
def test_unknown_webhooks_and_deliveries_are_404(
    shared: EngineProcess, method: str, path: str
) -> None:
    with client(shared) as api:
        answer = api.request(method, path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "not_found"


def test_keys_need_the_webhook_scopes(shared: EngineProcess) -> None:
    with httpx.Client(base_url=shared.url) as anonymous:
        assert anonymous.get("/api/webhooks").status_code == 401
    with client(shared, READ_KEY) as reader:
        assert reader.get("/api/webhooks").status_code == 403
        assert reader.post("/api/webhooks/receiver/pause").status_code == 403


def test_a_test_delivery_is_sent_now_and_answered_with_the_attempt(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        answer = api.post("/api/webhooks/receiver/test")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        (arrived,) = receiver.snapshot()
        listed = deliveries(api, event_type="webhook.test")
    assert body["state"] == "succeeded"
    assert body["attempt"]["outcome"] == "delivered"
    assert body["attempt"]["status"] == 200
    payload = Webhook(SECRET).verify(arrived.body, arrived.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["webhook"] == "receiver"
    assert payload["data"]["requested_by"] == "test"
    assert arrived.headers["webhook-id"] == body["message_id"]
    assert [d["id"] for d in listed] == [body["delivery"]]


def test_pause_holds_deliveries_across_a_restart_and_activate_releases(
    tmp_path: Path, engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        paused = api.post("/api/webhooks/receiver/pause")
        assert paused.status_code == 200
        assert paused.json()["state"] == "paused"
        api.post("/api/events", json=investment("evt_held"))
    time.sleep(1.0)
    assert receiver.snapshot() == []
    metrics = httpx.get(engine.url + "/metrics").text
    assert 'ownly_queue_depth{kind="webhook"} 1.0' in metrics, "held, not dropped"
    assert engine.stop() == 0
    again = EngineProcess(tmp_path, env=_env(receiver))
    try:
        again.wait_ready()
        with client(again) as api:
            shown = api.get("/api/webhooks/receiver").json()
            assert shown["state"] == "paused"
            assert shown["stats"]["pending"] == 1
            assert [d["event_id"] for d in deliveries(api, state="held")] == ["evt_held"]
            time.sleep(1.0)
            assert receiver.snapshot() == []
            assert api.post("/api/webhooks/receiver/activate").json()["state"] == "active"
            (arrived,) = receiver.wait_for(1)
    finally:
        again.kill()
    assert json.loads(arrived.body)["id"] == "evt_held"


def test_deliveries_are_filtered_and_paged_with_a_cursor(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        for i in range(3):
            api.post("/api/events", json=investment(f"evt_page_{i}"))
        receiver.wait_for(3)
        until(lambda: len(deliveries(api, state="succeeded")) == 3)
        first = api.get("/api/webhooks/receiver/deliveries", params={"limit": "2"}).json()
        second = api.get(
            "/api/webhooks/receiver/deliveries",
            params={"limit": "2", "cursor": first["next_cursor"]},
        ).json()
        none = deliveries(api, event_type="deal.created")
        later = deliveries(api, since="2100-01-01T00:00:00Z")
        bad_state = api.get("/api/webhooks/receiver/deliveries", params={"state": "lost"})
        bad_since = api.get("/api/webhooks/receiver/deliveries", params={"since": "yesterday"})
    ids = [d["event_id"] for d in first["deliveries"] + second["deliveries"]]
    assert ids == ["evt_page_2", "evt_page_1", "evt_page_0"]
    assert second["next_cursor"] is None
    assert none == [] and later == []
    assert bad_state.status_code == 400 and bad_state.json()["error"] == "invalid_state"
    assert bad_since.status_code == 400 and bad_since.json()["error"] == "invalid_time"


def test_a_failed_delivery_is_retried_on_request_with_the_same_webhook_id(
    failing: EngineProcess, receiver: Receiver
) -> None:
    receiver.answer = lambda request, nth: web.Response(status=500, text="down")
    with client(failing) as api:
        api.post("/api/events", json=investment("evt_fail"))
        (failed,) = until(lambda: deliveries(api, state="failed"))
        receiver.answer = lambda request, nth: web.Response(status=200)
        retried = api.post(f"/api/webhooks/receiver/deliveries/{failed['id']}/retry")
        shown_answer = api.get(f"/api/webhooks/receiver/deliveries/{failed['id']}")
        shown = shown_answer.json()
    assert retried.status_code == 200, retried.text
    assert retried.json()["attempt"]["outcome"] == "delivered"
    assert retried.json()["attempt_number"] == 3
    arrivals = receiver.snapshot()
    assert len(arrivals) == 3
    assert {r.headers["webhook-id"] for r in arrivals} == {failed["message_id"]}
    for arrival in arrivals:
        Webhook(SECRET).verify(arrival.body, arrival.headers)
    assert shown["state"] == "succeeded"
    assert [a["status"] for a in shown["attempts"]] == [500, 500, 200]
    assert shown["attempts"][0]["response_body"] == "down"
    assert shown["payload"]["id"] == "evt_fail"
    assert SECRET.removeprefix("whsec_") not in shown_answer.text
    assert arrivals[0].headers["webhook-signature"] not in shown_answer.text, "no request headers"


def test_recover_requeues_failed_deliveries_in_the_window(
    failing: EngineProcess, receiver: Receiver
) -> None:
    receiver.answer = lambda request, nth: web.Response(status=503)
    with client(failing) as api:
        for i in range(3):
            api.post("/api/events", json=investment(f"evt_rec_{i}"))
        until(lambda: len(deliveries(api, state="failed")) == 3)
        receiver.answer = lambda request, nth: web.Response(status=200)
        answer = api.post("/api/webhooks/receiver/recover", json={"since": "2020-01-01T00:00:00Z"})
        assert answer.status_code == 202, answer.text
        assert answer.json()["recovered"] == 3
        until(lambda: len(deliveries(api, state="succeeded")) == 3)
        again = api.post("/api/webhooks/receiver/recover", json={"since": "2020-01-01T00:00:00Z"})
    assert again.json()["recovered"] == 0
    delivered = {json.loads(r.body)["id"] for r in receiver.snapshot() if r.headers}
    assert delivered == {"evt_rec_0", "evt_rec_1", "evt_rec_2"}


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"not json",
        b'{"since": "yesterday"}',
        b'{"since": "2026-01-01T00:00:00"}',
        b'{"since": 1700000000}',
        b'{"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}',
        b'{"since": "2026-01-01T00:00:00Z", "until": "soon"}',
        b'{"since": "2026-01-01T00:00:00Z", "limit": 3}',
        b"[]",
    ],
)
def test_a_malformed_recover_window_is_400(shared: EngineProcess, body: bytes) -> None:
    with client(shared) as api:
        answer = api.post(
            "/api/webhooks/receiver/recover",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] in ("invalid_window", "invalid_json")


def test_the_event_catalog_has_schemas_and_examples(shared: EngineProcess) -> None:
    with client(shared) as api:
        answer = api.get("/api/webhooks/events")
    assert answer.status_code == 200
    types = {entry["type"]: entry for entry in answer.json()["events"]}
    created = types["investment.created"]
    assert created["schema"]["type"] == "object"
    assert "amount" in created["schema"]["required"]
    assert created["schema"]["properties"]["currency"]["default"] == "usd"
    assert created["example"]["currency"] == "usd"
    assert set(created["example"]) == set(created["schema"]["properties"])
    assert "webhook.disabled" in types and "webhook.test" in types


def test_metrics_count_deliveries_and_show_the_queue(
    engine: EngineProcess, receiver: Receiver
) -> None:
    with client(engine) as api:
        api.post("/api/events", json=investment("evt_metrics"))
        receiver.wait_for(1)
        until(lambda: deliveries(api, state="succeeded"))
        text = httpx.get(engine.url + "/metrics").text
    assert 'ownly_webhook_deliveries_total{outcome="succeeded"} 1.0' in text
    assert 'ownly_webhook_attempts_total{outcome="delivered"} 1.0' in text
    assert "ownly_webhook_attempt_seconds_count 1.0" in text
    assert "ownly_webhooks_disabled 0.0" in text
    assert 'ownly_queue_depth{kind="webhook"} 0.0' in text
