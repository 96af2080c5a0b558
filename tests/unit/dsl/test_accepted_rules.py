"""Rules close to broken ones that the checker accepts, or reports only once."""

from __future__ import annotations

import pytest

from tests.unit.dsl.support import Rules, workflow


@pytest.mark.parametrize(
    "url", ["https://user:pw@a.example.com/x", "https://a.example.com/x?token=t&u=a:b@c"]
)
def test_a_url_with_a_credential_is_reported_once(rules: Rules, url: str) -> None:
    text = f'webhook w {{\n  url = "{url}"\n  secret = env("S")\n  events = [deal.funded]\n}}\n'
    errors = rules.compile(text).errors
    assert [(d.code, d.message) for d in errors] == [("E044", "url carries a credential")]


@pytest.mark.parametrize(
    "steps",
    [
        '  if event.data.amount > 10 {\n    fail "big"\n  }\n  send_webhook ops',
        '  if event.data.amount > 10 {\n    fail "big"\n  } else if event.data.amount > 5 {\n'
        '    fail "middle"\n  }\n  send_webhook ops',
        '  if event.data.amount > 10 {\n    fail "big"\n  } else {\n    wait 1d\n  }\n'
        "  send_webhook ops",
    ],
)
def test_steps_after_an_if_that_may_go_on_are_reachable(rules: Rules, steps: str) -> None:
    compilation = rules.compile(workflow(steps))
    assert compilation.ok, compilation.render()


@pytest.mark.parametrize(
    "cron",
    ["0 0 29 2 *", "0 0 31 * *", "0 0 30 2 1", "*/5 8-18 * * 1-5", "0 0 L * *", "0 0 29 2 1#5"],
)
def test_schedules_that_fire_rarely_are_accepted(rules: Rules, cron: str) -> None:
    compilation = rules.compile(
        f'workflow f {{\n  on schedule "{cron}" timezone "Europe/Paris"\n}}\n'
    )
    assert compilation.ok, compilation.render()
