"""Every broken rule file gets its stable code, a clear message and the right position."""

# Some rule files in the table are whole one-line strings; breaking them would hide their layout.
# ruff: noqa: E501

from __future__ import annotations

import pytest

from dsl import ir
from tests.unit.dsl.support import Rules, template, webhook, workflow

CASES = [
    # ---- syntax
    ("webhook x {\n  url = \n}\n", "E001", "expected an expression", 2, 9),
    ("webhook x {\n  when a = 1\n}\n", "E001", "unexpected '='", 2, 10),
    ('webhook x {\n  url = "a" }\n', "E001", "expected a new line", 2, 13),
    ("webhook {\n}\n", "E001", "expected a name", 1, 9),
    ("event a.b {\n  x: string\n", "E003", "unexpected end of file, expected '}'", 2, 12),
    ("const x = 'a'\n", "E002", "unexpected character", 1, 11),
    ('const x = "\\d"\n', "E001", "invalid escape", 1, 11),
    (workflow("  sendemail x to y"), "E001", "unexpected 'x'", 3, 13),
    ("const x = 5 sec\n", "E001", "unexpected 'sec'", 1, 13),
    ("event a.b {\n  x: list[}\n", "E001", "unexpected '}'", 2, 11),
    ("webhook x {\n  url == 1\n}\n", "E001", "unexpected '=', expected an expression", 2, 8),
    # a block not closed before the next definition
    (
        'const limit = 1\n\nwebhook crm {\n  url = "https://a.example.com"\n  when event.data.amount > limit\n\n# the next one\n\nworkflow f {\n  on investment.created\n}\n',
        "E001",
        "the webhook 'crm' opened at 3:1 is not closed: a '}' is missing before line 9",
        9,
        1,
    ),
    (
        "event e.x {\n  a: string\n\nwebhook w {\n}\n",
        "E001",
        "the event 'e.x' opened at 1:1 is not closed",
        4,
        1,
    ),
    (
        workflow("  if event.data.amount > 1 {\n    wait 1d") + "const c = 1\n",
        "E001",
        "the workflow 'f' opened at 1:1 is not closed: a '}' is missing before line 6",
        6,
        1,
    ),
    # a keyword or a number glued to the word after it
    ("eventdeal.funded {\n  a: string\n}\n", "E001", "expected a space after 'event'", 1, 6),
    (
        'webhookcrm {\n  url = "https://a.example.com"\n}\n',
        "E001",
        "expected a space after 'webhook'",
        1,
        8,
    ),
    (webhook("  retry 3times"), "E001", "expected a space after '3'", 5, 10),
    (webhook("  when event.data.amount notin [1]"), "E001", "expected a space after 'not'", 5, 29),
    ("const x = 5sec\n", "E001", "expected a space after '5'", 1, 12),
    # ---- duplicates
    (
        'webhook ops {\n  url = "https://a.example.com"\n}\n',
        "E010",
        "webhook 'ops' is already defined",
        1,
        9,
    ),
    ("event e.x {\n  a: string\n  a: int\n}\n", "E010", "field 'a' is declared twice", 3, 3),
    (webhook('  url = "https://b.example.com"'), "E010", "attribute 'url' is set twice", 5, 3),
    (
        workflow('  p = charge(customer: "c", amount: 1)\n  p = charge(customer: "c", amount: 2)'),
        "E010",
        "step name 'p' is already used",
        4,
        3,
    ),
    ("const a = 1\nconst a = 2\n", "E010", "const 'a' is already defined", 2, 7),
    (workflow("  timeout 1d\n  timeout 2d"), "E010", "already given on line 3", 4, 3),
    (webhook("  timeout 5s\n  timeout 9s"), "E010", "timeout is already given on line 5", 6, 3),
    # ---- unknown references
    (
        webhook("").replace("investment.created", "deal.fundd"),
        "E011",
        "unknown event type 'deal.fundd'",
        4,
        13,
    ),
    (
        "workflow f {\n  on investment.creatd\n}\n",
        "E011",
        "unknown event type 'investment.creatd'",
        2,
        6,
    ),
    (
        workflow('  emit deal.fundd { deal_id: "d" }'),
        "E011",
        "unknown event type 'deal.fundd'",
        3,
        8,
    ),
    (
        webhook("  when event.data.amout >= 10"),
        "E012",
        "unknown field 'amout' on event investment.created",
        5,
        8,
    ),
    (webhook('  when event.data.investor.emial == "a@b.c"'), "E012", "unknown field 'emial'", 5, 8),
    (
        workflow(
            '  emit transaction.completed { transaction_id: "t", user_id: "u", amount: 1, fee: 2 }'
        ),
        "E012",
        "unknown field 'fee' on event transaction.completed",
        3,
        78,
    ),
    (
        workflow("  send_email recept to event.data.investor.email"),
        "E013",
        "unknown template 'recept'",
        3,
        14,
    ),
    (workflow("  send_webhook opps"), "E014", "unknown webhook 'opps'", 3, 16),
    ("workflow f {\n  on hook docusgn\n}\n", "E015", "unknown hook 'docusgn'", 2, 11),
    (webhook("  when evnt.data.amount > 1"), "E016", "unknown name 'evnt'", 5, 8),
    (webhook("  when lenn(event.data.user_id) > 1"), "E017", "unknown function 'lenn'", 5, 8),
    (
        webhook('  urll = "https://x.example.com"'),
        "E018",
        "unknown attribute 'urll' in webhook w",
        5,
        3,
    ),
    ('event e.x {\n  descripton = "x"\n}\n', "E018", "unknown attribute 'descripton'", 2, 3),
    (workflow("  frobnicate(x: 1)"), "E048", "unknown action 'frobnicate'", 3, 3),
    # ---- missing
    (
        'webhook w {\n  secret = env("S")\n  events = [deal.funded]\n}\n',
        "E019",
        "webhook w has no 'url'",
        1,
        9,
    ),
    (workflow('  charge(customer: "c")'), "E019", "charge() needs argument 'amount'", 3, 3),
    (
        workflow('  emit transaction.completed { transaction_id: "t", amount: 1 }'),
        "E019",
        "needs field 'user_id'",
        3,
        3,
    ),
    # ---- types
    (
        webhook('  when event.data.amount >= "10000"'),
        "E020",
        "cannot compare decimal with string",
        5,
        8,
    ),
    (webhook("  when event.data.amount"), "E020", "must be true or false, got decimal", 5, 8),
    (
        webhook("  when event.data.user_id and true"),
        "E020",
        "'and' needs true or false, got string",
        5,
        8,
    ),
    (webhook('  when event.data.amount + "x" > 1'), "E020", "cannot add decimal and string", 5, 8),
    (webhook("  when len(1) > 0"), "E021", "len() needs a string, list or map", 5, 8),
    (webhook("  when now(1) > now()"), "E021", "now() takes 0 arguments", 5, 8),
    (
        workflow('  charge(customer: "c", amount: "ten")'),
        "E020",
        "argument 'amount' of charge() is decimal, got string",
        3,
        33,
    ),
    (webhook('  when env("lower") == "x"'), "E055", "invalid environment variable name", 5, 12),
    (webhook('  ordered = "yes"'), "E022", "ordered must be true or false", 5, 13),
    (
        webhook('  when event.data.status == "actve"'),
        "E023",
        '"actve" is not a value of enum',
        5,
        29,
    ),
    (
        'event e.x {\n  s: "a" | "b"\n}\n' + workflow('  emit e.x { s: "c" }'),
        "E023",
        '"c" is not a value of enum ("a" | "b")',
        6,
        17,
    ),
    (
        'event e.x {\n  s: list["a" | "b"]\n}\n' + workflow('  emit e.x { s: ["a", "bb"] }'),
        "E023",
        '"bb" is not a value of enum',
        6,
        23,
    ),
    ("event e.x {\n  amount: decimel\n}\n", "E024", "unknown type 'decimel'", 2, 11),
    (
        "event e.x {\n  currency: string = 5\n}\n",
        "E026",
        "default value must be a literal string",
        2,
        22,
    ),
    (workflow('  wait "x"'), "E020", "wait needs a duration", 3, 8),
    (
        webhook("  when event.data.created_at > 5"),
        "E020",
        "cannot compare timestamp with int",
        5,
        8,
    ),
    (
        workflow('  if event.type == "investment.creatd" {\n    fail\n  }'),
        "E023",
        '"investment.creatd" is not a value',
        3,
        20,
    ),
    # ---- templates
    (
        workflow('  send_email receipt to event.data.investor.email { name: "x", amout: 1 }'),
        "E030",
        "template receipt has no variable 'amout'",
        3,
        64,
    ),
    (
        workflow('  send_email receipt to event.data.investor.email { name: "x" }'),
        "E031",
        "needs variable 'amount'",
        3,
        51,
    ),
    (
        template('  subject = "Hi"\n  html = "missing.html"'),
        "E032",
        "template file 'missing.html' not found",
        3,
        10,
    ),
    (
        template(
            '  subject = "Hi"\n  html = "receipt.html"\n  variables = ["name", "amount"]\n  sample = "nosuch.json"'
        ),
        "E034",
        "sample data 'nosuch.json' not found",
        5,
        12,
    ),
    (
        template('  subject = "Hi"\n  html = "undeclared.html"'),
        "E030",
        "uses 'nme', which is not a declared template variable",
        3,
        10,
    ),
    (
        template(
            '  subject = "Hi {{ nmae }}"\n  html = "receipt.html"\n  variables = ["name", "amount"]'
        ),
        "E030",
        "the subject uses 'nmae'",
        2,
        13,
    ),
    (
        template('  subject = "Hi"\n  html = "../secret.html"'),
        "E022",
        "must be a relative path inside templates/",
        3,
        10,
    ),
    # ---- workflows
    (workflow('  fail "stop"\n  send_webhook ops'), "E040", "unreachable", 4, 3),
    (
        workflow(
            '  if event.data.amount > 10 {\n    fail "big"\n  } else if event.data.amount > 5 {\n'
            '    wait 1d\n    fail "middle"\n  } else {\n    fail "small"\n  }\n  send_webhook ops'
        ),
        "E040",
        "unreachable: the workflow stops at line 3",
        11,
        3,
    ),
    (
        workflow(
            '  if event.data.amount > 10 {\n    if event.data.amount > 20 {\n      fail "huge"\n'
            '    } else {\n      fail "big"\n    }\n  } else {\n    fail "small"\n  }\n  wait 1d'
        ),
        "E040",
        "unreachable: the workflow stops at line 3",
        12,
        3,
    ),
    ('workflow f {\n  on schedule "61 * * * *"\n}\n', "E041", "invalid cron expression", 2, 15),
    (
        'workflow f {\n  on schedule "0 0 9 * * *"\n}\n',
        "E041",
        "invalid cron expression '0 0 9 * * *': 6 fields, not five",
        2,
        15,
    ),
    (
        'workflow f {\n  on schedule "0 9 * * * 2030"\n}\n',
        "E041",
        "6 fields, not five",
        2,
        15,
    ),
    (
        'workflow f {\n  on schedule "@daily"\n}\n',
        "E041",
        "1 field, not five",
        2,
        15,
    ),
    (
        'workflow f {\n  on schedule "0 0 30 2 *"\n}\n',
        "E041",
        "cron expression '0 0 30 2 *' never fires",
        2,
        15,
    ),
    (
        'workflow f {\n  on schedule "0 0 31 4,6,9,11 *"\n}\n',
        "E041",
        "never fires",
        2,
        15,
    ),
    (
        'workflow f {\n  on schedule "0 9 * * *" timezone "localtime"\n}\n',
        "E042",
        "time zone 'localtime' is whatever the host is set to",
        2,
        36,
    ),
    (
        'workflow f {\n  on schedule "0 9 * * *" timezone "posix/Europe/Paris"\n}\n',
        "E042",
        "unknown time zone 'posix/Europe/Paris'",
        2,
        36,
    ),
    (
        'workflow f {\n  on schedule "0 9 * * *" timezone "Europe/Pariss"\n}\n',
        "E042",
        "unknown time zone 'Europe/Pariss'",
        2,
        36,
    ),
    (webhook("  timeout 5m"), "E043", "webhook timeout 5m is out of range (1s to 2m)", 5, 11),
    (webhook("  retry 100 times"), "E043", "retry attempts 100 is out of range", 5, 9),
    (workflow("  wait 400d"), "E043", "wait 400d is out of range", 3, 8),
    (workflow("  wait -1d"), "E043", "wait -1d is out of range (1s to 365d)", 3, 8),
    (workflow("  debounce -(5s)"), "E043", "debounce window -(5s) is out of range", 3, 12),
    (webhook("  timeout -1s"), "E043", "webhook timeout -1s is out of range (1s to 2m)", 5, 11),
    (
        webhook("  retry 3 times, exponential -1s .. 1h"),
        "E043",
        "retry delay -1s is out of range",
        5,
        30,
    ),
    (
        webhook("  retry 3 times, exponential 1h .. 1m"),
        "E043",
        "first retry delay is longer than the cap",
        5,
        3,
    ),
    (
        'webhook w {\n  url = "https://a.example.com"\n  secret = "whsec_abcdef123456"\n  events = [deal.funded]\n}\n',
        "E044",
        "secret must not be written in the rule file",
        3,
        12,
    ),
    (
        'webhook w {\n  url = "https://user:pw@a.example.com/x"\n  secret = env("S")\n  events = [deal.funded]\n}\n',
        "E044",
        "url carries a credential",
        2,
        9,
    ),
    (
        'webhook w {\n  url = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"\n  secret = env("S")\n  events = [deal.funded]\n}\n',
        "E044",
        "this string looks like a Slack webhook URL",
        2,
        9,
    ),
    (
        'const ALERTS = "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghi_jkl"\n'
        'webhook w {\n  url = ALERTS\n  secret = env("S")\n  events = [deal.funded]\n}\n',
        "E044",
        "this string looks like a Discord webhook URL",
        1,
        16,
    ),
    (
        workflow('  r = http(url: "https://ops:hunter2@a.example.com/x", method: "GET")'),
        "E044",
        "this string looks like a URL with a password",
        3,
        17,
    ),
    (
        workflow('  r = http(url: "https://api.example.com/v1?token=Zq8f3kLm9Pw2", method: "GET")'),
        "E044",
        "this string looks like a URL with a credential in its query",
        3,
        17,
    ),
    (
        webhook('  headers = { "X-Key": "sk_live_abcdefghijklmnop" }'),
        "E044",
        "looks like a Stripe key",
        5,
        24,
    ),
    ('const k = "sk_live_abcdefghijklmnop"\n', "E044", "looks like a Stripe key", 1, 11),
    (
        'event e.x {\n  description = "sk_live_abcdefghijklmnop"\n  a: string\n}\n',
        "E044",
        "looks like a Stripe key",
        2,
        17,
    ),
    (
        'event e.x {\n  a: string = "whsec_abcdef123456"\n}\n',
        "E044",
        "looks like a webhook signing secret",
        2,
        15,
    ),
    (
        webhook('  headers = { "Authorization": "Basic abc" }'),
        "E044",
        "header 'Authorization' must not be written",
        5,
        32,
    ),
    (
        'webhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n  events = ["deal.funded"]\n}\n',
        "E045",
        "expected an event pattern",
        4,
        13,
    ),
    (webhook("  when event.data.* == 1"), "E045", "is an event pattern, not a value", 5, 8),
    (
        'webhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n  events = []\n}\n',
        "E045",
        "a webhook needs at least one event pattern",
        4,
        12,
    ),
    (
        'const none = [[]]\nwebhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n  events = none\n}\n',
        "E045",
        "a webhook needs at least one event pattern",
        5,
        12,
    ),
    (
        "workflow f {\n  on []\n  on manual\n}\n",
        "E045",
        "an 'on' trigger needs at least one event pattern",
        2,
        6,
    ),
    (workflow("  cancel on []"), "E045", "'cancel on' needs at least one event pattern", 3, 13),
    (workflow('  emit [] { deal_id: "d" }'), "E045", "emit needs an event type", 3, 8),
    (
        workflow("  x = wait for [] timeout 1d"),
        "E045",
        "'wait for' needs at least one event pattern",
        3,
        16,
    ),
    (
        workflow("  wait for deal.funded where true timeout 1d"),
        "E046",
        "needs a named result",
        3,
        3,
    ),
    (workflow("  retry_from nothing"), "E050", "retry_from 'nothing' names no earlier step", 3, 3),
    (webhook('  when event.data.user_id matches "(a+)+$"'), "E051", "nested quantifiers", 5, 35),
    (
        webhook('  when event.data.user_id matches "[a-"'),
        "E051",
        "invalid regular expression",
        5,
        35,
    ),
    (
        webhook('  when event.data.user_id matches "^(a|aa)+$"'),
        "E051",
        "repeated alternatives",
        5,
        35,
    ),
    (
        "const a = b\nconst b = a\nconst c = a\n" + webhook("  when c == 1"),
        "E052",
        "refers to itself",
        2,
        11,
    ),
    ("workflow f {\n  timeout 1d\n}\n", "E053", "workflow f has no trigger", 1, 10),
    (
        "const c0 = 1\n"
        + "".join(f"const c{i} = c{i - 1} + c{i - 1}\n" for i in range(1, 40))
        + webhook("  when c39 > 0"),
        "E057",
        "once consts are substituted",
        45,
        8,
    ),
    ("const x = " + "(" * 120 + "1" + ")" * 120 + "\n", "E001", "nested too deeply", 1, 31),
    ("const x = " + "(" * 492 + "1" + ")" * 492 + "\n", "E001", "nested too deeply", 1, 403),
    ("const x = " + " + ".join(["1"] * 600) + "\n", "E001", "nested too deeply", 1, 11),
    (
        'webhook w {\n  url = "not a url"\n  secret = env("S")\n  events = [deal.funded]\n}\n',
        "E054",
        "url is not a valid URL",
        2,
        9,
    ),
    (
        webhook("").replace("example.com/w", "example.com:0/w"),
        "E054",
        "url is not a valid URL: 'https://hooks.example.com:0/w'",
        2,
        12,
    ),
    (
        webhook("").replace("example.com/w", "example.com:99999/w"),
        "E054",
        "url is not a valid URL: 'https://hooks.example.com:99999/w'",
        2,
        12,
    ),
    (
        webhook("").replace("hooks.example.com/w", "[::1/w"),
        "E054",
        "url is not a valid URL: 'https://[::1/w'",
        2,
        12,
    ),
    (
        workflow('  r = http(url: "https://a.example.com:0/x", method: "GET")'),
        "E054",
        "url of http() is not a valid URL",
        3,
        17,
    ),
    # ---- warnings
    (
        'webhook w {\n  url = "https://a.example.com"\n  secret = env("S")\n  events = [deal.funded, payment.*]\n}\n',
        "W101",
        "pattern 'payment.*' matches no event",
        4,
        26,
    ),
    ("const unused = 1\n", "W102", "const 'unused' is never used", 1, 7),
    (webhook("").replace("https://hooks", "http://hooks"), "W103", "url is not https", 2, 12),
    (
        template(
            '  subject = "Hi"\n  html = "receipt.html"\n  variables = ["name", "amount"]\n  from = "nobody"'
        ),
        "E022",
        "from is not an email address",
        5,
        10,
    ),
]


