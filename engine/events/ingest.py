"""Reading events from a request: plain JSON, batches and CloudEvents 1.0, all checked.

Nothing here writes. ``read_events`` turns a request body and headers into
``Incoming`` events or a ``Rejection`` that says, for every bad field, where
and why; the HTTP layer decides what to store.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from dsl import RuleSet
from dsl.payload import check_payload
from engine.events.ids import parse_rfc3339

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy

__all__ = [
    "MAX_DEPTH",
    "Incoming",
    "Problem",
    "Rejection",
    "check_event",
    "nests_deeper",
    "read_event",
    "read_events",
]

JSON = "application/json"
CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"

_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_ENVELOPE = {"id", "type", "data", "occurred_at", "source", "subject"}
_CE_ATTRIBUTES = {"specversion", "id", "source", "type", "time", "subject", "datacontenttype"}
# The levels an unknown type's data may nest (its catalog type bounds a known
# one's): the engine must store, list and send it, and orjson writes at most 254.
MAX_DEPTH = 64


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one event."""

    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason}


@dataclass
class Incoming:
    """An event as received; ``problems`` is empty when it may be stored."""

    id: str | None
    type: str
    data: dict[str, Any]
    occurred_at: datetime | None = None
    source: str | None = None
    subject: str | None = None
    problems: list[Problem] = field(default_factory=list)


class Rejection(Exception):
    """The request as a whole cannot be read: an HTTP status and a JSON body."""

    def __init__(self, status: int, error: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **details}


