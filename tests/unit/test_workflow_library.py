"""The shipped workflow templates: filled, compiled, and bad values refused."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from dsl import Compilation, compile_rules, rule_files
from dsl.fmt import format_source
from engine.workflows.authoring import library
from engine.workflows.authoring.library import (
    InvalidName,
    InvalidValue,
    LibraryError,
    MissingPlaceholder,
    UnknownPlaceholder,
    UnknownTemplate,
    render,
    templates,
)

ROOT = Path(__file__).parents[2]
NAMES = [t.name for t in templates()]
# What a template needs beyond its defaults.
REQUIRED = {"scheduled_digest": {"url_env": "DIGEST_URL"}}


def _compile(tmp_path: Path, text: str, name: str = "made") -> Compilation:
    made = tmp_path / f"{name}.ownly"
    made.write_text(text, encoding="utf-8")
    paths = [*rule_files([ROOT / "rules"]), made]
    return compile_rules(paths, templates_dir=ROOT / "templates")


def test_five_templates_say_what_they_are_and_what_each_placeholder_takes() -> None:
    assert NAMES == [
        "document_signature_chase",
        "payment_follow_up",
        "payout_notice",
        "scheduled_digest",
        "welcome_series",
    ]
    for template in templates():
        assert template.description
        assert template.placeholders
        for placeholder in template.placeholders:
            assert placeholder.description, (template.name, placeholder.name)


@pytest.mark.parametrize("name", NAMES)
def test_each_file_uses_exactly_the_placeholders_listed(name: str) -> None:
    (template,) = (t for t in templates() if t.name == name)
    used = set(string.Template(template.text()).get_identifiers())
    assert used == {"workflow"} | {p.name for p in template.placeholders}


def test_the_library_folder_holds_the_templates_and_nothing_else() -> None:
    assert sorted(p.stem for p in library.FOLDER.iterdir()) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_each_template_compiles_with_the_shipped_rules(tmp_path: Path, name: str) -> None:
    text = render(name, f"made_{name}", REQUIRED.get(name, {}))
    compilation = _compile(tmp_path, text)
    assert compilation.diagnostics == (), compilation.render()
    assert compilation.rule_set is not None
    assert f"made_{name}" in compilation.rule_set.workflows
    assert format_source(text, "made.ownly") == text, "a template is in the canonical layout"


def test_values_are_written_into_the_workflow(tmp_path: Path) -> None:
    description = 'Say "hi" \\ to $everyone\nat once'
    values = {"description": description, "follow_up_after": "2w", "event": "user.created"}
    text = render("welcome_series", "hello", values)
    compilation = _compile(tmp_path, text)
    # user.created has no `accredited`, which the shipped kyc_welcome template takes.
    assert [d.code for d in compilation.errors] == ["E031", "E031"]
    text = render("welcome_series", "hello", {**values, "event": "user.kyc_approved"})
    compilation = _compile(tmp_path, text)
    assert compilation.rule_set is not None
    workflow = compilation.rule_set.workflows["hello"]
    assert workflow.description == description
    assert workflow.steps[1].timeout_seconds == 14 * 86400


def test_a_name_taken_by_a_shipped_workflow_does_not_compile(tmp_path: Path) -> None:
    compilation = _compile(tmp_path, render("payout_notice", "payout_notice", {}))
    assert [d.code for d in compilation.errors] == ["E010"]


@pytest.mark.parametrize(
    ("template", "workflow", "values", "error", "field", "says"),
    [
        ("nope", "w", {}, UnknownTemplate, None, "no workflow template 'nope'; there are: "),
        ("welcome_serie", "w", {}, UnknownTemplate, None, "did you mean 'welcome_series'?"),
        ("payout_notice", "1st", {}, InvalidName, None, "the workflow's name must be"),
        ("payout_notice", "a-b", {}, InvalidName, None, "not 'a-b'"),
        ("payout_notice", "x" * 101, {}, InvalidName, None, "at most 100"),
        ("payout_notice", "w", {"concurency": "2"}, UnknownPlaceholder, "concurency", "did you"),
        ("payout_notice", "w", {"workflow": "x"}, UnknownPlaceholder, "workflow", "no placeholder"),
        ("scheduled_digest", "w", {}, MissingPlaceholder, "url_env", "needs a value for url_env"),
        ("payout_notice", "w", {"concurrency": "0"}, InvalidValue, "concurrency", "whole number"),
        ("payout_notice", "w", {"attempts": "3 }"}, InvalidValue, "attempts", "whole number"),
        ("welcome_series", "w", {"follow_up_after": "3"}, InvalidValue, "follow_up_after", "30m"),
        ("welcome_series", "w", {"event": "user"}, InvalidValue, "event", "an event type"),
        ("welcome_series", "w", {"event": "a.b }\n"}, InvalidValue, "event", "an event type"),
        ("welcome_series", "w", {"welcome_template": "a b"}, InvalidValue, "welcome_template", ""),
        ("welcome_series", "w", {"description": ""}, InvalidValue, "description", "1 to 500"),
        ("welcome_series", "w", {"description": "x" * 501}, InvalidValue, "description", ""),
        ("welcome_series", "w", {"description": 5}, InvalidValue, "description", "a text"),
        ("scheduled_digest", "w", {"url_env": "lower"}, InvalidValue, "url_env", "variable name"),
    ],
)
def test_bad_requests_are_clear_errors(
    template: str,
    workflow: str,
    values: dict[str, str],
    error: type[LibraryError],
    field: str | None,
    says: str,
) -> None:
    with pytest.raises(error) as raised:
        render(template, workflow, values)
    assert raised.value.field == field
    assert says in raised.value.message
