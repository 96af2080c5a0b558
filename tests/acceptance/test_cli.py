"""The `ownly` command: help everywhere, exit codes, redacted configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.app import migration_folders
from engine.core.migrate import head_revision
from engine.version import VERSION
from tests.support.process import ownly, write_project

pytestmark = pytest.mark.acceptance

COMMANDS = ["run", "migrate", "config", "version"]


@pytest.mark.parametrize("command", [[], *([c] for c in COMMANDS)])
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = ownly(*command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ownly")
    if not command:
        for name in COMMANDS:
            assert f"  {name} " in result.stdout


@pytest.mark.parametrize("args", [["no-such-command"], ["run", "--no-such-option"], ["--config"]])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = ownly(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Error:" in result.stderr


def test_version(tmp_path: Path) -> None:
    result = ownly("version", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"ownly {VERSION}\n")


def test_config_prints_the_effective_configuration_without_secrets(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        extra_toml=(
            "[[api.keys]]\nname = 'platform'\nscopes = ['events:write']\nkey_env = 'PLATFORM_KEY'\n"
        ),
    )
    result = ownly(
        "config",
        cwd=tmp_path,
        env={
            "PLATFORM_KEY": "pk_live_never_print_me",
            "OWNLY_SERVER_PORT": "9999",
            "OWNLY_DATABASE_URL": "postgresql://ownly:hunter2@db.internal/ownly",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "pk_live_never_print_me" not in result.stdout + result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["server"]["port"] == 9999
    assert shown["database"]["url"] == "postgresql://ownly:***@db.internal/ownly"
    assert shown["api"]["keys"] == [
        {
            "name": "platform",
            "scopes": ["events:write"],
            "key_env": "PLATFORM_KEY",
            "key": "<redacted>",
        }
    ]


def test_config_errors_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "ownly.toml").write_text("[server]\nprot = 1\n")
    plain = ownly("config", cwd=tmp_path)
    assert plain.returncode == 1
    assert plain.stderr == "error: ownly.toml:2: [server] prot: unknown key; did you mean 'port'?\n"
    debug = ownly("--debug", "config", cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "ConfigError" in debug.stderr


def test_config_file_from_option_and_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    (elsewhere / "custom.toml").write_text("[server]\nport = 7001\n")
    by_option = ownly("--config", str(elsewhere / "custom.toml"), "config", cwd=tmp_path)
    by_env = ownly("config", cwd=tmp_path, env={"OWNLY_CONFIG": str(elsewhere / "custom.toml")})
    for result in (by_option, by_env):
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        assert shown["server"]["port"] == 7001
        assert shown["database"]["url"] == f"sqlite+aiosqlite:///{elsewhere}/var/ownly.db"


def test_migrate_reports_what_it_did(tmp_path: Path) -> None:
    write_project(tmp_path)
    first = ownly("migrate", cwd=tmp_path)
    second = ownly("migrate", cwd=tmp_path)
    assert (first.returncode, second.returncode) == (0, 0)
    head = ", ".join(head_revision(migration_folders()))
    assert first.stdout == f"migrated database from empty to {head}\n"
    assert second.stdout == f"database is up to date at {head}\n"
