"""dsl.render: the shipped templates and small rule sets written for each case."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest

from dsl import RuleSet, compile_rules
from dsl.render import (
    Rendered,
    Renderer,
    RenderError,
    Renderers,
    StaleTemplates,
    UnknownTemplate,
)

ROOT = Path(__file__).parents[3]
SHIPPED = ["kyc_welcome", "kyc_rejected", "investment_receipt", "payout_notice", "payment_failed"]
HOSTILE = "<script>alert(1)</script>"
PREHEADER = '<div style="display:none;max-height:0;overflow:hidden;mso-hide:all">'


@pytest.fixture(scope="module")
def shipped() -> Renderer:
    rules = compile_rules([ROOT / "rules"], templates_dir=ROOT / "templates").require()
    return Renderer.compile(rules, ROOT / "templates")


def _rules(tmp_path: Path, rules: str, files: dict[str, str]) -> RuleSet:
    """A rule set of `rules` over template files written under tmp_path/templates."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "emails.ownly").write_text(rules, encoding="utf-8")
    for name, text in files.items():
        path = tmp_path / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    compilation = compile_rules([tmp_path / "rules"], templates_dir=tmp_path / "templates")
    return compilation.require()


def _template(**attrs: str) -> str:
    """A template `page` with variable `name`; `attrs` add to or replace its attributes."""
    fields = {"subject": "Hello {{ name }}", "html": "page.html", **attrs}
    lines = "".join(f'  {key} = "{value}"\n' for key, value in fields.items())
    return f'template page {{\n{lines}  variables = ["name"]\n}}\n'


def _body_start(html: str) -> int:
    match = re.search(r"<body[^>]*>", html)
    assert match is not None
    return match.end()


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_template_renders_its_sample(shipped: Renderer, name: str) -> None:
    sample = shipped.sample(name)
    assert sample is not None
    email = shipped.render(name, sample)
    assert email.subject and "{{" not in email.subject
    assert email.html.startswith("<!DOCTYPE html>") and "{{" not in email.html
    assert "Ada Lovelace" in email.html and "Ada Lovelace" in email.text
    assert "<" not in email.text
    assert email.preheader is None  # none of the shipped templates declares a preview


def test_the_layout_wraps_the_body_without_escaping_it(shipped: Renderer) -> None:
    email = shipped.render("investment_receipt", shipped.sample("investment_receipt") or {})
    assert ">OWNLY</td>" in email.html
    assert '<h1 style="font-size:22px;">Thank you, Ada Lovelace</h1>' in email.html
    assert "&lt;h1" not in email.html
    assert "<title>Your investment in Harbor View Apartments is confirmed</title>" in email.html
    assert email.text.splitlines()[0] == "OWNLY"


def test_hostile_data_is_escaped_in_html_and_verbatim_in_subject_and_text(
    shipped: Renderer,
) -> None:
    data = shipped.sample("investment_receipt") or {}
    data["deal"]["name"] = HOSTILE
    email = shipped.render("investment_receipt", data)
    assert HOSTILE not in email.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in email.html
    assert email.subject == f"Your investment in {HOSTILE} is confirmed"
    assert f"Deal {HOSTILE}" in email.text  # generated from the HTML
    assert email.text.count(HOSTILE) == 2
    welcome = shipped.render("kyc_welcome", {"name": HOSTILE, "accredited": False})
    assert welcome.text.startswith(f"Welcome, {HOSTILE}\n")  # the .txt file: not escaped
    assert welcome.subject == f"Welcome to OWNLY, {HOSTILE}: you are verified"


def test_a_line_break_in_the_subject_is_kept_for_the_message_builder(shipped: Renderer) -> None:
    data = shipped.sample("investment_receipt") or {}
    data["deal"]["name"] = "Harbor\r\nBcc: x@example.com"
    subject = shipped.render("investment_receipt", data).subject
    assert subject == "Your investment in Harbor\r\nBcc: x@example.com is confirmed"


def test_text_comes_from_the_text_file_when_there_is_one(shipped: Renderer) -> None:
    email = shipped.render("kyc_welcome", {"name": "Ada", "accredited": True})
    assert email.text == (
        "Welcome, Ada\n\n"
        "Your identity is verified. You can now invest in any open deal on OWNLY.\n\n"
        "As an accredited investor you also have access to our private offerings.\n"
    )
    assert "OWNLY</td>" in email.html  # the layout is for the HTML only


def test_text_is_generated_from_the_html_otherwise(shipped: Renderer) -> None:
    email = shipped.render("investment_receipt", shipped.sample("investment_receipt") or {})
    assert email.text == (
        "OWNLY\n\n"
        "Thank you, Ada Lovelace\n\n"
        "Your investment in Harbor View Apartments is confirmed.\n\n"
        "Amount 25000.00 USD\n"
        "Deal Harbor View Apartments\n\n"
        "You will find the signed documents in your portfolio.\n\n"
        "You receive this email because you have an OWNLY account."
    )


