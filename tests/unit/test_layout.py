"""The layout the architecture promises: the core names no capability, the queue owns job SQL."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from engine.app import CAPABILITIES

ENGINE = Path(__file__).parents[2] / "engine"
# A capability is a package under engine/ whose CAPABILITY the composition root lists.
CAPABILITY_PACKAGES = {f"engine.{c.name}" for c in CAPABILITIES}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ENGINE.parent).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _in(module: str, packages: set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


MODULES = sorted(ENGINE.rglob("*.py"))
CORE = [p for p in MODULES if not _in(_module(p), CAPABILITY_PACKAGES)]


def test_the_capabilities_are_found() -> None:
    assert {
        "engine.webhooks",
        "engine.email",
        "engine.records",
        "engine.workflows",
    } == CAPABILITY_PACKAGES
    assert any(_module(p) == "engine.jobs.queue" for p in CORE)


@pytest.mark.parametrize("path", CORE, ids=_module)
def test_no_core_module_imports_a_capability(path: Path) -> None:
    if _module(path) == "engine.app":  # the composition root: the one module that names them
        return
    named = {m for m in _imports(path) if _in(m, CAPABILITY_PACKAGES)}
    assert named == set(), f"{_module(path)} imports {sorted(named)}"


_JOB_WRITE = re.compile(r"\b(insert|update|delete)\(jobs\)")


@pytest.mark.parametrize("path", MODULES, ids=_module)
def test_only_the_jobs_package_writes_jobs(path: Path) -> None:
    if _in(_module(path), {"engine.jobs", "engine.core.migrations"}):
        return
    assert not _JOB_WRITE.search(path.read_text(encoding="utf-8")), _module(path)


def test_no_folder_holds_more_than_a_dozen_modules() -> None:
    folders = {ENGINE, *(p.parent for p in MODULES)}
    sizes = {
        str(f.relative_to(ENGINE.parent)): len(
            [p for p in f.glob("*.py") if p.name != "__init__.py"]
        )
        for f in folders
    }
    assert max(sizes.values()) <= 12, sizes
