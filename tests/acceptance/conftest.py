"""Fixtures: a real loopback receiver, and the engine as a subprocess aimed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.engine import start_engine
from tests.support.process import EngineProcess
from tests.support.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def engine(tmp_path: Path, receiver: Receiver) -> Iterator[EngineProcess]:
    process = start_engine(tmp_path, receiver)
    try:
        yield process
    finally:
        process.kill()
