"""The version of Ownly (``pyproject.toml`` says the same: a test holds the two equal).

A literal, not read from the installed metadata: ``importlib.metadata`` costs
every command 50 ms to start.
"""

from __future__ import annotations

__all__ = ["VERSION"]

VERSION = "0.1.0"
