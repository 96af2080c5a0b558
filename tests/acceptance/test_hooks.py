"""Inbound hooks: a signed request, with no API key, becomes the event ``hook.<name>``.

The engine runs as a process with hooks whose secrets it reads from its
environment; each request is signed here as a provider signs it. A request
that does not verify, or whose body is no JSON object, is refused with a JSON
error and stores nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.engine import ENGINE_TOML, KEY, READ_KEY, client
from tests.support.process import EngineProcess, write_project
from tests.support.rules import install_catalog

pytestmark = pytest.mark.acceptance

SECRET = "docusign-secret-one"
NEXT_SECRET = "docusign-secret-two"
GITHUB_SECRET = "github-secret"
LEDGER_SECRET = "ledger-secret"

HOOKS = """
hook docusign {
  secret = [env("DOCUSIGN_HOOK_SECRET"), env("DOCUSIGN_HOOK_SECRET_NEXT", "")]
  header = "X-DocuSign-Signature-1"
}

hook github {
  secret = [env("GITHUB_HOOK_SECRET"), env("GITHUB_HOOK_SECRET_NEXT", "")]
  header = "X-Hub-Signature-256"
}

hook ledger {
  secret    = env("LEDGER_HOOK_SECRET")
  header    = "X-Ledger-Signature"
  algorithm = "hmac-sha512"
}

