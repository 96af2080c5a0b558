"""API keys: which key a request carries, compared in constant time."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from pydantic import SecretStr

from engine.config import CORE_SCOPES, ApiKey
from engine.errors import ConfigError

__all__ = ["DEV_KEY_FILE", "Keyring", "development_key"]

DEV_KEY_FILE = "dev-key"


class Keyring:
    """The keys the engine accepts."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self.keys = keys
        self._secrets = tuple((key, key.secret.get_secret_value().encode()) for key in keys)

    def identify(self, authorization: str | None) -> ApiKey | None:
        """The key named by an ``Authorization: Bearer <key>`` header, or None."""
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        # A header's bytes that are not UTF-8 arrive from aiohttp as lone surrogates.
        offered = presented.strip().encode("utf-8", "surrogatepass")
        found = None
        # Compare against every key, so timing does not reveal which one matched.
        for key, secret in self._secrets:
            if hmac.compare_digest(offered, secret):
                found = key
        return found


def development_key(state_dir: Path, scopes: Iterable[str] = CORE_SCOPES) -> ApiKey:
    """A local key with every scope in ``scopes``, kept in ``state_dir`` (created once,
    mode 0600)."""
    path = state_dir / DEV_KEY_FILE
    try:
        value = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        value = ""
    except OSError as exc:
        raise ConfigError(f"cannot read the development key {path}: {exc.strerror}") from exc
    if not value:
        value = "ownly_dev_" + secrets.token_urlsafe(24)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as file:
                file.write(value + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write the development key {path}: {exc.strerror}") from exc
    return ApiKey(name="development", scopes=frozenset(scopes), secret=SecretStr(value))
