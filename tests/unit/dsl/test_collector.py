"""`compile_rules` pauses the cycle collector and leaves it as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tests.unit.dsl.support import Rules


@pytest.fixture
def collector() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_what_a_compilation_made_is_in_the_oldest_generation(rules: Rules, collector: None) -> None:
    gc.enable()
    gc.collect()
    rules.compile("const LIMIT = 1\n")
    assert gc.isenabled()
    assert gc.get_count()[0] < 100  # nothing left for the youngest generation to walk
    assert gc.get_freeze_count() == 0


def test_objects_frozen_before_stay_frozen(rules: Rules, collector: None) -> None:
    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    rules.compile("const LIMIT = 1\n")
    assert gc.isenabled()
    assert gc.get_freeze_count() == frozen


def test_a_paused_collector_stays_paused(rules: Rules, collector: None) -> None:
    gc.disable()
    rules.compile("const LIMIT = 1\n")
    assert not gc.isenabled()
