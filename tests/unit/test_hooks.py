"""Inbound hooks: the signature in its forms, rotated secrets, the event id, the match."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from dsl import RuleSet, compile_rules, ir
from engine.events.bus import StoredEvent, event_context, match
from engine.http.hooks import Refusal, event_id, secrets_of, verify

BODY = b'{"status": "completed", "document_id": "doc_1"}'
SECRET = b"hook-secret"
SOURCE = ir.Source(file="rules/hooks.ownly", line=1)


def hook(algorithm: str = "hmac-sha256", *secrets: ir.Value) -> ir.Hook:
    return ir.Hook(
        name="docusign",
        path="/hooks/docusign",
        secrets=secrets or (ir.EnvRef(env="DOCUSIGN_SECRET"),),
        header="X-Sig",
        algorithm=algorithm,  # type: ignore[arg-type]
        source=SOURCE,
    )


def digest(algorithm: str = "sha256", secret: bytes = SECRET, body: bytes = BODY) -> bytes:
    return hmac.new(secret, body, getattr(hashlib, algorithm)).digest()


def forms(algorithm: str) -> list[str]:
    """Every way a provider may write the digest."""
    raw = digest(algorithm)
    return [
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        f"{algorithm}={raw.hex()}",
        f"{algorithm.upper()}={raw.hex()}",
        f"{algorithm}={base64.b64encode(raw).decode()}",
        f"  {raw.hex()} ",
    ]


@pytest.mark.parametrize(
    ("algorithm", "offered"),
    [("hmac-sha256", f) for f in forms("sha256")] + [("hmac-sha512", f) for f in forms("sha512")],
)
def test_a_digest_in_any_of_its_forms_verifies(algorithm: str, offered: str) -> None:
    verify(hook(algorithm), [SECRET], BODY, offered)


def test_any_one_secret_of_several_verifies() -> None:
    offered = digest(secret=b"new-secret").hex()
    verify(hook(), [SECRET, b"new-secret"], BODY, offered)
    verify(hook(), [b"new-secret", SECRET], BODY, offered)


@pytest.mark.parametrize(
    ("algorithm", "secrets", "offered", "reason"),
    [
        ("hmac-sha256", [SECRET], None, "missing"),
        ("hmac-sha256", [SECRET], "", "missing"),
        ("hmac-sha256", [SECRET], "   ", "missing"),
        ("hmac-sha256", [], digest().hex(), "no_secret"),
        ("hmac-sha256", [SECRET], digest(body=BODY + b" ").hex(), "mismatch"),
        ("hmac-sha256", [b"other"], digest().hex(), "mismatch"),
        ("hmac-sha256", [SECRET], "0" * 64, "mismatch"),
        # The digest of another algorithm, or named as one.
        ("hmac-sha256", [SECRET], digest("sha512").hex(), "malformed"),
        ("hmac-sha512", [SECRET], digest("sha256").hex(), "malformed"),
        ("hmac-sha256", [SECRET], "sha512=" + digest().hex(), "malformed"),
        ("hmac-sha256", [SECRET], digest().hex()[:-2], "malformed"),
        ("hmac-sha256", [SECRET], digest().hex()[:-1] + "g", "malformed"),
        ("hmac-sha256", [SECRET], digest().hex()[:31] + " " + digest().hex()[32:], "malformed"),
        ("hmac-sha256", [SECRET], "é" * 64, "malformed"),
        ("hmac-sha256", [SECRET], "\udcff" * 44, "malformed"),
        ("hmac-sha256", [SECRET], "v1," + base64.b64encode(digest()).decode(), "malformed"),
        ("hmac-sha256", [SECRET], base64.b64encode(digest()[:31]).decode(), "malformed"),
    ],
)
def test_a_signature_that_does_not_verify_is_refused_with_its_reason(
    algorithm: str, secrets: list[bytes], offered: str | None, reason: str
) -> None:
    with pytest.raises(Refusal) as refused:
        verify(hook(algorithm), secrets, BODY, offered)
    assert refused.value.reason == reason


def test_the_secrets_are_read_from_the_environment_and_an_empty_one_is_none() -> None:
    rotating = hook(
        "hmac-sha256",
        ir.EnvRef(env="CURRENT"),
        ir.EnvRef(env="NEXT", default=""),
        ir.EnvRef(env="UNSET"),
        ir.EnvRef(env="DEFAULTED", default="fallback"),
        "literal",
    )
    assert secrets_of(rotating, {"CURRENT": "one"}) == [b"one", b"fallback", b"literal"]
    environ = {"CURRENT": "one", "NEXT": "two", "DEFAULTED": ""}
    assert secrets_of(rotating, environ) == [b"one", b"two", b"literal"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Idempotency-Key": "abc"}, "hook_docusign_abc"),
        ({"webhook-id": "msg_2"}, "hook_docusign_msg_2"),
        ({"Idempotency-Key": "abc", "webhook-id": "msg_2"}, "hook_docusign_abc"),
        ({"Idempotency-Key": "k" * 186}, "hook_docusign_" + "k" * 186),
    ],
)
def test_the_event_id_comes_from_the_request_s_key(
    headers: dict[str, str], expected: str | None
) -> None:
    assert event_id("docusign", headers) == expected


@pytest.mark.parametrize("key", ["", "a b", "k" * 187, "ünï", "tab\there"])
def test_a_key_that_makes_no_event_id_is_refused(key: str) -> None:
    with pytest.raises(web.HTTPException) as refused:
        event_id("docusign", {"Idempotency-Key": key})
    assert refused.value.status == 400
    assert b"invalid_idempotency_key" in (refused.value.body or b"")


RULES = """
hook docusign {
  secret = env("DOCUSIGN_SECRET")
  header = "X-Sig"
}

workflow countersign {
  on hook docusign when event.data.status == "completed"
  fail "x"
}
"""


def test_a_hook_event_is_matched_untyped_by_the_hook_s_workflow(tmp_path: Path) -> None:
    (tmp_path / "hooks.ownly").write_text(RULES, encoding="utf-8")
    compilation = compile_rules([tmp_path / "hooks.ownly"], templates_dir=tmp_path)
    assert compilation.rule_set is not None, compilation.render()
    rules: RuleSet = compilation.rule_set
    now = datetime(2026, 3, 8, tzinfo=UTC)

    def event(status: str) -> StoredEvent:
        return StoredEvent(
            id="hook_docusign_1",
            type="hook.docusign",
            data={"status": status, "extra": {"any": ["shape"]}},
            occurred_at=now,
            received_at=now,
            source="hook:docusign",
        )

    completed = event("completed")
    assert "hook.docusign" not in rules.events  # not in the catalog: stored as received
    assert event_context(completed, rules, now, {}).values["event"]["data"] is completed.data  # type: ignore[index]
    assert [(s.kind, s.name) for s in match(rules, completed, now, {}).accepted] == [
        ("workflow", "countersign")
    ]
    sent = match(rules, event("sent"), now, {}, refused=True)
    assert sent.accepted == []
    assert [s.name for s in sent.refused] == ["countersign"]
