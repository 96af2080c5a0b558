"""The rule set the engine serves, and the rule-file commands.

Its names are imported on first use (``engine.lazy``).
"""

from __future__ import annotations

import typing as _typing

from engine.lazy import exports as _exports

if _typing.TYPE_CHECKING:
    from engine.rules.reload import ReloadOutcome, Rules, RulesError

__all__ = [
    "ReloadOutcome",
    "Rules",
    "RulesError",
]

_HOMES = {
    "ReloadOutcome": "engine.rules.reload",
    "Rules": "engine.rules.reload",
    "RulesError": "engine.rules.reload",
}

if not _typing.TYPE_CHECKING:  # so that mypy still checks every name against the imports
    __getattr__, __dir__ = _exports(__name__, _HOMES, globals())
