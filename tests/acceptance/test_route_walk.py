"""Every route the app registers, walked with hostile input: each answer is JSON, none a 500.

The routes are listed from the application itself (``build_app``), so a route
added later is walked without a change here (a new kind of path placeholder
must be given real values in ``_real_kind``). Each route gets odd path values,
odd query parameters, bodies that are not JSON or not of its shape, odd
values in each of its body and header fields, and wrong content types. Every
answer must be under 500, every refusal a JSON ``{"error", "message"}``, and a
refused request must leave the database as it was. One engine serves the
whole walk.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from engine.app import build_engine, load_settings
from engine.http.server import build_app
from tests.support.engine import ENGINE_TOML, KEY, READ_KEY, SECRET
from tests.support.process import EngineProcess, write_project
from tests.support.receiver import Receiver
from tests.support.rules import RECEIVER_WEBHOOK, install_catalog, install_emails, investment

pytestmark = pytest.mark.acceptance

# A second webhook whose filter reads a time and a decimal of the event, so that
# odd values in event data go through rule evaluation at ingest too.
FILTERED_WEBHOOK = """
webhook filtered {
  url     = env("RECEIVER_URL")
  secret  = env("RECEIVER_SECRET")
  events  = [investment.created]
  when    event.data.created_at < now() - 1d and event.data.amount * 100 > 1
}
"""

# An inbound hook, and a workflow whose condition reads the free-form data of its
# requests: the walk's bodies are signed for it too, so that they get past the
# signature to the body's checks and to matching.
HOOK_SECRET = "walk-hook-secret"
WALK_HOOK = """
hook walk {
  secret = [env("WALK_HOOK_SECRET"), env("WALK_HOOK_SECRET_NEXT", "")]
  header = "X-Walk-Signature"
}