def read_events(
    body: bytes, content_type: str, headers: CIMultiDictProxy[str], *, max_batch: int
) -> tuple[list[Incoming], bool]:
    """The events in a request, and whether it was a batch.

    Raises:
        Rejection: wrong content type (415), malformed JSON (400), a batch too
            large (413) or a body that is not an event at all (400).
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if "ce-specversion" in headers:  # a case-insensitive mapping
        if media not in (JSON, ""):
            raise Rejection(415, "unsupported_media_type", "binary CloudEvents need JSON data")
        return [_binary_cloudevent(_parse(body), headers)], False
    if media not in (JSON, CE_JSON, CE_BATCH):
        raise Rejection(
            415,
            "unsupported_media_type",
            f"send {JSON}, {CE_JSON} or {CE_BATCH}, not {media or 'no content type'}",
        )
    document = _parse(body)
    if media == CE_BATCH:
        if not isinstance(document, list):
            raise Rejection(400, "invalid_batch", "a CloudEvents batch is a JSON array")
        _check_batch_size(len(document), max_batch)
        return [_structured_cloudevent(item, f"[{i}]") for i, item in enumerate(document)], True
    if media == CE_JSON:
        return [_structured_cloudevent(document, "")], False
    if isinstance(document, dict) and set(document) == {"events"}:
        items = document["events"]
        if not isinstance(items, list):
            raise Rejection(400, "invalid_batch", "'events' must be a list of events")
        _check_batch_size(len(items), max_batch)
        return [_plain(item, f"events[{i}]") for i, item in enumerate(items)], True
    return [_plain(document, "")], False


def read_event(item: object) -> Incoming:
    """One event given as a JSON value, read as ``POST /api/events`` reads it.

    A value with ``specversion`` is a structured CloudEvent, any other a plain event.
    """
    if isinstance(item, dict) and "specversion" in item:
        return _structured_cloudevent(item, "")
    return _plain(item, "")


def check_event(event: Incoming, rules: RuleSet, *, accept_unknown_types: bool) -> None:
    """Check ``event`` against the catalog; fill defaults; add every problem found."""
    spec = rules.events.get(event.type)
    if spec is None:
        # Listed with the envelope's problems; the data has no catalog type to be checked against.
        if event.type and not accept_unknown_types:
            event.problems.append(Problem("type", f"unknown event type '{event.type}'"))
        elif nests_deeper(event.data, MAX_DEPTH):
            event.problems.append(Problem("data", f"must not nest deeper than {MAX_DEPTH} levels"))
        return
    data, problems = check_payload(spec, event.data)
    event.problems.extend(Problem(p.path, p.reason) for p in problems)
    if not problems:
        event.data = data


def nests_deeper(value: object, levels: int) -> bool:
    """Whether ``value`` has objects or lists more than ``levels`` deep (without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > levels:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def _parse(body: bytes) -> Any:
    if not body.strip():
        raise Rejection(400, "malformed_json", "the body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Rejection(
            400,
            "malformed_json",
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            line=exc.lineno,
            column=exc.colno,
        ) from None


def _check_batch_size(size: int, max_batch: int) -> None:
    if size == 0:
        raise Rejection(400, "invalid_batch", "the batch is empty")
    if size > max_batch:
        raise Rejection(
            413, "batch_too_large", f"{size} events in one batch; the limit is {max_batch}"
        )


def _plain(item: object, prefix: str) -> Incoming:
    at = f"{prefix}." if prefix else ""
    if not isinstance(item, dict):
        return Incoming(
            None, "", {}, problems=[Problem(prefix or "body", "must be an event object")]
        )
    problems = []
    if not item.keys() <= _ENVELOPE:
        problems = [
            Problem(f"{at}{key}", "unknown envelope field") for key in item if key not in _ENVELOPE
        ]
    event = Incoming(
        id=_optional_id(item.get("id"), at, "id", problems),
        type=_type(item.get("type"), at, "type", problems),
        data=_data(item.get("data", None), at, "data", problems, required=True),
        occurred_at=_time(item.get("occurred_at"), at, "occurred_at", problems),
        source=_text(item.get("source"), at, "source", problems),
        subject=_text(item.get("subject"), at, "subject", problems),
    )
    event.problems = problems
    return event


def _structured_cloudevent(item: object, prefix: str) -> Incoming:
    if not isinstance(item, dict):
        return Incoming(None, "", {}, problems=[Problem(prefix or "body", "must be a CloudEvent")])
    problems: list[Problem] = []
    at = f"{prefix}." if prefix else ""
    if "data_base64" in item:
        problems.append(Problem(f"{at}data_base64", "binary data is not accepted; send JSON data"))
    return _cloudevent(
        {k: v for k, v in item.items() if k != "data"}, item.get("data"), at, problems
    )


def _binary_cloudevent(data: object, headers: Mapping[str, str]) -> Incoming:
    attributes = {
        key.lower()[3:]: value for key, value in headers.items() if key.lower().startswith("ce-")
    }
    return _cloudevent(attributes, data, "ce-", [])


def _cloudevent(
    attributes: Mapping[str, Any], data: object, at: str, problems: list[Problem]
) -> Incoming:
    if attributes.get("specversion") != "1.0":
        problems.append(Problem(f"{at}specversion", "must be '1.0'"))
    for required in ("id", "source"):
        if not attributes.get(required):
            problems.append(Problem(f"{at}{required}", "is required"))
    media = attributes.get("datacontenttype")
    if media is not None and str(media).split(";")[0].strip().lower() != JSON:
        problems.append(Problem(f"{at}datacontenttype", f"must be {JSON}"))
    event = Incoming(
        id=_optional_id(attributes.get("id"), at, "id", problems),
        type=_type(attributes.get("type"), at, "type", problems),
        # Binary mode's data is the body, not a header: its path is plain "data".
        data=_data(data, at if at != "ce-" else "", "data", problems, required=False),
        occurred_at=_time(attributes.get("time"), at, "time", problems),
        source=_text(attributes.get("source"), at, "source", problems),
        subject=_text(attributes.get("subject"), at, "subject", problems),
    )
    event.problems = problems
    return event


def _optional_id(value: object, at: str, name: str, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ID.match(value):
        problems.append(Problem(at + name, "must be 1 to 200 printable characters without spaces"))
        return None
    return value


def _type(value: object, at: str, name: str, problems: list[Problem]) -> str:
    if value is None:
        problems.append(Problem(at + name, "is required"))
        return ""
    if not isinstance(value, str) or len(value) > 200 or not _TYPE.match(value):
        problems.append(Problem(at + name, "must look like 'investment.created'"))
        return ""
    return value


def _data(
    value: object, at: str, name: str, problems: list[Problem], *, required: bool
) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        problems.append(Problem(at + name, "must be an object"))
        return {}
    return value


def _time(value: object, at: str, name: str, problems: list[Problem]) -> datetime | None:
    if value is None:
        return None
    parsed = parse_rfc3339(value) if isinstance(value, str) else None
    if parsed is None:
        problems.append(Problem(at + name, "must be an RFC 3339 timestamp with a time zone"))
    return parsed


def _text(value: object, at: str, name: str, problems: list[Problem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 500 or "\x00" in value:
        problems.append(
            Problem(at + name, "must be a string of at most 500 characters, without NUL")
        )
        return None
    return value
