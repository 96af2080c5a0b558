"""The HTTP server and the core API: auth, events, hooks, rules, jobs.

Its names are imported on first use (``engine.lazy``).
"""

from __future__ import annotations

import typing as _typing

from engine.lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine.http.auth import Keyring
    from engine.http.server import build_app, serve

__all__ = [
    "Keyring",
    "build_app",
    "serve",
]

_HOMES = {
    "Keyring": "engine.http.auth",
    "build_app": "engine.http.server",
    "serve": "engine.http.server",
}

if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports
    __getattr__, __dir__ = _exports(__name__, _HOMES, globals())
