"""Fixtures for the whole suite."""

from __future__ import annotations

import pytest

from dsl import parser
from tests.support.differential import checking_run


@pytest.fixture(scope="session")
def _parsed() -> set[tuple[str, str, str]]:
    """The rule texts held to both parsers already."""
    return set()


@pytest.fixture(autouse=True)
def _both_parsers(monkeypatch: pytest.MonkeyPatch, _parsed: set[tuple[str, str, str]]) -> None:
    """Every rule text parsed in a test is parsed by Lark too, and the trees compared.

    The fast path reads Lark's private tables; this holds it to Lark's own
    parser on every rule text of the suite, each once.
    """
    monkeypatch.setattr(parser, "_run", checking_run(parser._run, _parsed))
