"""``ownly workflows ...`` against the engine as a process; ``ownly graph`` and ``ownly new
workflow`` with no engine, as an operator runs them."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.engine import KEY, READ_KEY, client, start_engine
from tests.support.process import EngineProcess, ownly, write_project
from tests.support.receiver import Receiver
from tests.support.rules import RECEIVER_WEBHOOK, ROOT

pytestmark = pytest.mark.acceptance

HELD = """
workflow held {
  description = "Waits a day, so that a run stays open"
  on manual
  set note = event.data.note
  wait 1d
  set done = true
}

workflow automatic {
  on deal.created
  set seen = true
}
"""


@pytest.fixture
def engine(tmp_path: Path, receiver: Receiver) -> Iterator[EngineProcess]:
    process = start_engine(tmp_path, receiver, webhooks=RECEIVER_WEBHOOK + HELD)
    try:
        yield process
    finally:
        process.kill()


def cli(engine: EngineProcess, *args: str, key: str = KEY) -> tuple[int, str]:
    env = {"OWNLY_API_KEY": key}
    done = ownly("workflows", *args, "--url", engine.url, cwd=engine.cwd, env=env)
    return done.returncode, done.stdout + done.stderr


def run_of(engine: EngineProcess, run_id: str) -> dict[str, Any]:
    with client(engine) as api:
        answer = api.get(f"/api/workflows/executions/{run_id}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def asleep(engine: EngineProcess, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        run = run_of(engine, run_id)
        if run["status"] == "sleeping":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} is not sleeping: {run}")


def rows(out: str) -> dict[str, list[str]]:
    """The rows of a table the CLI printed, by their first cell."""
    cells = [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in out.splitlines()
        if line.startswith("│")
    ]
    return {row[0]: row[1:] for row in cells}


def started(out: str) -> str:
    found = re.match(r"started (run_\w+)", out.strip())
    assert found is not None, out
    return found.group(1)


def test_an_operator_starts_follows_reruns_and_cancels_a_run(engine: EngineProcess) -> None:
    code, listed = cli(engine, "list")
    assert code == 0, listed
    table = rows(listed)
    assert table["held"][:4] == ["active", "manual", "0", "0"]
    assert table["held"][-1] == "rules/webhooks.ownly:10"
    assert table["automatic"][:2] == ["active", "event deal.created"]

    data = engine.cwd / "input.json"
    data.write_text(json.dumps({"note": "from the CLI"}))
    code, out = cli(engine, "execute", "held", "--data", str(data))
    assert code == 0, out
    assert out.strip().endswith("(pending)")
    first = started(out)
    assert asleep(engine, first)["variables"] == {"note": "from the CLI"}

    code, out = cli(engine, "runs", "held")
    assert code == 0, out
    assert rows(out)[first][:3] == ["sleeping", "manual", "s2"]
    code, out = cli(engine, "runs", "held", "--status", "completed", "--json")
    assert code == 0, out
    assert json.loads(out) == {"executions": [], "next_cursor": None}

    code, out = cli(engine, "show", first)
    assert code == 0, out
    assert out.startswith(f"run {first} of held: sleeping")
    steps = rows(out)
    assert steps["note"][:3] == ["1", "set", "completed"]
    assert steps["s2"][:3] == ["1", "wait", "sleeping"]

    code, out = cli(engine, "rerun", first, "--from", "s2")
    assert code == 0, out
    second = started(out)
    assert out.strip() == f"started {second}: a rerun of {first} from s2"
    again = asleep(engine, second)
    assert again["rerun_of"] == first
    assert [(s["step"], s["status"]) for s in again["steps"]] == [
        ("note", "completed"),
        ("s2", "sleeping"),
    ]

    code, out = cli(engine, "cancel", first)
    assert (code, out.strip()) == (0, f"{first}: cancelled")
    assert run_of(engine, first)["status"] == "cancelled"
    assert run_of(engine, second)["status"] == "sleeping"
    code, out = cli(engine, "show", first, "--json")
    assert code == 0, out
    assert json.loads(out)["status"] == "cancelled"


def test_a_paused_workflow_starts_no_run_until_activated(engine: EngineProcess) -> None:
    assert cli(engine, "pause", "held") == (0, "held: paused\n")
    code, out = cli(engine, "execute", "held")
    assert code == 1
    assert out.startswith("error: 409 not_started")
    assert cli(engine, "activate", "held") == (0, "held: active\n")
    code, out = cli(engine, "execute", "held")
    assert code == 0, out
    started(out)


@pytest.mark.parametrize(
    ("args", "key", "expected"),
    [
        (("show", "run_nope"), KEY, "404 not_found"),
        (("cancel", "run_nope"), KEY, "404 not_found"),
        (("execute", "automatic"), KEY, "409 not_manual"),
        (("execute", "nope"), KEY, "404 not_found"),
        (("pause", "nope"), KEY, "404 not_found"),
        (("runs", "held", "--status", "asleep"), KEY, "400 invalid_status"),
        (("list",), READ_KEY, "403 forbidden"),
    ],
)
def test_api_errors_are_one_readable_line_and_exit_1(
    engine: EngineProcess, args: tuple[str, ...], key: str, expected: str
) -> None:
    code, out = cli(engine, *args, key=key)
    assert code == 1
    assert out.startswith(f"error: {expected}")
    assert "Traceback" not in out


def test_a_rerun_from_a_step_the_workflow_lacks_is_refused(engine: EngineProcess) -> None:
    code, out = cli(engine, "execute", "held")
    assert code == 0, out
    code, out = cli(engine, "rerun", started(out), "--from", "s9")
    assert code == 1
    assert out.startswith("error: 422 unknown_step: workflow held has no step 's9'")


def _project(root: Path) -> None:
    write_project(root)
    shutil.copytree(ROOT / "rules", root / "rules", dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", root / "templates", dirs_exist_ok=True)


def test_graph_and_new_workflow_need_no_engine(tmp_path: Path) -> None:
    _project(tmp_path)
    done = ownly("graph", "collect_investment", "--format", "dot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('digraph "collect_investment" {')
    assert '"s2.b2.s2" -> "payment" [label="retry", style=dashed];' in done.stdout

    args = (
        "new",
        "workflow",
        "digest",
        "--from",
        "scheduled_digest",
        "--set",
        "url_env=DIGEST_URL",
    )
    done = ownly(*args, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "wrote rules/digest.ownly\n"), done.stderr
    assert ownly("check", cwd=tmp_path).returncode == 0
    done = ownly("graph", "digest", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'n1["s1<br>http POST env(#quot;DIGEST_URL#quot;)"]' in done.stdout
