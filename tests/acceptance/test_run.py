"""`ownly run` as a user starts it: ready, healthy, measured, and stopped cleanly."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.process import EngineProcess, ownly, write_project
from tests.support.rules import ROOT, investment

pytestmark = pytest.mark.acceptance


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_project(tmp_path)
    return tmp_path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_health_readiness_metrics_and_stops_on_signal(
    project: Path, signum: int
) -> None:
    engine = EngineProcess(project)
    try:
        ready = engine.wait_ready()
        assert ready.json() == {"status": "ready"}

        health = httpx.get(engine.url + "/healthz", headers={"X-Request-Id": "req-42"})
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        assert health.headers["X-Request-Id"] == "req-42"

        metrics = httpx.get(engine.url + "/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["Content-Type"].startswith("text/plain")
        assert 'ownly_http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in (
            metrics.text
        )
        assert "ownly_ready 1.0" in metrics.text

        started = time.monotonic()
        assert engine.stop(signum, timeout=5) == 0
        assert time.monotonic() - started < 5
    finally:
        engine.kill()

    log = engine.output()
    assert '"event":"http.request"' in log
    assert '"request_id":"req-42"' in log
    assert '"path":"/healthz"' in log
    assert "server.stopped" in log
    key = (project / "var" / "dev-key").read_text().strip()
    assert f"development API key: {key}" in log
    assert log.count(key) == 1, "the key is printed once for the operator, never logged"


def test_run_creates_and_migrates_a_new_database(project: Path) -> None:
    engine = EngineProcess(project)
    try:
        engine.wait_ready()
    finally:
        assert engine.stop() == 0
    with sqlite3.connect(project / "var" / "ownly.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"events", "jobs", "rule_sets", "alembic_version"} <= tables
    assert journal == "wal"


def test_production_mode_needs_a_key_and_creates_none(project: Path) -> None:
    result = ownly("run", cwd=project, env={"OWNLY_SERVER_MODE": "production"})
    assert result.returncode == 1
    assert "production mode needs at least one API key" in result.stderr
    assert not (project / "var" / "dev-key").exists()


def test_production_mode_needs_the_key_that_signs_email_links(project: Path) -> None:
    (project / "ownly.toml").write_text(
        (project / "ownly.toml").read_text()
        + "[[api.keys]]\nname = 'ops'\nscopes = ['admin']\nkey_env = 'OPS_KEY'\n"
    )
    env = {"OWNLY_SERVER_MODE": "production", "OPS_KEY": "k"}
    result = ownly("run", cwd=project, env=env)
    assert result.returncode == 1
    assert _one_error_line(result) == (
        "error: [email] tracking_key_env: the environment variable OWNLY_EMAIL_TRACKING_KEY "
        "(the key that signs tracking and unsubscribe links) is not set"
    )
    assert not (project / "var" / "dev.env").exists()


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line; everything else on stderr must be a structured log line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for line in lines:
        if line not in errors:
            assert isinstance(json.loads(line), dict), line
    return errors[0]


def test_port_in_use_is_one_line_and_exit_1(project: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = ownly("run", cwd=project, env={"OWNLY_SERVER_PORT": str(port)}, timeout=30)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert "address already in use" in line.lower()


def test_missing_config_is_one_line_and_exit_1(tmp_path: Path) -> None:
    result = ownly("run", cwd=tmp_path)
    assert result.returncode == 1
    assert _one_error_line(result) == "error: ownly.toml: configuration file not found"


def test_malformed_config_is_one_line_and_exit_1(project: Path) -> None:
    (project / "ownly.toml").write_text("[server\nport = 1\n")
    result = ownly("run", cwd=project)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert line.startswith("error: ownly.toml: not valid TOML")
    assert "line 1" in line


def test_unreachable_database_path_is_one_line_and_exit_1(project: Path) -> None:
    (project / "blocker").write_text("a file, not a directory")
    result = ownly("run", cwd=project, env={"OWNLY_DATABASE_URL": "sqlite:///blocker/ownly.db"})
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "cannot create the database directory" in line
    assert "blocker" in line


def test_read_only_database_is_one_line_and_exit_1(project: Path) -> None:
    database = project / "ro.db"
    sqlite3.connect(database).close()
    url = f"sqlite:///file:{database}?mode=ro&uri=true"
    result = ownly("run", cwd=project, env={"OWNLY_DATABASE_URL": url})
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "read-only" in line
    assert str(database) in line


def test_database_from_a_newer_version_is_refused(project: Path) -> None:
    assert ownly("migrate", cwd=project).returncode == 0
    with sqlite3.connect(project / "var" / "ownly.db") as conn:
        # One row per head of the branches: the newer Ownly's one head replaces them.
        conn.execute("DELETE FROM alembic_version")
        conn.execute("INSERT INTO alembic_version (version_num) VALUES ('9999_future')")
    for command in ("run", "migrate"):
        result = ownly(command, cwd=project)
        assert result.returncode == 1
        line = _one_error_line(result)
        assert "'9999_future'" in line
        assert "upgrade Ownly" in line


def test_the_shipped_project_runs_with_nothing_set(tmp_path: Path) -> None:
    """What `make run` does on a fresh checkout: shipped config, rules and templates."""
    for name in ("ownly.toml", "rules", "templates"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    engine = EngineProcess(tmp_path)
    try:
        engine.wait_ready()
        key = (tmp_path / "var" / "dev-key").read_text().strip()
        answer = httpx.post(
            engine.url + "/api/events",
            json=investment("evt_quickstart", amount="25000"),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 202, answer.text
        assert answer.json()["jobs"] == 1  # crm_sync: investments of 10,000 and more
        deadline = time.monotonic() + 20
        while '"event":"dev_sink.received"' not in engine.output():
            assert time.monotonic() < deadline, engine.output()
            time.sleep(0.05)
    finally:
        assert engine.stop() == 0
    log = engine.output()
    assert '"sink":"crm_webhook_url"' in log
    assert '"outcome":"delivered"' in log
    dev_env = (tmp_path / "var" / "dev.env").read_text()
    assert "CRM_WEBHOOK_SECRET=whsec_" in dev_env
    secret = dev_env.split("CRM_WEBHOOK_SECRET=")[1].splitlines()[0]
    assert secret not in log, "generated secrets are never logged"


def test_production_refuses_rules_whose_variables_are_missing(project: Path) -> None:
    (project / "rules" / "hooks.ownly").write_text(
        "event deal.created {\n  deal_id: string\n}\n\n"
        "webhook partner {\n"
        '  url    = env("PARTNER_URL")\n'
        '  secret = env("PARTNER_SECRET")\n'
        "  events = [deal.created]\n"
        "}\n"
    )
    (project / "ownly.toml").write_text(
        (project / "ownly.toml").read_text()
        + "[[api.keys]]\nname = 'ops'\nscopes = ['admin']\nkey_env = 'OPS_KEY'\n"
    )
    result = ownly(
        "run",
        cwd=project,
        env={"OWNLY_SERVER_MODE": "production", "OPS_KEY": "k", "PARTNER_URL": "https://p.example"},
    )
    assert result.returncode == 1
    assert "error: the rule files do not compile (1 error)" in result.stderr
    assert "PARTNER_SECRET" in result.stderr
    assert "hooks.ownly:7:" in result.stderr
    assert not (project / "var" / "dev.env").exists()