workflow walk_hooked {
  on hook walk when event.data.status == "completed" and event.data.amount > 10
  fail "walked"
}
"""

TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2026-13-45T99:99:99Z",
    "2026-01-01T00:00:00",
    "",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00-01:00",
    "2026-06-30T23:59:60Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00.123456789+00:00",
]
NUMBERS = ["1e999999", "99999999999999999999999999", "-1", "0", str(10**30), "1.5", "²", "٣"]
STRINGS = [
    "\x00",
    "%00",
    "x" * 10_240,
    "ünïcødé ✓ 𝄞",
    "../",
    "../../etc/passwd",
    " spaced out ",
    "\ud800",
    "'; DROP TABLE events; --",
]
ODD_VALUES = TIMES + NUMBERS + STRINGS
# Path segments sent as they are, beside every odd value percent-encoded.
RAW_SEGMENTS = ["..", "../..", ".", "%", "%zz", "%2e%2e", "%ff", "a%2Fb", "%C0%AE", "a;b=c"]
QUERY_NAMES = ["since", "until", "limit", "cursor", "type", "state", "event_type", "partial"]
CONTENT_TYPES = [
    None,
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "////",
    'application/json; charset="unterminated',
    "application/json;;=;=",
    "ünï/cødé",
]
_JSON = (("Content-Type", b"application/json"),)
DEEP = 10_000
BODIES = [
    b"",
    b"not json",
    b"{",
    b'{"a": 1,}',
    b"\xff\xfe\x00",
    b"\x00",
    b"1e999999",
    b"[]",
    b"[1]",
    b"1",
    b"-1",
    b"99999999999999999999999999",
    b"null",
    b"true",
    b'"text"',
    b"{}",
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b"[" + b"1," * 150_000 + b"1]",  # over [ingest] max_body
]
AUTHORIZATIONS = [
    b"",
    b"Bearer",
    b"Bearer \xff\xfe",
    "Bearer ünï".encode(),
    b"Bearer " + b"k" * 10_240,
    b"Basic " + KEY.encode(),
    b"Bearer " + READ_KEY.encode(),
    b"Bearer " + KEY.encode() + b" extra",
]


WALK_DATA = {"name": "Walk", "accredited": False}


def _event(**changes: object) -> dict[str, object]:
    return {**investment(), **changes}


def _cloudevent() -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": "ce-walk",
        "source": "/walk",
        "type": "investment.created",
        "time": "2026-01-01T00:00:00Z",
        "data": investment()["data"],
    }


@dataclass(frozen=True)
class Shape:
    """A body a route reads, and the dotted names of its fields each given odd values."""

    body: object
    fields: tuple[str, ...]
    content_type: str = "application/json"


WALK_WORKFLOW = """
workflow walk {
  on manual
  set note = event.data.note
}
"""

SHAPES: dict[tuple[str, str], list[Shape]] = {
    ("POST", "/api/events"): [
        Shape(
            _event(occurred_at="2026-01-01T00:00:00Z", source="/walk", subject="walk"),
            (
                "id",
                "type",
                "occurred_at",
                "source",
                "subject",
                "data",
                "data.created_at",
                "data.amount",
                "data.user_id",
                "data.investor.email",
            ),
        ),
        Shape({"events": [_event()]}, ("events", "events.0", "events.0.occurred_at")),
        # A type outside the catalog, accepted unchecked ([ingest] accept_unknown_types).
        Shape({"type": "walk.unknown", "data": {"free": "form"}}, ("data", "data.free")),
        Shape(
            _cloudevent(), ("time", "id", "source", "specversion"), "application/cloudevents+json"
        ),
        Shape([_cloudevent()], ("0", "0.time"), "application/cloudevents-batch+json"),
    ],
    ("POST", "/api/emails/send-template"): [
        Shape(
            {"template": "kyc_welcome", "to": "walk@example.com", "data": WALK_DATA},
            ("template", "to", "data", "data.name", "data.accredited"),
        )
    ],
    ("POST", "/api/emails/send"): [
        Shape(
            {
                "to": "walk@example.com",
                "from": "Walk <from@example.com>",
                "reply_to": "reply@example.com",
                "subject": "Walk",
                "text": "hi",
                "html": "<p>hi</p>",
            },
            ("to", "from", "reply_to", "subject", "text", "html"),
        )
    ],
    ("POST", "/api/emails/templates/{id}/preview"): [
        Shape({"data": WALK_DATA}, ("data", "data.name"))
    ],
    ("POST", "/api/emails/suppressions"): [
        Shape(
            {"address": "kept@example.com", "category": "onboarding", "detail": "walk"},
            ("address", "category", "detail"),
        )
    ],
    ("POST", "/api/workflows/{id}/execute"): [
        Shape({"data": {"note": "walk"}}, ("data", "data.note"))
    ],
    ("POST", "/api/workflows/executions/{run}/rerun"): [Shape({"from": "note"}, ("from",))],
    ("POST", "/api/workflows/from-template"): [
        Shape(
            {"template": "payout_notice", "name": "walk_notice", "values": {"concurrency": "2"}},
            ("template", "name", "values", "values.concurrency"),
        )
    ],
    ("POST", "/api/webhooks/{id}/recover"): [
        Shape(
            {"since": "2020-01-01T00:00:00Z", "until": "2030-01-01T00:00:00Z"}, ("since", "until")
        )
    ],
}
SHAPES[("POST", "/api/hooks/{name}")] = [
    Shape(
        {"status": "completed", "amount": 25, "envelope": {"id": "env_walk"}},
        ("status", "amount", "envelope"),
    )
]
# Binary-mode CloudEvents: the attributes are headers, each given odd values.
CE_HEADERS = {
    "ce-specversion": "1.0",
    "ce-id": "ce-walk-binary",
    "ce-source": "/walk",
    "ce-type": "investment.created",
    "ce-time": "2026-01-01T00:00:00Z",
}


def _routes() -> list[tuple[str, str]]:
    engine = build_engine(load_settings(None, {}), log_stream=io.StringIO())
    app = build_app(engine)
    return sorted({(route.method, route.resource.canonical) for route in app.router.routes()})


ROUTES = _routes()


@dataclass(frozen=True)
class Sent:
    """One request of the walk: the target as it goes on the wire (path and query), a body."""

    method: str
    target: str
    body: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    def label(self) -> str:
        target = self.target if len(self.target) < 100 else self.target[:97] + "..."
        body = "" if self.body is None else f" {self.body[:80]!r}"
        return f"{self.method} {target}{body} {dict(self.headers)}"


def _encoded(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _real_kind(canonical: str, placeholder: str) -> str:
    """Which real value fills ``placeholder`` of the route ``canonical``."""
    if placeholder == "delivery":
        return "job"
    prefix = canonical.split("{", 1)[0]
    if prefix == "/api/records/":
        return "record" if placeholder == "record" else "record_id"
    return {
        "/api/events/": "event",
        "/api/jobs/": "job",
        "/api/webhooks/": "webhook",
        "/api/emails/templates/": "template",
        "/api/emails/logs/": "email",
        "/api/emails/suppressions/": "address",
        "/api/workflows/": "workflow",
        "/api/workflows/executions/": "run",
        "/email/o/": "open",
        "/email/c/": "click",
        "/email/u/": "unsubscribe",
        "/dev/sink/": "sink",
        "/api/hooks/": "hook",
    }[prefix]


def _paths(canonical: str, real: dict[str, str]) -> list[str]:
    """The route's path with real values, then with each odd value in each placeholder."""
    names = re.findall(r"{(\w+)}", canonical)
    filled = {name: _encoded(real[_real_kind(canonical, name)]) for name in names}

    def path(values: dict[str, str]) -> str:
        text = canonical
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    odd = [_encoded(v) for v in ODD_VALUES if v] + RAW_SEGMENTS
    return [path(filled)] + [path({**filled, name: v}) for name in names for v in odd]


