"""Files a template pulls in with include, extends or import are checked and versioned."""

from __future__ import annotations

import pytest

from dsl import Compilation
from tests.unit.dsl.support import Rules

TEMPLATE = 'template t {\n  subject = "Hi"\n  html = "page.html"\n  variables = ["name"]\n}\n'


def compile_page(rules: Rules, page: str, files: dict[str, str] | None = None) -> Compilation:
    (rules.templates / "page.html").write_text(page)
    for name, text in (files or {}).items():
        path = rules.templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return rules.compile(TEMPLATE)


@pytest.mark.parametrize(
    "page",
    [
        '{% include "footer.html" %}',
        '{% extends "footer.html" %}',
        '{% import "footer.html" as f %}',
        '{% from "footer.html" import sign %}',
    ],
)
def test_a_missing_referenced_file_is_an_error(rules: Rules, page: str) -> None:
    compilation = compile_page(rules, page)
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code == "E032"
    assert "'page.html' refers to 'footer.html'" in diagnostic.message
    assert "template file 'footer.html' not found" in diagnostic.message
    assert (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column) == (
        "case.ownly",
        3,
        10,
    )
    assert compilation.rule_set is None


def test_a_file_that_does_not_parse_is_an_error(rules: Rules) -> None:
    compilation = compile_page(
        rules, '<p>{{ name }}</p>{% include "footer.html" %}', {"footer.html": "a\n{% if %}"}
    )
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code == "E033"
    assert "'page.html' refers to 'footer.html': not valid Jinja2" in diagnostic.message
    assert diagnostic.span.file.endswith("templates/footer.html"), "reported in the file"
    assert diagnostic.span.line == 2


def test_files_are_followed_through_other_files_and_cycles_end(rules: Rules) -> None:
    compilation = compile_page(
        rules,
        '{% include "parts/a.html" %}',
        {
            "parts/a.html": '{% include "parts/b.html" %}{% include "page.html" %}',
            "parts/b.html": '{% include "parts/a.html" %}{% include "gone.html" %}',
        },
    )
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code == "E032"
    assert "'parts/b.html' refers to 'gone.html'" in diagnostic.message


def test_a_file_outside_the_templates_directory_is_refused(rules: Rules) -> None:
    (diagnostic,) = compile_page(rules, '{% include "../secret.html" %}').diagnostics
    assert diagnostic.code == "E022"
    assert "'page.html' refers to '../secret.html'" in diagnostic.message


@pytest.mark.parametrize(
    "page",
    [
        '{% include "gone.html" ignore missing %}',
        '{% include ["gone.html", "plain.html"] %}',
        "{% include name %}",
    ],
)
def test_optional_and_computed_names_are_no_error(rules: Rules, page: str) -> None:
    compilation = compile_page(rules, page, {"plain.html": "<p>{{ name }}</p>"})
    assert compilation.ok, compilation.render()


@pytest.mark.parametrize("page", ['{% include "footer.html" %}', '{% extends "footer.html" %}'])
def test_a_file_rendered_with_the_template_uses_only_its_variables(rules: Rules, page: str) -> None:
    compilation = compile_page(rules, page, {"footer.html": "{{ name }} {{ nmae }}"})
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.code == "E030"
    assert "template file 'footer.html' uses 'nmae'" in diagnostic.message
    assert diagnostic.hint == "did you mean 'name'?"


def test_a_file_imported_with_context_uses_only_the_templates_variables(rules: Rules) -> None:
    macros = "{% macro sign() %}{{ name }}, {{ greeting }}{% endmacro %}"
    page = '{% import "macros.html" as m with context %}{{ m.sign() }}'
    (diagnostic,) = compile_page(rules, page, {"macros.html": macros}).diagnostics
    assert "template file 'macros.html' uses 'greeting'" in diagnostic.message


def test_a_referenced_file_is_part_of_the_version(rules: Rules) -> None:
    page = '{% extends "parts/base.html" %}{% block body %}{{ name }}{% endblock %}'
    base = "<html>{% block body %}{% endblock %}"
    first = compile_page(rules, page, {"parts/base.html": base + "</html>"})
    assert first.rule_set is not None, first.render()
    again = compile_page(rules, page, {"parts/base.html": base + "</html>"})
    changed = compile_page(rules, page, {"parts/base.html": base + "<footer/></html>"})
    assert again.rule_set is not None and changed.rule_set is not None
    assert again.rule_set.version == first.rule_set.version
    assert changed.rule_set.version != first.rule_set.version
    assert "parts/base.html" in {f.path for f in first.rule_set.ir.files}


@pytest.mark.parametrize(
    ("page", "footer"),
    [
        ('{% for item in [1, 2] %}{% include "footer.html" %}{% endfor %}', "{{ item }}"),
        ('{% set title = "T" %}{% include "footer.html" %}', "{{ title }}"),
        ('{% with title = "T" %}{% include "footer.html" %}{% endwith %}', "{{ title }}"),
        ('{% extends "footer.html" %}{% set active = "home" %}', "{{ active }} {{ name }}"),
        (
            '{% set a = 1 %}{% include "mid.html" %}',
            "{{ a }}{{ b }}",  # footer.html, pulled in by mid.html, which sets b
        ),
    ],
)
def test_a_referenced_file_may_use_what_its_includers_bind(
    rules: Rules, page: str, footer: str
) -> None:
    files = {"footer.html": footer, "mid.html": '{% set b = 2 %}{% include "footer.html" %}'}
    compilation = compile_page(rules, page, files)
    assert compilation.ok, compilation.render()


def test_a_file_imported_without_and_included_with_context_is_checked(rules: Rules) -> None:
    page = '{% import "footer.html" as f %}{% include "footer.html" %}'
    (diagnostic,) = compile_page(rules, page, {"footer.html": "{{ nmae }}"}).diagnostics
    assert "template file 'footer.html' uses 'nmae'" in diagnostic.message


def test_a_missing_file_of_the_template_itself_is_named_once(rules: Rules) -> None:
    text = 'template t {\n  subject = "Hi"\n  html = "missing.html"\n  variables = ["name"]\n}\n'
    (diagnostic,) = rules.compile(text).diagnostics
    assert diagnostic.code == "E032"
    assert diagnostic.message.startswith("template file 'missing.html' not found")


def test_a_file_reached_twice_is_reported_once(rules: Rules) -> None:
    page = '{% include "gone.html" %}{% include "mid.html" %}'
    files = {"mid.html": '{% import "gone.html" as g %}'}
    (diagnostic,) = compile_page(rules, page, files).diagnostics
    assert "'page.html' refers to 'gone.html'" in diagnostic.message