@pytest.mark.parametrize(
    ("text", "code", "fragment", "line", "column"),
    CASES,
    ids=[f"{i:02d}-{case[1]}" for i, case in enumerate(CASES)],
)
def test_broken_rule_file(
    rules: Rules, text: str, code: str, fragment: str, line: int, column: int
) -> None:
    compilation = rules.compile(text)
    found = [d for d in compilation.diagnostics if d.code == code]
    assert found, compilation.render()
    first = found[0]
    assert fragment in first.message, compilation.render()
    assert first.span.file == "case.ownly"
    assert (first.span.line, first.span.column) == (line, column), compilation.render()
    if code.startswith("E"):
        assert compilation.rule_set is None
        assert not compilation.ok
    else:
        assert compilation.ok


def test_table_is_large_and_covers_the_codes() -> None:
    codes = {case[1] for case in CASES}
    assert len(CASES) >= 50
    documented = {
        "E001", "E002", "E003", "E010", "E011", "E012", "E013", "E014", "E015", "E016",
        "E017", "E018", "E019", "E020", "E021", "E022", "E023", "E024", "E026", "E030",
        "E031", "E032", "E034", "E040", "E041", "E042", "E043", "E044", "E045", "E046",
        "E048", "E050", "E051", "E052", "E053", "E054", "E055", "E057", "W101", "W102", "W103",
    }  # fmt: skip
    assert documented <= codes