def _fragments() -> list[bytes]:
    """Odd JSON values for one field: texts, numbers as written, wrong kinds."""
    texts = [json.dumps(v).encode() for v in TIMES + STRINGS + NUMBERS]
    numbers = [v.encode() for v in NUMBERS if v[0].isascii()]
    # Nested past what orjson writes (254 levels), past what it reads (1024), and past DEEP.
    deep = [b"[" * levels + b"]" * levels for levels in (300, 1_000, DEEP)]
    return texts + numbers + [b"null", b"[]", b"{}", b"true", b"1", *deep]


def _with_field(body: object, dotted: str, fragment: bytes) -> bytes:
    """``body`` as JSON with the field ``dotted`` written as ``fragment``."""
    marker = "\x01walk\x01"
    document = json.loads(json.dumps(body))
    *parents, last = dotted.split(".")
    holder: Any = document
    for part in parents:
        holder = holder[int(part)] if isinstance(holder, list) else holder[part]
    if isinstance(holder, list):
        holder[int(last)] = marker
    else:
        holder[last] = marker
    return json.dumps(document).encode().replace(json.dumps(marker).encode(), fragment)


def _requests(method: str, canonical: str, real: dict[str, str]) -> list[Sent]:
    """Everything the walk sends to one route."""
    first, *odd_paths = _paths(canonical, real)
    sent = [Sent(method, path) for path in [first, *odd_paths]]
    sent += [Sent(method, first, headers=(("Authorization", value),)) for value in AUTHORIZATIONS]
    if method == "HEAD":
        return sent
    if method == "GET":
        sent += [
            Sent(method, f"{first}?{name}={_encoded(value)}")
            for name in QUERY_NAMES
            for value in ODD_VALUES
        ]
        sent += [
            Sent(method, f"{first}?{name}={value}")  # "+" and ":" as they are
            for name in ("since", "until")
            for value in TIMES
        ]
        sent += [
            Sent(method, f"{first}?{name}={raw}") for name in QUERY_NAMES for raw in RAW_SEGMENTS
        ]
        return sent
    # Other methods read little of the query: each odd value in every name at once
    # (a long one in the first only, to keep the request line under the parser's limit).
    for value in ODD_VALUES:
        names = QUERY_NAMES if len(value) < 1_000 else QUERY_NAMES[:1]
        query = "&".join(f"{name}={_encoded(value)}" for name in names)
        sent.append(Sent(method, f"{first}?{query}"))
    sent += [Sent(method, first, body, _JSON) for body in BODIES]
    shapes = SHAPES.get((method, canonical), [Shape({"walk": True}, ())])
    for shape in shapes:
        typed = (("Content-Type", shape.content_type.encode()),)
        plain = json.dumps(shape.body).encode()
        sent += [
            Sent(method, first, plain, () if kind is None else (("Content-Type", kind.encode()),))
            for kind in CONTENT_TYPES
        ]
        sent += [
            Sent(method, first, _with_field(shape.body, name, fragment), typed)
            for name in shape.fields
            for fragment in _fragments()
        ]
    if canonical == "/api/hooks/{name}":
        sent += _signed(method, first, sent)
    if canonical == "/api/events":
        data = json.dumps(investment()["data"]).encode()
        # A control character is not allowed in a header: aiohttp's parser refuses
        # it before any route sees the request.
        for name in CE_HEADERS:
            for value in [v for v in ODD_VALUES if not any(ch < " " for ch in v)]:
                headers = {**CE_HEADERS, name: value}
                encoded = tuple((k, v.encode("utf-8", "surrogatepass")) for k, v in headers.items())
                sent.append(Sent(method, first, data, (*_JSON, *encoded)))
    return sent


