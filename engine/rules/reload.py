"""The rule set the engine serves: compiled off the event loop, stored, swapped atomically.

A reload compiles every rule file and template. A rule set with any error is
never applied: the last good one keeps serving and the failure (with its
diagnostics, file:line:col) is kept for ``GET /api/rules``. A good rule set is
first stored (its IR under its version hash) and only then made current, so
every event committed afterwards names a stored version.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Self

import watchfiles
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from dsl import Compilation, ParseCache, RuleSet, compile_rules, rule_files
from engine.core.clock import Clock
from engine.core.logs import Logger
from engine.core.schema import rule_sets
from engine.core.writer import BatchWrite, Writer
from engine.errors import OwnlyError

__all__ = ["Applied", "ReloadOutcome", "Rules", "RulesError", "StoreRuleSet"]


class RulesError(OwnlyError):
    """The rule files do not compile."""


@dataclass(frozen=True)
class Applied:
    """The rule set being served, and when and from what it was applied."""

    rule_set: RuleSet
    applied_at: datetime
    files: tuple[str, ...]
    git_commit: str | None


@dataclass(frozen=True)
class ReloadOutcome:
    """What one reload did."""

    status: Literal["applied", "unchanged", "failed"]
    version: str | None
    at: datetime
    reason: str
    diagnostics: tuple[dict[str, object], ...] = ()
    text: str = ""

    @property
    def message(self) -> str:
        """The outcome in one sentence, naming the version that serves after it."""
        version = f"version {self.version[:12]}" if self.version else "no version"
        if self.status == "applied":
            return f"applied {version}"
        serving = f"{version} keeps serving" if self.version else "no rule set serves"
        if self.status == "unchanged":
            return f"the rule set is unchanged: {serving}"
        errors = len(self.diagnostics)
        return f"{errors} error{'s' * (errors != 1)}, nothing applied: {serving}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "version": self.version,
            "message": self.message,
            "at": self.at.isoformat(),
            "reason": self.reason,
            "diagnostics": list(self.diagnostics),
        }


Applying = Callable[[Connection, RuleSet, datetime], None]
"""Called in the transaction that makes a rule set current (at start, at each reload
that applies one): a capability writes what the rules ask of it (a schedule's next slot)."""


@dataclass(frozen=True)
class StoreRuleSet(BatchWrite[None]):
    """Keep a rule set's IR under its version (once per version); let ``applying``
    write what the rule set asks of them."""

    applied: Applied
    applying: Sequence[Applying] = ()

    @classmethod
    def apply_all(cls, conn: Connection, writes: Sequence[Self]) -> list[None]:
        for write in writes:
            version = write.applied.rule_set.version
            known = conn.scalar(select(rule_sets.c.version).where(rule_sets.c.version == version))
            if known is None:
                conn.execute(
                    insert(rule_sets).values(
                        version=version,
                        applied_at=write.applied.applied_at,
                        git_commit=write.applied.git_commit,
                        files=list(write.applied.files),
                        ir=write.applied.rule_set.ir.model_dump(mode="json"),
                    )
                )
            for callback in write.applying:
                callback(conn, write.applied.rule_set, write.applied.applied_at)
        return [None] * len(writes)


@dataclass
class Rules:
    """Compiles, stores and serves the rule set; watches the files for changes."""

    paths: Sequence[Path]
    templates_dir: Path
    environ: Mapping[str, str]
    clock: Clock
    logger: Logger
    debounce_ms: int = 300
    fill_missing: Callable[[list[str]], object] | None = None
    current: Applied | None = None
    last_failure: ReloadOutcome | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Parsed files by content: a reload re-parses only the files that changed.
    _parsed: ParseCache = field(default_factory=ParseCache)
    _applying: list[Applying] = field(default_factory=list)

    def on_apply(self, callback: Applying) -> None:
        """Call ``callback`` in the transaction that makes each rule set current."""
        self._applying.append(callback)

    def rule_set(self) -> RuleSet | None:
        return self.current.rule_set if self.current is not None else None

    @property
    def ready(self) -> bool:
        return self.current is not None

    async def reload(self, writer: Writer, reason: str) -> ReloadOutcome:
        """Compile the files; apply the result if it is good and new."""
        async with self._lock:
            compilation = await asyncio.to_thread(self._compile, None)
            now = self.clock.now()
            rule_set = compilation.rule_set
            if rule_set is not None and compilation.ok:
                missing = rule_set.missing_env(self.environ)
                if missing and self.fill_missing is not None:
                    self.fill_missing(missing)
                if rule_set.missing_env(self.environ):
                    # Compile again against the environment: each missing variable
                    # becomes a diagnostic at the env() that reads it.
                    compilation = await asyncio.to_thread(self._compile, self.environ)
            if rule_set is None or not compilation.ok:
                return self._failed(compilation, now, reason)
            if self.current is not None and self.current.rule_set.version == rule_set.version:
                self.last_failure = None
                self.logger.info("rules.unchanged", version=rule_set.version, reason=reason)
                return ReloadOutcome("unchanged", rule_set.version, now, reason)
            files = tuple(str(path) for path in rule_files(self.paths))
            applied = Applied(rule_set, now, files, await asyncio.to_thread(self._git_commit))
            await writer.submit(StoreRuleSet(applied, tuple(self._applying)))
            self.current = applied
            self.last_failure = None
            self.logger.info("rules.applied", version=rule_set.version, reason=reason)
            return ReloadOutcome("applied", rule_set.version, now, reason)

    async def watch(self, writer: Writer, stop: asyncio.Event) -> None:
        """Reload whenever a rule file or template changes, until ``stop`` is set.

        A watched directory that is replaced (deleted and created again, as a
        deploy tool may do) is no longer the one being watched: the watch starts
        again on the new one, and the change is reloaded.
        """
        while not stop.is_set():
            roots = self._roots()
            if not roots:  # nothing to watch yet: look again shortly
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                continue
            async for changes in watchfiles.awatch(
                *(path for path, _ in roots),
                debounce=self.debounce_ms,
                stop_event=stop,
                step=50,
                rust_timeout=1000,
                yield_on_timeout=True,  # an empty batch each second: time to look at the roots
            ):
                replaced = self._roots() != roots
                if changes or replaced:
                    try:
                        await self.reload(writer, "files changed")
                    except Exception as exc:  # a storage hiccup must not end the watch
                        self.logger.error("rules.reload_crashed", error=str(exc))
                if replaced:
                    self.logger.info("rules.watch_restarted")
                    break

    def _roots(self) -> list[tuple[Path, int]]:
        """The watched paths that exist, each with its inode (which a replacement changes)."""
        roots = []
        for path in (*self.paths, self.templates_dir):
            with contextlib.suppress(OSError):
                roots.append((path, path.stat().st_ino))
        return roots

    def _compile(self, env: Mapping[str, str] | None) -> Compilation:
        return compile_rules(
            self.paths, templates_dir=self.templates_dir, env=env, cache=self._parsed
        )

    def _failed(self, compilation: Compilation, now: datetime, reason: str) -> ReloadOutcome:
        outcome = ReloadOutcome(
            "failed",
            self.current.rule_set.version if self.current is not None else None,
            now,
            reason,
            tuple(d.as_dict() for d in compilation.errors),
            compilation.render(),
        )
        self.last_failure = outcome
        for diagnostic in compilation.errors:
            self.logger.error("rules.rejected", diagnostic=diagnostic.headline())
        return outcome

    def _git_commit(self) -> str | None:
        """The commit the first rule path is checked out at, when it is in git."""
        if not self.paths:
            return None
        where = self.paths[0] if self.paths[0].is_dir() else self.paths[0].parent
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                ["git", "-C", str(where), "rev-parse", "HEAD"],  # noqa: S607 - git from PATH
                capture_output=True,
                text=True,
                timeout=2,
                check=False,
            )
            commit = result.stdout.strip()
            if result.returncode == 0 and len(commit) == 40:
                return commit
        return None
