"""Development mode: stand-in values for the ``env()`` variables a fresh checkout lacks.

``make run`` must work on a fresh machine with nothing set, yet the shipped
rules read their URLs and secrets from the environment. In development mode
(never in production) each missing variable gets a generated value, kept in
``var/dev.env`` (mode 0600, out of git) so it stays the same across restarts:
a URL points at the engine's own ``/dev/sink`` (which logs what it receives),
a secret is a fresh ``whsec_`` key. Variables that are set win.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable, MutableMapping
from pathlib import Path

from aiohttp import web

from engine.core.logs import Logger
from engine.errors import ConfigError

__all__ = ["DEV_ENV_FILE", "DevEnvironment", "add_sink_route"]

DEV_ENV_FILE = "dev.env"
SINK_PATH = "/dev/sink"


class DevEnvironment:
    """Fills missing variables into ``environ`` from (and into) ``state_dir/dev.env``."""

    def __init__(
        self,
        state_dir: Path,
        environ: MutableMapping[str, str],
        *,
        base_url: str,
        logger: Logger,
    ) -> None:
        self._path = state_dir / DEV_ENV_FILE
        self._environ = environ
        self._base_url = base_url.rstrip("/")
        self._logger = logger

    def fill(self, names: Iterable[str]) -> list[str]:
        """Give each unset variable in ``names`` a value; answer the names filled."""
        stored = self._read()
        filled = []
        for name in names:
            if name in self._environ:
                continue
            if name not in stored:
                stored[name] = self._generate(name)
            self._environ[name] = stored[name]
            filled.append(name)
        if filled:
            self._write(stored)
            self._logger.warning("dev_env.filled", variables=filled, file=str(self._path))
        return filled

    def _generate(self, name: str) -> str:
        upper = name.upper()
        if upper.endswith("_URL"):
            return f"{self._base_url}{SINK_PATH}/{name.lower()}"
        if any(word in upper for word in ("SECRET", "SIGNING")):
            return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        if any(word in upper for word in ("KEY", "TOKEN", "PASSWORD")):
            return "dev_" + secrets.token_urlsafe(24)
        return f"dev-{name.lower()}"

    def _read(self) -> dict[str, str]:
        try:
            text = self._path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"cannot read {self._path}: {exc.strerror}") from exc
        values = {}
        for line in text.splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() and not name.startswith("#"):
                values[name.strip()] = value.strip()
        return values

    def _write(self, values: dict[str, str]) -> None:
        lines = ["# Development stand-ins for env() variables; never used in production mode."]
        lines += [f"{name}={value}" for name, value in sorted(values.items())]
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write("\n".join(lines) + "\n")
        except OSError as exc:
            raise ConfigError(f"cannot write {self._path}: {exc.strerror}") from exc


def add_sink_route(app: web.Application, logger: Logger) -> None:
    """``POST /dev/sink/{name}``: accept and log a delivery, in development mode only."""

    async def sink(request: web.Request) -> web.Response:
        body = await request.read()
        logger.info(
            "dev_sink.received",
            sink=request.match_info["name"],
            webhook_id=request.headers.get("webhook-id"),
            event_type=request.headers.get("X-Event-Type"),
            bytes=len(body),
        )
        return web.Response(status=204)

    app.router.add_post(SINK_PATH + "/{name}", sink)
