"""When a scheduled workflow fires: cron slots in a time zone, across its clock changes.

A cron expression names wall-clock times in its zone (UTC when none is
given), and each such time is one slot, fired once, as Vixie cron does.
Wall times are enumerated by croniter as naive times, so the zone's changes
never reach it, and each is placed in time with ``fold=0``:

- a time the clock skips when it springs forward (02:30 in New York on
  2026-03-08) fires once, at the instant the clock would have shown it with
  the offset before the change (03:30 EDT, 07:30 UTC);
- a time the clock shows twice when it falls back fires once, at its first
  occurrence.

A wall time after a gap can land on an instant already fired (03:00 EDT is
02:00 EST): such a slot is skipped, so that slots fire at strictly
increasing instants. Time is given, never read: these are pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from croniter import croniter

__all__ = ["Slot", "next_slot"]

# As far apart as the checker lets two firings be (a 29th of February).
_YEARS = 400


@dataclass(frozen=True)
class Slot:
    """One firing of a schedule.

    Attributes:
        local: the naive wall-clock time in the zone, what the cron expression names.
        at: the instant it fires (aware, UTC).
    """

    local: datetime
    at: datetime

    def key(self) -> str:
        """Stable text naming the slot: its wall time to the minute, ``2026-03-08T02:30``."""
        return self.local.isoformat(timespec="minutes")


def next_slot(cron: str, zone: str | None, after: datetime | Slot) -> Slot:
    """The first slot strictly after ``after`` (an aware instant, or the previous slot).

    From a slot, the wall times after its own are tried in order, so a clock
    that falls back never repeats a slot and one that springs forward never
    skips one; the answer fires strictly after it. From an instant (a start,
    or a restart long after the last slot), the answer is the first slot
    that fires after it, not each one missed.

    Raises:
        ValueError: ``after`` is a naive time.
    """
    place = _zone(zone)
    if isinstance(after, Slot):
        start, floor = after.local, after.at
    else:
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("after must be an aware time, not a naive one")
        floor = after
        # A slot in a gap that just closed fires after ``after`` although its
        # wall time is before the clock's: start from the wall time that
        # ``after`` has at the smaller of the offsets of the last day.
        offset = min(_offset(place, after), _offset(place, after - timedelta(days=1)))
        start = (after.astimezone(UTC) + offset).replace(tzinfo=None)
    times = croniter(cron, start, max_years_between_matches=_YEARS)
    while True:
        local: datetime = times.get_next(datetime)
        at = local.replace(tzinfo=place, fold=0).astimezone(UTC)
        if at > floor:
            return Slot(local=local, at=at)


def _zone(name: str | None) -> tzinfo:
    return UTC if name is None or name == "UTC" else ZoneInfo(name)


def _offset(place: tzinfo, instant: datetime) -> timedelta:
    return instant.astimezone(place).utcoffset() or timedelta()