@pytest.mark.parametrize(
    ("data", "variable", "message"),
    [
        (
            {"amount": "1", "currency": "usd", "investor": {"name": "A"}},
            "deal",
            "template investment_receipt: 'deal' is undefined (in its subject)",
        ),
        (
            {"amount": "1", "currency": "usd", "deal": {"name": "D"}},
            "investor",
            "template investment_receipt: 'investor' is undefined (investment_receipt.html:1)",
        ),
        (
            {"amount": "1", "currency": "usd", "deal": {}, "investor": {"name": "A"}},
            None,
            "template investment_receipt: 'dict object' has no attribute 'name' (in its subject)",
        ),
    ],
)
def test_an_undefined_variable_is_named(
    shipped: Renderer, data: dict[str, object], variable: str | None, message: str
) -> None:
    with pytest.raises(RenderError) as caught:
        shipped.render("investment_receipt", data)
    assert caught.value.template == "investment_receipt"
    assert caught.value.variable == variable
    assert str(caught.value) == message


def test_a_failure_in_an_expression_is_a_render_error(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _template(), {"page.html": "<p>\n{{ 100 // name }}</p>"})
    renderer = Renderer.compile(rules, tmp_path / "templates")
    assert "<p>\n4</p>" in renderer.render("page", {"name": 25}).html
    with pytest.raises(RenderError) as caught:
        renderer.render("page", {"name": 0})
    assert str(caught.value) == (
        "template page: ZeroDivisionError: integer division or modulo by zero (page.html:2)"
    )
    assert caught.value.variable is None


def test_an_unknown_template_is_a_key_error(shipped: Renderer) -> None:
    for call in (shipped.render, shipped.variables):
        with pytest.raises(UnknownTemplate, match="has no template 'nope'") as caught:
            call("nope", {})
        assert isinstance(caught.value, KeyError)
        assert caught.value.template == "nope"
    with pytest.raises(KeyError):
        shipped.sample("nope")


def test_variables_lists_the_missing_and_the_extra(shipped: Renderer) -> None:
    data = {"amount": "1", "deal": {}, "coupon": "X", "currency": "usd", "ref": 1}
    assert shipped.variables("investment_receipt", data) == (["investor"], ["coupon", "ref"])
    assert shipped.variables("investment_receipt", shipped.sample("investment_receipt") or {}) == (
        [],
        [],
    )


def test_sample_is_a_copy(shipped: Renderer) -> None:
    first = shipped.sample("investment_receipt")
    assert first is not None
    first["deal"]["name"] = "changed"
    assert (shipped.sample("investment_receipt") or {})["deal"]["name"] == "Harbor View Apartments"


def test_a_template_without_sample_has_none(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _template(), {"page.html": "<p>{{ name }}</p>"})
    assert Renderer.compile(rules, tmp_path / "templates").sample("page") is None


@pytest.mark.parametrize(
    "expression",
    ["''.__class__", "name.__class__.__mro__", "name.update({'x': 1})", "cycler.__init__"],
)
def test_the_sandbox_refuses_unsafe_access(tmp_path: Path, expression: str) -> None:
    rules = _rules(tmp_path, _template(), {"page.html": f"<p>{{{{ {expression} }}}}</p>"})
    renderer = Renderer.compile(rules, tmp_path / "templates")
    with pytest.raises(RenderError, match=r"refused by the sandbox: .*(unsafe|immutable)"):
        renderer.render("page", {"name": {"x": 0}})


def test_includes_imports_and_extends_resolve_from_memory(tmp_path: Path) -> None:
    files = {
        "page.html": (
            '{% extends "frame.html" %}{% block main %}{% from "macros.html" import button %}'
            '{% include "parts/hello.html" %}{{ button("Go") }}{% endblock %}'
        ),
        "frame.html": "<html><body><main>{% block main %}{% endblock %}</main></body></html>",
        "macros.html": "{% macro button(label) %}<b>{{ label }}</b>{% endmacro %}",
        "parts/hello.html": "<p>Hello {{ name }}</p>",
    }
    rules = _rules(tmp_path, _template(), files)
    assert {f.path for f in rules.ir.files} == set(files)
    renderer = Renderer.compile(rules, tmp_path / "templates")
    before = renderer.render("page", {"name": "Ada"})
    assert "<main><p>Hello Ada</p><b>Go</b></main>" in before.html
    for name in files:
        (tmp_path / "templates" / name).write_text("<p>changed {{ nothing }}</p>")
    (tmp_path / "templates" / "parts" / "hello.html").unlink()
    assert renderer.render("page", {"name": "Ada"}) == before


