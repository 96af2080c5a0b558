"""Strings that look like credentials: one search finds what each kind's own pattern
finds, and each such string of a rule file is refused once, wherever it is written."""

from __future__ import annotations

import re
import time

import pytest

from dsl.secrets import KINDS, secret_kind
from tests.unit.dsl.support import Rules, template, webhook, workflow

QUERY = "a URL with a credential in its query"
SAMPLES = [
    "sk_live_abcdefghij",
    "rk_test_12345678",
    "whsec_abcdefgh12",
    "SG.abcdefghijkl",
    "key-0123456789abcdef0123456789abcdef",
    "AKIAABCDEFGHIJKLMNOP",
    "ghp_abcdefghijklmnopqrstuv",
    "xoxb-1234567890ab",
    "Bearer abcdefghijklmnopqrstu",
    "-----BEGIN RSA PRIVATE KEY",
    "https://hooks.example.com/1",
    "HOOK_SECRET_3",
    "task_live_abcdefghij",  # no word boundary before sk_
    "see sk_live_abcdefghij and -----BEGIN PRIVATE KEY",
    "x-----BEGIN EC PRIVATE KEY",
    "",
]


def _first_kind(text: str) -> str | None:
    """The kind whose pattern matches earliest in `text` (the table's order breaks ties)."""
    found = []
    for order, (what, pattern) in enumerate(KINDS.values()):
        match = re.search(pattern, text)
        if match:
            found.append((match.start(), order, what))
    return min(found)[2] if found else None


@pytest.mark.parametrize("text", SAMPLES)
def test_one_search_finds_what_each_pattern_finds(text: str) -> None:
    assert secret_kind(text) == _first_kind(text)


def test_every_kind_is_found() -> None:
    kinds = {secret_kind(text) for text in SAMPLES}
    assert {what for what, _ in KINDS.values()} <= kinds


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (
            "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            "a Slack webhook URL",
        ),
        ("hooks.slack.com/triggers/T0123/4567/abcdef", "a Slack webhook URL"),
        ("https://discord.com/api/webhooks/1234567890/a-B_c", "a Discord webhook URL"),
        ("https://discordapp.com/api/webhooks/1234567890/abc", "a Discord webhook URL"),
        ("https://ops:hunter2@a.example.com/x", "a URL with a password"),
        ("see postgres://app:pw@db:5432/app", "a URL with a password"),
        ("https://hooks.slack.com/", None),
        ("https://example.com/api/webhooks/", None),
        ("https://ops@a.example.com/x", None),
        ("Ada <ada@example.com>, https://example.com/a:b", None),
        ("https://a.example.com/x?at=a:b@c", None),
        ("https://api.example.com/x?token=Zq8f3kLm", QUERY),
        (
            "https://a.example.com/x?page=2&API_KEY=k1k2k3k4k5",
            "a URL with a credential in its query",
        ),
        (
            "see https://a.example.com/?signature=abc123def#top",
            "a URL with a credential in its query",
        ),
        ("https://a.example.com/x?token=", None),
        ("https://a.example.com/x?key=value", None),
        ("https://app.example.com/reset?token={{ token }}", None),
        ("https://app.example.com/reset?token=${TOKEN_VALUE}", None),
        ("https://a.example.com/x?monkey=1&tokens=22222222", None),
        ("https://a.example.com/token=abcdefghij", None),
        ("token=abcdefghij", None),
        ("https://a.example.com:99999/x?token=abcdefghij", QUERY),
        ("https://[bad/x?token=abcdefghij", None),
    ],
)
def test_urls_that_are_credentials(text: str, kind: str | None) -> None:
    assert secret_kind(text) == kind


@pytest.mark.parametrize(
    "text",
    ["://?" * 25_000 + "=", "https://x/" + "a" * 100_000 + "?x=1", "a" * 100_000 + ":// ="],
)
def test_a_long_string_is_searched_in_linear_time(text: str) -> None:
    # A guard against a hang, not a measure of speed: these took 15 to 25 s each
    # with a pattern that backtracked; they take about a millisecond.
    started = time.perf_counter()
    assert secret_kind(text) is None
    assert time.perf_counter() - started < 5.0


KEY = "sk_live_abcdefghijklmnop"
TWO_HOOKS = "".join(
    f'webhook h{i} {{\n  url = LEAKED\n  secret = env("S")\n  events = [deal.funded]\n}}\n'
    for i in range(2)
)


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [
        (f'const k = "{KEY}"\n', "looks like a Stripe key", 1, 11),
        (f'event e.x {{\n  description = "{KEY}"\n  a: string\n}}\n', "Stripe key", 2, 17),
        (f'event e.x {{\n  a: string = "{KEY}"\n}}\n', "Stripe key", 2, 15),
        (f'event e.x {{\n  a: "b" | "{KEY}"\n}}\n', "Stripe key", 2, 6),
        (webhook(f'  note = "{KEY}"'), "Stripe key", 5, 10),
        (webhook(f'  ordered = "{KEY}"'), "Stripe key", 5, 13),
        (webhook(f'  description = "x"\n  description = "{KEY}"'), "Stripe key", 6, 17),
        (webhook('  headers = { "xoxb-1234567890ab": "v" }'), "a Slack token", 5, 15),
        (webhook(f'  when event.data.note == "{KEY}"'), "Stripe key", 5, 27),
        (workflow(f'  description = "{KEY}"'), "Stripe key", 3, 17),
        (workflow(f'  fail "{KEY}"'), "Stripe key", 3, 8),
        (
            workflow(f'  http(url: "https://a.example.com", body: {{ k: "{KEY}" }})'),
            "Stripe key",
            3,
            49,
        ),
        (
            workflow(f'  emit deal.funded {{ deal_id: "{KEY}", name: "n", amount_raised: 1 }}'),
            "Stripe key",
            3,
            31,
        ),
        (
            template(f'  subject = "Hi"\n  html = "receipt.html"\n  category = "{KEY}"'),
            "Stripe key",
            4,
            14,
        ),
        (f'hook h {{\n  secret = env("S")\n  path = "/hooks/{KEY}"\n}}\n', "Stripe key", 3, 10),
        (
            f'const k = "{KEY}"\n'
            + webhook("  when event.data.note == k or event.data.user_id == k"),
            "Stripe key",
            1,
            11,
        ),
        (
            webhook('  description = "x"').replace('env("W_SECRET")', '"whsec_abcdef123456"'),
            "secret must not be written in the rule file",
            3,
            12,
        ),
        (
            'const LEAKED = "https://ops:hunter2@a.example.com/x"\n' + TWO_HOOKS,
            "url carries a credential",
            1,
            16,
        ),
    ],
    ids=[
        "unused const",
        "event description",
        "field default",
        "enum value",
        "unknown attribute",
        "wrong kind of value",
        "repeated attribute",
        "header name",
        "condition",
        "workflow description",
        "fail message",
        "http body",
        "emit data",
        "template category",
        "hook path",
        "const used twice",
        "webhook secret",
        "const url of two webhooks",
    ],
)
def test_a_credential_is_refused_once_wherever_it_is_written(
    rules: Rules, text: str, message: str, line: int, column: int
) -> None:
    compilation = rules.compile(text)
    found = [d for d in compilation.diagnostics if d.code == "E044"]
    assert len(found) == 1, compilation.render()
    (diagnostic,) = found
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (line, column), compilation.render()
    assert compilation.rule_set is None