def _signed(method: str, target: str, unsigned: list[Sent]) -> list[Sent]:
    """The walk's requests with bodies to a hook, signed as its provider would sign them,
    then one signed body with each odd value in each header a hook reads."""
    sent = [
        Sent(method, target, s.body, (*s.headers, ("X-Walk-Signature", _sign(s.body))))
        for s in unsigned
        if s.target == target and s.body is not None
    ]
    body = json.dumps(SHAPES[("POST", "/api/hooks/{name}")][0].body).encode()
    odd = [v for v in ODD_VALUES if not any(ch < " " for ch in v)]
    for name in ("Idempotency-Key", "webhook-id", "X-Walk-Signature"):
        for value in odd:
            headers = {
                "X-Walk-Signature": _sign(body),
                name: value.encode("utf-8", "surrogatepass"),
            }
            sent.append(Sent(method, target, body, (*_JSON, *headers.items())))
    return sent


def _sign(body: bytes) -> bytes:
    return hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest().encode()


@dataclass
class Walk:
    """The engine walked, the real values its paths take, and a read-only look at its database."""

    engine: EngineProcess
    real: dict[str, str]
    database: sqlite3.Connection


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root: Path = tmp_path_factory.mktemp("route-walk")
    extra_toml = ENGINE_TOML + "[ingest]\naccept_unknown_types = true\n[records.investor]\n"
    write_project(root, extra_toml=extra_toml)
    rules = RECEIVER_WEBHOOK + FILTERED_WEBHOOK + WALK_HOOK + WALK_WORKFLOW
    install_catalog(root, webhooks=rules)
    install_emails(root)
    with Receiver() as receiver:
        env = {
            "TEST_KEY": KEY,
            "READ_KEY": READ_KEY,
            "RECEIVER_URL": receiver.url,
            "RECEIVER_SECRET": SECRET,
            "WALK_HOOK_SECRET": HOOK_SECRET,
        }
        process = EngineProcess(root, env=env)
        try:
            process.wait_ready()
            database = sqlite3.connect(f"file:{root / 'var' / 'ownly.db'}?mode=ro", uri=True)
            try:
                empty = _snapshot(database)
                conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
                event = json.dumps(investment("evt_walk")).encode()
                status, body = _call(conn, Sent("POST", "/api/events", event, _JSON))
                conn.close()
                assert status == 202, body
                _settle(database)
                assert _snapshot(database) != empty, "the snapshot sees what a request writes"
                (job,) = database.execute("SELECT min(id) FROM jobs").fetchone()
                real = {
                    "event": "evt_walk",
                    "job": str(job),
                    "webhook": "receiver",
                    "sink": "walk",
                    "hook": "walk",
                }
                real |= {"record": "investor", "record_id": "inv_walk"}
                real |= _email_values(process, database)
                real |= _workflow_values(process, database)
                yield Walk(process, real, database)
            finally:
                database.close()
        finally:
            process.kill()


def _email_values(process: EngineProcess, database: sqlite3.Connection) -> dict[str, str]:
    """An email sent (to the outbox), and the real values of the email routes' paths."""
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
    body = {"template": "kyc_welcome", "to": "walk@example.com", "data": WALK_DATA}
    status, answer = _call(
        conn, Sent("POST", "/api/emails/send-template", json.dumps(body).encode(), _JSON)
    )
    assert status == 202, answer
    _settle(database)
    status, log = _call(conn, Sent("GET", f"/api/emails/logs/{answer['id']}"))
    conn.close()
    assert status == 200 and log["status"] == "sent", log
    tokens = dict(re.findall(r"/email/([oc])/([\w.-]+)", log["html"]))
    sent = (process.cwd / "var" / "outbox" / f"{answer['id']}.eml").read_text()
    unsubscribe = re.search(r"/email/u/([\w.-]+)>", sent)
    assert unsubscribe is not None and set(tokens) == {"o", "c"}, sent
    return {
        "template": "kyc_welcome",
        "email": answer["id"],
        "address": "walk@example.com",
        "open": tokens["o"],
        "click": tokens["c"],
        "unsubscribe": unsubscribe.group(1),
    }


def _workflow_values(process: EngineProcess, database: sqlite3.Connection) -> dict[str, str]:
    """A run started by hand, and the real values of the workflow routes' paths."""
    conn = http.client.HTTPConnection("127.0.0.1", process.port, timeout=10)
    body = json.dumps({"data": {"note": "walk"}}).encode()
    status, answer = _call(conn, Sent("POST", "/api/workflows/walk/execute", body, _JSON))
    conn.close()
    assert status == 202, answer
    _settle(database)
    return {"workflow": "walk", "run": answer["id"]}


