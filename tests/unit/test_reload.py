"""A reload's outcome says in one sentence what it did and which version serves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.rules.reload import ReloadOutcome

AT = datetime(2026, 11, 26, tzinfo=UTC)
V = "ab" * 32


@pytest.mark.parametrize(
    ("outcome", "message"),
    [
        (ReloadOutcome("applied", V, AT, "api"), f"applied version {V[:12]}"),
        (
            ReloadOutcome("unchanged", V, AT, "SIGHUP"),
            f"the rule set is unchanged: version {V[:12]} keeps serving",
        ),
        (
            ReloadOutcome("failed", V, AT, "api", ({}, {})),
            f"2 errors, nothing applied: version {V[:12]} keeps serving",
        ),
        (
            ReloadOutcome("failed", None, AT, "start", ({},)),
            "1 error, nothing applied: no rule set serves",
        ),
    ],
)
def test_the_message_names_the_serving_version(outcome: ReloadOutcome, message: str) -> None:
    assert outcome.message == message
    assert outcome.as_dict()["message"] == message
