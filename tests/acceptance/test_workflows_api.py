"""The workflows API through the engine as a subprocess: definitions, runs, and what an
operator does to them; each refusal a JSON error that writes nothing."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import READ_KEY, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver
from tests.support.rules import RECEIVER_WEBHOOK

RULES = (
    RECEIVER_WEBHOOK
    + """
workflow by_hand {
  description = "Started by an operator"
  on manual
  set first = event.data.n ?? 0
  wait 1d
  set second = first + 1
}

workflow quick {
  on manual
  set only = event.data.n ?? 0
}

workflow on_upload {
  on document.uploaded when event.data.kind == "kyc"
  set seen = true
}
"""
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    root: Path = tmp_path_factory.mktemp("workflows-api")
    with Receiver() as receiver:
        process = start_engine(root, receiver, webhooks=RULES)
        try:
            yield process
        finally:
            process.kill()


def _database(engine: EngineProcess) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{engine.cwd / 'var' / 'ownly.db'}?mode=ro", uri=True)


def _counts(engine: EngineProcess) -> tuple[Any, ...]:
    with _database(engine) as db:
        return tuple(
            db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("workflow_runs", "workflow_steps", "jobs", "events", "workflow_states")
        )


def _execute(api: httpx.Client, workflow: str, body: Any) -> httpx.Response:
    return api.post(f"/api/workflows/{workflow}/execute", json=body)


def _wait_status(api: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        shown: dict[str, Any] = api.get(f"/api/workflows/executions/{run_id}").json()
        if shown["status"] in statuses:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never reached {statuses}")


def test_definitions_come_from_the_rules_with_their_triggers_and_steps(
    engine: EngineProcess,
) -> None:
    with client(engine) as api:
        listed = api.get("/api/workflows").json()["workflows"]
        shown = api.get("/api/workflows/by_hand").json()
    assert [w["id"] for w in listed] == ["by_hand", "on_upload", "quick"]
    upload = listed[1]
    assert upload["triggers"] == [
        {
            "type": "condition",
            "kind": "event",
            "events": ["document.uploaded"],
            "when": 'event.data.kind == "kyc"',
        }
    ]
    assert upload["file"].endswith("webhooks.ownly") and upload["status"] == "active"
    assert shown["description"] == "Started by an operator"
    assert [(s["id"], s["kind"]) for s in shown["steps"]] == [
        ("first", "set"),
        ("s2", "wait"),
        ("second", "set"),
    ]


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_definitions_are_not_written_through_the_api(engine: EngineProcess, method: str) -> None:
    path = "/api/workflows" if method == "POST" else "/api/workflows/by_hand"
    before = _counts(engine)
    with client(engine) as api:
        answer = api.request(method, path, json={"name": "x"})
    assert answer.status_code == 405
    assert answer.json()["error"] == "defined_in_rules"
    assert _counts(engine) == before


def test_a_manual_run_is_shown_step_by_step_and_can_be_cancelled_once(
    engine: EngineProcess,
) -> None:
    with client(engine) as api:
        answer = _execute(api, "by_hand", {"data": {"n": 41}})
        assert answer.status_code == 202, answer.text
        run_id = answer.json()["id"]
        shown = _wait_status(api, run_id, "sleeping")
        assert [(s["step"], s["status"]) for s in shown["steps"]] == [
            ("first", "completed"),
            ("s2", "sleeping"),
        ]
        assert shown["steps"][0]["output"] == 41
        assert shown["trigger"] == "manual" and shown["trigger_data"]["data"] == {"n": 41}
        assert api.post(f"/api/workflows/executions/{run_id}/cancel").status_code == 200
        shown = api.get(f"/api/workflows/executions/{run_id}").json()
        assert shown["status"] == "cancelled"
        assert [j["state"] for j in shown["jobs"] if j["key"].endswith(":due:s2:1")] == [
            "cancelled"
        ]
        before = _counts(engine)
        again = api.post(f"/api/workflows/executions/{run_id}/cancel")
        assert again.status_code == 409 and again.json()["error"] == "finished"
        assert _counts(engine) == before


def test_a_rerun_keeps_the_checkpoints_before_its_step(engine: EngineProcess) -> None:
    with client(engine) as api:
        run_id = _execute(api, "quick", {"data": {"n": 7}}).json()["id"]
        _wait_status(api, run_id, "completed")
        answer = api.post(f"/api/workflows/executions/{run_id}/rerun", json={"from": "only"})
        assert answer.status_code == 202, answer.text
        again = _wait_status(api, answer.json()["id"], "completed")
    assert again["rerun_of"] == run_id and again["output"] == {"only": 7}


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/api/workflows/by_hand/execute", [1], 422, "invalid_input"),
        ("/api/workflows/by_hand/execute", {"data": [1]}, 422, "invalid_input"),
        ("/api/workflows/by_hand/execute", {"data": {}, "extra": 1}, 422, "invalid_input"),
        ("/api/workflows/on_upload/execute", {"data": {}}, 409, "not_manual"),
        ("/api/workflows/nope/execute", {"data": {}}, 404, "not_found"),
        ("/api/workflows/executions/run_nope/rerun", {"from": "only"}, 404, "not_found"),
        ("/api/workflows/executions/run_nope/cancel", None, 404, "not_found"),
        ("/api/workflows/nope/pause", None, 404, "not_found"),
    ],
)
def test_a_bad_request_is_a_json_error_and_writes_nothing(
    engine: EngineProcess, path: str, body: Any, status: int, code: str
) -> None:
    before = _counts(engine)
    with client(engine) as api:
        answer = api.post(path, json=body) if body is not None else api.post(path)
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert _counts(engine) == before


def test_a_rerun_from_an_unknown_step_is_refused(engine: EngineProcess) -> None:
    with client(engine) as api:
        run_id = _execute(api, "quick", {"data": {}}).json()["id"]
        _wait_status(api, run_id, "completed")
        before = _counts(engine)
        answer = api.post(f"/api/workflows/executions/{run_id}/rerun", json={"from": "nope"})
    assert answer.status_code == 422
    assert answer.json()["error"] == "unknown_step" and answer.json()["steps"] == ["only"]
    assert _counts(engine) == before


def test_a_paused_workflow_starts_nothing_and_counts_what_it_skipped(
    engine: EngineProcess,
) -> None:
    with client(engine) as api:
        assert api.post("/api/workflows/quick/pause").json() == {"id": "quick", "status": "paused"}
        refused = _execute(api, "quick", {"data": {}})
        assert (refused.status_code, refused.json()["error"]) == (409, "not_started")
        shown = api.get("/api/workflows/quick").json()
        assert (shown["status"], shown["skipped"]) == ("paused", 1)
        assert api.post("/api/workflows/quick/activate").json()["status"] == "active"
        assert _execute(api, "quick", {"data": {}}).status_code == 202


def test_reading_needs_the_workflows_scope(engine: EngineProcess) -> None:
    with client(engine, READ_KEY) as api:
        answer = api.get("/api/workflows")
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"
