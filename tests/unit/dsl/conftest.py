"""Fixtures for the rule-language tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.dsl.support import Rules


@pytest.fixture
def rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rules:
    monkeypatch.chdir(tmp_path)
    return Rules(tmp_path)
