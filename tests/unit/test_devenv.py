"""Development stand-ins for env() variables: generated once, kept private, never overriding."""

from __future__ import annotations

import io
import stat
from pathlib import Path

from engine.core.logs import make_logger
from engine.http.devenv import DevEnvironment


def test_missing_variables_get_stable_private_values(tmp_path: Path) -> None:
    environ = {"SET_URL": "https://real.example/hook"}
    dev = DevEnvironment(
        tmp_path, environ, base_url="http://127.0.0.1:8080", logger=make_logger(io.StringIO())
    )
    filled = dev.fill(["CRM_WEBHOOK_URL", "CRM_WEBHOOK_SECRET", "API_TOKEN", "REGION", "SET_URL"])
    assert filled == ["CRM_WEBHOOK_URL", "CRM_WEBHOOK_SECRET", "API_TOKEN", "REGION"]
    assert environ["SET_URL"] == "https://real.example/hook"
    assert environ["CRM_WEBHOOK_URL"] == "http://127.0.0.1:8080/dev/sink/crm_webhook_url"
    assert environ["CRM_WEBHOOK_SECRET"].startswith("whsec_")
    assert environ["API_TOKEN"].startswith("dev_")
    assert environ["REGION"] == "dev-region"
    assert stat.S_IMODE((tmp_path / "dev.env").stat().st_mode) == 0o600

    again: dict[str, str] = {}
    DevEnvironment(
        tmp_path, again, base_url="http://127.0.0.1:8080", logger=make_logger(io.StringIO())
    ).fill(["CRM_WEBHOOK_SECRET"])
    assert again["CRM_WEBHOOK_SECRET"] == environ["CRM_WEBHOOK_SECRET"], "the same on restart"
