"""Fixtures the integration tests share."""

from __future__ import annotations

import pytest

from tests.support.tls import Certificate, make_certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A certificate for 127.0.0.1 and localhost, with the contexts that serve and trust it."""
    return make_certificate(tmp_path_factory.mktemp("tls"))