def _send(conn: http.client.HTTPConnection, sent: Sent) -> tuple[int, str | None, bytes]:
    headers = {"Authorization": f"Bearer {KEY}".encode(), **dict(sent.headers)}
    conn.putrequest(sent.method, sent.target, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    if sent.body is not None:
        conn.putheader("Content-Length", str(len(sent.body)))
    conn.endheaders(sent.body)
    answer = conn.getresponse()
    body = answer.read()
    if answer.will_close:
        conn.close()
    return answer.status, answer.getheader("Content-Type"), body


def _call(conn: http.client.HTTPConnection, sent: Sent) -> tuple[int, Any]:
    status, _, body = _send(conn, sent)
    return status, json.loads(body)


def _snapshot(database: sqlite3.Connection) -> tuple[Any, ...]:
    """What a refused request must not change: every table's size, the jobs and webhook states."""
    names = database.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    counts = tuple(
        # The names come from sqlite_master, not from the walk.
        (name, database.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])  # noqa: S608
        for (name,) in names.fetchall()
    )
    jobs = database.execute("SELECT id, state, attempts, due_at FROM jobs ORDER BY id").fetchall()
    states = database.execute("SELECT name, state, reason FROM webhook_state").fetchall()
    return counts, tuple(jobs), tuple(sorted(states))


def _settle(database: sqlite3.Connection) -> None:
    """Wait until no job is still to run: what an accepted request started is done."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (busy,) = database.execute(
            "SELECT count(*) FROM jobs WHERE state IN ('pending', 'running')"
        ).fetchone()
        if busy == 0:
            return
        time.sleep(0.005)
    raise AssertionError("the deliveries started by the walk did not finish")


def _problem(status: int, content_type: str | None, body: bytes, head: bool) -> str | None:
    """What is wrong with an answer, or None."""
    if status >= 500:
        return f"answered {status}: {body[:300]!r}"
    if b"Traceback" in body:
        return f"a traceback in the answer: {body[:300]!r}"
    if head or status < 400:
        return None
    if not (content_type or "").startswith("application/json"):
        return f"answered {status} as {content_type}: {body[:200]!r}"
    document = json.loads(body)
    if not (
        isinstance(document, dict)
        and isinstance(document.get("error"), str)
        and isinstance(document.get("message"), str)
    ):
        return f"answered {status} without error and message: {body[:200]!r}"
    return None


def _read_back(conn: http.client.HTTPConnection, answer: bytes) -> list[str]:
    """What is wrong with reading back the events an ingest answer says it stored."""
    document = json.loads(answer)
    stored = document.get("events", [document])
    ids = [event["id"] for event in stored if event.get("status", "accepted") != "rejected"]
    problems = []
    for event_id in ids:
        status, content_type, _ = _send(conn, Sent("GET", f"/api/events/{_encoded(event_id)}"))
        if status != 200 or not (content_type or "").startswith("application/json"):
            problems.append(f"event {event_id} was stored, but reading it answered {status}")
    return problems


def _reactivate(walk: Walk, conn: http.client.HTTPConnection) -> None:
    """Undo a pause the walk made, so that the next requests find the webhooks as they were."""
    paused = walk.database.execute("SELECT name FROM webhook_state WHERE state != 'active'")
    for (name,) in paused.fetchall():
        status, body = _call(conn, Sent("POST", f"/api/webhooks/{name}/activate"))
        assert status == 200, body


@pytest.mark.parametrize(("method", "canonical"), ROUTES, ids=[" ".join(r) for r in ROUTES])
def test_every_answer_is_json_and_a_refusal_writes_nothing(
    walk: Walk, method: str, canonical: str
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", walk.engine.port, timeout=10)
    failures = []
    try:
        for sent in _requests(method, canonical, walk.real):
            before = _snapshot(walk.database)
            status, content_type, body = _send(conn, sent)
            problem = _problem(status, content_type, body, head=method == "HEAD")
            if problem is None and status >= 400 and _snapshot(walk.database) != before:
                problem = f"refused with {status} but wrote to the database"
            if problem is not None:
                failures.append(f"{sent.label()}: {problem}")
            if status < 400 and method not in ("GET", "HEAD"):
                _reactivate(walk, conn)
                _settle(walk.database)
                if canonical in ("/api/events", "/api/hooks/{name}"):
                    failures += [f"{sent.label()}: {p}" for p in _read_back(conn, body)]
    finally:
        conn.close()
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:30])


def test_a_recovery_window_from_year_one_east_of_utc_is_refused(walk: Walk) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", walk.engine.port, timeout=10)
    body = b'{"since": "0001-01-01T00:00:00+01:00"}'
    try:
        status, answer = _call(conn, Sent("POST", "/api/webhooks/receiver/recover", body, _JSON))
    finally:
        conn.close()
    assert status == 400, answer
    assert answer["error"] == "invalid_window"


def test_nothing_failed_behind_the_answers(walk: Walk) -> None:
    log = walk.engine.output()
    assert "Traceback" not in log
    assert '"level":"error"' not in log