def test_invalid_jinja_points_into_the_template_file(rules: Rules) -> None:
    compilation = rules.compile(template('  subject = "Hi"\n  html = "bad.html"'))
    (diagnostic,) = [d for d in compilation.diagnostics if d.code == "E033"]
    assert diagnostic.span.file.endswith("bad.html")
    assert diagnostic.span.line == 1
    assert "not valid Jinja2" in diagnostic.message


def test_unknown_jinja_filters_are_caught_at_check_time(rules: Rules) -> None:
    text = template('  subject = "Hi"\n  html = "bad_filter.html"\n  variables = ["name"]')
    (diagnostic,) = [d for d in rules.compile(text).diagnostics if d.code == "E033"]
    assert diagnostic.span.file.endswith("bad_filter.html")
    assert diagnostic.span.line == 2
    assert "No filter named 'shout'" in diagnostic.message


def test_errors_do_not_cascade(rules: Rules) -> None:
    text = webhook("  when event.data.amout >= 10 and event.data.amout < 100")
    compilation = rules.compile(text)
    codes = [d.code for d in compilation.diagnostics]
    # One misspelt field used twice: two E012, and no type error on top of them.
    assert codes == ["E012", "E012"]


def test_several_errors_in_one_run(rules: Rules) -> None:
    text = workflow("  send_email recept to 1\n  send_webhook opps\n  chrge(amount: 1)")
    codes = sorted(d.code for d in rules.compile(text).diagnostics)
    assert codes == ["E013", "E014", "E020", "E048"]


def test_did_you_mean_hints(rules: Rules) -> None:
    compilation = rules.compile(webhook("  when event.data.amout >= 10"))
    (diagnostic,) = compilation.diagnostics
    assert diagnostic.hint == "did you mean 'amount'?"


def test_a_repeated_env_value_is_reported_each_time(rules: Rules) -> None:
    hook = (
        "webhook {name} {{\n"
        '  url    = env("{var}")\n'
        '  secret = env("{var}")\n'
        "  events = [investment.created]\n"
        "}}\n"
    )
    bad = "".join(hook.format(name=f"w{i}", var="BAD NAME") for i in range(3))
    good = "".join(hook.format(name=f"g{i}", var="GOOD") for i in range(3))
    errors = rules.compile(bad + good).errors
    assert [(d.code, d.span.line) for d in errors] == [
        (code, line) for line in (2, 3, 7, 8, 12, 13) for code in ["E055"]
    ]
    compiled = rules.compile(good).require()
    secrets = [compiled.webhooks[f"g{i}"].secrets for i in range(3)]
    assert secrets == [(ir.EnvRef(env="GOOD"),)] * 3
