"""Webhook URLs: a plain https URL is accepted without `urlsplit`, as `urlsplit` would accept it."""

from __future__ import annotations

import re

import pytest

from dsl import lowering
from tests.unit.dsl.support import Rules

URLS = [
    "https://hooks.example.com/1",
    "https://hooks.example.com",
    "https://a-b.c/d_e/f.g~h/",
    "https://x",
    "http://hooks.example.com/1",
    "HTTPS://hooks.example.com/1",
    "https://user:pw@hooks.example.com/",
    "https://hooks.example.com/?token=abc",
    "https://hooks.example.com:8443/x",
    "https://hooks.example.com:0/x",
    "https://hooks.example.com:65536/x",
    "https://hooks.example.com:http/x",
    "https://[::1/x",
    "https://hooks.example.com/a b",
    "https:///path",
    "ftp://hooks.example.com/",
    "https://a..b/",
    "https://hooks.example.com/%41",
    " https://hooks.example.com/",
]


def _diagnostics(rules: Rules, url: str) -> list[tuple[object, ...]]:
    text = (
        f"webhook w {{\n  url    = {url!r}\n".replace("'", '"') + '  secret = env("W_SECRET")\n'
        "  events = [deal.funded]\n"
        "}\n"
    )
    compilation = rules.compile(text)
    found: list[tuple[object, ...]] = [
        (d.code, d.message, d.span.line, d.span.column) for d in compilation.diagnostics
    ]
    if compilation.rule_set is not None:
        found.append(("url", compilation.rule_set.webhooks["w"].url))
    return found


@pytest.mark.parametrize("url", URLS)
def test_the_plain_path_agrees_with_urlsplit(
    rules: Rules, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _diagnostics(rules, url)
    assert fast  # a URL, or what is wrong with it
    monkeypatch.setattr(lowering, "_PLAIN_URL", re.compile(r"(?!)"))  # never plain
    assert fast == _diagnostics(rules, url)
