"""``ownly graph`` and ``ownly new workflow``: the rule files here, no engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ownly(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_graph_draws_a_workflow_of_the_rules_here(project: Path) -> None:
    result = ownly("graph", "failed_payment_follow_up")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("flowchart TD\n")
    assert '    n2 -->|"timeout"| n3' in result.output


def test_graph_reads_the_paths_and_templates_it_is_given(project: Path) -> None:
    (project / "elsewhere").mkdir()
    shutil.move(project / "rules", project / "elsewhere" / "rules")
    shutil.move(project / "templates", project / "elsewhere" / "mail")
    args = ["elsewhere/rules", "--templates", "elsewhere/mail", "--format", "dot"]
    result = ownly("graph", "kyc_welcome", *args)
    assert result.exit_code == 0, result.output
    assert '  "s1" [label="s1\\nsend_email kyc_welcome", shape=box];' in result.output


def test_graph_of_an_unknown_workflow_says_what_it_may_be(project: Path) -> None:
    result = ownly("graph", "kyc_welcom")
    assert result.exit_code == 1
    assert "no workflow named 'kyc_welcom'; did you mean 'kyc_welcome'?" in result.output


def test_graph_of_rules_that_do_not_compile_shows_their_diagnostics(project: Path) -> None:
    (project / "rules" / "broken.ownly").write_text("workflow w {\n  on nope.event\n")
    result = ownly("graph", "kyc_welcome")
    assert result.exit_code == 1
    assert "rules/broken.ownly:" in result.output and "error[E003]" in result.output


def test_new_workflow_writes_a_file_that_compiles(project: Path) -> None:
    result = ownly(
        "new",
        "workflow",
        "notices",
        "--from",
        "payout_notice",
        "--set",
        "concurrency=3",
        "--set",
        'description=Say "hi" = now',
    )
    assert (result.exit_code, result.output) == (0, "wrote rules/notices.ownly\n")
    text = (project / "rules" / "notices.ownly").read_text(encoding="utf-8")
    assert "workflow notices {" in text
    assert '  description = "Say \\"hi\\" = now"\n' in text
    assert "  concurrency 3\n" in text
    assert ownly("check").exit_code == 0


def test_new_workflow_never_overwrites(project: Path) -> None:
    kept = project / "rules" / "notices.ownly"
    kept.write_text("# mine\n")
    result = ownly("new", "workflow", "notices", "--from", "payout_notice")
    assert result.exit_code == 1
    assert "rules/notices.ownly exists: it is not overwritten" in result.output
    assert kept.read_text() == "# mine\n"


def test_new_workflow_that_does_not_compile_is_removed(project: Path) -> None:
    args = ["--from", "welcome_series", "--set", "event=user.created", "--dir", "more/flows"]
    result = ownly("new", "workflow", "hello", *args)
    assert result.exit_code == 1
    assert "more/flows/hello.ownly:9:3: error[E031]" in result.output
    assert "more/flows/hello.ownly does not compile with the rules here: removed" in result.output
    assert not (project / "more" / "flows").exists()


def test_new_workflow_with_a_taken_name_is_removed(project: Path) -> None:
    result = ownly("new", "workflow", "payout_notice", "--from", "payout_notice", "--dir", "new")
    assert result.exit_code == 1
    assert "error[E010]" in result.output
    assert not (project / "new" / "payout_notice.ownly").exists()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--from", "nope"], 1, "error: no workflow template 'nope'; there are: "),
        (["--from", "payout_notice", "--set", "concurrency"], 2, "'concurrency' is not KEY=VALUE"),
        (["--from", "payout_notice", "--set", "=3"], 2, "'=3' is not KEY=VALUE"),
        (["--from", "payout_notice", "--set", "attempts=1", "--set", "attempts=2"], 2, "twice"),
        (["--from", "payout_notice", "--set", "atempts=1"], 1, "did you mean 'attempts'?"),
        (["--from", "scheduled_digest"], 1, "needs a value for url_env"),
        ([], 2, "Missing option '--from'"),
    ],
)
def test_new_workflow_refuses_bad_values_and_writes_nothing(
    project: Path, args: list[str], code: int, says: str
) -> None:
    result = ownly("new", "workflow", "made", *args)
    assert result.exit_code == code, result.output
    assert says in result.output
    assert not (project / "rules" / "made.ownly").exists()


def test_new_workflow_with_a_bad_name_writes_nothing(project: Path) -> None:
    result = ownly("new", "workflow", "../up", "--from", "payout_notice")
    assert result.exit_code == 1
    assert "error: the workflow's name must be a name of letters" in result.output
    assert sorted(p.name for p in project.iterdir()) == ["rules", "templates"]
