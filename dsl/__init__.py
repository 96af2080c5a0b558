"""The Ownly rule language: parse, check, compile and format rule files."""

from __future__ import annotations

__all__: list[str] = []