workflow countersign {
  on hook docusign when event.data.status == "completed"
  set envelope = event.data.envelope_id
}
"""
LEGACY = """
hook legacy {
  secret = env("LEGACY_HOOK_SECRET")
  header = "X-Legacy-Signature"
}
"""

ENVIRONMENT = {
    "TEST_KEY": KEY,
    "READ_KEY": READ_KEY,
    "DOCUSIGN_HOOK_SECRET": SECRET,
    "DOCUSIGN_HOOK_SECRET_NEXT": NEXT_SECRET,
    "GITHUB_HOOK_SECRET": GITHUB_SECRET,
    "LEDGER_HOOK_SECRET": LEDGER_SECRET,
    "LEGACY_HOOK_SECRET": "legacy-secret",
}
DOCUSIGN = "X-DocuSign-Signature-1"


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(status: str = "completed", envelope_id: str = "env_1") -> bytes:
    return json.dumps(
        {"status": status, "envelope_id": envelope_id, "document_id": "doc_1"}
    ).encode()


def start(root: Path, extra_rules: str = "") -> EngineProcess:
    write_project(root, extra_toml=ENGINE_TOML)
    install_catalog(root, webhooks="")
    (root / "rules" / "hooks.ownly").write_text(HOOKS + extra_rules, encoding="utf-8")
    process = EngineProcess(root, env=ENVIRONMENT)
    try:
        process.wait_ready()
    except BaseException:
        process.kill()
        raise
    return process


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    process = start(tmp_path_factory.mktemp("hooks"))
    try:
        yield process
    finally:
        process.kill()


def post(
    engine: EngineProcess,
    name: str,
    body: bytes,
    headers: dict[str, str],
    content_type: str = "application/json",
) -> httpx.Response:
    """A request as a provider sends it: no API key."""
    with httpx.Client(base_url=engine.url, timeout=5) as plain:
        return plain.post(
            f"/api/hooks/{name}", content=body, headers={"Content-Type": content_type, **headers}
        )


def events(engine: EngineProcess, **query: str) -> list[dict[str, Any]]:
    with client(engine, READ_KEY) as api:
        answer = api.get("/api/events", params={"limit": "500", **query})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


def runs(engine: EngineProcess) -> list[dict[str, Any]]:
    with client(engine, KEY) as api:
        answer = api.get("/api/workflows/countersign/executions")
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["executions"]
    return found


def event(engine: EngineProcess, event_id: str) -> dict[str, Any]:
    with client(engine, READ_KEY) as api:
        answer = api.get(f"/api/events/{event_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_a_signed_request_is_stored_as_a_hook_event(engine: EngineProcess) -> None:
    body = envelope(envelope_id="env_signed")
    answer = post(engine, "docusign", body, {DOCUSIGN: sign(SECRET, body)})
    assert answer.status_code == 202, answer.text
    document = answer.json()
    assert document["type"] == "hook.docusign"
    assert document["duplicate"] is False
    assert document["id"].startswith("evt_")

    listed = [e for e in events(engine, type="hook.docusign") if e["id"] == document["id"]]
    assert [(e["type"], e["source"], e["data"]) for e in listed] == [
        ("hook.docusign", "hook:docusign", json.loads(body))
    ]
    # Matched by the workflow's `on hook docusign`: a run of it, triggered by the hook.
    assert event(engine, document["id"])["unplanned"] == []
    (run,) = [r for r in runs(engine) if r["event_id"] == document["id"]]
    assert (run["trigger"], run["trigger_data"]["data"]) == ("hook", json.loads(body))


def test_a_hook_event_the_workflow_s_condition_refuses_matches_nothing(
    engine: EngineProcess,
) -> None:
    body = envelope(status="sent", envelope_id="env_sent")
    answer = post(engine, "docusign", body, {DOCUSIGN: sign(SECRET, body)})
    assert answer.status_code == 202, answer.text
    assert event(engine, answer.json()["id"])["unplanned"] == []
    assert [r for r in runs(engine) if r["event_id"] == answer.json()["id"]] == []


def test_a_request_signed_with_the_second_secret_is_stored(engine: EngineProcess) -> None:
    body = envelope(envelope_id="env_rotated")
    answer = post(engine, "docusign", body, {DOCUSIGN: sign(NEXT_SECRET, body)})
    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] in {e["id"] for e in events(engine, type="hook.docusign")}


@pytest.mark.parametrize(
    ("name", "header", "signature"),
    [
        (
            "github",
            "X-Hub-Signature-256",
            lambda body: "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, "sha256").hexdigest(),
        ),
        (
            "github",
            "X-Hub-Signature-256",
            lambda body: base64.b64encode(
                hmac.new(GITHUB_SECRET.encode(), body, "sha256").digest()
            ).decode(),
        ),
        (
            "ledger",
            "X-Ledger-Signature",
            lambda body: hmac.new(LEDGER_SECRET.encode(), body, "sha512").hexdigest().upper(),
        ),
    ],
    ids=["github-prefixed-hex", "base64", "sha512-upper-hex"],
)
def test_other_forms_and_algorithms_verify(
    engine: EngineProcess, name: str, header: str, signature: Any
) -> None:
    body = json.dumps({"action": "opened", "form": header}).encode()
    answer = post(engine, name, body, {header: signature(body)})
    assert answer.status_code == 202, answer.text
    assert answer.json()["type"] == f"hook.{name}"
    assert len(events(engine, type=f"hook.{name}")) >= 1


@pytest.mark.parametrize("header", ["Idempotency-Key", "webhook-id"])
def test_a_provider_s_retry_of_one_notification_is_one_event(
    engine: EngineProcess, header: str
) -> None:
    body = envelope(envelope_id=f"env_retried_{header}")
    headers = {DOCUSIGN: sign(SECRET, body), header: f"notification-{header}"}
    first = post(engine, "docusign", body, headers)
    again = post(engine, "docusign", body, headers)
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    expected = f"hook_docusign_notification-{header}"
    assert first.json() == {"id": expected, "type": "hook.docusign", "duplicate": False}
    assert again.json() == {"id": expected, "type": "hook.docusign", "duplicate": True}
    assert [e["id"] for e in events(engine) if e["id"] == expected] == [expected]


BODY = envelope(envelope_id="env_refused")
REFUSED = [
    (
        "forged",
        "docusign",
        BODY,
        {DOCUSIGN: sign("not-the-secret", BODY)},
        401,
        "invalid_signature",
    ),
    ("tampered", "docusign", BODY + b" ", {DOCUSIGN: sign(SECRET, BODY)}, 401, "invalid_signature"),
    ("no-signature", "docusign", BODY, {}, 401, "invalid_signature"),
    ("empty-signature", "docusign", BODY, {DOCUSIGN: ""}, 401, "invalid_signature"),
    (
        "another-header",
        "docusign",
        BODY,
        {"X-Hub-Signature-256": sign(SECRET, BODY)},
        401,
        "invalid_signature",
    ),
    (
        "sha256-for-sha512",
        "ledger",
        BODY,
        {"X-Ledger-Signature": sign(LEDGER_SECRET, BODY)},
        401,
        "invalid_signature",
    ),
    # The second secret is env("GITHUB_HOOK_SECRET_NEXT", ""), unset: no rotation, not an empty key.
    (
        "empty-second-secret",
        "github",
        BODY,
        {"X-Hub-Signature-256": sign("", BODY)},
        401,
        "invalid_signature",
    ),
    ("unknown-hook", "stripe", BODY, {DOCUSIGN: sign(SECRET, BODY)}, 404, "unknown_hook"),
    (
        "not-json",
        "docusign",
        b"status=completed",
        {DOCUSIGN: sign(SECRET, b"status=completed")},
        400,
        "invalid_json",
    ),
    ("empty-body", "docusign", b"", {DOCUSIGN: sign(SECRET, b"")}, 400, "invalid_json"),
    ("array", "docusign", b"[1, 2]", {DOCUSIGN: sign(SECRET, b"[1, 2]")}, 422, "invalid_body"),
    (
        "text",
        "docusign",
        b'"completed"',
        {DOCUSIGN: sign(SECRET, b'"completed"')},
        422,
        "invalid_body",
    ),
    (
        "too-long-key",
        "docusign",
        BODY,
        {DOCUSIGN: sign(SECRET, BODY), "Idempotency-Key": "k" * 200},
        400,
        "invalid_idempotency_key",
    ),
    (
        "spaced-key",
        "docusign",
        BODY,
        {DOCUSIGN: sign(SECRET, BODY), "webhook-id": "a b"},
        400,
        "invalid_idempotency_key",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "headers", "status", "code"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSED],
)
def test_a_refused_request_answers_a_json_error_and_stores_nothing(
    engine: EngineProcess,
    name: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    before = events(engine)
    answer = post(engine, name, body, headers)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    document = answer.json()
    assert document["error"] == code
    assert document["message"]
    assert events(engine) == before


def test_a_signed_body_sent_as_another_content_type_is_refused(engine: EngineProcess) -> None:
    before = events(engine)
    answer = post(engine, "docusign", BODY, {DOCUSIGN: sign(SECRET, BODY)}, "text/plain")
    assert answer.status_code == 415, answer.text
    assert answer.json()["error"] == "unsupported_media_type"
    assert events(engine) == before


def test_a_body_over_the_limit_is_refused(engine: EngineProcess) -> None:
    before = events(engine)
    body = json.dumps({"padding": "x" * 300_000}).encode()
    answer = post(engine, "docusign", body, {DOCUSIGN: sign(SECRET, body)})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "body_too_large"
    assert events(engine) == before


def test_the_signature_is_the_credential_an_api_key_is_not(engine: EngineProcess) -> None:
    before = events(engine)
    with client(engine) as api:  # an admin key, and no signature
        answer = api.post(
            "/api/hooks/docusign", content=BODY, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"] == "invalid_signature"
    assert events(engine) == before


def test_a_hook_removed_from_the_rules_is_unknown_after_the_reload(tmp_path: Path) -> None:
    process = start(tmp_path, extra_rules=LEGACY)
    try:
        body = envelope(envelope_id="env_legacy")
        signed = {"X-Legacy-Signature": sign("legacy-secret", body)}
        assert post(process, "legacy", body, signed).status_code == 202
        (tmp_path / "rules" / "hooks.ownly").write_text(HOOKS, encoding="utf-8")
        with client(process) as api:
            reload = api.post("/api/rules/reload")
        assert reload.status_code == 200, reload.text
        assert reload.json()["status"] in ("applied", "unchanged")  # the watcher may be first
        before = events(process)
        answer = post(process, "legacy", body, signed)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"] == "unknown_hook"
        assert events(process) == before
    finally:
        process.kill()