def test_files_changed_since_the_version_are_stale(tmp_path: Path) -> None:
    files = {"page.html": '{% include "part.html" %}', "part.html": "<p>{{ name }}</p>"}
    rules = _rules(tmp_path, _template(), files)
    templates = tmp_path / "templates"
    (templates / "part.html").write_text("<p>{{ name }}!</p>")
    with pytest.raises(StaleTemplates) as caught:
        Renderer.compile(rules, templates)
    assert caught.value.paths == ("part.html",)
    message = str(caught.value)
    assert f"changed since rule set version {rules.version[:12]} was applied" in message
    assert "'part.html' has changed" in message
    (templates / "page.html").unlink()
    with pytest.raises(StaleTemplates, match=r"'page\.html' not found") as missing:
        Renderer.compile(rules, templates)
    assert missing.value.paths == ("page.html", "part.html")


def test_a_changed_sample_is_stale(tmp_path: Path) -> None:
    files = {"page.html": "<p>{{ name }}</p>", "page.json": '{"name": "Ada"}'}
    rules = _rules(tmp_path, _template(sample="page.json"), files)
    assert Renderer.compile(rules, tmp_path / "templates").sample("page") == {"name": "Ada"}
    (tmp_path / "templates" / "page.json").write_text('{"name": "Bob"}')
    with pytest.raises(StaleTemplates) as caught:
        Renderer.compile(rules, tmp_path / "templates")
    assert caught.value.paths == ("page.json",)


def test_the_preheader_is_hidden_first_in_the_body(tmp_path: Path) -> None:
    files = {
        "page.html": '<p>Hi {{ name }}, <a href="https://ownly.com/r?a=1&amp;b=2">see it</a></p>'
    }
    rules = _rules(tmp_path, _template(preview="Your receipt, {{ name }}"), files)
    email = Renderer.compile(rules, tmp_path / "templates").render("page", {"name": HOSTILE})
    assert email.preheader == f"Your receipt, {HOSTILE}"
    start = _body_start(email.html)
    escaped = "Your receipt, &lt;script&gt;alert(1)&lt;/script&gt;"
    assert email.html[start:].startswith(f"{PREHEADER}{escaped}</div><p>Hi ")
    assert email.text == f"Hi {HOSTILE}, see it (https://ownly.com/r?a=1&b=2)"


def test_an_empty_preview_adds_nothing(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _template(preview="{{ '' }}"), {"page.html": "<p>{{ name }}</p>"})
    email = Renderer.compile(rules, tmp_path / "templates").render("page", {"name": "Ada"})
    assert email.preheader == ""
    assert "display:none" not in email.html


def test_a_style_block_is_inlined(tmp_path: Path) -> None:
    page = (
        "<html><head><style>p.note { color: #c00 } "
        "@media (max-width: 600px) { p.note { color: #00c } }</style>"
        '<link rel="stylesheet" href="https://fonts.example.com/font.css"></head>'
        '<body><p class="note">{{ name }}</p></body></html>'
    )
    rules = _rules(tmp_path, _template(), {"page.html": page})
    email = Renderer.compile(rules, tmp_path / "templates").render("page", {"name": "Ada"})
    assert '<p class="note" style="color: #c00;">Ada</p>' in email.html
    assert "p.note { color: #c00 }" not in email.html
    assert "@media (max-width: 600px)" in email.html  # what cannot be inlined stays
    assert '<link rel="stylesheet" href="https://fonts.example.com/font.css">' in email.html
    assert email.text == "Ada"


def test_a_template_file_without_layout_becomes_a_document(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _template(preview="Soon"), {"page.html": "<p>{{ name }}</p>"})
    email = Renderer.compile(rules, tmp_path / "templates").render("page", {"name": "Ada"})
    assert email == Rendered(
        subject="Hello Ada",
        html=f"<html><head></head><body>{PREHEADER}Soon</div><p>Ada</p></body></html>",
        text="Ada",
        preheader="Soon",
    )


def test_renderers_keep_one_renderer_per_version(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    first = _rules(tmp_path, _template(), {"page.html": "<p>{{ name }}</p>"})
    renderers = Renderers(templates, size=2)
    renderer = renderers.get(first)
    assert renderers.get(first) is renderer
    assert renderers.get(RuleSet.from_ir(first.ir)) is renderer  # the same version
    second = _rules(tmp_path, _template(), {"page.html": "<p>{{ name }}!</p>"})
    assert second.version != first.version
    assert renderers.get(second) is not renderer
    assert renderers.get(second).render("page", {"name": "Ada"}).text == "Ada!"
    # first's files are gone from disk, but its renderer is still kept.
    assert renderers.get(first) is renderer
    third = _rules(tmp_path, _template(), {"page.html": "<p>{{ name }}?</p>"})
    renderers.get(third)  # evicts second, the least recently used
    assert renderers.get(first) is renderer
    with pytest.raises(StaleTemplates):
        renderers.get(second)


def test_renderers_compile_a_version_once_across_threads(tmp_path: Path) -> None:
    rules = _rules(tmp_path, _template(), {"page.html": "<p>{{ name }}</p>"})
    renderers = Renderers(tmp_path / "templates")
    got: list[Renderer] = []
    threads = [threading.Thread(target=lambda: got.append(renderers.get(rules))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(r is got[0] for r in got)
