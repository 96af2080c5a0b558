"""`ownly check`, `ownly fmt` and `ownly simulate`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from engine.rules.cli import check, fmt, simulate
from tests.unit.dsl.support import Rules

ROOT = Path(__file__).parents[3]
HEAD = 'webhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n'
BROKEN = HEAD + "  events = [deal.fundd]\n}\n"
WARNS = HEAD + "  events = [deal.funded, nope.*]\n}\n"


def test_check_passes_on_the_shipped_rules() -> None:
    result = CliRunner().invoke(
        check, [str(ROOT / "rules"), "--templates", str(ROOT / "templates"), "--strict"]
    )
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output


def test_check_reports_like_a_compiler_and_exits_1(rules: Rules) -> None:
    (rules.root / "case.ownly").write_text(BROKEN)
    result = CliRunner().invoke(check, ["base.ownly", "case.ownly", "--templates", "templates"])
    assert result.exit_code == 1
    assert "case.ownly:4:13: error[E011]: unknown event type 'deal.fundd'" in result.output
    assert "   4 |   events = [deal.fundd]" in result.output
    assert "^~~~~~~~~~" in result.output
    assert "hint: did you mean 'deal.funded'?" in result.output


def test_check_json_output(rules: Rules) -> None:
    (rules.root / "case.ownly").write_text(BROKEN)
    args = ["base.ownly", "case.ownly", "--templates", "templates", "--format", "json"]
    result = CliRunner().invoke(check, args)
    assert result.exit_code == 1
    start = result.output.index("[")
    (diagnostic,) = json.loads(result.output[start : result.output.rindex("]") + 1])
    assert diagnostic["code"] == "E011"
    assert (diagnostic["line"], diagnostic["column"]) == (4, 13)
    assert diagnostic["severity"] == "error"


def test_warnings_fail_only_with_strict(rules: Rules) -> None:
    (rules.root / "case.ownly").write_text(WARNS)
    args = ["base.ownly", "case.ownly", "--templates", "templates"]
    assert CliRunner().invoke(check, args).exit_code == 0
    assert CliRunner().invoke(check, [*args, "--strict"]).exit_code == 1


def test_check_env_requires_variables(rules: Rules) -> None:
    args = ["base.ownly", "--templates", "templates", "--env"]
    missing = CliRunner().invoke(check, args, env={"OPS_SECRET": None, "DOCUSIGN_SECRET": None})
    assert missing.exit_code == 1
    assert "environment variable OPS_SECRET is not set" in missing.output
    present = CliRunner().invoke(check, args, env={"OPS_SECRET": "s", "DOCUSIGN_SECRET": "d"})
    assert present.exit_code == 0, present.output


def test_usage_errors_exit_2() -> None:
    assert CliRunner().invoke(check, ["--format", "xml"]).exit_code == 2
    assert CliRunner().invoke(check, ["no/such/path.ownly"]).exit_code == 2


def test_fmt_check_then_fmt(rules: Rules) -> None:
    path = rules.root / "case.ownly"
    path.write_text("const  a=1\n")
    result = CliRunner().invoke(fmt, ["--check", "case.ownly"])
    assert result.exit_code == 1
    assert "would reformat case.ownly" in result.output
    assert path.read_text() == "const  a=1\n"
    assert CliRunner().invoke(fmt, ["case.ownly"]).exit_code == 0
    assert path.read_text() == "const a = 1\n"
    assert CliRunner().invoke(fmt, ["--check", "case.ownly"]).exit_code == 0


def test_fmt_refuses_a_file_that_does_not_parse(rules: Rules) -> None:
    path = rules.root / "case.ownly"
    path.write_text("webhook {\n}\n")
    result = CliRunner().invoke(fmt, ["case.ownly"])
    assert result.exit_code == 1
    assert "error[E001]" in result.output
    assert path.read_text() == "webhook {\n}\n"


def test_fmt_shows_every_syntax_error_of_a_file(rules: Rules) -> None:
    text = "webhook a {\n  url = = 1\n}\n\nwebhook b {\n  url = = 2\n}\n"
    (rules.root / "case.ownly").write_text(text)
    result = CliRunner().invoke(fmt, ["case.ownly"])
    assert result.exit_code == 1
    assert "case.ownly:2:9: error[E001]" in result.output
    assert "case.ownly:6:9: error[E001]" in result.output


def test_simulate_says_what_fires_and_why_the_rest_does_not(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "investment.created", "data": {"amount": 5}}))
    args = [str(event), str(ROOT / "rules"), "--templates", str(ROOT / "templates")]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    assert "skips   webhook crm_sync" in result.output
    assert "event.data.amount >= 10000 is false" in result.output


def test_simulate_renders_emails(tmp_path: Path) -> None:
    data = {
        "user_id": "u_1",
        "email": "ada@example.com",
        "name": "Ada",
        "accredited": True,
        "approved_at": "2026-01-01T00:00:00Z",
    }
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "user.kyc_approved", "data": data}))
    args = [
        str(event),
        str(ROOT / "rules"),
        "--templates",
        str(ROOT / "templates"),
        "--format",
        "json",
    ]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (fired,) = report["fired"]
    assert fired["name"] == "kyc_welcome"
    (email,) = fired["emails"]
    assert email["to"] == "ada@example.com"
    assert email["subject"] == "Welcome to OWNLY, Ada: you are verified"
    assert "private offerings" in email["html"]
    assert "<style" not in email["html"]  # as the engine sends it: its CSS inlined
    assert email["text"].startswith("Welcome, Ada\n")

    shown = CliRunner().invoke(simulate, args[:-2])
    assert "          | Welcome, Ada\n" in shown.output  # the text part, under the subject


def test_simulate_rejects_unknown_event_types(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"type": "deal.fundd", "data": {}}))
    args = [str(event), str(ROOT / "rules"), "--templates", str(ROOT / "templates")]
    result = CliRunner().invoke(simulate, args)
    assert result.exit_code == 1
    assert "did you mean 'deal.funded'?" in result.output


def test_paths_default_to_the_configuration_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no rules/ here: only the configuration can find them

    @click.group()
    @click.pass_context
    def root(ctx: click.Context) -> None:
        ctx.obj = tmp_path / "ownly.toml"

    root.add_command(check)
    (tmp_path / "ownly.toml").write_text(
        f'[rules]\npaths = ["{ROOT / "rules"}"]\n[templates]\npath = "{ROOT / "templates"}"\n'
        '[api]\nkeys = [{ name = "ci", secret = "${NOT_SET_IN_CI}" }]\n'
    )
    result = CliRunner().invoke(root, ["check", "--strict"])
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output
