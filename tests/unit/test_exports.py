"""Each package says what it offers: ``__all__`` lists every public name, and only those."""

from __future__ import annotations
import __future__

import importlib
import types

import pytest

PACKAGES = [
    "engine",
    "engine.core",
    "engine.events",
    "engine.jobs",
    "engine.rules",
    "engine.http",
    "engine.webhooks",
    "engine.email",
    "engine.records",
    "dsl",
    "connectors",
    "connectors.email",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_every_public_member(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:  # a package may load its names on first use
        assert getattr(module, name) is not None
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), "no name is listed twice"
    assert set(exported) == public
    for name in exported:
        assert getattr(module, name) is not None


def test_the_version_is_the_installed_packages() -> None:
    from importlib.metadata import version

    from engine.version import VERSION

    assert version("ownly") == VERSION
