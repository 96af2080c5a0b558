"""Strings that look like credentials: one search finds what each kind's own pattern finds."""

from __future__ import annotations

import re

import pytest

from dsl.lowering import _SECRET_KINDS, _secret_kind

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
    for order, (what, pattern) in enumerate(_SECRET_KINDS.values()):
        match = re.search(pattern, text)
        if match:
            found.append((match.start(), order, what))
    return min(found)[2] if found else None


@pytest.mark.parametrize("text", SAMPLES)
def test_one_search_finds_what_each_pattern_finds(text: str) -> None:
    assert _secret_kind(text) == _first_kind(text)


def test_every_kind_is_found() -> None:
    kinds = {_secret_kind(text) for text in SAMPLES}
    assert {what for what, _ in _SECRET_KINDS.values()} <= kinds
