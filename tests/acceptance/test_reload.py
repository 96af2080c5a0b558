"""Rules change while events stream in: new rules apply, broken ones are refused, fixes apply."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import KEY, client, start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver

pytestmark = pytest.mark.acceptance

PAYOUT_RULE = """
webhook payout_hook {
  url     = env("PAYOUT_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [payout.created]
  timeout   5s
}
"""

BROKEN_RULE = """
webhook payout_hook {
  url     = env("PAYOUT_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [payout.created
  timeout   5s
}
"""

FIXED_RULE = PAYOUT_RULE.replace(
    "  timeout", "  when      event.data.recipient_count > 10\n  timeout"
)


def payout(index: int, recipients: int = 50) -> dict[str, Any]:
    return {
        "id": f"evt_payout_{index:05d}",
        "type": "payout.created",
        "data": {
            "payout_id": f"po_{index}",
            "deal_id": "deal_1",
            "deal": {"id": "deal_1", "name": "Harbour Lofts"},
            "total_amount": "1000.00",
            "recipient_count": recipients,
            "scheduled_for": "2026-12-01T00:00:00Z",
        },
    }


class Stream:
    """Posts a payout every few milliseconds until stopped; remembers each answer."""

    def __init__(self, engine: EngineProcess) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self.posted: list[tuple[str, float]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with client(self._engine) as api:
            index = 0
            while not self._stop.is_set() and index < 5000:
                answer = api.post("/api/events", json=payout(index))
                assert answer.status_code == 202, answer.text
                self.posted.append((answer.json()["id"], time.monotonic()))
                index += 1
                time.sleep(0.01)


def rules_state(api: httpx.Client) -> dict[str, Any]:
    state: dict[str, Any] = api.get("/api/rules").json()
    return state


def wait_until(predicate: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_rules_change_while_events_stream_in(tmp_path: Path) -> None:
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env={"PAYOUT_URL": receiver.url + "/payouts"})
        rule_file = tmp_path / "rules" / "payouts.ownly"
        try:
            with client(engine) as api, Stream(engine) as stream:
                first = rules_state(api)
                wait_until(lambda: len(stream.posted) >= 10)

                written = time.monotonic()
                rule_file.write_text(PAYOUT_RULE, encoding="utf-8")
                second = wait_until(
                    lambda: (s := rules_state(api))["version"] != first["version"] and s
                )
                applied = time.monotonic()
                wait_until(lambda: any(r.path == "/payouts" for r in receiver.snapshot()))
                print(f"\nnew rule applied {applied - written:.3f}s after the file was written")
                assert applied - written < 1.0, "a new rule serves within a second"

                rule_file.write_text(BROKEN_RULE, encoding="utf-8")
                failure = wait_until(lambda: rules_state(api)["last_failure"])
                broken = rules_state(api)
                assert broken["version"] == second["version"], "the old set serves"
                assert broken["applied_at"] == second["applied_at"]
                applied_at = datetime.fromisoformat(broken["applied_at"])
                assert applied_at > datetime.fromisoformat(first["applied_at"])
                assert broken["files"] == second["files"]
                assert sorted(Path(f).name for f in broken["files"]) == [
                    "catalog.ownly",
                    "payouts.ownly",
                    "webhooks.ownly",
                ]
                ready = api.get("/readyz")
                assert ready.status_code == 200, ready.text
                (diagnostic, *_) = failure["diagnostics"]
                assert diagnostic["file"].endswith("payouts.ownly")
                assert (diagnostic["line"], diagnostic["column"]) == (6, 3)
                assert diagnostic["code"].startswith("E")
                deliveries_while_broken = len(receiver.snapshot())
                wait_until(lambda: len(receiver.snapshot()) > deliveries_while_broken + 5)

                rule_file.write_text(FIXED_RULE, encoding="utf-8")
                third = wait_until(
                    lambda: (
                        (s := rules_state(api))["version"]
                        not in (
                            first["version"],
                            second["version"],
                        )
                        and s
                    )
                )
                assert third["last_failure"] is None
                settle = len(stream.posted)
                wait_until(lambda: len(stream.posted) >= settle + 10)

            events = [api_get(engine, event_id) for event_id, _ in stream.posted]
        finally:
            assert engine.stop() == 0

    by_version: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_version.setdefault(event["rule_set"], []).append(event)
    assert set(by_version) == {first["version"], second["version"], third["version"]}
    assert all(not e["jobs"] for e in by_version[first["version"]]), "before: no rule"
    for version in (second["version"], third["version"]):
        assert by_version[version], f"events were matched by {version}"
        for event in by_version[version]:
            assert [job["target"] for job in event["jobs"]] == ["payout_hook"]
            assert [job["rule_set"] for job in event["jobs"]] == [version], "its job's version"
    order = [event["rule_set"] for event in events]
    assert order == sorted(order, key=[first["version"], second["version"], third["version"]].index)


def api_get(engine: EngineProcess, event_id: str) -> dict[str, Any]:
    answer = httpx.get(
        f"{engine.url}/api/events/{event_id}", headers={"Authorization": f"Bearer {KEY}"}
    )
    event: dict[str, Any] = answer.json()
    return event


def test_reload_endpoint_and_sighup(tmp_path: Path) -> None:
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env={"PAYOUT_URL": receiver.url + "/payouts"})
        try:
            with client(engine) as api:
                serving = rules_state(api)["version"]
                for _ in range(2):
                    same = api.post("/api/rules/reload")
                    assert same.status_code == 200, same.text
                    assert same.json()["status"] == "unchanged"
                    assert same.json()["version"] == serving
                    assert same.json()["message"] == (
                        f"the rule set is unchanged: version {serving[:12]} keeps serving"
                    )
                assert [line["version"] for line in logs(engine, "rules.unchanged", "api")] == [
                    serving,
                    serving,
                ]
                (tmp_path / "rules" / "payouts.ownly").write_text(BROKEN_RULE, encoding="utf-8")
                failed = api.post("/api/rules/reload")
                assert failed.status_code == 422
                assert failed.json()["status"] == "failed"
                assert failed.json()["diagnostics"][0]["line"] == 6
                assert failed.json()["message"].endswith(
                    f", nothing applied: version {serving[:12]} keeps serving"
                )
                (tmp_path / "rules" / "payouts.ownly").write_text(PAYOUT_RULE, encoding="utf-8")
                version = rules_state(api)["version"]
                engine.process.send_signal(signal.SIGHUP)
                changed = wait_until(lambda: (s := rules_state(api))["version"] != version and s)
                # The watcher may have applied the file first: the first SIGHUP is then unchanged.
                wait_until(lambda: logs(engine, "rules.", "SIGHUP"))
                before = len(logs(engine, "rules.unchanged", "SIGHUP"))
                engine.process.send_signal(signal.SIGHUP)
                logged = wait_until(lambda: logs(engine, "rules.unchanged", "SIGHUP")[before:])
                assert [line["version"] for line in logged] == [changed["version"]]
        finally:
            assert engine.stop() == 0


def logs(engine: EngineProcess, event: str, reason: str) -> list[dict[str, Any]]:
    """The engine's log lines whose event starts with ``event``, for reloads for ``reason``."""
    text = engine.output()
    # Whole lines only: the engine may be writing the last one.
    lines = [
        json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line[:1] == "{"
    ]
    return [
        line
        for line in lines
        if str(line.get("event")).startswith(event) and line.get("reason") == reason
    ]


def test_a_replaced_rules_directory_is_still_watched(tmp_path: Path) -> None:
    with Receiver() as receiver:
        engine = start_engine(tmp_path, receiver, env={"PAYOUT_URL": receiver.url + "/payouts"})
        rules = tmp_path / "rules"
        staged = tmp_path / "staged"
        try:
            with client(engine) as api:
                first = rules_state(api)["version"]
                for round_ in range(2):  # a deploy tool swaps the directory, twice
                    shutil.copytree(rules, staged)
                    (staged / "payouts.ownly").write_text(
                        PAYOUT_RULE.replace("5s", f"{5 + round_}s"), encoding="utf-8"
                    )
                    shutil.rmtree(rules)
                    staged.rename(rules)
                    before = rules_state(api)["version"]
                    wait_until(lambda b=before: rules_state(api)["version"] != b)
                assert rules_state(api)["version"] != first
                assert rules_state(api)["last_failure"] is None
        finally:
            assert engine.stop() == 0
