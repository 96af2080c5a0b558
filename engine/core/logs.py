"""Structured logs: JSON lines for machines, readable lines on a terminal."""

from __future__ import annotations

import logging
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["Logger", "make_logger"]

Logger = FilteringBoundLogger

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _dumps(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def make_logger(
    stream: TextIO,
    *,
    fmt: Literal["auto", "json", "console"] = "auto",
    level: str = "info",
) -> Logger:
    """A logger writing to ``stream``; ``auto`` is readable on a terminal, JSON elsewhere."""
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    logger: Logger = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
    ).bind()  # a bound logger now, not a lazy proxy that binds again on every call
    return logger
