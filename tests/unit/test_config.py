"""Configuration: every error names the file or variable, the key, and a suggestion."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from engine.app import load_settings
from engine.config import Seconds, Section
from engine.config import load_settings as load_config
from engine.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ownly.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_the_file_is_empty(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})
    config = settings.config
    assert (config.server.host, config.server.port, config.server.mode) == (
        "127.0.0.1",
        8080,
        "development",
    )
    assert config.database.synchronous == "FULL"
    assert settings.database_url.drivername == "sqlite+aiosqlite"
    assert settings.database_url.database == str(tmp_path.resolve() / "var" / "ownly.db")
    assert settings.rule_paths == [tmp_path.resolve() / "rules"]
    assert settings.api_keys == ()


def test_the_shipped_configuration_is_valid() -> None:
    shipped = Path(__file__).parents[2] / "ownly.toml"
    settings = load_settings(shipped, {})
    assert settings.config.server.mode == "development"
    assert settings.config.database.synchronous == "FULL"


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        pytest.param(
            "[server]\nhost = '0.0.0.0'\nprot = 9000\n",
            {},
            "ownly.toml:3: [server] prot: unknown key; did you mean 'port'?",
            id="typo-in-key",
        ),
        pytest.param(
            "[sever]\nport = 9000\n",
            {},
            "ownly.toml:1: [sever]: unknown key; did you mean 'server'?",
            id="typo-in-section",
        ),
        pytest.param(
            "[server]\nport = 'eighty'\n",
            {},
            "ownly.toml:2: [server] port: Input should be a valid integer",
            id="wrong-type",
        ),
        pytest.param(
            "[server]\nport = 70000\n",
            {},
            "ownly.toml:2: [server] port: Input should be less than or equal to 65535",
            id="out-of-range",
        ),
        pytest.param(
            "[server]\nmode = 'prod'\n",
            {},
            "ownly.toml:2: [server] mode: Input should be 'development' or 'production'",
            id="bad-choice",
        ),
        pytest.param(
            "[server]\nshutdown_grace = 'soon'\n",
            {},
            "ownly.toml:2: [server] shutdown_grace: Value error, expected a duration",
            id="bad-duration",
        ),
        pytest.param(
            "[retention]\njobs = true\n",
            {},
            "ownly.toml:2: [retention] jobs: Value error, must not be true or false",
            id="boolean-duration",
        ),
        pytest.param(
            "[retention]\nbatch = false\n",
            {},
            "ownly.toml:2: [retention] batch: Value error, must not be true or false",
            id="boolean-number",
        ),
        pytest.param(
            '[retention]\ninterval = "1ms"\n',
            {},
            "ownly.toml:2: [retention] interval: Input should be greater than or equal to 1",
            id="retention-too-often",
        ),
        pytest.param(
            "[database]\nsynchronous = 'SOMETIMES'\n",
            {},
            "ownly.toml:2: [database] synchronous: Input should be 'OFF', 'NORMAL', 'FULL'",
            id="bad-synchronous",
        ),
        pytest.param(
            "[database]\nurl = 'not a url'\n",
            {},
            "ownly.toml:2: [database] url: not a database URL",
            id="bad-database-url",
        ),
        pytest.param(
            "[[api.keys]]\nname = 'platform'\nscopes = ['events:write']\n"
            "key_env = 'PLATFORM_KEY'\n",
            {},
            "ownly.toml:4: [api.keys] platform: environment variable PLATFORM_KEY is not set",
            id="missing-key-variable",
        ),
        pytest.param(
            "[[api.keys]]\nname = 'a'\nscopes = ['events:write']\nkey_env = 'A'\n"
            "[[api.keys]]\nname = 'b'\nscopes = ['evnts:write']\nkey_env = 'B'\n",
            {"A": "x", "B": "y"},
            "ownly.toml:7: [api.keys][1] scopes.0: Input should be 'admin', 'events:read'",
            id="bad-scope-in-second-key",
        ),
        pytest.param(
            "[[api.keys]]\nname = 'a'\nscopes = ['admin']\nkey = 'sk_live_123'\n",
            {},
            "ownly.toml:4: [api.keys][0] key: unknown key; did you mean 'key_env'?",
            id="secret-in-file",
        ),
        pytest.param(
            "[[api.keys]]\nname = 'a'\nkey_env = 'A'\n",
            {"A": "x"},
            "ownly.toml:1: [api.keys][0] scopes: required key is missing",
            id="missing-required",
        ),
        pytest.param(
            "",
            {"OWNLY_SERVER_PORT": "eighty"},
            "OWNLY_SERVER_PORT: [server] port: Input should be a valid integer",
            id="env-wrong-type",
        ),
        pytest.param(
            "",
            {"OWNLY_SERVER_PROT": "9000"},
            "OWNLY_SERVER_PROT: [server] prot: unknown key; did you mean 'port'?",
            id="env-typo",
        ),
        pytest.param(
            "",
            {"OWNLY_API_KEYS": "x"},
            "OWNLY_API_KEYS: [api] keys: can only be set in the file",
            id="env-nested",
        ),
        pytest.param(
            "server = 3\n",
            {"OWNLY_SERVER_PORT": "9000"},
            "ownly.toml:1: [server] must be a table",
            id="section-not-a-table",
        ),
    ],
)
def test_errors_name_the_origin_and_the_key(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ)
    if expected.startswith("ownly.toml"):
        expected = str(tmp_path / expected)
    lines = caught.value.message.splitlines()
    assert any(line.startswith(expected) for line in lines), caught.value.message


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 1\nmode = 'x'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    lines = caught.value.message.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("[server] prot: unknown key; did you mean 'port'?")
    assert "[server] mode:" in lines[1]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ownly\.toml: configuration file not found$"):
        load_settings(tmp_path / "ownly.toml", {})


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ownly\.toml: not valid TOML: .*line 2"):
        load_settings(write(tmp_path, "[server]\nport = = 1\n"), {})


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8080\n[rules]\npaths = ['rules']\n")
    settings = load_settings(
        path,
        {
            "OWNLY_SERVER_PORT": "9123",
            "OWNLY_SERVER_HOST": "::1",
            "OWNLY_DATABASE_URL": "sqlite:////tmp/elsewhere.db",
            "OWNLY_RULES_PATHS": "rules, more/rules",
            "OWNLY_SERVER_SHUTDOWN_GRACE": "1500ms",
            "OWNLY_CONFIG": "ignored: names the file, not a key",
            "OWNLY_UNRELATED": "ignored: no such section",
        },
    )
    assert settings.config.server.port == 9123
    assert settings.config.server.host == "::1"
    assert settings.database_url.database == "/tmp/elsewhere.db"
    assert settings.rule_paths == [tmp_path.resolve() / "rules", tmp_path.resolve() / "more/rules"]
    assert settings.config.server.shutdown_grace == 1.5


def test_key_variables_named_like_overrides_are_not_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[api.keys]]\nname = 'ops'\nscopes = ['admin']\nkey_env = 'OWNLY_SERVER_KEY'\n",
    )
    settings = load_settings(path, {"OWNLY_SERVER_KEY": "s3cret-value"})
    assert settings.api_keys[0].secret.get_secret_value() == "s3cret-value"


@pytest.mark.parametrize(
    ("toml", "variable"),
    [
        ("", "OWNLY_EMAIL_TRACKING_KEY"),  # [email] tracking_key_env's default
        ("[email]\ntracking_key_env = 'OWNLY_EMAIL_LINKS'\n", "OWNLY_EMAIL_LINKS"),
        (
            "[[email.providers]]\ntype = 'sendgrid'\napi_key_env = 'OWNLY_EMAIL_SENDGRID'\n",
            "OWNLY_EMAIL_SENDGRID",
        ),
    ],
)
def test_secret_variables_named_like_overrides_are_not_overrides(
    tmp_path: Path, toml: str, variable: str
) -> None:
    settings = load_settings(write(tmp_path, toml), {variable: "k" * 40})
    assert settings.config.email.tracking_key_env  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="OWNLY_EMAIL_SENDR: \\[email\\] sendr: unknown key"):
        load_settings(write(tmp_path, toml), {variable: "k" * 40, "OWNLY_EMAIL_SENDR": "x"})


def test_keys_resolve_from_the_environment_and_are_redacted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[database]\nurl = 'postgresql://ownly:hunter2@db.internal/ownly'\n"
        "[[api.keys]]\nname = 'platform'\nscopes = ['events:write']\nkey_env = 'PLATFORM_KEY'\n",
    )
    settings = load_settings(path, {"PLATFORM_KEY": "pk_very_secret"})
    (key,) = settings.api_keys
    assert key.name == "platform"
    assert key.allows("events:write")
    assert not key.allows("admin")
    shown = repr(settings.redacted()) + repr(settings)
    assert "pk_very_secret" not in shown
    assert "hunter2" not in shown
    assert settings.redacted()["api"]["keys"][0] == {
        "name": "platform",
        "scopes": ["events:write"],
        "key_env": "PLATFORM_KEY",
        "key": "<redacted>",
    }
    assert settings.redacted()["database"]["url"] == "postgresql://ownly:***@db.internal/ownly"


class _Queue(Section):
    size: int = 10
    timeout: Seconds = 5.0


class _Queues(Section):
    """A table of named tables: ``[queues.<name>]``."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, _Queue] = Field(init=False)
    entries: ClassVar[type[BaseModel] | None] = _Queue


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[queues.fast]\nsize = 2\n[queues.slow]\ntimout = '1m'\n",
            "ownly.toml:4: [queues.slow] timout: unknown key; did you mean 'timeout'?",
        ),
        ("[queues.fast]\nsize = 'x'\n", "ownly.toml:2: [queues.fast] size: Input should be"),
        ("[queues]\nfast = 3\n", "ownly.toml:2: [queues.fast]: Input should be a valid"),
    ],
)
def test_an_error_in_a_named_table_names_the_table(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), {}, sections={"queues": _Queues})
    assert caught.value.message.startswith(f"{tmp_path}/{expected}"), caught.value.message


def test_named_tables_are_read_in_the_order_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[queues.slow]\ntimeout = '1m'\n[queues.fast]\nsize = 2\n")
    queues = load_config(path, {}, sections={"queues": _Queues}).section("queues")
    assert queues.model_extra == {"slow": _Queue(timeout=60.0), "fast": _Queue(size=2)}
