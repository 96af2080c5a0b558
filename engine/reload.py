"""The rule set the engine serves: loaded at start, replaced on reload."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import OwnlyError
from engine.logs import Logger

__all__ = ["LoadedRules", "Rules", "RulesError"]


class RulesError(OwnlyError):
    """The rule files cannot be loaded."""


@dataclass(frozen=True)
class LoadedRules:
    """One loaded rule set and where it came from."""

    files: tuple[Path, ...]
    loaded_at: datetime


class Rules:
    """Holds the current rule set; a failed load keeps the last good one."""

    def __init__(self, paths: Sequence[Path], templates_dir: Path, logger: Logger) -> None:
        self._paths = tuple(paths)
        self._templates_dir = templates_dir
        self._logger = logger
        self.current: LoadedRules | None = None
        self.last_error: str | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def load(self) -> LoadedRules:
        """Read the rule paths; raise ``RulesError`` and keep the current set on failure."""
        try:
            loaded = LoadedRules(files=self._find_files(), loaded_at=datetime.now(UTC))
        except RulesError as exc:
            self.last_error = exc.message
            self._logger.error("rules.load_failed", error=exc.message)
            raise
        self.current = loaded
        self.last_error = None
        self._logger.info("rules.loaded", files=len(loaded.files))
        return loaded

    def _find_files(self) -> tuple[Path, ...]:
        files: list[Path] = []
        for path in self._paths:
            if path.is_dir():
                files.extend(sorted(path.rglob("*.ownly")))
            elif path.is_file():
                files.append(path)
            else:
                raise RulesError(f"rule path {path} does not exist")
        if not self._templates_dir.is_dir():
            raise RulesError(f"templates directory {self._templates_dir} does not exist")
        return tuple(files)
