"""API keys: bearer parsing, scopes and the development key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from engine.config import CORE_SCOPES, ApiKey
from engine.http.auth import Keyring, development_key

PLATFORM = ApiKey("platform", frozenset({"events:write"}), SecretStr("pk_platform"))
OPS = ApiKey("ops", frozenset({"admin"}), SecretStr("pk_ops"))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer pk_platform", PLATFORM),
        ("bearer pk_ops", OPS),
        ("Bearer  pk_ops ", OPS),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic pk_ops", None),
        ("Bearer pk_op", None),
        ("Bearer pk_ops_and_more", None),
        ("pk_ops", None),
        ("Bearer pk_\udcff\udcfe", None),  # bytes that are not UTF-8, as aiohttp decodes them
        ("Bearer pk_\ud800", None),
    ],
)
def test_identify(header: str | None, expected: ApiKey | None) -> None:
    assert Keyring((PLATFORM, OPS)).identify(header) == expected


def test_scopes() -> None:
    assert PLATFORM.allows("events:write")
    assert not PLATFORM.allows("webhooks:write")
    assert OPS.allows("webhooks:write"), "admin allows everything"


def test_development_key_is_created_once_private_and_complete(tmp_path: Path) -> None:
    state = tmp_path / "var"
    first = development_key(state)
    second = development_key(state)
    assert first.secret.get_secret_value() == second.secret.get_secret_value()
    assert len(first.secret.get_secret_value()) >= 32
    assert first.scopes == frozenset(CORE_SCOPES)
    mode = stat.S_IMODE((state / "dev-key").stat().st_mode)
    assert mode == 0o600
